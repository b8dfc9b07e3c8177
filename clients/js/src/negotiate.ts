import type { Closing } from './transport';
import type { StorageLike } from './platform';
import type { TransportName } from './types';

/** The fallback order, best first: data, not code. */
export const ORDER: TransportName[] = ['websocket', 'sse', 'stream', 'longpoll', 'poll'];

/** Transports whose one response streams: a buffering proxy defeats all of them. */
const STREAMING: TransportName[] = ['sse', 'stream'];

/** How many times a transport that worked before is tried again before the next one is. */
const RETRIES_OF_A_WINNER = 3;

/**
 * Which transport to try: the order (options force or exclude some), the winner
 * remembered for this origin (`sessionStorage`), and what to try after a failure.
 */
export class Negotiator {
  private readonly worked = new Set<TransportName>();
  private fails = 0;

  constructor(
    readonly order: TransportName[],
    private readonly storage: StorageLike | null | undefined,
    private readonly key: string,
  ) {
    if (!order.length) throw new Error('no transport left to use');
  }

  /** Where to start: the remembered winner if it may be used, else the best. */
  first(): TransportName {
    let saved: string | null = null;
    try {
      saved = this.storage?.getItem(this.key) ?? null;
    } catch {
      // Unreadable storage: start from the best.
    }
    return this.order.find((t) => t === saved) ?? this.order[0];
  }

  /** `name` delivers: remember it for the next page load. */
  won(name: TransportName): void {
    this.worked.add(name);
    this.fails = 0;
    try {
      this.storage?.setItem(this.key, name);
    } catch {
      // Full or denied storage: not remembered.
    }
  }

  /**
   * What to try after `name` ended with `why`, and whether the whole order was gone
   * through (then the client waits its backoff first).
   */
  next(name: TransportName, why: Closing): { name: TransportName; wrapped: boolean } {
    if (why.opened || why.token) return { name, wrapped: false };
    this.fails++;
    if (this.worked.has(name) && this.fails < RETRIES_OF_A_WINNER) return { name, wrapped: true };
    this.fails = 0;
    let i = this.order.indexOf(name);
    const buffered = why.buffered && STREAMING.includes(name);
    do {
      i++;
    } while (buffered && i < this.order.length && STREAMING.includes(this.order[i]));
    return i < this.order.length ? { name: this.order[i], wrapped: false } : { name: this.order[0], wrapped: true };
  }

  /** A better transport than `name`, to probe for now and then. */
  better(name: TransportName): TransportName | undefined {
    const i = this.order.indexOf(name);
    return i > 0 ? this.order[0] : undefined;
  }
}
