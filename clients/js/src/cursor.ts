/** Cursors (`epoch:offset`, hex epoch, decimal offset) as the client compares them. */

export interface Position {
  epoch: string;
  offset: number;
}

export function parseCursor(cursor: string | null | undefined): Position | null {
  if (!cursor) return null;
  const i = cursor.indexOf(':');
  if (i < 1) return null;
  const offset = Number(cursor.slice(i + 1));
  return Number.isFinite(offset) ? { epoch: cursor.slice(0, i).toLowerCase(), offset } : null;
}

/** `/sub`'s SSE ids list every channel's cursor in request order, `,`-separated. */
export function splitIds(id: string, count: number): string[] | null {
  const parts = id ? id.split(',') : [];
  return parts.length === count && parts.every((p) => parseCursor(p)) ? parts : null;
}

/** Whether `since` is a cursor (not `oldest`, `last:N` or nothing). */
export const isCursor = (since: string | undefined): boolean => !!since && /^[0-9a-f]{1,16}:\d+$/i.test(since);
