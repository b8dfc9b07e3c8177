import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff';
import { Channel, toMessage } from '../src/channel';
import { CompactDecoder } from '../src/compact';
import { splitIds, isCursor } from '../src/cursor';
import { Negotiator, ORDER } from '../src/negotiate';
import { tokenExpiry } from '../src/token';
import { closing } from '../src/transports/websocket';

describe('backoff', () => {
  it('doubles its cap from min to max with full jitter inside', () => {
    const at = (r: number) => {
      const b = new Backoff(100, 1000, () => r);
      return Array.from({ length: 6 }, () => b.next());
    };
    expect(at(0)).toEqual([100, 100, 100, 100, 100, 100]);
    expect(at(1)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(at(0.5)).toEqual([100, 150, 250, 450, 550, 550]);
  });
  it('takes a server hint, starts over after reset', () => {
    const b = new Backoff(100, 1000, () => 1);
    expect(b.hinted(2500)).toBe(2600);
    // A hint shorter than the schedule does not cut it short; the schedule still doubles.
    expect(b.hinted(1)).toBe(200);
    expect(b.hinted(1)).toBe(400);
    b.next();
    b.reset();
    expect(b.next()).toBe(100);
  });
});

describe('negotiation', () => {
  const store = (saved?: string) => {
    const m = new Map<string, string>(saved ? [['k', saved]] : []);
    return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), m };
  };
  it('starts with the remembered winner, if allowed, and remembers a new one', () => {
    expect(new Negotiator(ORDER, store(), 'k').first()).toBe('websocket');
    expect(new Negotiator(ORDER, store('longpoll'), 'k').first()).toBe('longpoll');
    expect(new Negotiator(['sse', 'poll'], store('longpoll'), 'k').first()).toBe('sse');
    const s = store();
    new Negotiator(ORDER, s, 'k').won('stream');
    expect(s.m.get('k')).toBe('stream');
    expect(() => new Negotiator([], s, 'k')).toThrow();
  });
  it('falls back in order, and past every streaming transport when one was buffered', () => {
    const n = new Negotiator(ORDER, null, 'k');
    expect(n.next('websocket', { reason: 'refused' })).toEqual({ name: 'sse', wrapped: false });
    expect(n.next('sse', { reason: 'timeout' })).toEqual({ name: 'stream', wrapped: false });
    expect(n.next('sse', { reason: 'timeout', buffered: true })).toEqual({ name: 'longpoll', wrapped: false });
    expect(n.next('stream', { reason: 'timeout', buffered: true })).toEqual({ name: 'longpoll', wrapped: false });
    expect(n.next('poll', { reason: 'down' })).toEqual({ name: 'websocket', wrapped: true });
  });
  it('comes back to a transport that delivered: at once after a drop, a few times after failures', () => {
    const n = new Negotiator(ORDER, null, 'k');
    n.won('websocket');
    expect(n.next('websocket', { reason: 'lost', opened: true })).toEqual({ name: 'websocket', wrapped: false });
    expect(n.next('websocket', { reason: 'down' })).toEqual({ name: 'websocket', wrapped: true });
    expect(n.next('websocket', { reason: 'down' })).toEqual({ name: 'websocket', wrapped: true });
    expect(n.next('websocket', { reason: 'down' })).toEqual({ name: 'sse', wrapped: false });
    expect(n.better('longpoll')).toBe('websocket');
    expect(n.better('websocket')).toBeUndefined();
  });
});

