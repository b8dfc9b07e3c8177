import { Backoff } from './backoff';
import { Channel, toMessage } from './channel';
import { Negotiator, ORDER } from './negotiate';
import { defaultPlatform, type Platform } from './platform';
import { Tokens, type TokenSource } from './token';
import { Timer, type Closing, type Host, type Transport, type TransportFactory } from './transport';
import { longpoll } from './transports/longpoll';
import { poll } from './transports/poll';
import { sse } from './transports/sse';
import { stream } from './transports/stream';
import { websocket } from './transports/websocket';
import { refusal, request } from './http';
import type {
  Envelope,
  HistoryResult,
  Presence,
  State,
  StateEvent,
  SubscribeOptions,
  Subscription,
  TransportName,
} from './types';

/** Every transport's factory, by name. */
export const TRANSPORTS: Record<TransportName, TransportFactory> = { websocket, sse, stream, longpoll, poll };

export interface ClientOptions {
  /** Use only this transport. */
  transport?: TransportName;
  /** The order to try (default: websocket, sse, stream, longpoll, poll). */
  transports?: TransportName[];
  /** Never use these. */
  exclude?: TransportName[];
  /** The client token (a JWT), asked again before it expires and when the server asks. */
  getToken?: TokenSource;
  /** A user id for presence, on servers without client tokens (`?user=`). */
  user?: string;
  /**
   * Ask for the compact format (false). Over WebSocket (subprotocol
   * `switchboard.compact`), a message that follows the previous one arrives as its
   * payload alone, 2 bytes of framing instead of a ~95-byte envelope. Long-polling and
   * polling of one channel ask for the compact body (`format=compact`), about 110 bytes
   * less per message. Cursors and resume stay exact; a server without the format sends
   * envelopes, which are read as usual.
   */
  compact?: boolean;
  /** Reconnect delays: full jitter, doubling from `minMs` up to `maxMs`. */
  backoff?: { minMs?: number; maxMs?: number };
  /** A transport that does not deliver its first event within this is skipped (5000). */
  openTimeoutMs?: number;
  /** A connection that shows no sign of life this long is dead (40000; server beats every 15 s). */
  heartbeatTimeoutMs?: number;
  /** WebSocket: ping when nothing arrived for this long (20000). */
  pingIntervalMs?: number;
  /** Long-poll: give a held request up after this long (45000; the server holds 30 s). */
  longPollTimeoutMs?: number;
  /** Polling: time between polls (2000). */
  pollIntervalMs?: number;
  /** Try a better transport again this long after falling back (60000; doubles on failure). */
  reprobeMs?: number;
  /** Remember the winning transport for this origin in `sessionStorage` (true). */
  remember?: boolean;
  /** Platform APIs (tests pass fakes). */
  platform?: Partial<Platform>;
}

type StateName = 'state' | 'connecting' | 'connected' | 'disconnected' | 'closed';

/**
 * A connection to a Switchboard server over the best transport the network allows:
 * WebSocket, else Server-Sent Events, HTTP streaming, long-polling, polling. It falls
 * back when one does not work, reconnects with backoff, resumes every channel from its
 * cursor, and reports a `reset` only when the server lost messages.
 *
 * ```js
 * const client = new Client('https://rt.example.com');
 * const sub = client.subscribe('chat:lobby', { history: 20, onMessage: (m) => show(m.data) });
 * await client.publish('chat:lobby', { text: 'hi' });
 * ```
 */
export class Client {
  /** `http(s)://host[:port][/prefix]`. */
  readonly url: string;
  private readonly p: Platform;
  private readonly o: Required<
    Pick<
      ClientOptions,
      'openTimeoutMs' | 'heartbeatTimeoutMs' | 'pingIntervalMs' | 'longPollTimeoutMs' | 'pollIntervalMs' | 'reprobeMs'
    >
  > & { user?: string; compact?: boolean };
  private readonly channels = new Map<string, Channel>();
  private readonly listeners = new Map<StateName, Set<(e: StateEvent) => void>>();
  private readonly neg: Negotiator;
  private readonly backoff: Backoff;
  private readonly tokens: Tokens;
  private readonly retry: Timer;
  private readonly reprobe: Timer;
  private readonly refresh: Timer;
  private t: Transport | null = null;
  private probe: Transport | null = null;
  private reprobeMs: number;
  private st: StateEvent = { state: 'idle' };
  private wanted = false;
  private updating = false;

