/**
 * Reconnect delays: exponential, with full jitter inside `[min, cap]`, where the cap
 * doubles per failed attempt from `min` up to `max`. Many clients dropped at once (a
 * server restart) thus spread their returns over the whole window instead of arriving
 * together.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly min: number,
    private readonly max: number,
    private readonly random: () => number,
  ) {}

  /** The next delay in milliseconds. */
  next(): number {
    const cap = Math.min(this.max, this.min * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(this.min + this.random() * (cap - this.min));
  }

  /**
   * A server's hint (`retry after N ms`), with a little jitter, but never sooner than the
   * schedule: a hint only says when the server could take one more client, and thousands
   * refused at once that all came back on a 1 ms hint would be refused again together.
   */
  hinted(ms: number): number {
    const scheduled = this.next();
    return Math.max(scheduled, Math.round(ms + this.random() * Math.min(ms, this.min)));
  }

  reset(): void {
    this.attempt = 0;
  }
}
