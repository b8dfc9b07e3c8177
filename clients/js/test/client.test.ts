import { beforeEach, describe, expect, it } from 'vitest';
import { Client, type ClientOptions, type StateEvent } from '../src/index';
import { advance, channelsOf, fake, flush, json, platform, reset, streamed } from './fakes';

beforeEach(reset);

const client = (options: ClientOptions = {}) =>
  new Client('http://sb.test', { platform: platform(), backoff: { minMs: 100, maxMs: 1000 }, ...options });

function states(c: Client): string[] {
  const seen: string[] = [];
  c.on('state', (e: StateEvent) => seen.push(`${e.state}${e.transport ? ' ' + e.transport : ''}`));
  return seen;
}

/** The last fake WebSocket, opened, with its subscribe commands answered. */
async function openSocket(cursor = (c: any) => (c.since && !c.since.startsWith('last') ? c.since : 'e:0')) {
  await flush();
  const ws = fake.sockets.at(-1)!;
  ws.open();
  ws.answer((c) => (c.op === 'subscribe' ? { cursor: cursor(c) } : {}));
  await flush();
  return ws;
}

describe('over WebSocket', () => {
  it('subscribes every channel over one connection and delivers in order', async () => {
    const c = client();
    const seen = states(c);
    const got: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push(['a', m.data]) });
    c.subscribe('b', { history: 2, onMessage: (m) => got.push(['b', m.data]) });
    await flush();
    expect(fake.sockets).toHaveLength(1);
    expect(fake.sockets[0].url).toBe('ws://sb.test/ws');
    const ws = fake.sockets[0];
    ws.open();
    expect(ws.sent.map((s) => [s.op, s.channel, s.since])).toEqual([
      ['subscribe', 'a', undefined],
      ['subscribe', 'b', 'last:2'],
    ]);
    ws.answer((cmd) => ({ cursor: cmd.channel === 'a' ? 'e:5' : 'f:1' }));
    ws.push({ channel: 'b', event: 'message', cursor: 'f:2', data: 'old' });
    ws.push({ channel: 'a', event: 'message', cursor: 'e:6', data: 1 });
    ws.push({ channel: 'a', event: 'message', cursor: 'e:6', data: 1 });
    await flush();
    expect(got).toEqual([
      ['b', 'old'],
      ['a', 1],
    ]);
    expect(seen).toEqual(['connecting websocket', 'connected websocket']);
    expect(fake.storage.get('switchboard:transport:http://sb.test')).toBe('websocket');
  });

  it('reconnects after a restart with jittered backoff and resumes every channel from its cursor', async () => {
    const c = client();
    const got: unknown[] = [];
    const resets: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push(m.data), onReset: (r) => resets.push(r) });
    let ws = await openSocket();
    ws.push({ channel: 'a', event: 'message', cursor: 'e:1', data: 1 });
    ws.serverClose(1012, 'service restart');
    expect(c.state).toBe('disconnected');
    await advance(99);
    expect(fake.sockets).toHaveLength(1);
    await advance(60); // min 100 + 0.5 × (100 − 100)… the first delay is min: 100
    expect(fake.sockets).toHaveLength(2);
    ws = fake.sockets[1];
    ws.open();
    expect(ws.sent[0]).toMatchObject({ op: 'subscribe', channel: 'a', since: 'e:1' });
    // The restarted server lost its log: a new epoch from its start, after the farewell.
    ws.answer(() => ({ cursor: 'e:1' }));
    ws.push({ channel: 'a', event: 'reset', cursor: 'n:0' });
    ws.push({ channel: 'a', event: 'message', cursor: 'n:1', data: 2 });
    await flush();
    expect(got).toEqual([1, 2]);
    expect(resets).toEqual([]);
    expect(c.state).toBe('connected');
  });

  it('in the compact format, reads payload frames at exact cursors and resumes after the last', async () => {
    const c = client({ compact: true });
    const got: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push([m.cursor, m.data ?? m.binary]) });
    let ws = await openSocket();
    expect(ws.protocols).toEqual(['switchboard.compact']);
    expect(ws.binaryType).toBe('arraybuffer');
    ws.push({ channel: 'a', event: 'message', offset: 1, cursor: 'e:1', data: 'x' });
    ws.raw('{"n":2}');
    ws.raw('plain');
    ws.raw(new Uint8Array([7]).buffer);
    await flush();
    expect(got).toEqual([
      ['e:1', 'x'],
      ['e:2', { n: 2 }],
      ['e:3', 'plain'],
      ['e:4', new Uint8Array([7])],
    ]);
    ws.serverClose(1012, 'service restart');
    await advance(200);
    ws = fake.sockets[1];
    ws.open();
    expect(ws.sent[0]).toMatchObject({ op: 'subscribe', channel: 'a', since: 'e:4' });
  });

  it('asks for the compact format only when told, and reads envelopes from a server without it', async () => {
    const plain = client();
    plain.subscribe('a');
    await flush();
    expect(fake.sockets[0].protocols).toBeUndefined();
    plain.close();
    const c = client({ compact: true });
    const got: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push([m.cursor, m.data]) });
    await flush();
    const ws = fake.sockets.at(-1)!;
    ws.agree = false;
    ws.open();
    ws.answer();
    ws.push({ channel: 'a', event: 'message', offset: 1, cursor: 'e:1', data: 'x' });
    await flush();
    expect(got).toEqual([['e:1', 'x']]);
  });

  it('honours close 1013 retry hints, stops on 1008', async () => {
    const c = client();
    c.subscribe('a');
    await openSocket();
    fake.sockets[0].serverClose(1013, 'retry after 700 ms');
    await advance(699);
    expect(fake.sockets).toHaveLength(1);
    await advance(100); // 700 + jitter ≤ 50
    expect(fake.sockets).toHaveLength(2);
    await openSocket();
    fake.sockets[1].serverClose(1008, 'disconnected by the server');
    expect(c.state).toBe('closed');
    await advance(60_000);
    expect(fake.sockets).toHaveLength(2);
  });

  it('pings when quiet and gives a dead connection up', async () => {
    const c = client({ pingIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
    c.subscribe('a');
    const ws = await openSocket();
    await advance(1000);
    expect(ws.sent.at(-1)).toMatchObject({ op: 'ping' });
    ws.answer();
    await advance(2999);
    expect(c.state).toBe('connected');
    await advance(1001 + 1000);
    expect(c.state).not.toBe('connected');
    expect(ws.closedWith).toBe(1000);
  });

  it('unsubscribes when the last handle goes, and runs commands over the socket', async () => {
    const c = client();
    const s1 = c.subscribe('a');
    const s2 = c.subscribe('a');
    const ws = await openSocket();
    s1.unsubscribe();
    await flush();
    expect(ws.sent).toEqual([]);
    s2.unsubscribe();
    await flush();
    expect(ws.sent[0]).toMatchObject({ op: 'unsubscribe', channel: 'a' });
    const pres = c.presence('a');
    const cur = c.publish('a', new Uint8Array([0, 255]));
    await flush();
    ws.answer((cmd) => (cmd.op === 'presence' ? { clients: [{ client: 'k' }], count: 1 } : { cursor: 'e:3' }));
    expect(await pres).toEqual({ clients: [{ client: 'k' }], count: 1 });
    expect(await cur).toBe('e:3');
    expect(ws.sent).toEqual([]);
  });

  it('closes cleanly on pagehide and on close()', async () => {
    const c = client();
    c.subscribe('a');
    const ws = await openSocket();
    fake.pageHide!();
    expect(ws.closedWith).toBe(1000);
    expect(c.state).toBe('disconnected');
    c.close();
    expect(c.state).toBe('closed');
    await advance(60_000);
    expect(fake.sockets).toHaveLength(1);
  });
});

