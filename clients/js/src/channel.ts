import { parseCursor } from './cursor';
import type { Envelope, Message, PresenceEntry, SubscribeOptions } from './types';

/** A message envelope as the application receives it. */
export function toMessage(env: Envelope): Message {
  const m: Message = { channel: env.channel, data: env.data, cursor: env.cursor!, offset: env.offset ?? 0 };
  if (env.bytes) m.binary = env.bytes;
  else if (env.data_b64 !== undefined) {
    const s = atob(env.data_b64);
    m.binary = Uint8Array.from(s, (c) => c.charCodeAt(0));
  }
  return m;
}

/**
 * One subscribed channel: where it stands (its cursor), where it asked to start, and the
 * handlers of the application's subscriptions to it. Every transport's events pass
 * `deliver`, which drops what was already delivered (a resume or an overlap of two
 * transports may send a message twice) and decides whether a `reset` is news.
 */
export class Channel {
  /** The last position delivered; a resume continues after it. */
  cursor: string | null = null;
  /** The connection ended with the server's "service restart" farewell. */
  cleanEnd = false;
  readonly handlers = new Set<SubscribeOptions>();

  constructor(
    readonly name: string,
    /** Where the first join starts: a cursor, `oldest` or `last:N` (none: now). */
    readonly since: string | undefined,
  ) {}

  /** Where a (re)subscription starts. */
  start(): string | undefined {
    return this.cursor ?? this.since;
  }

  /** The server says where the channel starts (a subscribe reply, a first poll). */
  started(cursor: string): void {
    if (this.cursor === null) this.cursor = cursor;
  }

  deliver(env: Envelope): void {
    const at = parseCursor(this.cursor);
    const next = parseCursor(env.cursor);
    const emit = <K extends keyof SubscribeOptions>(k: K, arg: unknown) =>
      this.handlers.forEach((h) => (h[k] as ((a: unknown) => void) | undefined)?.(arg));
    switch (env.event) {
      case 'message':
        if (!next) return;
        if (at && at.epoch === next.epoch && next.offset <= at.offset) return;
        this.cursor = env.cursor!;
        this.cleanEnd = false;
        emit('onMessage', toMessage(env));
        return;
      case 'reset': {
        if (!next) return;
        const lost = (env.data as { lost?: number } | undefined)?.lost;
        // A new epoch that starts at its very beginning, after the server said it was
        // restarting (so everything before was delivered): nothing was lost.
        const quiet = lost === 0 || (this.cleanEnd && at !== null && at.epoch !== next.epoch && next.offset === 0);
        this.cursor = env.cursor!;
        this.cleanEnd = false;
        if (!quiet) emit('onReset', { channel: this.name, cursor: env.cursor!, lost });
        return;
      }
      case 'join':
      case 'leave':
        emit(env.event === 'join' ? 'onJoin' : 'onLeave', env.data as PresenceEntry);
    }
  }
}
