/**
 * The platform APIs the client uses, passed in so the same code runs in a browser and in
 * unit tests with fakes. `defaultPlatform()` takes them from `globalThis`.
 */

export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server chose (`''`: none). */
  readonly protocol?: string;
  binaryType?: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  addEventListener(type: string, listener: (ev: { data: string; lastEventId: string }) => void): void;
  close(): void;
}

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface Platform {
  WebSocket: new (url: string, protocols?: string[]) => WebSocketLike;
  EventSource: new (url: string) => EventSourceLike;
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
  now: () => number;
  random: () => number;
  /** Where the winning transport is remembered (`sessionStorage`), if anywhere. */
  storage?: StorageLike | null;
  /** Calls `hide` on `pagehide` and `show` on a `pageshow` from the back/forward cache. */
  onPageHide?: (hide: () => void, show: () => void) => void;
  /** What relative URLs are resolved against (`location.href`). */
  base?: string;
}

export function defaultPlatform(): Platform {
  const g = globalThis as any;
  let storage: StorageLike | null = null;
  try {
    storage = g.sessionStorage ?? null;
  } catch {
    // Storage can be denied (privacy settings): the winner is then not remembered.
  }
  return {
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    fetch: (url, init) => g.fetch(url, init),
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (h) => g.clearTimeout(h),
    now: () => Date.now(),
    random: Math.random,
    storage,
    onPageHide: g.addEventListener
      ? (hide, show) => {
          g.addEventListener('pagehide', hide);
          g.addEventListener('pageshow', (e: { persisted?: boolean }) => e.persisted && show());
        }
      : undefined,
    base: g.location?.href,
  };
}
