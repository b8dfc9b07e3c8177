// The browser client (/switchboard.js) in a real headless Chromium against a real
// `switchboard serve`: every transport forced in turn (two channels, history on join,
// backend publishes in order), the compact format on long-polling and polling (the bytes
// Chromium sends and receives per long-poll counted by a pass-through proxy), a server
// restarted on the same port mid-stream, a plain
// EventSource on /sub resuming every channel across a server-side drop, WebSocket
// refused by a proxy (the client ends on SSE), streams held back by a proxy (it ends on
// long-polling), the winner remembered for the next page load, and a closed page freeing
// its subscription within a second.
// usage: SWITCHBOARD_BIN=target/debug/switchboard node sdk.e2e.mjs
import { jwt, main, serve, sleep, until } from './harness.mjs';
import { bufferStreams, countBytes, refuseUpgrades } from './proxies.mjs';

const TRANSPORTS = ['websocket', 'sse', 'stream', 'longpoll', 'poll'];
/** Set by `main`: the check function and the browser context. */
let check;
let ctx;

/** A page of `origin` running a Client with `opts`, subscribed to `channels` ([name, options]). */
async function clientPage(origin, opts, channels) {
  const page = await ctx.newPage();
  await page.goto(`${origin}/`);
  await start(page, opts, channels);
  return page;
}

async function start(page, opts, channels) {
  await page.evaluate(async ({ opts, channels }) => {
    const { Client } = await import('/switchboard.js');
    const rec = (window.rec = { got: {}, resets: {}, states: [], state: null, transport: null });
    // Tokens come from the test (an exposed function): functions do not cross evaluate.
    if (opts.getToken) opts.getToken = () => window.mintToken();
    const client = (window.client = new Client(location.origin, opts));
    client.on('state', (e) => {
      rec.states.push(`${e.state} ${e.transport ?? ''}`.trim());
      rec.state = e.state;
      rec.transport = e.transport ?? null;
    });
    for (const [name, options] of channels) {
      rec.got[name] = [];
      rec.resets[name] = [];
      client.subscribe(name, {
        ...options,
        onMessage: (m) => rec.got[name].push(m.data.n),
        onReset: (r) => rec.resets[name].push(r),
      });
    }
  }, { opts, channels });
}

const rec = (page) => page.evaluate(() => window.rec);
const connected = (page, ms = 15_000) => until(async () => (await rec(page)).state === 'connected', ms);
/** Waits until every channel got at least `n` messages; returns the record. */
async function received(page, channels, n, ms = 15_000) {
  await until(async () => {
    const r = await rec(page);
    return channels.every((c) => r.got[c].length >= n);
  }, ms);
  return rec(page);
}
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);
async function publish(server, channels, from, to) {
  for (const n of range(from, to)) for (const c of channels) await server.publish(c, { n });
}

