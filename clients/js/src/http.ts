/** What the HTTP transports share: `/sub` URLs, requests with the token, answers to failures, one poll. */
import type { Closing, Host, Wanted } from './transport';
import type { Envelope } from './types';

/** The query of a `/sub` request: every channel with its start, the transport, the user. */
export function subQuery(host: Host, transport: string, channels: Wanted[], token?: string): string {
  const q = new URLSearchParams();
  for (const c of channels) q.append('channel', c.since ? `${c.channel},${c.since}` : c.channel);
  q.set('transport', transport);
  if (host.user) q.set('user', host.user);
  if (token) q.set('token', token);
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

export function deliverPoll(host: Host, answer: PollAnswer): void {
  for (const env of answer.messages) host.envelope(env);
  for (const [channel, cursor] of Object.entries(answer.cursors ?? {})) host.started(channel, cursor);
}

/**
 * One `/sub` poll or long-poll of `channels`: delivers the answer and returns it, or the
 * closing a failure means. Aborted with `signal`.
 */
export async function pollOnce(
  host: Host,
  transport: 'poll' | 'longpoll',
  channels: Wanted[],
  signal: AbortSignal,
): Promise<PollAnswer | Closing> {
  let res: Response;
  try {
    res = await request(host, subQuery(host, transport, channels), { signal });
  } catch (e) {
    return { reason: signal.aborted ? 'timeout' : `network error: ${(e as Error).message}` };
  }
  if (!res.ok) return refusal(host, res);
  let answer: PollAnswer;
  try {
    answer = await res.json();
  } catch {
    return { reason: 'not a poll answer' };
  }
  if (!Array.isArray(answer.messages)) return { reason: 'not a poll answer' };
  deliverPoll(host, answer);
  return answer;
}

export const isClosing = (x: PollAnswer | Closing): x is Closing => !('messages' in x);
