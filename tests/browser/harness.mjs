// What the browser tests share: a headless Debian Chromium (playwright-core, no browser
// download), a real `switchboard serve` they start, restart on the same port and stop,
// the backend API, and the pass/fail count ("browser: N passed, M failed").
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const API_KEY = 'browser-test-key';

export async function launch() {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  return { ctx, close: async () => { await ctx.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/** A `switchboard serve` on 127.0.0.1 (port 0: any free one; else that port), `env` added. */
export async function serve(port = 0, env = {}) {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) throw new Error('SWITCHBOARD_BIN is not set');
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, SWITCHBOARD_API_KEY: API_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const addr = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${log}`)), 10_000);
    const read = (b) => {
      log += b;
      const m = /listening on http:\/\/([0-9.:]+)/.exec(log);
      if (m) { clearTimeout(t); resolve(m[1]); }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${log}`)));
  });
  const server = {
    addr,
    url: `http://${addr}`,
    port: Number(addr.split(':')[1]),
    /** Stops it (SIGTERM: the graceful shutdown, with its farewells) and waits for the exit. */
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
    api: (path, body) => fetch(`http://${addr}/api${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => {
      const j = await r.json();
      if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(j)}`);
      return j;
    }),
  };
  server.publish = (channel, data) => server.api('/publish', { channel, data });
  server.subscribers = async (channel) => {
    const r = await fetch(`http://${addr}/api/channels/${encodeURIComponent(channel)}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    return r.status === 404 ? 0 : (await r.json()).subscribers;
  };
  return server;
}

/**
 * Runs `body({ check, ctx, servers, errors })` with a browser, then stops it and every
 * server in `servers`, prints "NAME: N passed, M failed" and exits with the result. A
 * page error anywhere fails the run ("no page errors").
 */
export async function main(name, body) {
  const t = checks(name);
  const errors = [];
  const servers = [];
  const browser = await launch();
  browser.ctx.on('page', (p) => p.on('pageerror', (e) => errors.push(`${p.url()}: ${e.message}`)));
  try {
    await body({ check: t.check, ctx: browser.ctx, servers });
    t.check('no page errors', errors.length === 0, errors);
  } catch (e) {
    t.check('the run finished', false, e.stack || String(e));
  } finally {
    await browser.close();
    for (const s of servers) await s.stop();
  }
  const { passed, failed } = t.summary();
  console.log(`${name}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

/** An HS256 client token (JWT) for `claims`, signed with `secret`. */
export function jwt(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

export function checks(prefix) {
  let passed = 0, failed = 0;
  return {
    check(name, ok, detail) {
      if (ok) { passed++; console.log(`ok   ${prefix}: ${name}`); }
      else { failed++; console.log(`FAIL ${prefix}: ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`); }
    },
    get failed() { return failed; },
    summary() { return { passed, failed }; },
  };
}

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the last value. */
export async function until(fn, ms = 10_000, every = 25) {
  const end = Date.now() + ms;
  let v;
  while (!(v = await fn()) && Date.now() < end) await new Promise((r) => setTimeout(r, every));
  return v;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
