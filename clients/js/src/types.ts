/** The public types of the client. */

/** The transports, best first. */
export type TransportName = 'websocket' | 'sse' | 'stream' | 'longpoll' | 'poll';

/** Where the client stands. */
export type State = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

/** An envelope as the server sends it (see the server's `switchboard_proto::envelope`). */
export interface Envelope {
  channel: string;
  event: 'message' | 'join' | 'leave' | 'reset';
  offset?: number;
  cursor?: string;
  data?: unknown;
  data_b64?: string;
  /** A binary payload already decoded (the compact WebSocket format's binary frames). */
  bytes?: Uint8Array;
}

/** A message of a channel. */
export interface Message {
  channel: string;
  /** The published JSON value or text (`undefined` for binary). */
  data: unknown;
  /** The bytes of a binary message. */
  binary?: Uint8Array;
  /** Its position; resuming from it continues after it. */
  cursor: string;
  offset: number;
}

/** The server could not fill a gap: messages before `cursor` were lost. */
export interface ResetInfo {
  channel: string;
  cursor: string;
  /** How many were lost, when the server knows. */
  lost?: number;
}

/** One subscriber, as presence lists it. */
export interface PresenceEntry {
  client: string;
  user?: string;
  info?: unknown;
}

export interface SubscribeOptions {
  /** Resume after this cursor. */
  since?: string;
  /** Join with the last N messages the channel holds, or `'all'` of them. */
  history?: number | 'all';
  onMessage?: (message: Message) => void;
  /** Only when the server says a gap could not be filled. */
  onReset?: (reset: ResetInfo) => void;
  onJoin?: (who: PresenceEntry) => void;
  onLeave?: (who: PresenceEntry) => void;
  /** The server refused the subscription (over WebSocket, per channel). */
  onError?: (error: Error) => void;
}

export interface Subscription {
  readonly channel: string;
  /** The last position delivered (where a resume starts). */
  readonly cursor: string | null;
  unsubscribe(): void;
}

export interface HistoryResult {
  messages: Message[];
  cursor: string;
  reset: boolean;
  more?: boolean;
}

export interface Presence {
  clients: PresenceEntry[];
  count: number;
}

/** What `on('state', …)` and the named state events receive. */
export interface StateEvent {
  state: State;
  /** The transport connecting or in use. */
  transport?: TransportName;
  /** Why it was lost (`disconnected`, `closed`). */
  reason?: string;
}
