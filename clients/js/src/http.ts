/** What the HTTP transports share: `/sub` URLs, requests with the token, answers to failures, one poll. */
import { parseCursor } from './cursor';
import type { Closing, Host, Wanted } from './transport';
import type { Envelope } from './types';

/**
 * The query of a `/sub` request: every channel with its start, the transport, the user,
 * the token (`EventSource` cannot send a header), `format=compact` when asked.
 */
export function subQuery(
  host: Host,
  transport: string,
  channels: Wanted[],
  extra: { token?: string; compact?: boolean } = {},
): string {
  const q = new URLSearchParams();
  for (const c of channels) q.append('channel', c.since ? `${c.channel},${c.since}` : c.channel);
  q.set('transport', transport);
  if (host.user) q.set('user', host.user);
  if (extra.token) q.set('token', extra.token);
  if (extra.compact) q.set('format', 'compact');
  return `${host.base}/sub?${q}`;
}

/** `fetch` with the client token as `Authorization: Bearer`. */
export async function request(host: Host, url: string, init: RequestInit = {}): Promise<Response> {
  const token = await host.token();
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return host.platform.fetch(url, { ...init, headers, cache: 'no-store' });
}

/** `Retry-After` in milliseconds (seconds or an HTTP date). */
export function retryAfter(res: Response, now: number): number | undefined {
  const v = res.headers.get('retry-after');
  if (!v) return undefined;
  const s = Number(v);
  const ms = Number.isFinite(s) ? s * 1000 : Date.parse(v) - now;
  return ms >= 0 ? ms : undefined;
}

/** How a refused request ends a transport. */
export async function refusal(host: Host, res: Response): Promise<Closing> {
  let reason = `HTTP ${res.status}`;
  let code = '';
  try {
    const body = await res.json();
    code = body.error ?? '';
    reason = body.message ?? reason;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const retryMs = retryAfter(res, host.platform.now());
  if (res.status === 401 || code === 'token_expired') return { reason, token: true };
  // 408, 429 and 5xx pass; other 4xx would be refused again.
  const final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
  return { reason, retryMs, final };
}

/** A streamed farewell (`reconnect`, `disconnect`, `refresh`) as a closing. */
export function farewell(event: string, data: string): Closing {
  if (event === 'disconnect') return { reason: data || 'disconnected by the server', opened: true, final: true };
  if (event === 'refresh') return { reason: 'token expired', opened: true, token: true };
  return { reason: data || 'reconnect', opened: true, restart: /restart/.test(data) };
}

/** A poll body of `/sub`: its envelopes go to the client, its cursors say where each channel goes on. */
export interface PollAnswer {
  messages: Envelope[];
  cursors: Record<string, string>;
  more?: boolean;
}

/**
 * The compact poll body (`format=compact`, asked for one channel):
 * `{"cursor":"E:N","data":[…]}`, the payloads of the messages at offsets N−k+1 … N of
 * epoch E, read as the answer it stands for. `null` if it is not one.
 */
export function fromCompactPoll(channel: string, body: any): PollAnswer | null {
  const at = typeof body?.cursor === 'string' && Array.isArray(body.data) ? parseCursor(body.cursor) : null;
  const first = at ? at.offset - body.data.length + 1 : 0;
  if (!at || first < 1) return null;
  const epoch = body.cursor.slice(0, body.cursor.indexOf(':'));
  const messages: Envelope[] = body.data.map((data: unknown, i: number) => ({
    channel,
    event: 'message',
    offset: first + i,
    cursor: `${epoch}:${first + i}`,
    data,
  }));
  return { messages, cursors: { [channel]: body.cursor }, more: body.more === true };
}

export function deliverPoll(host: Host, answer: PollAnswer): void {
  for (const env of answer.messages) host.envelope(env);
  for (const [channel, cursor] of Object.entries(answer.cursors ?? {})) host.started(channel, cursor);
}

/**
 * One `/sub` poll or long-poll of `channels`: delivers the answer and returns it, or the
 * closing a failure means. Aborted with `signal`. With `host.compact`, a poll of one
 * channel asks for the compact body (about 110 bytes less per message); a server that
 * cannot say an answer so (a reset, a binary payload) or does not know the format sends
 * envelopes, told apart by their `messages`.
 */
export async function pollOnce(
  host: Host,
  transport: 'poll' | 'longpoll',
  channels: Wanted[],
  signal: AbortSignal,
): Promise<PollAnswer | Closing> {
  const compact = !!host.compact && channels.length === 1;
  let res: Response;
  try {
    res = await request(host, subQuery(host, transport, channels, { compact }), { signal });
  } catch (e) {
    return { reason: signal.aborted ? 'timeout' : `network error: ${(e as Error).message}` };
  }
  if (!res.ok) return refusal(host, res);
  let answer: PollAnswer | null;
  try {
    const body = await res.json();
    answer = Array.isArray(body?.messages) ? body : compact ? fromCompactPoll(channels[0].channel, body) : null;
  } catch {
    answer = null;
  }
  if (!answer) return { reason: 'not a poll answer' };
  deliverPoll(host, answer);
  return answer;
}

export const isClosing = (x: PollAnswer | Closing): x is Closing => !('messages' in x);
