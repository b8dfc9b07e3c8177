// The live status page (/status) in a headless Chromium against a real `switchboard
// serve` with an API key: the page asks for the key (a wrong one is refused), then shows
// the server's numbers over its own `_sys:stats` channel, and they move when traffic is
// sent; the key never appears in a URL; the feed refuses a subscriber without a ticket.
// usage: SWITCHBOARD_BIN=target/debug/switchboard node status.e2e.mjs [SCREENSHOT.png]
import { API_KEY, main, serve, until, sleep } from './harness.mjs';

const shot = process.argv[2];

await main('status', async ({ check, ctx, servers }) => {
  const server = await serve();
  servers.push(server);

  const raw = await fetch(`${server.url}/sub?channel=_sys:stats&transport=poll`);
  check('the feed refuses a subscriber without a ticket (401)', raw.status === 401, raw.status);

  const page = await ctx.newPage();
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('websocket', (ws) => urls.push(ws.url()));
  await page.goto(`${server.url}/status`);
  const html = await page.content();
  check('the page loads and asks for the key', await page.isVisible('#keyform') && !html.includes(API_KEY));

  await page.fill('#key', 'not-the-key');
  await page.click('#keyform button');
  const refused = await until(async () => (await page.textContent('#keyerror')).includes('not accepted'), 5000);
  check('a wrong key is refused', refused, await page.textContent('#keyerror'));

  await page.fill('#key', API_KEY);
  await page.click('#keyform button');
  const live = await until(async () => (await page.textContent('#live')).startsWith('live'), 10_000);
  check('with the key the page goes live over Switchboard', live, await page.textContent('#live'));
  const twoSamples = await until(() => page.evaluate(() => (window.statusSamples ?? 0) >= 2), 10_000);
  check('samples arrive every second', twoSamples);
  const version = await page.textContent('#version');
  check('version and uptime are shown', /^\d+\.\d+\.\d+/.test(version) && (await page.textContent('#uptime')) !== '–', version);

  const number = async (id) => Number((await page.textContent(id)).replace(/[^0-9.]/g, '') || 0);
  const published0 = await number('#published');
  const delivered0 = await number('#delivered');

  // Traffic: two SSE subscribers on `load`, 40 messages over two seconds.
  const aborts = [];
  for (let i = 0; i < 2; i++) {
    const ac = new AbortController();
    aborts.push(ac);
    const res = await fetch(`${server.url}/ch/load?transport=sse`, { signal: ac.signal });
    (async () => { try { for await (const _ of res.body) { /* drain */ } } catch { /* aborted */ } })();
  }
  await until(async () => (await server.subscribers('load')) === 2, 5000);
  for (let i = 0; i < 40; i++) {
    await server.publish('load', { i });
    await sleep(50);
  }
  const moved = await until(async () => (await number('#published')) >= published0 + 40 &&
    (await number('#delivered')) >= delivered0 + 80, 5000);
  check('published and delivered counts move with the traffic', moved,
    { published: [published0, await number('#published')], delivered: [delivered0, await number('#delivered')] });
  const rateIn = await number('#rate-in');
  check('messages per second in are shown', rateIn > 0, await page.textContent('#rate-in'));
  const busiest = await page.textContent('#busiest');
  check('the busiest channels name the loaded one', busiest.includes('load') && busiest.includes('2'), busiest);
  const sseOpen = await page.textContent('#transports tr[data-transport="sse"] td.open');
  check('connections per transport count the two SSE subscribers', Number(sseOpen) >= 2, sseOpen);
  const connections = await number('#connections');
  check('connections count the subscribers and the page', connections >= 3, connections);
  const drawn = await page.evaluate(() => document.querySelectorAll('#chart path').length);
  check('the chart draws its lines', drawn >= 1, drawn);
  check('the broker is shown up', (await page.textContent('#broker')) === 'OK');

  check('the key never appears in a URL', !urls.some((u) => u.includes(API_KEY)), urls.filter((u) => u.includes(API_KEY)));
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  for (const ac of aborts) ac.abort();
  await page.close();
});
