/**
 * HTTP streaming: one `fetch` of `/sub?transport=stream` read as it arrives, one
 * envelope per line. The server's 2 KiB whitespace prelude is the first thing read: if
 * it does not come in time, a proxy holds the response back. Empty lines are heartbeats.
 * The stream carries no cursors of its own, so a channel without one is first polled for
 * where it stands (which also delivers the history it joins with).
 */
import { isCursor } from '../cursor';
import { farewell, isClosing, pollOnce, refusal, request, subQuery } from '../http';
import { Life, Timer, type Closing, type Host, type Transport } from '../transport';

export function stream(host: Host): Transport {
  let abort: AbortController | null = null;
  let everOpened = false;
  const wait = new Timer(host.platform);
  const dead = new Timer(host.platform);

  function stop(): void {
    wait.clear();
    dead.clear();
    abort?.abort();
    abort = null;
  }
  const life = new Life(host, stop);
  const end = (why: Closing) => life.end(why);

  async function start(): Promise<void> {
    stop();
    life.asked = host.channels();
    const ctl = (abort = new AbortController());
    const live = () => ctl === abort && !life.ended;
    // No prelude in time (with the head or without): a proxy holds the stream back.
    wait.set(host.openTimeoutMs, () => end({ reason: 'no prelude in time', buffered: true }));
    const fresh = host.channels().filter((c) => !isCursor(c.since));
    if (fresh.length) {
      const r = await pollOnce(host, 'poll', fresh, ctl.signal);
      if (!live()) return;
      if (isClosing(r)) return end(r);
    }
    const current = (life.asked = host.channels());
    if (!current.length) {
      wait.clear();
      if (!everOpened) (everOpened = true), host.opened();
      return;
    }
    let res: Response;
    try {
      res = await request(host, subQuery(host, 'stream', current), { signal: ctl.signal });
    } catch (e) {
      if (live()) end({ reason: `network error: ${(e as Error).message}`, opened: everOpened });
      return;
    }
    if (!live()) return;
    if (!res.ok || !res.body) return end(res.ok ? { reason: 'no body' } : await refusal(host, res));
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let farewellSeen: Closing | null = null;
    let confirmed = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (!live()) return;
        if (done) break;
        dead.set(host.heartbeatTimeoutMs, () => end({ reason: 'no heartbeat', opened: true }));
        if (!confirmed) {
          confirmed = everOpened = true;
          wait.clear();
          host.opened();
        }
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let v: any;
          try {
            v = JSON.parse(line);
          } catch {
            continue;
          }
          if (v.channel) host.envelope(v);
          else if (v.event) farewellSeen = farewell(v.event, v.reason ?? '');
        }
      }
    } catch (e) {
      if (!live()) return;
      return end({ reason: `network error: ${(e as Error).message}`, opened: true });
    }
    end(farewellSeen ?? { reason: 'stream ended', opened: true });
  }

  return {
    name: 'stream',
    open: () => void start(),
    close: () => life.close(),
    update: () => life.changed() && void start(),
  };
}