describe('channel', () => {
  const msg = (cursor: string, data: unknown = 1) => ({ channel: 'c', event: 'message' as const, cursor, data });
  const watch = (since?: string) => {
    const ch = new Channel('c', since);
    const got: unknown[] = [];
    const resets: unknown[] = [];
    ch.handlers.add({ onMessage: (m) => got.push(m.data), onReset: (r) => resets.push(r) });
    return { ch, got, resets };
  };
  it('delivers in order once, from its cursor', () => {
    const { ch, got } = watch('last:5');
    expect(ch.start()).toBe('last:5');
    ch.started('a:2');
    ch.started('a:9');
    expect(ch.cursor).toBe('a:2');
    for (const c of ['a:3', 'a:4', 'a:3', 'a:2', 'a:5']) ch.deliver(msg(c, c));
    expect(got).toEqual(['a:3', 'a:4', 'a:5']);
    expect(ch.start()).toBe('a:5');
  });
  it('reports a reset only when the server lost something', () => {
    const { ch, resets, got } = watch();
    ch.started('a:4');
    ch.deliver({ channel: 'c', event: 'reset', cursor: 'a:9', data: { lost: 5 } });
    expect(resets).toEqual([{ channel: 'c', cursor: 'a:9', lost: 5 }]);
    ch.deliver(msg('a:10'));
    expect(got).toEqual([1]);
    // A new epoch from its start, after the server said it restarts: nothing lost.
    ch.cleanEnd = true;
    ch.deliver({ channel: 'c', event: 'reset', cursor: 'b:0' });
    expect(resets).toHaveLength(1);
    // The same without the farewell (a crash): reported, the count unknown.
    ch.deliver({ channel: 'c', event: 'reset', cursor: 'd:0' });
    expect(resets[1]).toEqual({ channel: 'c', cursor: 'd:0', lost: undefined });
    // After a farewell, but messages of the new epoch are gone too: reported.
    ch.cleanEnd = true;
    ch.deliver({ channel: 'c', event: 'reset', cursor: 'f:3' });
    expect(resets).toHaveLength(3);
  });
  it('decodes binary payloads and passes presence', () => {
    const ch = new Channel('c', undefined);
    const seen: unknown[] = [];
    ch.handlers.add({
      onMessage: (m) => seen.push([...m.binary!]),
      onJoin: (w) => seen.push(['join', w.client]),
      onLeave: (w) => seen.push(['leave', w.user]),
    });
    ch.deliver({ channel: 'c', event: 'message', cursor: 'a:1', data_b64: 'AP8=' });
    ch.deliver({ channel: 'c', event: 'join', data: { client: 'k1' } });
    ch.deliver({ channel: 'c', event: 'leave', data: { client: 'k1', user: 'u' } });
    expect(seen).toEqual([[0, 255], ['join', 'k1'], ['leave', 'u']]);
  });
});

describe('wire details', () => {
  it('splits SSE ids of every channel', () => {
    expect(splitIds('a:1,b:2', 2)).toEqual(['a:1', 'b:2']);
    expect(splitIds('a:1', 2)).toBeNull();
    expect(splitIds('', 1)).toBeNull();
    expect(isCursor('3f:2')).toBe(true);
    expect(isCursor('last:2')).toBe(false);
    expect(isCursor('oldest')).toBe(false);
  });
  it('reads close codes', () => {
    expect(closing(1012, 'service restart', true)).toMatchObject({ restart: true, opened: true });
    expect(closing(1013, 'retry after 750 ms', true)).toMatchObject({ retryMs: 750 });
    expect(closing(1008, 'disconnected by the server', true)).toMatchObject({ final: true });
    expect(closing(3000, 'token expired', true)).toMatchObject({ token: true });
    expect(closing(1006, '', false)).toEqual({ reason: 'closed (1006)', opened: false });
  });
  it('reads a token expiry', () => {
    const payload = btoa(JSON.stringify({ sub: 'u', exp: 1000 })).replace(/=+$/, '');
    expect(tokenExpiry(`h.${payload}.s`)).toBe(1_000_000);
    expect(tokenExpiry('opaque')).toBeUndefined();
  });
});

describe('compact decoder', () => {
  const ctl = (f: unknown) => '\x1e' + JSON.stringify(f);
  it('gives every payload the position after the last message, exactly', () => {
    const d = new CompactDecoder();
    expect(d.decode('{"a":1}')).toBeNull();
    const first = { channel: 'c', event: 'message', offset: 3, cursor: 'ab:3', data: { a: 1 } };
    expect(d.decode(ctl(first))).toEqual(first);
    expect(d.decode('{"b":2}')).toEqual({ channel: 'c', event: 'message', offset: 4, cursor: 'ab:4', data: { b: 2 } });
    // Text that is not JSON is the text; a JSON string is the string.
    expect(d.decode('hello').data).toBe('hello');
    expect(d.decode('"42"').data).toBe('42');
    const bin = d.decode(new Uint8Array([0x1e, 1]).buffer);
    expect(bin.cursor).toBe('ab:7');
    expect(toMessage(bin).binary).toEqual(new Uint8Array([0x1e, 1]));
    // Replies, resets and presence do not move the position; a new message record does.
    expect(d.decode(ctl({ id: 1, result: {} }))).toEqual({ id: 1, result: {} });
    expect(d.decode(ctl({ channel: 'c', event: 'reset', offset: 20, cursor: 'ab:20' })).event).toBe('reset');
    expect(d.decode(ctl({ channel: 'c', event: 'join', data: { client: 'x' } })).event).toBe('join');
    expect(d.decode('1').cursor).toBe('ab:8');
    d.decode(ctl({ channel: 'd', event: 'message', offset: 9, cursor: 'cd:9', data: 0 }));
    expect(d.decode('2')).toEqual({ channel: 'd', event: 'message', offset: 10, cursor: 'cd:10', data: 2 });
    // A native stream's start record sets the position and delivers nothing.
    expect(d.decode(ctl({ start: 'ef:5', channel: 'e' }))).toBeNull();
    expect(d.decode('3').cursor).toBe('ef:6');
  });
});
