import type { Platform } from './platform';
import type { Envelope, TransportName } from './types';

/** One channel as a transport subscribes it: its name and where it starts. */
export interface Wanted {
  channel: string;
  /** A cursor, `oldest` or `last:N`; none: from now. */
  since?: string;
}

/** Why a transport ended. The client decides what comes next from it. */
export interface Closing {
  reason: string;
  /** It had been delivering. */
  opened?: boolean;
  /** It opened but its first event never came in time: a proxy holds streams back. */
  buffered?: boolean;
  /** The server's hint: try again after this many milliseconds. */
  retryMs?: number;
  /** The server said it was restarting (everything before was delivered). */
  restart?: boolean;
  /** The client token expired or was refused: get a new one and come back at once. */
  token?: boolean;
  /** Do not come back (disconnected by the server, or refused for good). */
  final?: boolean;
}

/** What a transport is given: the platform, the channels, and where its events go. */
export interface Host {
  readonly platform: Platform;
  /** `http(s)://host[:port][/prefix]`, no trailing slash. */
  readonly base: string;
  readonly user?: string;
  /** Ask for the compact format: over WebSocket, and on polls of one channel. */
  readonly compact?: boolean;
  readonly openTimeoutMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly longPollTimeoutMs: number;
  readonly pollIntervalMs: number;
  channels(): Wanted[];
  token(): Promise<string | undefined>;
  /** Delivering (the first event arrived). May come again after an interruption. */
  opened(): void;
  /** Lost for now, coming back by itself (an `EventSource` reconnecting). */
  interrupted(why: Closing): void;
  envelope(env: Envelope): void;
  /** Where a channel starts, if it had no cursor yet. */
  started(channel: string, cursor: string): void;
  /** A channel's subscription was refused. */
  refused(channel: string, error: Error): void;
  /** The server asks for a new token (WebSocket). */
  refreshToken(): void;
  closed(why: Closing): void;
}

/** One transport; the client makes it with its factory, opens it, tells it of changes. */
export interface Transport {
  readonly name: TransportName;
  open(): void;
  close(): void;
  /** The channel set changed. */
  update(): void;
  /** A command of the `/ws` protocol over the connection (WebSocket only). */
  command?(cmd: Record<string, unknown>): Promise<any>;
  /** A new token for the open connection (WebSocket only). */
  refresh?(token: string): void;
}

export type TransportFactory = (host: Host) => Transport;

/** A one-shot timer that can be re-armed. */
export class Timer {
  private handle: unknown = null;
  constructor(private readonly platform: Platform) {}
  set(ms: number, fn: () => void): void {
    this.clear();
    this.handle = this.platform.setTimeout(() => {
      this.handle = null;
      fn();
    }, ms);
  }
  clear(): void {
    if (this.handle !== null) this.platform.clearTimeout(this.handle);
    this.handle = null;
  }
  get pending(): boolean {
    return this.handle !== null;
  }
}

/** Whether two channel lists name the same channels in the same order. */
export const sameChannels = (a: Wanted[], b: Wanted[]): boolean =>
  a.length === b.length && a.every((c, i) => c.channel === b[i].channel);

/**
 * A transport's end, once: its timers and requests stopped (`stop`), and the host told
 * why, unless the client closed it (`close`). `changed` says whether the channel set
 * differs from the one the transport last asked for.
 */
export class Life {
  ended = false;
  asked: Wanted[] = [];
  constructor(
    private readonly host: Host,
    private readonly stop: () => void,
  ) {}
  end(why: Closing): void {
    if (this.ended) return;
    this.close();
    this.host.closed(why);
  }
  close(): void {
    this.ended = true;
    this.stop();
  }
  changed(): boolean {
    return !this.ended && !sameChannels(this.host.channels(), this.asked);
  }
}
