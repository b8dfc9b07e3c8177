import type { Platform } from './platform';

/** What `getToken` may return: a client token (a JWT), or nothing to connect without one. */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

/** Refresh this long before a token's `exp`. */
const MARGIN_MS = 30_000;

/** The `exp` of a JWT in milliseconds, if it has one (the signature is the server's business). */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The client token from the application's `getToken`: fetched when first needed, kept
 * until it is close to its `exp` (or the server asked for a new one), one fetch at a time.
 */
export class Tokens {
  private token: string | undefined;
  private pending: Promise<string | undefined> | null = null;

  constructor(
    private readonly source: TokenSource | undefined,
    private readonly platform: Platform,
  ) {}

  get enabled(): boolean {
    return !!this.source;
  }

  /** The token to send now (`undefined`: none). */
  current(): Promise<string | undefined> {
    if (!this.source) return Promise.resolve(undefined);
    if (this.token !== undefined && !this.dueIn(0)) return Promise.resolve(this.token);
    if (!this.pending) {
      this.pending = Promise.resolve()
        .then(this.source)
        .then((t) => (this.token = t ?? undefined))
        .finally(() => (this.pending = null));
    }
    return this.pending;
  }

  /** Milliseconds until the token should be refreshed (`undefined`: no expiry known). */
  refreshIn(): number | undefined {
    const exp = this.token && tokenExpiry(this.token);
    if (!exp) return undefined;
    const life = exp - this.platform.now();
    return Math.max(0, life - Math.min(MARGIN_MS, life / 3));
  }

  /** The token is refused or expired: the next `current()` asks for a new one. */
  invalidate(): void {
    this.token = undefined;
  }

  private dueIn(ms: number): boolean {
    const left = this.refreshIn();
    return left !== undefined && left <= ms;
  }
}
