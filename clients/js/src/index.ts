/**
 * Switchboard's browser client: `new Client(url, options)`, `subscribe`, `publish`,
 * `presence`, `history`, state events. No runtime dependencies.
 */
export { Client, TRANSPORTS, type ClientOptions } from './client';
export { ORDER } from './negotiate';
export type { Platform, WebSocketLike, EventSourceLike, StorageLike } from './platform';
export type { TokenSource } from './token';
export type { Transport, TransportFactory, Host, Closing, Wanted } from './transport';
export type * from './types';