describe('negotiation', () => {
  it('falls back to SSE at once when WebSocket is refused, and remembers it', async () => {
    const c = client();
    const seen = states(c);
    c.subscribe('a', { since: 'e:4' });
    await flush();
    fake.sockets[0].serverClose(1006);
    await advance(0);
    expect(fake.sources).toHaveLength(1);
    const es = fake.sources[0];
    expect(channelsOf(es.url)).toEqual(['a,e:4']);
    es.open();
    es.emit('ready', '', 'e:4');
    await flush();
    expect(seen).toEqual(['connecting websocket', 'disconnected websocket', 'connecting sse', 'connected sse']);
    expect(fake.storage.get('switchboard:transport:http://sb.test')).toBe('sse');
    // The next page load starts there.
    reset();
    fake.storage.set('switchboard:transport:http://sb.test', 'sse');
    client().subscribe('a');
    await flush();
    expect([fake.sockets.length, fake.sources.length]).toEqual([0, 1]);
  });

  it('skips a transport that does not open in time', async () => {
    const c = client({ openTimeoutMs: 500 });
    c.subscribe('a');
    await advance(499);
    expect(fake.sources).toHaveLength(0);
    await advance(1);
    expect(fake.sockets[0].closedWith).toBe(1000);
    expect(fake.sources).toHaveLength(1);
  });

  it('moves past every streaming transport to long-polling when a proxy holds the stream', async () => {
    fake.handler = ({ url }) => json({ messages: [], cursors: { a: 'e:9' } }, {});
    const c = client({ transports: ['sse', 'stream', 'longpoll', 'poll'], openTimeoutMs: 500 });
    const seen = states(c);
    c.subscribe('a');
    await flush();
    fake.sources[0].open(); // the head came (or not), the first event never does
    await advance(500);
    expect(fake.sources[0].closed).toBe(true);
    await flush();
    expect(seen.filter((s) => s.startsWith('connect'))).toEqual(['connecting sse', 'connecting longpoll', 'connected longpoll']);
    expect(new URL(fake.requests[0].url).searchParams.get('transport')).toBe('poll');
  });

  it('probes a better transport later and switches over without a gap', async () => {
    fake.storage.set('switchboard:transport:http://sb.test', 'poll');
    let n = 0;
    fake.handler = () => json({ messages: n++ ? [] : [{ channel: 'a', event: 'message', cursor: 'e:1', data: 1 }], cursors: { a: 'e:1' } });
    const c = client({ reprobeMs: 10_000 });
    const got: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push(m.data) });
    await advance(0);
    expect(c.transport).toBe('poll');
    await advance(10_000);
    const ws = fake.sockets[0];
    ws.open();
    expect(ws.sent[0]).toMatchObject({ op: 'subscribe', channel: 'a', since: 'e:1' });
    ws.answer(() => ({ cursor: 'e:1' }));
    ws.push({ channel: 'a', event: 'message', cursor: 'e:1', data: 1 }); // a repeat: dropped
    ws.push({ channel: 'a', event: 'message', cursor: 'e:2', data: 2 });
    await flush();
    expect(c.transport).toBe('websocket');
    expect(got).toEqual([1, 2]);
    const polls = fake.requests.length;
    await advance(20_000);
    expect(fake.requests.length).toBe(polls);
  });
});

