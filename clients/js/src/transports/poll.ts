/**
 * Polling, the last resort: `/sub?transport=poll` every `pollIntervalMs` (at once again
 * when the answer says `more`). A failure ends the transport; the client comes back
 * after its backoff, so a broken server is not hammered.
 */
import { isClosing, pollOnce } from '../http';
import { sameChannels, Timer, type Host, type Transport, type Wanted } from '../transport';

export function poll(host: Host): Transport {
  let ctl: AbortController | null = null;
  let ended = false;
  let current: Wanted[] = [];
  let opened = false;
  const timer = new Timer(host.platform);

  async function cycle(): Promise<void> {
    const mine = (ctl = new AbortController());
    const channels = (current = host.channels());
    let more = false;
    if (channels.length) {
      timer.set(host.openTimeoutMs, () => mine.abort());
      const r = await pollOnce(host, 'poll', channels, mine.signal);
      if (mine !== ctl || ended) return;
      timer.clear();
      if (isClosing(r)) {
        ended = true;
        return host.closed({ ...r, opened });
      }
      more = !!r.more;
    }
    if (!opened) (opened = true), host.opened();
    timer.set(more ? 0 : host.pollIntervalMs, () => void cycle());
  }

  return {
    name: 'poll',
    open: () => void cycle(),
    close() {
      ended = true;
      timer.clear();
      ctl?.abort();
    },
    update() {
      if (ended || sameChannels(host.channels(), current)) return;
      timer.clear();
      ctl?.abort();
      void cycle();
    },
  };
}
