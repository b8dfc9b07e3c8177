/**
 * The compact WebSocket format (subprotocol `switchboard.compact`, the server's
 * `switchboard_proto::compact`): a message that follows the previous one (same channel
 * and epoch, next offset) arrives as its payload alone; everything else is a control
 * record, a text frame of `\x1e` and JSON (an envelope, a `/ws` reply or push, a native
 * stream's start record). A binary frame is a binary payload; any other text frame is a
 * JSON payload if it parses as JSON, else a text payload. The decoder keeps the last message's position, so every
 * message gets its exact cursor.
 */
import { parseCursor } from './cursor';
import type { Envelope } from './types';

export const COMPACT = 'switchboard.compact';

export class CompactDecoder {
  private last: { channel: string; epoch: string; offset: number } | null = null;

  /**
   * A frame as the JSON object the envelope format would have sent: a control record's,
   * or a payload's message envelope (`bytes` for a binary one). `null` for a payload
   * before any position, which a server never sends.
   */
  decode(data: string | ArrayBuffer | Uint8Array): any {
    if (typeof data === 'string' && data.charCodeAt(0) === 0x1e) {
      const f = JSON.parse(data.slice(1));
      // A native stream's start record ({"start":"E:N","channel":…}) only sets the position.
      const at = f.channel && (f.start || f.event === 'message') ? parseCursor(f.start ?? f.cursor) : null;
      if (at) this.last = { channel: f.channel, ...at };
      return f.start ? null : f;
    }
    const l = this.last;
    if (!l) return null;
    l.offset++;
    const env: Envelope = { channel: l.channel, event: 'message', offset: l.offset, cursor: `${l.epoch}:${l.offset}` };
    if (typeof data !== 'string') env.bytes = new Uint8Array(data);
    else {
      try {
        env.data = JSON.parse(data);
      } catch {
        env.data = data;
      }
    }
    return env;
  }
}