describe('the HTTP transports', () => {
  it('SSE: every channel in one request, cursors from the ready event, resumed by the browser', async () => {
    const c = client({ transport: 'sse' });
    const got: unknown[] = [];
    const resets: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push(m.data), onReset: (r) => resets.push(r) });
    c.subscribe('b', { history: 'all', onMessage: (m) => got.push(m.data) });
    await flush();
    const es = fake.sources[0];
    expect(channelsOf(es.url)).toEqual(['a', 'b,oldest']);
    es.open();
    es.emit('ready', '', 'e:3,f:0');
    await flush();
    expect(c.subscribe('a').cursor).toBe('e:3');
    es.envelope({ channel: 'b', cursor: 'f:1', data: 'b1' }, 'e:3,f:1');
    // The server restarts: the browser reconnects by itself with Last-Event-ID.
    es.emit('reconnect', 'service restart');
    expect(c.state).toBe('disconnected');
    es.error(0);
    es.open();
    es.emit('ready', '', 'e:3,f:1');
    es.envelope({ channel: 'a', event: 'reset', cursor: 'n:0' }, 'n:0,f:1');
    es.envelope({ channel: 'a', cursor: 'n:1', data: 'a1' }, 'n:1,f:1');
    await flush();
    expect(c.state).toBe('connected');
    expect(got).toEqual(['b1', 'a1']);
    expect(resets).toEqual([]);
    expect(fake.sources).toHaveLength(1);
    // A new channel is a new request, from every channel's cursor.
    c.subscribe('x');
    await flush();
    expect(es.closed).toBe(true);
    expect(channelsOf(fake.sources[1].url)).toEqual(['a,n:1', 'b,f:1', 'x']);
  });

  it('SSE: a missing heartbeat ends the stream; the client resumes from the cursors', async () => {
    const c = client({ transport: 'sse', heartbeatTimeoutMs: 5000 });
    c.subscribe('a');
    await flush();
    fake.sources[0].open();
    fake.sources[0].emit('ready', '', 'e:2');
    await advance(4000);
    fake.sources[0].emit('heartbeat');
    await advance(4999);
    expect(c.state).toBe('connected');
    await advance(1);
    expect(fake.sources[0].closed).toBe(true);
    await advance(1000);
    expect(channelsOf(fake.sources[1].url)).toEqual(['a,e:2']);
  });

  it('stream: polls fresh channels for where they stand, then reads lines', async () => {
    const s = streamed();
    fake.handler = ({ url }) => {
      const q = new URL(url).searchParams;
      if (q.get('transport') === 'poll')
        return json({ messages: [{ channel: 'a', event: 'message', cursor: 'e:7', data: 'h' }], cursors: { a: 'e:7' } });
      return s.response;
    };
    const c = client({ transport: 'stream' });
    const got: unknown[] = [];
    c.subscribe('a', { history: 1, onMessage: (m) => got.push(m.data) });
    await advance(0);
    expect(channelsOf(fake.requests[0].url)).toEqual(['a,last:1']);
    expect(channelsOf(fake.requests[1].url)).toEqual(['a,e:7']);
    expect(c.state).toBe('connecting');
    s.write(' '.repeat(2048) + '\n');
    await flush();
    expect(c.state).toBe('connected');
    s.write('{"channel":"a","event":"message","offset":8,"cursor":"e:8","data":"x"}\n{"channel":"a","ev');
    s.write('ent":"message","offset":9,"cursor":"e:9","data":"y"}\n\n');
    s.write('{"event":"reconnect","reason":"service restart"}\n');
    s.end();
    await advance(0);
    expect(got).toEqual(['h', 'x', 'y']);
    expect(c.state).toBe('disconnected');
  });

  it('long-poll: re-polls at once after news, backs off after an immediate empty answer', async () => {
    let news = 3;
    fake.handler = ({ url }) => {
      const q = new URL(url).searchParams;
      const since = q.getAll('channel')[0].split(',')[1];
      const n = since ? Number(since.split(':')[1]) : 0;
      const has = news-- > 0;
      return json({ messages: has ? [{ channel: 'a', event: 'message', cursor: `e:${n + 1}`, data: n + 1 }] : [], cursors: { a: `e:${n + (has ? 1 : 0)}` } });
    };
    const c = client({ transport: 'longpoll' });
    const got: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push(m.data) });
    await advance(0);
    await flush();
    expect(got).toEqual([1, 2, 3]);
    const before = fake.requests.length;
    await advance(999);
    // Empty answers that came back at once: at most one a second, no spin.
    expect(fake.requests.length - before).toBeLessThanOrEqual(2);
    expect(new URL(fake.requests.at(-1)!.url).searchParams.get('transport')).toBe('longpoll');
    c.close();
  });

  it('long-poll in the compact format: one channel asks for it, reads exact cursors, and takes envelopes too', async () => {
    // The server: compact bodies while it can, then a reset in envelopes.
    const answers = [
      { cursor: 'e:2', data: [1, 2] },
      { cursor: 'e:4', data: ['x', { y: 4 }], more: true },
      { messages: [{ channel: 'a', event: 'reset', cursor: 'f:0' }, { channel: 'a', event: 'message', offset: 1, cursor: 'f:1', data: 5 }], cursors: { a: 'f:1' } },
    ];
    fake.handler = () => json(answers.shift() ?? { cursor: 'f:1', data: [] });
    const c = client({ transport: 'longpoll', compact: true });
    const got: unknown[] = [];
    const resets: unknown[] = [];
    c.subscribe('a', { since: 'e:0', onMessage: (m) => got.push([m.cursor, m.offset, m.data]), onReset: (r) => resets.push(r.cursor) });
    await advance(0);
    await flush();
    expect(got).toEqual([
      ['e:1', 1, 1],
      ['e:2', 2, 2],
      ['e:3', 3, 'x'],
      ['e:4', 4, { y: 4 }],
      ['f:1', 1, 5],
    ]);
    expect(resets).toEqual(['f:0']);
    const urls = fake.requests.map((r) => new URL(r.url).searchParams);
    expect(urls.every((q) => q.get('format') === 'compact')).toBe(true);
    // Each request resumes from the last cursor of the answer before it.
    expect(urls.slice(0, 4).map((q) => q.get('channel'))).toEqual(['a,e:0', 'a,e:2', 'a,e:4', 'a,f:1']);
    c.close();
  });

  it('polls of several channels do not ask for the compact body, nor do polls without the option', async () => {
    fake.handler = () => json({ messages: [], cursors: { a: 'e:1', b: 'e:1' } });
    const two = client({ transport: 'poll', compact: true });
    two.subscribe('a');
    two.subscribe('b');
    await advance(0);
    const q = new URL(fake.requests.at(-1)!.url).searchParams;
    expect(q.getAll('channel')).toHaveLength(2);
    expect(q.get('format')).toBe(null);
    two.close();
    const plain = client({ transport: 'poll' });
    plain.subscribe('a');
    await advance(0);
    expect(new URL(fake.requests.at(-1)!.url).searchParams.get('format')).toBe(null);
    plain.close();
  });

  it('poll: an error backs off; Retry-After is honoured', async () => {
    let fail = true;
    fake.handler = () =>
      fail
        ? new Response('{"error":"busy","message":"busy"}', { status: 503, headers: { 'retry-after': '3' } })
        : json({ messages: [], cursors: { a: 'e:1' } });
    const c = client({ transport: 'poll' });
    c.subscribe('a');
    await advance(0);
    expect(fake.requests).toHaveLength(1);
    expect(c.state).toBe('disconnected');
    fail = false;
    await advance(2999);
    expect(fake.requests).toHaveLength(1);
    await advance(200);
    expect(fake.requests).toHaveLength(2);
    expect(c.state).toBe('connected');
  });

  it('publishes and asks presence over HTTP when there is no WebSocket', async () => {
    fake.handler = ({ url, init }) => {
      if (url.endsWith('/ch/a%3Ab')) return json({ channel: 'a:b', cursor: 'e:4' });
      if (url.endsWith('/ws')) return json({ id: 1, result: { clients: [], count: 0, echo: JSON.parse(init.body as string) } });
      return json({ messages: [], cursors: {} });
    };
    const c = client({ transport: 'poll' });
    expect(await c.publish('a:b', { t: 1 })).toBe('e:4');
    const post = fake.requests[0];
    expect(post.init.method).toBe('POST');
    expect(new Headers(post.init.headers).get('content-type')).toBe('application/json');
    expect(post.init.body).toBe('{"t":1}');
    const p: any = await c.presence('a:b');
    expect(p.echo).toEqual({ id: 1, op: 'presence', channel: 'a:b' });
  });
});

