/**
 * WebSocket: the multiplexed `/ws` endpoint, one connection for every channel, each
 * subscribed with a command from its own start; commands (publish, presence, history)
 * go over the same connection. The page cannot see the server's pings, so the client
 * pings (a `ping` command) when nothing arrived for a while, and gives the connection up
 * when nothing at all arrives in the heartbeat timeout. With `compact`, it offers the
 * compact format and, if the server takes it, reads frames through a `CompactDecoder`.
 */
import { COMPACT, CompactDecoder } from '../compact';
import { Timer, type Closing, type Host, type Transport } from '../transport';
import type { WebSocketLike } from '../platform';

/** Close codes the server uses (see its `error.rs`). */
const RESTART = 1012;
const TRY_LATER = 1013;
const POLICY = 1008;
const TOKEN_EXPIRED = 3000;

/** How a close code ends the transport. */
export function closing(code: number, reason: string, opened: boolean): Closing {
  const why: Closing = { reason: reason || `closed (${code})`, opened };
  if (code === RESTART) why.restart = true;
  if (code === TRY_LATER) {
    const ms = /(\d+)\s*ms/.exec(reason);
    if (ms) why.retryMs = Number(ms[1]);
  }
  if (code === POLICY) why.final = true;
  if (code === TOKEN_EXPIRED) why.token = true;
  return why;
}

export function websocket(host: Host): Transport {
  let ws: WebSocketLike | null = null;
  let opened = false;
  let ended = false;
  let nextId = 1;
  let decoder: CompactDecoder | null = null;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; channel?: string }>();
  /** Channels subscribed (or being subscribed) on this connection. */
  const subscribed = new Set<string>();
  const openTimer = new Timer(host.platform);
  const idle = new Timer(host.platform);
  const dead = new Timer(host.platform);

  function send(cmd: Record<string, unknown>, channel?: string): Promise<any> {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, channel });
      ws!.send(JSON.stringify({ id, ...cmd }));
    });
  }

  /** Something arrived: the connection lives; ping after a quiet spell. */
  function alive(): void {
    idle.set(host.pingIntervalMs, () => {
      send({ op: 'ping' }).catch(() => {});
    });
    dead.set(host.heartbeatTimeoutMs, () => end({ reason: 'no heartbeat', opened }));
  }

  function subscribe(channel: string, since?: string): void {
    subscribed.add(channel);
    send({ op: 'subscribe', channel, ...(since ? { since } : {}) }, channel).then(
      (r) => host.started(channel, r.cursor),
      (e: Error & { code?: string }) => {
        subscribed.delete(channel);
        if (e.code !== 'closed') host.refused(channel, e);
      },
    );
  }

  function sync(): void {
    if (!ws || ws.readyState !== 1) return;
    const want = new Map(host.channels().map((c) => [c.channel, c.since]));
    for (const [channel, since] of want) if (!subscribed.has(channel)) subscribe(channel, since);
    for (const channel of subscribed) {
      if (!want.has(channel)) {
        subscribed.delete(channel);
        send({ op: 'unsubscribe', channel }).catch(() => {});
      }
    }
  }

  function end(why: Closing): void {
    if (ended) return;
    ended = true;
    for (const t of [openTimer, idle, dead]) t.clear();
    const err = Object.assign(new Error(why.reason), { code: 'closed' });
    pending.forEach((p) => p.reject(err));
    pending.clear();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // Already closing.
      }
    }
    host.closed(why);
  }

  function frame(data: unknown): void {
    let f: any;
    try {
      f = decoder ? decoder.decode(data as string | ArrayBuffer) : typeof data === 'string' && JSON.parse(data);
    } catch {
      return;
    }
    if (!f) return;
    if (!opened) {
      opened = true;
      openTimer.clear();
      host.opened();
    }
    if (f.id !== undefined && pending.has(f.id)) {
      const p = pending.get(f.id)!;
      pending.delete(f.id);
      if (f.error) p.reject(Object.assign(new Error(f.error.message), { code: f.error.code }));
      else p.resolve(f.result);
    } else if (f.channel) {
      host.envelope(f);
    } else if (f.event === 'refresh') {
      host.refreshToken();
    }
  }

  return {
    name: 'websocket',
    async open() {
      const token = await host.token();
      if (ended) return;
      const q = new URLSearchParams();
      if (host.user) q.set('user', host.user);
      if (token) q.set('token', token);
      const url = host.base.replace(/^http/, 'ws') + '/ws' + (q.toString() ? `?${q}` : '');
      openTimer.set(host.openTimeoutMs, () => end({ reason: 'timeout' }));
      try {
        ws = host.compact ? new host.platform.WebSocket(url, [COMPACT]) : new host.platform.WebSocket(url);
        ws.binaryType = 'arraybuffer';
      } catch (e) {
        return end({ reason: (e as Error).message });
      }
      ws.onopen = () => {
        if (ws!.protocol === COMPACT) decoder = new CompactDecoder();
        alive();
        sync();
        // Confirms the connection even with no channel yet.
        if (!subscribed.size) send({ op: 'ping' }).catch(() => {});
      };
      ws.onmessage = (e) => {
        alive();
        frame(e.data);
      };
      ws.onclose = (e) => end(closing(e.code, e.reason, opened));
      ws.onerror = () => {
        // `onclose` follows with the code.
      };
    },
    close() {
      if (ended) return;
      ended = true;
      for (const t of [openTimer, idle, dead]) t.clear();
      pending.forEach((p) => p.reject(Object.assign(new Error('closed'), { code: 'closed' })));
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close(1000, 'client closed');
        } catch {
          // Already closing.
        }
      }
    },
    update: sync,
    command(cmd) {
      if (!opened || ended) return Promise.reject(new Error('not connected'));
      return send(cmd);
    },
    refresh(token) {
      if (opened && !ended) send({ op: 'refresh', token }).catch(() => {});
    },
  };
}
