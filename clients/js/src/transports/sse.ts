/**
 * Server-Sent Events: one `EventSource` on `/sub` for every channel. Each event's id
 * lists every channel's cursor, so when the browser reconnects by itself (after the
 * server's `retry:` delay, e.g. after a `reconnect` farewell) it resumes every channel
 * exactly with `Last-Event-ID`. The stream's first event, `ready`, says where each
 * channel starts and that events get through; if it does not come in time the
 * response is being held back (a buffering proxy; a network that refuses the
 * connection fails at once instead). `heartbeat` events keep the
 * connection known to be alive.
 */
import { splitIds } from '../cursor';
import { farewell, subQuery } from '../http';
import { Life, Timer, type Closing, type Host, type Transport } from '../transport';
import type { EventSourceLike } from '../platform';

export function sse(host: Host): Transport {
  let es: EventSourceLike | null = null;
  let everOpened = false;
  const wait = new Timer(host.platform);
  const dead = new Timer(host.platform);

  function stop(): void {
    wait.clear();
    dead.clear();
    if (es) {
      es.onopen = es.onerror = null;
      es.close();
      es = null;
    }
  }
  // `life.asked`: the channels of the open `EventSource`, in its URL's order.
  const life = new Life(host, stop);
  const end = (why: Closing) => life.end(why);

  function alive(): void {
    dead.set(host.heartbeatTimeoutMs, () => end({ reason: 'no heartbeat', opened: true }));
  }

  let generation = 0;

  async function start(): Promise<void> {
    stop();
    const gen = ++generation;
    let current = (life.asked = host.channels());
    if (!current.length) {
      // Nothing to read: idle until a channel comes.
      if (!everOpened) (everOpened = true), host.opened();
      return;
    }
    const token = await host.token();
    if (life.ended || gen !== generation) return;
    // Cursors learned meanwhile are used (the channel set is the same, else a newer start runs).
    current = life.asked = host.channels();
    const mine = (es = new host.platform.EventSource(subQuery(host, 'sse', current, { token })));
    // Connected, but the first event never came: a proxy holds the stream back (with its
    // head or without).
    wait.set(host.openTimeoutMs, () => end({ reason: 'no first event in time', buffered: true }));
    es.onerror = () => {
      if (mine !== es) return;
      // CLOSED: refused (an HTTP error, not an event stream); CONNECTING: the browser
      // comes back by itself, within the open timeout or not at all.
      if (es.readyState === 2) return end({ reason: 'refused', opened: false });
      host.interrupted({ reason: 'connection lost' });
      wait.set(host.openTimeoutMs, () => end({ reason: 'timeout', opened: false }));
    };
    const on = (type: string, fn: (e: { data: string; lastEventId: string }) => void) =>
      mine.addEventListener(type, (e) => mine === es && fn(e));
    on('ready', (e) => {
      wait.clear();
      alive();
      const ids = splitIds(e.lastEventId, current.length);
      ids?.forEach((c, i) => host.started(current[i].channel, c));
      everOpened = true;
      host.opened();
    });
    on('heartbeat', alive);
    for (const type of ['message', 'reset', 'join', 'leave']) {
      on(type, (e) => {
        alive();
        try {
          host.envelope(JSON.parse(e.data));
        } catch {
          // Not an envelope: skipped.
        }
      });
    }
    on('reconnect', (e) => host.interrupted(farewell('reconnect', e.data)));
    on('disconnect', (e) => end(farewell('disconnect', e.data)));
    on('refresh', (e) => end(farewell('refresh', e.data)));
  }

  return {
    name: 'sse',
    open: () => void start(),
    close: () => life.close(),
    // A new set of channels is a new request; every channel keeps its cursor.
    update: () => life.changed() && void start(),
  };
}