  constructor(url = '', options: ClientOptions = {}) {
    this.p = { ...defaultPlatform(), ...options.platform };
    this.url = new URL(url || '/', this.p.base).href.replace(/\/+$/, '');
    this.o = {
      openTimeoutMs: options.openTimeoutMs ?? 5000,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 40_000,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      longPollTimeoutMs: options.longPollTimeoutMs ?? 45_000,
      pollIntervalMs: options.pollIntervalMs ?? 2000,
      reprobeMs: options.reprobeMs ?? 60_000,
      user: options.user,
      compact: options.compact,
    };
    this.reprobeMs = this.o.reprobeMs;
    const exclude = options.exclude ?? [];
    const order = (options.transport ? [options.transport] : options.transports ?? ORDER).filter(
      (t) => TRANSPORTS[t] && !exclude.includes(t),
    );
    const storage = options.remember === false ? null : this.p.storage;
    this.neg = new Negotiator(order, storage, `switchboard:transport:${new URL(this.url).origin}`);
    this.backoff = new Backoff(options.backoff?.minMs ?? 500, options.backoff?.maxMs ?? 30_000, this.p.random);
    this.tokens = new Tokens(options.getToken, this.p);
    this.retry = new Timer(this.p);
    this.reprobe = new Timer(this.p);
    this.refresh = new Timer(this.p);
    this.p.onPageHide?.(
      () => this.suspend('page hidden'),
      () => this.wanted && this.connect(),
    );
  }

  /** Where the client stands. */
  get state(): State {
    return this.st.state;
  }

  /** The transport in use (or being tried). */
  get transport(): TransportName | null {
    return this.st.transport ?? null;
  }

  /**
   * Calls `fn` on `connecting`, `connected` (with the transport), `disconnected` (with the
   * reason) and `closed`, or on every change with `'state'`. Returns the way to stop.
   */
  on(event: StateName, fn: (e: StateEvent) => void): () => void {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(fn);
    return () => this.listeners.get(event)!.delete(fn);
  }

