/**
 * Long-polling: `/sub?transport=longpoll`, one request held by the server until there is
 * news (or its timeout), then the next from the cursors of the answer. The first request
 * is a plain poll, answered at once, so the transport is known to work without waiting
 * out a quiet channel. It never spins: an empty answer that came back at once (a server
 * shutting down) waits the backoff first; a failure ends the transport, and the client
 * comes back after its backoff.
 */
import { isClosing, pollOnce } from '../http';
import { Life, Timer, type Host, type Transport } from '../transport';
import { Backoff } from '../backoff';

/** An empty answer sooner than this was not held: wait before asking again. */
const HELD_MS = 1000;

export function longpoll(host: Host): Transport {
  let ctl: AbortController | null = null;
  let opened = false;
  const timer = new Timer(host.platform);
  const stop = () => {
    timer.clear();
    ctl?.abort();
  };
  const life = new Life(host, stop);
  const backoff = new Backoff(HELD_MS, 30_000, host.platform.random);

  async function cycle(): Promise<void> {
    const mine = (ctl = new AbortController());
    const channels = (life.asked = host.channels());
    if (!channels.length) {
      if (!opened) (opened = true), host.opened();
      return;
    }
    const kind = opened ? 'longpoll' : 'poll';
    const started = host.platform.now();
    timer.set(opened ? host.longPollTimeoutMs : host.openTimeoutMs, () => mine.abort());
    const r = await pollOnce(host, kind, channels, mine.signal);
    if (mine !== ctl || life.ended) return;
    timer.clear();
    if (isClosing(r)) return life.end({ ...r, opened });
    if (!opened) (opened = true), host.opened();
    const quick = host.platform.now() - started < HELD_MS;
    if (kind === 'longpoll' && !r.messages.length && quick && !r.more) {
      timer.set(backoff.next(), () => void cycle());
    } else {
      if (r.messages.length) backoff.reset();
      void cycle();
    }
  }

  return {
    name: 'longpoll',
    open: () => void cycle(),
    close: () => life.close(),
    // A new channel set: the request in flight asked for the old one.
    update: () => life.changed() && (stop(), void cycle()),
  };
}
