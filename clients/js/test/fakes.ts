// Fake platform APIs for the unit tests: a manual clock, WebSocket and EventSource
// fakes the test drives by hand, a fetch answered by a handler, and memory storage.
import type { EventSourceLike, Platform, WebSocketLike } from '../src/platform';

/** Lets pending promise callbacks run (real macrotask; the platform's timers are fake). */
export const flush = () => new Promise<void>((r) => setImmediate(r));

export class FakeWebSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: any[] = [];
  closedWith: number | null = null;
  protocol = '';
  binaryType = 'blob';
  /** Whether `open` takes a compact offer (a server that has the format). */
  agree = true;
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    fake.sockets.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1005) {
    this.closedWith = code;
    this.readyState = 3;
  }
  // Driven by tests:
  open() {
    if (this.agree && this.protocols?.includes('switchboard.compact')) this.protocol = 'switchboard.compact';
    this.readyState = 1;
    this.onopen?.({});
  }
  /** A JSON frame (a control record in the compact format). */
  push(frame: unknown) {
    this.onmessage?.({ data: (this.protocol ? '\x1e' : '') + JSON.stringify(frame) });
  }
  /** A frame as is (the compact format's payload frames). */
  raw(data: string | ArrayBuffer) {
    this.onmessage?.({ data });
  }
  /** Answers every command sent so far that has no answer yet. */
  answer(result: (cmd: any) => unknown = (c) => (c.op === 'subscribe' ? { cursor: 'e:0' } : {})) {
    for (const c of this.sent.splice(0)) this.push({ id: c.id, result: result(c) });
  }
  serverClose(code: number, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

export class FakeEventSource implements EventSourceLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  listeners = new Map<string, ((e: { data: string; lastEventId: string }) => void)[]>();
  closed = false;
  lastEventId = '';
  constructor(readonly url: string) {
    fake.sources.push(this);
  }
  addEventListener(type: string, fn: (e: { data: string; lastEventId: string }) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  // Driven by tests:
  open() {
    if (this.agree && this.protocols?.includes('switchboard.compact')) this.protocol = 'switchboard.compact';
    this.readyState = 1;
    this.onopen?.({});
  }
  emit(type: string, data = '', id?: string) {
    if (id !== undefined) this.lastEventId = id;
    for (const fn of this.listeners.get(type) ?? []) fn({ data, lastEventId: this.lastEventId });
  }
  envelope(env: { channel: string; event?: string; cursor?: string; data?: unknown }, id?: string) {
    const e = { event: 'message', ...env };
    if (e.cursor) (e as any).offset = Number(e.cursor.split(':')[1]);
    this.emit(e.event, JSON.stringify(e), id);
  }
  error(state: number) {
    this.readyState = state;
    this.onerror?.({});
  }
}

interface Timer {
  at: number;
  fn: () => void;
  id: number;
}

/** One fetch the handler saw. */
export interface Request {
  url: string;
  init: RequestInit;
}

export const fake = {
  now: 0,
  timers: [] as Timer[],
  nextId: 1,
  sockets: [] as FakeWebSocket[],
  sources: [] as FakeEventSource[],
  requests: [] as Request[],
  storage: new Map<string, string>(),
  handler: (_r: Request): Promise<Response> | Response => new Response('{}', { status: 404 }),
  pageHide: null as null | (() => void),
};

export function reset(): void {
  fake.now = 0;
  fake.timers = [];
  fake.sockets = [];
  fake.sources = [];
  fake.requests = [];
  fake.storage = new Map();
  fake.handler = () => new Response('{}', { status: 404 });
  fake.pageHide = null;
}

/** Runs every timer due within `ms` of fake time, in order, letting promises settle between. */
export async function advance(ms: number): Promise<void> {
  const end = fake.now + ms;
  await flush();
  for (;;) {
    fake.timers.sort((a, b) => a.at - b.at || a.id - b.id);
    const t = fake.timers[0];
    if (!t || t.at > end) break;
    fake.timers.shift();
    fake.now = t.at;
    t.fn();
    await flush();
  }
  fake.now = end;
  await flush();
}

export function platform(): Partial<Platform> {
  return {
    WebSocket: FakeWebSocket,
    EventSource: FakeEventSource,
    fetch: async (url, init = {}) => {
      const r = { url, init };
      fake.requests.push(r);
      if (init.signal?.aborted) throw new Error('aborted');
      return new Promise<Response>((resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(new Error('aborted')));
        Promise.resolve(fake.handler(r)).then(resolve, reject);
      });
    },
    setTimeout: (fn, ms) => {
      const id = fake.nextId++;
      fake.timers.push({ at: fake.now + Math.max(0, ms), fn, id });
      return id;
    },
    clearTimeout: (id) => {
      fake.timers = fake.timers.filter((t) => t.id !== id);
    },
    now: () => fake.now,
    random: () => 0.5,
    storage: {
      getItem: (k) => fake.storage.get(k) ?? null,
      setItem: (k, v) => void fake.storage.set(k, v),
    },
    onPageHide: (hide) => {
      fake.pageHide = hide;
    },
    base: 'http://sb.test/',
  };
}

export const json = (body: unknown, init: ResponseInit = {}) =>
  new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' }, ...init });

/** A streamed response the test writes to. */
export function streamed(): { response: Response; write: (s: string) => void; end: () => void } {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
  const enc = new TextEncoder();
  return {
    response: new Response(body, { status: 200 }),
    write: (s) => ctl.enqueue(enc.encode(s)),
    end: () => ctl.close(),
  };
}

/** The `channel=` values of a `/sub` URL. */
export const channelsOf = (url: string) => new URL(url).searchParams.getAll('channel');
