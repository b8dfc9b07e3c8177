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
	onmessage: ((ev: {
		data: unknown;
	}) => void) | null;
	onclose: ((ev: {
		code: number;
		reason: string;
	}) => void) | null;
	onerror: ((ev: unknown) => void) | null;
	send(data: string): void;
	close(code?: number, reason?: string): void;
}
export interface EventSourceLike {
	readonly readyState: number;
	onopen: ((ev: unknown) => void) | null;
	onerror: ((ev: unknown) => void) | null;
	addEventListener(type: string, listener: (ev: {
		data: string;
		lastEventId: string;
	}) => void): void;
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
/** What `getToken` may return: a client token (a JWT), or nothing to connect without one. */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;
/** The public types of the client. */
/** The transports, best first. */
export type TransportName = "websocket" | "sse" | "stream" | "longpoll" | "poll";
/** Where the client stands. */
export type State = "idle" | "connecting" | "connected" | "disconnected" | "closed";
/** An envelope as the server sends it (see the server's `switchboard_proto::envelope`). */
export interface Envelope {
	channel: string;
	event: "message" | "join" | "leave" | "reset";
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
	history?: number | "all";
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
/** One channel as a transport subscribes it: its name and where it starts. */
export interface Wanted {
	channel: string;
	/** A cursor, `oldest` or `last:N`; none: from now. */
	since?: string;
}
/** Why a transport ended. The client decides what comes next from it. */
export interface Closing {
	reason: string;
	/** It had been delivering. */
	opened?: boolean;
	/** It opened but its first event never came in time: a proxy holds streams back. */
	buffered?: boolean;
	/** The server's hint: try again after this many milliseconds. */
	retryMs?: number;
	/** The server said it was restarting (everything before was delivered). */
	restart?: boolean;
	/** The client token expired or was refused: get a new one and come back at once. */
	token?: boolean;
	/** Do not come back (disconnected by the server, or refused for good). */
	final?: boolean;
}
/** What a transport is given: the platform, the channels, and where its events go. */
export interface Host {
	readonly platform: Platform;
	/** `http(s)://host[:port][/prefix]`, no trailing slash. */
	readonly base: string;
	readonly user?: string;
	/** Ask for the compact format: over WebSocket, and on polls of one channel. */
	readonly compact?: boolean;
	readonly openTimeoutMs: number;
	readonly heartbeatTimeoutMs: number;
	readonly pingIntervalMs: number;
	readonly longPollTimeoutMs: number;
	readonly pollIntervalMs: number;
	channels(): Wanted[];
	token(): Promise<string | undefined>;
	/** Delivering (the first event arrived). May come again after an interruption. */
	opened(): void;
	/** Lost for now, coming back by itself (an `EventSource` reconnecting). */
	interrupted(why: Closing): void;
	envelope(env: Envelope): void;
	/** Where a channel starts, if it had no cursor yet. */
	started(channel: string, cursor: string): void;
	/** A channel's subscription was refused. */
	refused(channel: string, error: Error): void;
	/** The server asks for a new token (WebSocket). */
	refreshToken(): void;
	closed(why: Closing): void;
}
/** One transport; the client makes it with its factory, opens it, tells it of changes. */
export interface Transport {
	readonly name: TransportName;
	open(): void;
	close(): void;
	/** The channel set changed. */
	update(): void;
	/** A command of the `/ws` protocol over the connection (WebSocket only). */
	command?(cmd: Record<string, unknown>): Promise<any>;
	/** A new token for the open connection (WebSocket only). */
	refresh?(token: string): void;
}
export type TransportFactory = (host: Host) => Transport;
/** Every transport's factory, by name. */
export declare const TRANSPORTS: Record<TransportName, TransportFactory>;
export interface ClientOptions {
	/** Use only this transport. */
	transport?: TransportName;
	/** The order to try (default: websocket, sse, stream, longpoll, poll). */
	transports?: TransportName[];
	/** Never use these. */
	exclude?: TransportName[];
	/** The client token (a JWT), asked again before it expires and when the server asks. */
	getToken?: TokenSource;
	/** A user id for presence, on servers without client tokens (`?user=`). */
	user?: string;
	/**
	 * Ask for the compact format (false). Over WebSocket (subprotocol
	 * `switchboard.compact`), a message that follows the previous one arrives as its
	 * payload alone, 2 bytes of framing instead of a ~95-byte envelope. Long-polling and
	 * polling of one channel ask for the compact body (`format=compact`), about 110 bytes
	 * less per message. Cursors and resume stay exact; a server without the format sends
	 * envelopes, which are read as usual.
	 */
	compact?: boolean;
	/** Reconnect delays: full jitter, doubling from `minMs` up to `maxMs`. */
	backoff?: {
		minMs?: number;
		maxMs?: number;
	};
	/** A transport that does not deliver its first event within this is skipped (5000). */
	openTimeoutMs?: number;
	/** A connection that shows no sign of life this long is dead (40000; server beats every 15 s). */
	heartbeatTimeoutMs?: number;
	/** WebSocket: ping when nothing arrived for this long (20000). */
	pingIntervalMs?: number;
	/** Long-poll: give a held request up after this long (45000; the server holds 30 s). */
	longPollTimeoutMs?: number;
	/** Polling: time between polls (2000). */
	pollIntervalMs?: number;
	/** Try a better transport again this long after falling back (60000; doubles on failure). */
	reprobeMs?: number;
	/** Remember the winning transport for this origin in `sessionStorage` (true). */
	remember?: boolean;
	/** Platform APIs (tests pass fakes). */
	platform?: Partial<Platform>;
}
export type StateName = "state" | "connecting" | "connected" | "disconnected" | "closed";
/**
 * A connection to a Switchboard server over the best transport the network allows:
 * WebSocket, else Server-Sent Events, HTTP streaming, long-polling, polling. It falls
 * back when one does not work, reconnects with backoff, resumes every channel from its
 * cursor, and reports a `reset` only when the server lost messages.
 *
 * ```js
 * const client = new Client('https://rt.example.com');
 * const sub = client.subscribe('chat:lobby', { history: 20, onMessage: (m) => show(m.data) });
 * await client.publish('chat:lobby', { text: 'hi' });
 * ```
 */
export declare class Client {
	/** `http(s)://host[:port][/prefix]`. */
	readonly url: string;
	private readonly p;
	private readonly o;
	private readonly channels;
	private readonly listeners;
	private readonly neg;
	private readonly backoff;
	private readonly tokens;
	private readonly retry;
	private readonly reprobe;
	private readonly refresh;
	private t;
	private probe;
	private reprobeMs;
	private st;
	private wanted;
	private updating;
	constructor(url?: string, options?: ClientOptions);
	/** Where the client stands. */
	get state(): State;
	/** The transport in use (or being tried). */
	get transport(): TransportName | null;
	/**
	 * Calls `fn` on `connecting`, `connected` (with the transport), `disconnected` (with the
	 * reason) and `closed`, or on every change with `'state'`. Returns the way to stop.
	 */
	on(event: StateName, fn: (e: StateEvent) => void): () => void;
	/** Subscribes to `channel`; connects if not yet connected. */
	subscribe(channel: string, options?: SubscribeOptions): Subscription;
	/**
	 * Publishes `data` to `channel`: a JSON value, a string (text) or bytes
	 * (`Uint8Array` / `ArrayBuffer`). Resolves with the message's cursor.
	 */
	publish(channel: string, data: unknown): Promise<string>;
	/** Who is subscribed to `channel`. */
	presence(channel: string): Promise<Presence>;
	/** The messages of `channel` after `since` (or the latest), at most `limit`. */
	history(channel: string, options?: {
		since?: string;
		limit?: number;
	}): Promise<HistoryResult>;
	/** Connects (subscribing does it too). */
	connect(): void;
	/** Closes the connection and stops reconnecting; the subscriptions stay for `connect()`. */
	close(): void;
	/** Ends the transport cleanly (the server frees the connection at once). */
	private suspend;
	/** A command of the `/ws` protocol: over the WebSocket when there is one, else `POST /ws`. */
	private command;
	private http;
	private emit;
	/** The channel set changed: tell the transport once, after the current task. */
	private changed;
	private start;
	/** A probe: a better transport opened beside the current one, taking over if it delivers. */
	private tryBetter;
	private scheduleReprobe;
	/** Asks for a new token before the current one expires, and hands it to the connection. */
	private scheduleRefresh;
	private renewToken;
	/** The host a transport reports to; events of a transport no longer in use are ignored. */
	private host;
	private closed;
}
/** The fallback order, best first: data, not code. */
export declare const ORDER: TransportName[];

export {};
