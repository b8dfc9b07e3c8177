// Opens the chat demo in two pages of a headless Chromium and checks that a message typed
// in one appears in the other, over WebSocket and over EventSource + POST; and that the
// ticker demo receives server-published prices.
// usage: node chat.e2e.mjs http://127.0.0.1:PORT
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.argv[2];
if (!base) { console.error('usage: node chat.e2e.mjs BASE_URL'); process.exit(2); }
const userDataDir = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-dev-shm-usage'],
});
let passed = 0, failed = 0;
const check = (name, ok, detail) => {
  if (ok) { passed++; console.log(`ok   ${name}`); } else { failed++; console.log(`FAIL ${name}: ${detail}`); }
};
const errors = [];

async function chatPair(transport, room) {
  const url = `${base}/demo/chat?transport=${transport}&room=${room}`;
  const a = await ctx.newPage();
  const b = await ctx.newPage();
  for (const p of [a, b]) p.on('pageerror', (e) => errors.push(`${transport}: ${e.message}`));
  await a.goto(url); await b.goto(url);
  for (const p of [a, b]) {
    await p.waitForFunction(() => window.__chat.status === 'connected', null, { timeout: 10000 });
  }
  const text = `hello from a over ${transport} ${Date.now()}`;
  await a.fill('#name', 'alice');
  await a.fill('#text', text);
  await a.click('button');
  const seen = await b.waitForFunction((t) => window.__chat.received.includes(t), text, { timeout: 10000 })
    .then(() => true, () => false);
  const shown = seen && (await b.textContent('#log')).includes(`alice: ${text}`);
  check(`chat over ${transport}: message typed in page A appears in page B`, shown,
    JSON.stringify(await b.evaluate(() => window.__chat)));
  const echoed = await a.waitForFunction((t) => window.__chat.received.includes(t), text, { timeout: 10000 })
    .then(() => true, () => false);
  check(`chat over ${transport}: sender sees its own message`, echoed, '');
  await a.close(); await b.close();
}

try {
  const room = `e2e-${process.pid}`;
  await chatPair('ws', room + '-ws');
  await chatPair('sse', room + '-sse');

  const t = await ctx.newPage();
  t.on('pageerror', (e) => errors.push(`ticker: ${e.message}`));
  await t.goto(`${base}/demo/ticker`);
  const ticks = await t.waitForFunction(() => window.__ticker.updates >= 2, null, { timeout: 10000 })
    .then(() => true, () => false);
  check('ticker receives server-published prices', ticks, await t.textContent('body'));
  await t.close();

  const idx = await ctx.newPage();
  await idx.goto(`${base}/`);
  const links = await idx.$$eval('a', (as) => as.map((x) => x.getAttribute('href')));
  check('index links both demos', links.includes('/demo/chat') && links.includes('/demo/ticker'), JSON.stringify(links));
  await idx.close();
  check('no page errors', errors.length === 0, JSON.stringify(errors));
} finally {
  await ctx.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