  /** Subscribes to `channel`; connects if not yet connected. */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    let ch = this.channels.get(channel);
    if (!ch) {
      const h = options.history;
      const since = options.since ?? (h === 'all' ? 'oldest' : h ? `last:${h}` : undefined);
      this.channels.set(channel, (ch = new Channel(channel, since)));
      this.changed();
    }
    const handlers = { ...options };
    ch.handlers.add(handlers);
    this.connect();
    const own = ch;
    return {
      channel,
      get cursor() {
        return own.cursor;
      },
      unsubscribe: () => {
        own.handlers.delete(handlers);
        if (!own.handlers.size && this.channels.get(channel) === own) {
          this.channels.delete(channel);
          this.changed();
        }
      },
    };
  }

  /**
   * Publishes `data` to `channel`: a JSON value, a string (text) or bytes
   * (`Uint8Array` / `ArrayBuffer`). Resolves with the message's cursor.
   */
  async publish(channel: string, data: unknown): Promise<string> {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data instanceof Uint8Array ? data : null;
    if (this.t?.command && this.st.state === 'connected') {
      const payload = bytes ? { data_b64: btoa(String.fromCharCode(...bytes)) } : { data };
      return (await this.t.command({ op: 'publish', channel, ...payload })).cursor;
    }
    const type = bytes ? 'application/octet-stream' : typeof data === 'string' ? 'text/plain' : 'application/json';
    const body = bytes ?? (typeof data === 'string' ? data : JSON.stringify(data));
    const res = await this.http(`${this.url}/ch/${encodeURIComponent(channel)}`, {
      method: 'POST',
      headers: { 'content-type': type },
      body: body as BodyInit,
    });
    return (await res.json()).cursor;
  }

  /** Who is subscribed to `channel`. */
  presence(channel: string): Promise<Presence> {
    return this.command({ op: 'presence', channel });
  }

  /** The messages of `channel` after `since` (or the latest), at most `limit`. */
  async history(channel: string, options: { since?: string; limit?: number } = {}): Promise<HistoryResult> {
    const r = await this.command({ op: 'history', channel, ...options });
    return { ...r, messages: r.messages.map((e: Envelope) => toMessage(e)) };
  }

  /** Connects (subscribing does it too). */
  connect(): void {
    this.wanted = true;
    if (this.t || this.retry.pending) return;
    this.start(this.neg.first());
  }

  /** Closes the connection and stops reconnecting; the subscriptions stay for `connect()`. */
  close(): void {
    this.wanted = false;
    this.suspend('closed by the client');
    this.emit({ state: 'closed', reason: 'closed by the client' });
  }

  /** Ends the transport cleanly (the server frees the connection at once). */
  private suspend(reason: string): void {
    for (const t of [this.retry, this.reprobe, this.refresh]) t.clear();
    const had = this.t;
    this.t?.close();
    this.probe?.close();
    this.t = this.probe = null;
    if (had) this.emit({ state: 'disconnected', reason });
  }

  /** A command of the `/ws` protocol: over the WebSocket when there is one, else `POST /ws`. */
  private async command(cmd: Record<string, unknown>): Promise<any> {
    if (this.t?.command && this.st.state === 'connected') return this.t.command(cmd);
    const res = await this.http(`${this.url}/ws`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 1, ...cmd }),
    });
    const reply = await res.json();
    if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
    return reply.result;
  }

  private async http(url: string, init: RequestInit): Promise<Response> {
    const res = await request(this.host(null), url, init);
    if (!res.ok) {
      const why = await refusal(this.host(null), res);
      if (why.token) this.tokens.invalidate();
      throw Object.assign(new Error(why.reason), { status: res.status, retryMs: why.retryMs });
    }
    return res;
  }

  private emit(e: StateEvent): void {
    const same = e.state === this.st.state && e.transport === this.st.transport;
    this.st = e;
    if (same && e.state !== 'disconnected') return;
    for (const name of [e.state as StateName, 'state' as StateName]) this.listeners.get(name)?.forEach((fn) => fn(e));
  }

  /** The channel set changed: tell the transport once, after the current task. */
  private changed(): void {
    if (this.updating) return;
    this.updating = true;
    queueMicrotask(() => {
      this.updating = false;
      this.t?.update();
      this.probe?.update();
    });
  }

  private start(name: TransportName): void {
    this.emit({ state: 'connecting', transport: name });
    const t = TRANSPORTS[name](this.host(() => t));
    this.t = t;
    t.open();
  }

  /** A probe: a better transport opened beside the current one, taking over if it delivers. */
  private tryBetter(): void {
    const better = this.t && this.neg.better(this.t.name);
    if (!better || this.probe) return;
    const t = TRANSPORTS[better](this.host(() => t));
    this.probe = t;
    t.open();
  }

  private scheduleReprobe(): void {
    if (this.t && this.neg.better(this.t.name)) this.reprobe.set(this.reprobeMs, () => this.tryBetter());
  }

  /** Asks for a new token before the current one expires, and hands it to the connection. */
  private scheduleRefresh(): void {
    const ms = this.tokens.refreshIn();
    if (ms === undefined) return;
    this.refresh.set(ms, () => this.renewToken());
  }

  private renewToken(): void {
    this.tokens.invalidate();
    void this.tokens.current().then((token) => {
      const t = this.t;
      if (!t || !token) return;
      if (t.refresh) t.refresh(token);
      // A stream's token is in its request: a second one takes over without a gap.
      // (Each poll sends the token it is given anyway.)
      else if ((t.name === 'sse' || t.name === 'stream') && !this.probe) {
        const next = TRANSPORTS[t.name](this.host(() => next));
        this.probe = next;
        next.open();
      }
      this.scheduleRefresh();
    });
  }

  /** The host a transport reports to; events of a transport no longer in use are ignored. */
  private host(self: (() => Transport) | null): Host {
    const current = () => self !== null && self() === this.t;
    const mine = () => self !== null && (self() === this.t || self() === this.probe);
    return {
      platform: this.p,
      base: this.url,
      user: this.o.user,
      compact: this.o.compact,
      openTimeoutMs: this.o.openTimeoutMs,
      heartbeatTimeoutMs: this.o.heartbeatTimeoutMs,
      pingIntervalMs: this.o.pingIntervalMs,
      longPollTimeoutMs: this.o.longPollTimeoutMs,
      pollIntervalMs: this.o.pollIntervalMs,
      channels: () => [...this.channels.values()].map((c) => ({ channel: c.name, since: c.start() })),
      token: () => this.tokens.current(),
      opened: () => {
        if (!self) return;
        const t = self();
        if (t === this.probe) {
          // The better transport delivers: it takes over, the old one goes.
          this.t?.close();
          this.t = t;
          this.probe = null;
          this.reprobeMs = this.o.reprobeMs;
        }
        if (t !== this.t) return;
        this.neg.won(t.name);
        this.backoff.reset();
        this.emit({ state: 'connected', transport: t.name });
        this.scheduleReprobe();
        this.scheduleRefresh();
      },
      interrupted: (why) => {
        if (!current()) return;
        if (why.restart) this.channels.forEach((c) => (c.cleanEnd = true));
        this.emit({ state: 'disconnected', transport: this.t!.name, reason: why.reason });
      },
      envelope: (env) => {
        // Join and leave carry no cursor to tell a repeat: only the transport in use.
        if (!mine() || (!current() && !env.cursor)) return;
        this.channels.get(env.channel)?.deliver(env);
      },
      started: (channel, cursor) => mine() && this.channels.get(channel)?.started(cursor),
      refused: (channel, error) => {
        if (mine()) this.channels.get(channel)?.handlers.forEach((h) => h.onError?.(error));
      },
      refreshToken: () => current() && this.renewToken(),
      closed: (why) => this.closed(self!(), why),
    };
  }

  private closed(t: Transport, why: Closing): void {
    if (t === this.probe) {
      this.probe = null;
      this.reprobeMs = Math.min(this.reprobeMs * 2, 3_600_000);
      this.scheduleReprobe();
      return;
    }
    if (t !== this.t) return;
    this.t = null;
    this.probe?.close();
    this.probe = null;
    for (const x of [this.reprobe, this.refresh]) x.clear();
    if (why.restart) this.channels.forEach((c) => (c.cleanEnd = true));
    if (why.final) return this.emit({ state: 'closed', transport: t.name, reason: why.reason });
    if (why.token) this.tokens.invalidate();
    this.emit({ state: 'disconnected', transport: t.name, reason: why.reason });
    const { name, wrapped } = this.neg.next(t.name, why);
    const delay = why.token
      ? 0
      : why.retryMs !== undefined
        ? this.backoff.hinted(why.retryMs)
        : wrapped || why.opened
          ? this.backoff.next()
          : 0;
    this.retry.set(delay, () => this.wanted && this.start(name));
  }
}