await main('browser-sdk', async (env) => {
  ({ check, ctx } = env);
  const { servers } = env;
  const srv = await serve();
  servers.push(srv);

  // Every transport forced in turn: two channels, the last two messages on join, then
  // everything the backend publishes, in order.
  for (const transport of TRANSPORTS) {
    const chans = [`each-${transport}-a`, `each-${transport}-b`];
    await publish(srv, chans, 0, 3);
    const page = await clientPage(srv.url, { transport }, chans.map((c) => [c, { history: 2 }]));
    const up = await connected(page);
    await publish(srv, chans, 3, 8);
    const r = await received(page, chans, 7);
    check(`${transport}: connected over ${transport}`, up && r.transport === transport, r.states);
    for (const c of chans) {
      check(`${transport}: ${c} got its history, then every message, in order`,
        JSON.stringify(r.got[c]) === JSON.stringify(range(1, 8)), r.got[c]);
    }
    await page.close();
  }

  // The compact format on the polling transports (one channel): history and every
  // message in order at exact cursors, every request asking for it. And what Chromium
  // itself sends and receives per long-poll of one 64-byte message, heads included,
  // counted by a pass-through proxy: the answer within 250 bytes.
  for (const transport of ['longpoll', 'poll']) {
    const ch = `compact-${transport}`;
    const pad = 'x'.repeat(50); // {"n":N,"p":"…"} is 64 bytes for one-digit N
    const msg = (n) => srv.publish(ch, { n, p: pad });
    for (const n of range(0, 3)) await msg(n);
    const counter = await countBytes(srv.addr);
    const page = await clientPage(counter.url, { transport, compact: true, pollIntervalMs: 300 }, [[ch, { history: 2 }]]);
    await connected(page);
    await received(page, [ch], 2);
    await sleep(300); // the next long-poll is on its way
    const before = counter.bytes();
    // One at a time, each waited for, so each long-poll answer carries one message.
    for (const n of range(3, 8)) {
      await msg(n);
      await received(page, [ch], n);
    }
    await sleep(300);
    const after = counter.bytes();
    const r = await rec(page);
    const urls = await page.evaluate((ch) => performance.getEntriesByType('resource')
      .filter((e) => e.name.includes(`/sub?channel=${ch}`))
      .map((e) => new URL(e.name).searchParams.get('format')), ch);
    check(`compact ${transport}: history, then every message, in order`,
      JSON.stringify(r.got[ch]) === JSON.stringify(range(1, 8)) && r.transport === transport, r.got[ch]);
    check(`compact ${transport}: every request asks for the compact body`,
      urls.length >= 2 && urls.every((f) => f === 'compact'), urls);
    if (transport === 'longpoll') {
      const down = (after.down - before.down) / 5;
      const up = (after.up - before.up) / 5;
      console.log(`compact long-poll in Chromium, per one-message answer: ${down} B received, ${up} B sent`);
      check(`compact long-poll: Chromium receives at most 250 bytes per one-message answer (${down} B)`,
        down > 64 && down <= 250, { down, up });
    }
    await page.close();
    await counter.close();
  }

  // The server restarted on the same port mid-stream: the client comes back by itself
  // and ends with every message published while it was away, or an explicit reset
  // where the restarted server no longer had them.
  for (const transport of TRANSPORTS) {
    let s = await serve();
    servers.push(s);
    const chans = [`restart-${transport}-a`, `restart-${transport}-b`];
    const page = await clientPage(s.url, { transport, backoff: { minMs: 200, maxMs: 1000 } }, chans.map((c) => [c, {}]));
    await connected(page);
    await publish(s, chans, 0, 3);
    await received(page, chans, 3);
    await s.stop();
    s = await serve(s.port);
    servers.push(s);
    await publish(s, chans, 3, 6); // while the client is away
    // Back on the new server: what was published meanwhile came, or a reset for it did
    // (polling transports may not even notice the gap).
    const back = await until(async () => {
      const x = await rec(page);
      return x.state === 'connected' && chans.every((c) => x.got[c].includes(5) || x.resets[c].length);
    }, 20_000);
    await publish(s, chans, 6, 9);
    const r = await received(page, chans, 6, 20_000).then(() => until(async () => {
      const x = await rec(page);
      return chans.every((c) => x.got[c].includes(8)) && x;
    }, 20_000));
    check(`restart over ${transport}: reconnected by itself`, back && r && r.transport === transport, r?.states ?? []);
    for (const c of chans) {
      const got = r?.got[c] ?? [];
      const all = range(0, 9).every((n) => got.includes(n));
      const explicit = r?.resets[c].length > 0 && range(6, 9).every((n) => got.includes(n));
      const once = got.every((n, i) => i === 0 || n > got[i - 1]);
      check(`restart over ${transport}: ${c} has every message, or a reset for what the server lost`,
        (all || explicit) && once, { got, resets: r?.resets[c] });
    }
    await page.close();
    await s.stop();
  }

  // A plain EventSource on /sub (no client library): the server drops the connection
  // (the backend disconnects the user), the browser reconnects by itself with its
  // Last-Event-ID, and every channel resumes exactly, including what was published in
  // the gap.
  {
    const page = await ctx.newPage();
      await page.goto(`${srv.url}/`);
    await page.evaluate(() => {
      const got = (window.plain = { a: [], b: [], ready: 0, ids: [] });
      const es = new EventSource('/sub?channel=plain-a&channel=plain-b&user=plain-es');
      es.addEventListener('ready', () => got.ready++);
      es.addEventListener('message', (e) => {
        const env = JSON.parse(e.data);
        got[env.channel.slice(6)].push(env.data.n);
        got.ids.push(e.lastEventId);
      });
    });
    await until(() => page.evaluate(() => window.plain.ready === 1));
    await publish(srv, ['plain-a', 'plain-b'], 0, 2);
    await until(() => page.evaluate(() => window.plain.b.length === 2));
    const kicked = await srv.api('/disconnect', { user: 'plain-es' });
    await publish(srv, ['plain-a', 'plain-b'], 2, 5); // in the gap
    const again = await until(() => page.evaluate(() => window.plain.ready === 2), 10_000);
    await publish(srv, ['plain-a', 'plain-b'], 5, 6);
    await until(() => page.evaluate(() => window.plain.a.length >= 6 && window.plain.b.length >= 6), 10_000);
    const got = await page.evaluate(() => window.plain);
    check('plain EventSource on /sub: the server dropped it, the browser came back by itself',
      kicked.disconnected >= 1 && again, { kicked, ready: got.ready });
    check('plain EventSource on /sub: every channel resumed exactly (nothing lost, nothing twice)',
      JSON.stringify(got.a) === JSON.stringify(range(0, 6)) && JSON.stringify(got.b) === JSON.stringify(range(0, 6)), got);
    check('plain EventSource on /sub: each id holds both channels\' cursors',
      got.ids.every((id) => id.split(',').length === 2), got.ids);
    await page.close();
  }

  // WebSocket refused by a proxy: the client ends on SSE by itself; the winner is
  // remembered, so the next page load starts there.
  {
    const p = await refuseUpgrades(srv.addr);
    const page = await clientPage(p.url, {}, [['nows', {}]]);
    await until(async () => (await rec(page)).transport === 'sse' && (await rec(page)).state === 'connected');
    await publish(srv, ['nows'], 0, 2);
    const r = await received(page, ['nows'], 2);
    check('WebSocket refused by a proxy: the client ends on SSE by itself',
      r.transport === 'sse' && r.states[0] === 'connecting websocket' && JSON.stringify(r.got.nows) === '[0,1]', r.states);
    await page.reload();
    await start(page, {}, [['nows', {}]]);
    await connected(page);
    const again = await rec(page);
    check('the winner is remembered for the next page load of this origin', again.states[0] === 'connecting sse', again.states);
    await page.close();
    await p.close();
  }

  // Streamed responses held back by a proxy: the client ends on long-polling by itself.
  {
    const p = await bufferStreams(srv.addr);
    const page = await clientPage(p.url, {}, [['buffered', { history: 1 }]]);
    await publish(srv, ['buffered'], 0, 1);
    await until(async () => (await rec(page)).transport === 'longpoll' && (await rec(page)).state === 'connected', 20_000);
    await publish(srv, ['buffered'], 1, 3);
    const r = await received(page, ['buffered'], 3);
    check('streams held back by a proxy: the client ends on long-polling by itself',
      r.transport === 'longpoll' && r.states.includes('connecting sse') && !r.states.includes('connecting stream'), r.states);
    check('long-polling through the buffering proxy delivers everything in order',
      JSON.stringify(r.got.buffered) === '[0,1,2]', r.got);
    await page.close();
    await p.close();
  }

  // Client tokens end to end: a token that lives 9 s is refreshed through getToken before
  // it expires (a refresh command on the WebSocket, a second stream taking over on SSE),
  // so the subscription goes on past several lifetimes without a drop; presence shows
  // the token's user.
  {
    const secret = 'a browser test secret, 32 bytes or more';
    const s = await serve(0, { SWITCHBOARD_TOKEN_SECRET: secret });
    servers.push(s);
    for (const transport of ['websocket', 'sse']) {
      const ch = `tok-${transport}`;
      const page = await ctx.newPage();
      let minted = 0;
      await page.exposeFunction('mintToken', () => {
        minted++;
        return jwt(secret, { sub: `user-${transport}`, exp: Math.floor(Date.now() / 1000) + 9 });
      });
      await page.goto(`${s.url}/`);
      await start(page, { transport, getToken: true }, [[ch, {}]]);
      await connected(page);
      for (let n = 0; n < 20; n++) {
        await s.publish(ch, { n });
        await sleep(1000);
      }
      const r = await received(page, [ch], 20);
      const who = await s.api(`/channels/${ch}/presence`);
      check(`token over ${transport}: refreshed through getToken before exp, no drop over 20 s (${minted} tokens)`,
        minted >= 3 && !r.states.some((x) => x.startsWith('disconnected')) && JSON.stringify(r.got[ch]) === JSON.stringify(range(0, 20)),
        { minted, states: r.states, got: r.got[ch] });
      check(`token over ${transport}: presence shows the token's user`,
        who.clients.some((c) => c.user === `user-${transport}`), who);
      await page.close();
    }
  }

  // Closing the page frees the server-side subscription within a second.
  for (const transport of ['websocket', 'sse', 'stream', 'longpoll']) {
    const ch = `close-${transport}`;
    const page = await clientPage(srv.url, { transport }, [[ch, {}]]);
    await connected(page);
    const held = await until(async () => (await srv.subscribers(ch)) === 1);
    const t0 = Date.now();
    await page.close();
    const freed = await until(async () => (await srv.subscribers(ch)) === 0, 5000, 20);
    const ms = Date.now() - t0;
    check(`closing the page frees its ${transport} subscription within 1 s (${ms} ms)`, held && freed && ms <= 1000, { held, freed, ms });
  }

});
