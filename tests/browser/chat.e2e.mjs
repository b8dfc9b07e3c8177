// The demo pages in a headless Chromium against a real `switchboard serve`: a message
// typed in one chat page appears in another over every transport (forced with
// ?transport=, `ws` still meaning WebSocket), the chat shows the last messages on join,
// who is here and the transport in use, a restart that lost nothing says nothing
// alarming, the ticker receives server-published prices, the index links both demos.
// usage: SWITCHBOARD_BIN=target/debug/switchboard node chat.e2e.mjs
import { main, serve, until } from './harness.mjs';

/** Set by `main`: the check function and the browser context. */
let check;
let ctx;

async function open(url) {
  const p = await ctx.newPage();
  await p.goto(url);
  return p;
}
const chat = (p) => p.evaluate(() => window.__chat);
const isConnected = (p) => p.waitForFunction(() => window.__chat.status === 'connected', null, { timeout: 15000 }).then(() => true, () => false);

async function chatPair(base, transport, room) {
  const url = `${base}/demo/chat?transport=${transport}&room=${room}`;
  const a = await open(`${url}&name=alice`);
  const b = await open(`${url}&name=bob`);
  const up = (await isConnected(a)) && (await isConnected(b));
  const want = transport === 'ws' ? 'websocket' : transport;
  const shown = await b.textContent('#transport');
  check(`chat over ${transport}: both pages connected, the transport shown`, up && shown === want, { shown, a: await chat(a), b: await chat(b) });
  const text = `hello from a over ${transport} ${Date.now()}`;
  await a.fill('#text', text);
  await a.click('button');
  const seen = await b.waitForFunction((x) => window.__chat.received.includes(x), text, { timeout: 10000 }).then(() => true, () => false);
  const inLog = seen && (await b.textContent('#log')).includes(`alice: ${text}`);
  check(`chat over ${transport}: message typed in page A appears in page B`, inLog, await chat(b));
  const echoed = await a.waitForFunction((x) => window.__chat.received.includes(x), text, { timeout: 10000 }).then(() => true, () => false);
  check(`chat over ${transport}: sender sees its own message`, echoed, await chat(a));
  // Who is here, on each page (joins over the stream, the list from presence). A polling
  // page holds no connection, so it is not counted itself; it shows who is connected
  // (eve, over WebSocket), asking again now and then.
  const polling = ['longpoll', 'poll'].includes(transport);
  const eve = polling ? await open(`${base}/demo/chat?room=${room}&name=eve`) : null;
  const names = polling ? ['eve'] : ['alice', 'bob'];
  const listed = await until(async () => {
    const [x, y] = [await chat(a), await chat(b)];
    return names.every((n) => x.present.includes(n) && y.present.includes(n));
  }, 10000);
  check(`chat over ${transport}: who is here lists ${names.join(' and ')}`, listed, { a: (await chat(a)).present, b: (await chat(b)).present });
  await eve?.close();
  // A latecomer sees the last messages on join.
  const c = await open(`${url}&name=carol`);
  const history = await c.waitForFunction((x) => window.__chat.received.includes(x), text, { timeout: 10000 }).then(() => true, () => false);
  check(`chat over ${transport}: a page opened later shows the last messages`, history, await chat(c));
  for (const p of [a, b, c]) await p.close();
}

await main('browser-demos', async (env) => {
  ({ check, ctx } = env);
  const { servers } = env;
  const srv = await serve();
  servers.push(srv);
  const room = `e2e-${process.pid}`;
  for (const transport of ['ws', 'sse', 'stream', 'longpoll', 'poll']) await chatPair(srv.url, transport, `${room}-${transport}`);

  // Without ?transport= the client picks WebSocket here.
  const auto = await open(`${srv.url}/demo/chat?room=${room}-auto`);
  check('chat without ?transport= picks WebSocket', (await isConnected(auto)) && (await chat(auto)).transport === 'websocket', await chat(auto));
  await auto.close();

  // A server restart that lost nothing: the page reconnects and says nothing alarming.
  {
    let s = await serve();
    servers.push(s);
    const p = await open(`${s.url}/demo/chat?room=restart&name=dave`);
    await isConnected(p);
    await s.stop();
    await p.waitForFunction(() => window.__chat.status !== 'connected', null, { timeout: 10000 }).catch(() => {});
    s = await serve(s.port);
    servers.push(s);
    const back = await until(async () => (await chat(p)).status === 'connected', 20000);
    await p.fill('#text', 'after the restart');
    await p.click('button');
    const works = await p.waitForFunction(() => window.__chat.received.includes('after the restart'), null, { timeout: 10000 }).then(() => true, () => false);
    const log = await p.textContent('#log');
    check('chat: a restart that lost nothing reconnects quietly', back && works && (await chat(p)).resets === 0 && !/missed/.test(log), { log, chat: await chat(p) });
    await p.close();
  }

  const tk = await open(`${srv.url}/demo/ticker`);
  const ticks = await tk.waitForFunction(() => window.__ticker.updates >= 2, null, { timeout: 10000 }).then(() => true, () => false);
  check('ticker receives server-published prices', ticks, await tk.textContent('body'));
  await tk.close();

  const idx = await open(`${srv.url}/`);
  const links = await idx.$$eval('a', (as) => as.map((x) => x.getAttribute('href')));
  check('index links both demos', links.includes('/demo/chat') && links.includes('/demo/ticker'), links);
  await idx.close();
});