describe('tokens', () => {
  const jwt = (exp: number) => `h.${btoa(JSON.stringify({ exp })).replace(/=+$/, '')}.s`;

  it('WebSocket: in the URL, refreshed before exp and when the server asks', async () => {
    let n = 0;
    const tokens: string[] = [];
    const c = client({
      pingIntervalMs: 1e9,
      heartbeatTimeoutMs: 1e9,
      getToken: () => {
        const t = jwt(600 + 600 * n++); // seconds
        tokens.push(t);
        return t;
      },
    });
    c.subscribe('a');
    const ws = await openSocket();
    expect(new URL(ws.url).searchParams.get('token')).toBe(tokens[0]);
    // exp 600 s: refreshed 30 s before it.
    await advance(569_000);
    expect(ws.sent).toEqual([]);
    await advance(1000);
    expect(ws.sent[0]).toMatchObject({ op: 'refresh', token: tokens[1] });
    ws.answer();
    ws.push({ event: 'refresh' });
    await flush();
    expect(ws.sent[0]).toMatchObject({ op: 'refresh', token: tokens[2] });
    // An expired token closes with 3000: back at once with a new one.
    ws.serverClose(3000, 'token expired');
    await advance(0);
    expect(new URL(fake.sockets[1].url).searchParams.get('token')).toBe(tokens[3]);
  });

  it('HTTP: a bearer header; an SSE stream ending with refresh reopens with a new token', async () => {
    let n = 0;
    const c = client({ transport: 'sse', getToken: async () => `t${n++}` });
    fake.handler = () => json({ channel: 'a', cursor: 'e:1' });
    await c.publish('a', 'hi');
    expect(new Headers(fake.requests[0].init.headers).get('authorization')).toBe('Bearer t0');
    c.subscribe('a');
    await flush();
    const es = fake.sources[0];
    expect(new URL(es.url).searchParams.get('token')).toBe('t0');
    es.open();
    es.emit('ready', '', 'e:1');
    es.emit('refresh', 'token expired');
    await advance(0);
    expect(es.closed).toBe(true);
    expect(new URL(fake.sources[1].url).searchParams.get('token')).toBe('t1');
    expect(channelsOf(fake.sources[1].url)).toEqual(['a,e:1']);
  });

  it('SSE: a token near its exp is replaced by a second stream that takes over without a gap', async () => {
    let n = 0;
    const c = client({ transport: 'sse', heartbeatTimeoutMs: 1e9, getToken: () => jwt(600 * ++n) });
    const seen = states(c);
    const got: unknown[] = [];
    c.subscribe('a', { onMessage: (m) => got.push(m.data) });
    await flush();
    const first = fake.sources[0];
    first.open();
    first.emit('ready', '', 'e:1');
    first.envelope({ channel: 'a', cursor: 'e:2', data: 2 }, 'e:2');
    await advance(570_000);
    const second = fake.sources[1];
    expect(new URL(second.url).searchParams.get('token')).toBe(jwt(1200));
    expect(channelsOf(second.url)).toEqual(['a,e:2']);
    first.envelope({ channel: 'a', cursor: 'e:3', data: 3 }, 'e:3');
    second.open();
    second.emit('ready', '', 'e:2');
    second.envelope({ channel: 'a', cursor: 'e:3', data: 3 }, 'e:3');
    second.envelope({ channel: 'a', cursor: 'e:4', data: 4 }, 'e:4');
    await flush();
    expect(first.closed).toBe(true);
    expect(got).toEqual([2, 3, 4]);
    expect(seen).toEqual(['connecting sse', 'connected sse']);
  });
});
