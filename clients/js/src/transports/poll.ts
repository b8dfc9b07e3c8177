/**
 * Polling, the last resort: `/sub?transport=poll` every `pollIntervalMs` (at once again
 * when the answer says `more`). A failure ends the transport; the client comes back
 * after its backoff, so a broken server is not hammered.
 */
import { isClosing, pollOnce } from '../http';
import { Life, Timer, type Host, type Transport } from '../transport';

export function poll(host: Host): Transport {
  let ctl: AbortController | null = null;
  let opened = false;
  const timer = new Timer(host.platform);
  const stop = () => {
    timer.clear();
    ctl?.abort();
  };
  const life = new Life(host, stop);

  async function cycle(): Promise<void> {
    const mine = (ctl = new AbortController());
    const channels = (life.asked = host.channels());
    let more = false;
    if (channels.length) {
      timer.set(host.openTimeoutMs, () => mine.abort());
      const r = await pollOnce(host, 'poll', channels, mine.signal);
      if (mine !== ctl || life.ended) return;
      timer.clear();
      if (isClosing(r)) return life.end({ ...r, opened });
      more = !!r.more;
    }
    if (!opened) (opened = true), host.opened();
    timer.set(more ? 0 : host.pollIntervalMs, () => void cycle());
  }

  return {
    name: 'poll',
    open: () => void cycle(),
    close: () => life.close(),
    // A new channel set: the request in flight asked for the old one.
    update: () => life.changed() && (stop(), void cycle()),
  };
}
