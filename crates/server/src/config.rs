//! Server configuration: defaults, then a TOML file, then environment variables, then
//! command-line flags (each later source wins over the earlier ones). Users read every
//! key in `docs/guide/configuration.md`; `tests/guide.rs` fails when a key here has no
//! row there.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! api_key = "secret"            # or SWITCHBOARD_API_KEY; no key = backend API refuses (403)
//! demo = true                   # serve /, /demo/chat, /demo/ticker and the ticker publisher
//! tls_cert = "/etc/switchboard/cert.pem"  # https:// and wss:// only (feature `tls`): the
//! tls_key = "/etc/switchboard/key.pem"    # chain and its key, PEM; re-read on SIGHUP
//!
//! [limits]
//! max_publish_bytes = 65536     # larger publish bodies / frames are refused (413 / close 1009)
//! longpoll_timeout_ms = 30000   # how long a long-poll is held without news
//! sse_heartbeat_ms = 15000      # SSE comment / stream heartbeat interval
//! sse_retry_ms = 2000           # `retry:` hint sent to EventSource
//! ws_ping_ms = 30000            # WebSocket ping interval; silent for twice this: closed
//! shutdown_drain_ms = 5000      # how long shutdown waits for connections to leave
//! max_channels_per_request = 32 # `/sub?channel=..` and `/ws` subscriptions per connection
//! body_read_timeout_ms = 30000  # a request body (publish, API) must arrive within this (408)
//! max_header_bytes = 16384      # longest request head (431 beyond; 8 KiB to 1 MiB)
//! header_read_timeout_ms = 30000 # a request head must arrive within this (slow-loris guard)
//! tls_handshake_timeout_ms = 10000 # a TLS handshake must end within this (with TLS on)
//! max_connections = 0           # connections open at once (503 beyond); 0: open-file limit - 64
//! max_connections_per_ip = 1000 # from one address, IPv6 per /64 (429 beyond); 0: no limit
//! max_connections_per_user = 100  # of one authenticated user (token sub, backend's user); 0: off
//! max_new_connections_per_second = 0  # reconnect storms: 503 / close 1013 with a retry hint; 0: off
//! listen_backlog = 0            # connections the kernel queues before accept; 0: its maximum
//! write_timeout_ms = 30000      # a subscriber whose socket takes nothing this long is closed
//! max_publishes_per_second = 1000  # per WebSocket connection; POST: per token user, else address
//! idempotency_window_ms = 300000 # a publish's Idempotency-Key is remembered this long
//! idempotency_max_bytes = 33554432 # what the remembered keys may take (in memory; at most
//!                               # 256 B a key, the oldest go first); Redis: its own memory
//! max_retained_bytes = 268435456 # everything the in-memory broker keeps (history, cached
//!                               # encodings, the keys above), in bytes: over it the oldest
//!                               # messages of all channels go first (a resume from one gets
//!                               # `reset`); a publish is never refused for it; Redis: its
//!                               # own maxmemory
//! max_channels = 100000         # live channels (logs; channels with subscribers on this
//!                               # node), ~250 B each before history (~25 MB at the limit):
//!                               # a publish or subscribe making one more is 503 channel_limit
//!
//! [namespaces.default]          # channels without a `ns:` prefix
//! enabled = true                # false removes the namespace (its channels answer 404)
//! subscribe = true              # clients may subscribe
//! client_publish = true         # clients may publish (the backend API always may)
//! presence = true               # track who is subscribed (API, `/ws` presence)
//! join_leave = false            # push join/leave events to subscribers
//! history_size = 1000           # messages kept per channel for resumes and polls
//! history_bytes = 16777216      # and at most this many bytes of them (each message counts
//!                               # its payload + 176 B); the oldest go first
//! history_ttl_secs = 300        # and for at most this long (0 = no age limit)
//! queue_capacity = 1024         # messages queued per subscriber before it counts as slow
//! slow_consumer = "close"       # or "drop_oldest"; see switchboard_hub::subscription
//! batch_window_ms = 0           # wake subscribers at most once per window (0 = every message)
//! anonymous = true              # clients without a token may use it (needs [auth] to be false)
//! private = false               # reading (subscribe, presence, history) needs a grant or,
//!                               # to subscribe, a subscription token (needs [auth])
//!
//! [namespaces.ticker]           # channels named `ticker:...`
//! client_publish = false
//!
//! [namespaces.chat]             # channels named `chat:...` (the chat demo's rooms)
//! join_leave = true
//!
//! [security]
//! allowed_origins = []          # pages from other origins that may connect, e.g.
//!                               # ["https://app.example.com", "https://*.example.com"];
//!                               # empty: same-origin pages (and non-browser clients) only
//! allowed_hosts = []            # Host names served; empty: any, but only loopback names
//!                               # when listening on a loopback address (DNS rebinding)
//!
//! [auth]                        # client tokens (JWT); no [auth]: no tokens at all
//! token_secret = "…"            # HS256, at least 32 bytes; or SWITCHBOARD_TOKEN_SECRET
//! token_public_key = "key.pem"  # RS256 or ES256 (P-256), by the key's type
//! token_jwks = "jwks.json"      # a JWKS file: RS256 / ES256 keys, chosen by `kid`
//! token_issuer = "https://auth.example.com"   # optional: `iss` must be this
//! token_audience = "switchboard"              # optional: `aud` must hold this
//! refresh_grace_ms = 10000      # a `/ws` session may stay this long past `exp` while it
//!                               # is asked to refresh (other live connections end at `exp`)
//!
//! [log]
//! format = "text"               # or "json" (one object a line); or SWITCHBOARD_LOG_FORMAT,
//!                               # --log-format. Levels: RUST_LOG (default "info")
//!
//! [backend]                     # the application decides (see crate::backend); no URL: off
//! connect_url = "http://127.0.0.1:9000/switchboard/connect"     # every client request to
//!                               # /ch/NAME, /sub, /ws, with its cookies: allow, deny, who
//! subscribe_url = "http://127.0.0.1:9000/switchboard/subscribe" # every /ws subscribe
//! timeout_ms = 2000             # an answer slower than this is a failure
//! on_error = "deny"             # a failure answers 503 (or "allow": go on without it)
//! ```
//!
//! Tokens, their claims and what they grant: [`crate::auth`]. At least one of
//! `token_secret`, `token_public_key`, `token_jwks` is needed; a key file that cannot be
//! read or parsed stops the server with an error naming it.
//!
//! `listen` takes `HOST:PORT` with a name or an address (`localhost:8080`); a name is
//! resolved once at start, preferring its first IPv4 address.
//!
//! The built-in namespaces (`default`, `chat`, `ticker`, as above) stay when a file names
//! others: a file's `[namespaces.NAME]` table sets only the keys it names over the
//! built-in's settings (or over the defaults, for a new namespace), and `enabled = false`
//! removes one.
//!
//! A channel `NS:rest` belongs to namespace `NS`; a channel without `:` belongs to
//! `default`. A channel in a namespace that is not configured is refused with 404
//! (the name exists nowhere on this server), see [`crate::error`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Name of the namespace for channels without a `ns:` prefix.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Environment variable holding the backend API key.
pub const ENV_API_KEY: &str = "SWITCHBOARD_API_KEY";

/// Environment variable holding the HS256 secret of client tokens (`auth.token_secret`).
pub const ENV_TOKEN_SECRET: &str = "SWITCHBOARD_TOKEN_SECRET";

/// Everything `switchboard serve` needs to run. `Debug` hides the API key and the
/// Redis URL's password (a client token's secret is hidden by [`Auth`]'s own).
#[derive(Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Redis URL: nodes on the same Redis share channels (needs the `redis` feature);
    /// `redis://[user:password@]host:port/db`, or a Redis Cluster's seed nodes
    /// `redis+cluster://[user:password@]host:port,host:port/`.
    pub redis: Option<String>,
    /// Backend API key; `None` makes every `/api/...` request answer 403.
    pub api_key: Option<String>,
    /// Serve the demo pages and run the ticker publisher.
    pub demo: bool,
    /// Size and time limits.
    pub limits: Limits,
    /// Per-namespace policy, keyed by namespace name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Which pages and host names may use the server.
    pub security: Security,
    /// Client tokens; `None`: no tokens (every namespace open as its settings say).
    pub auth: Option<Auth>,
    /// The application's backend, asked whether client requests may go on.
    pub backend: BackendConfig,
    /// How the server logs.
    pub log: LogConfig,
    /// The TLS certificate chain (PEM, leaf first): with [`Config::tls_key`], the server
    /// speaks `https://` and `wss://` only (feature `tls`; see `crate::tls`).
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so that a new one is a choice between shown and hidden.
        let Self {
            listen,
            redis,
            api_key,
            demo,
            limits,
            namespaces,
            security,
            auth,
            backend,
            log,
            tls_cert,
            tls_key,
        } = self;
        f.debug_struct("Config")
            .field("listen", listen)
            .field("redis", &redis.as_deref().map(without_password))
            .field("api_key", &api_key.as_ref().map(|_| "<hidden>"))
            .field("demo", demo)
            .field("limits", limits)
            .field("namespaces", namespaces)
            .field("security", security)
            .field("auth", auth)
            .field("backend", backend)
            .field("log", log)
            .field("tls_cert", tls_cert)
            .field("tls_key", tls_key)
            .finish()
    }
}

/// A URL without what may hold a password (`scheme://user:password@host` becomes
/// `scheme://<hidden>@host`).
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<hidden>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// How the server logs (to stderr); which lines, `RUST_LOG` says (default `info`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (for people; coloured only on a terminal) or `json` (one object a line).
    pub format: LogFormat,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One line of text per event; ANSI colours only when stderr is a terminal (and
    /// `NO_COLOR` is unset).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`, and `span`
    /// (the connection's `conn`, `peer`, `transport`, … on lines about a connection).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?}; use text or json")),
        }
    }
}

/// Where the application's backend is asked (see [`crate::backend`]); no URL: not asked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Asked for every client request to `/ch/NAME`, `/sub` and `/ws` (`http://` only).
    pub connect_url: Option<String>,
    /// Asked for every `/ws` subscribe command.
    pub subscribe_url: Option<String>,
    /// How long an answer may take, in milliseconds.
    pub timeout_ms: u64,
    /// What a failed ask means: `deny` (503 `backend_unavailable`) or `allow`.
    pub on_error: OnError,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            connect_url: None,
            subscribe_url: None,
            timeout_ms: 2_000,
            on_error: OnError::Deny,
        }
    }
}

/// What a backend that does not decide (timeout, error, bad answer) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The client is answered 503 (fail closed).
    Deny,
    /// The request goes on as if no backend were configured (fail open).
    Allow,
}

pub use switchboard_auth::Auth;

/// Which pages (`Origin`) and host names (`Host`) may use the server; see
/// [`crate::front::origin`] for the rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Security {
    /// Origins allowed besides the server's own: `https://app.example.com`,
    /// `https://*.example.com`, `null`, or `*` for any. Empty: same-origin only.
    pub allowed_origins: Vec<String>,
    /// Host names accepted in `Host` (`name` or `*.example.com`). Empty: any, except on a
    /// loopback listener, which answers loopback names only (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

/// Size and time limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest publish payload in bytes (HTTP body or WebSocket message).
    pub max_publish_bytes: usize,
    /// How long a long-poll request is held when nothing is new, in milliseconds (served
    /// by the shared half-second timer wheel, so up to half a second more).
    pub longpoll_timeout_ms: u64,
    /// Heartbeat interval for SSE and HTTP streaming, in milliseconds.
    pub sse_heartbeat_ms: u64,
    /// `retry:` hint sent to EventSource clients, in milliseconds.
    pub sse_retry_ms: u64,
    /// How often the server pings a WebSocket, in milliseconds (up to half a second later:
    /// the timer wheel's resolution); a connection that sends nothing, pongs included,
    /// for twice this is closed (1001).
    pub ws_ping_ms: u64,
    /// Deadline for connections to leave on shutdown, in milliseconds.
    pub shutdown_drain_ms: u64,
    /// Most channels one request or one `/ws` connection may subscribe to.
    pub max_channels_per_request: usize,
    /// Longest a request body (a publish, an API call) may take to arrive, in
    /// milliseconds; slower ones are answered 408 and their connection closed.
    pub body_read_timeout_ms: u64,
    /// Longest request head (request line and headers), in bytes (8 KiB to 1 MiB); a
    /// longer one is answered 431. Each connection reading a head holds up to this much.
    pub max_header_bytes: usize,
    /// Longest a request head may take to arrive, in milliseconds (slow-loris guard).
    pub header_read_timeout_ms: u64,
    /// Longest a TLS handshake may take, in milliseconds (with TLS on); its connection is
    /// counted in the connection limits meanwhile.
    pub tls_handshake_timeout_ms: u64,
    /// Most connections open at once (503 beyond); 0: the open-file limit minus 64.
    pub max_connections: usize,
    /// Most connections open at once from one address (IPv6: one /64); 429 beyond;
    /// 0: no limit. Behind a reverse proxy every client shares the proxy's address.
    pub max_connections_per_ip: usize,
    /// Most connections one authenticated user (a client token's `sub`, or the user the
    /// application's backend named) holds at once (429 beyond); 0: no limit.
    pub max_connections_per_user: u32,
    /// Most new connections per second (reconnect storms: 503 with `Retry-After`, or a
    /// WebSocket close 1013 saying when to retry); 0: no limit.
    pub max_new_connections_per_second: u32,
    /// The listening socket's backlog: connections the kernel completes and queues before
    /// the server accepts them. 0 (the default): the kernel's maximum
    /// (`/proc/sys/net/core/somaxconn`, 4096 when unreadable). In a reconnect storm a full
    /// queue drops SYNs, and those clients wait about a second for their resend: no
    /// answer the server chooses (a 503, a retry hint) reaches them.
    pub listen_backlog: u32,
    /// Most client publishes per second, per WebSocket connection, and for
    /// `POST /ch/NAME` per user when a client token names one, else per address (429 /
    /// close 1008 beyond); 0: no limit.
    pub max_publishes_per_second: u32,
    /// How long a publish's idempotency key (`Idempotency-Key`, `idempotency_key`) is
    /// remembered, in milliseconds: the same key on the same channel within it stores
    /// nothing and answers the first publish's cursor.
    pub idempotency_window_ms: u64,
    /// Bytes the remembered idempotency keys may take on the in-memory broker (each at
    /// most [`switchboard_hub::window::KEY_COST`] = 256 B, whatever its length); the oldest
    /// go first when it is reached, and a retry whose key went is stored again. On Redis
    /// the keys live in Redis, each expiring with its window.
    pub idempotency_max_bytes: usize,
    /// Bytes everything the in-memory broker retains may take: each stored message's
    /// payload and its constant (`switchboard_hub::STORED_MESSAGE_COST`, 176 B), the
    /// encodings cached with it once sent, and the idempotency window. Over it, the oldest
    /// messages of all channels go first (a resume from one of them gets `reset` and what
    /// is held); a publish is never refused for it. A message costs its payload + 176 B
    /// stored, and each encoding made when it is first sent about its envelope's size
    /// again (`switchboard_hub::message` itemises them): 256 MiB, the default, hold about
    /// 1.1 M 64-byte messages never sent, or 250,000 sent on a WebSocket. On Redis,
    /// history lives in Redis: bound it with Redis's `maxmemory`.
    pub max_retained_bytes: usize,
    /// Most live channels: logs of the in-memory broker, and channels with subscribers on
    /// this node. A publish or subscribe that would make one more is answered 503
    /// `channel_limit` (a read of a channel nothing was published to makes none). Each
    /// costs about 250 B before its history (its log, name and map entry), and as much
    /// again while it has subscribers here: about 25–50 MB at the default 100,000.
    pub max_channels: usize,
    /// A subscriber whose socket takes nothing for this long, in milliseconds, is closed
    /// (it resumes from its cursor): WebSocket, SSE and stream writes, and an answer a
    /// long-poll or poll client does not read. Until then it holds at most the kernel's
    /// send buffer and one batch (SSE, stream: 64 KiB; WebSocket: 256 KiB queued).
    pub write_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_publish_bytes: 64 * 1024,
            longpoll_timeout_ms: 30_000,
            sse_heartbeat_ms: 15_000,
            sse_retry_ms: 2_000,
            ws_ping_ms: 30_000,
            shutdown_drain_ms: 5_000,
            max_channels_per_request: 32,
            body_read_timeout_ms: 30_000,
            max_header_bytes: 16 * 1024,
            header_read_timeout_ms: 30_000,
            tls_handshake_timeout_ms: 10_000,
            max_connections: 0,
            max_connections_per_ip: 1000,
            max_new_connections_per_second: 0,
            max_connections_per_user: 100,
            listen_backlog: 0,
            write_timeout_ms: 30_000,
            max_publishes_per_second: 1000,
            idempotency_window_ms: 300_000,
            idempotency_max_bytes: 32 << 20,
            max_retained_bytes: 256 << 20,
            max_channels: 100_000,
        }
    }
}

impl Limits {
    /// Long-poll hold time.
    pub fn longpoll_timeout(&self) -> Duration {
        Duration::from_millis(self.longpoll_timeout_ms)
    }
    /// The WebSocket ping interval (at least 1 ms).
    pub fn ws_ping(&self) -> Duration {
        Duration::from_millis(self.ws_ping_ms.max(1))
    }

    /// SSE / stream heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.sse_heartbeat_ms.max(1))
    }
    /// Shutdown drain deadline.
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_ms)
    }
    /// Request body read timeout.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.max(1))
    }
    /// Write timeout of every transport.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }
    /// Request head read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
    /// TLS handshake timeout.
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_handshake_timeout_ms.max(1))
    }
    /// The backlog to listen with: `listen_backlog`, or the kernel's maximum for 0.
    pub fn listen_backlog(&self) -> u32 {
        match self.listen_backlog {
            0 => kernel_max_backlog(),
            n => n,
        }
    }
}

/// The largest backlog the kernel grants (`net.core.somaxconn`; larger requests are cut
/// to it), or 4096 (Linux's default since 5.4) where it cannot be read.
pub fn kernel_max_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// What clients may do with the channels of one namespace, and its retention.
/// `Serialize`: a file's table is merged over a built-in namespace key by key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Namespace {
    /// False removes the namespace when a file is loaded (a built-in one too): its
    /// channels are answered 404, as those of a namespace never configured.
    pub enabled: bool,
    /// Anyone may subscribe (no token needed).
    pub subscribe: bool,
    /// Clients (not only the backend API) may publish.
    pub client_publish: bool,
    /// Track who is subscribed.
    pub presence: bool,
    /// Push `join` / `leave` events to subscribers (needs `presence`).
    pub join_leave: bool,
    /// Messages kept per channel.
    pub history_size: usize,
    /// Bytes of history kept per channel, each message counting its payload and 176 B
    /// (`switchboard_hub::STORED_MESSAGE_COST`); the oldest go first. On Redis the publish
    /// script keeps the same count.
    pub history_bytes: usize,
    /// Seconds a message stays in history (0 = no age limit).
    pub history_ttl_secs: u64,
    /// Messages queued per subscriber before the slow-consumer policy applies.
    pub queue_capacity: usize,
    /// `close` (the client resumes from its cursor) or `drop_oldest` (refilled from history).
    pub slow_consumer: SlowConsumer,
    /// Milliseconds: subscribers of a channel are woken at most once per window, so that
    /// messages published meanwhile leave in one write (far less CPU under heavy fan-out,
    /// up to this much added latency; the first message after a quiet window goes at
    /// once). 0 = every message at once.
    pub batch_window_ms: u64,
    /// Clients without a token may use the namespace as its other settings allow; when
    /// false, every operation needs a grant in a token (see [`crate::auth`]).
    pub anonymous: bool,
    /// Reading its channels (subscribe, presence, history) needs a grant in the
    /// connection's token or, to subscribe, a subscription token for the channel.
    pub private: bool,
}

/// What happens to a subscriber that cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumer {
    /// Close its subscription; it resumes from its cursor.
    Close,
    /// Drop its oldest queued messages and refill them from history.
    DropOldest,
}

impl Default for Namespace {
    fn default() -> Self {
        Self {
            enabled: true,
            subscribe: true,
            client_publish: true,
            presence: true,
            join_leave: false,
            history_size: 1000,
            history_bytes: 16 << 20,
            history_ttl_secs: 300,
            queue_capacity: 1024,
            slow_consumer: SlowConsumer::Close,
            batch_window_ms: 0,
            anonymous: true,
            private: false,
        }
    }
}

impl Namespace {
    /// The hub's settings for this namespace; `max_publish_bytes` bounds message size.
    pub fn to_hub(&self, max_publish_bytes: usize) -> switchboard_hub::NamespaceConfig {
        switchboard_hub::NamespaceConfig {
            history_size: self.history_size,
            history_bytes: self.history_bytes,
            history_ttl: (self.history_ttl_secs > 0)
                .then(|| Duration::from_secs(self.history_ttl_secs)),
            allow_publish: self.client_publish,
            allow_subscribe: self.subscribe,
            presence: self.presence,
            join_leave: self.join_leave && self.presence,
            max_message_size: max_publish_bytes,
            slow_consumer: match self.slow_consumer {
                SlowConsumer::Close => switchboard_hub::SlowConsumerPolicy::Close,
                SlowConsumer::DropOldest => switchboard_hub::SlowConsumerPolicy::DropOldest,
            },
            queue_capacity: self.queue_capacity.max(1),
            batch_window: (self.batch_window_ms > 0)
                .then(|| Duration::from_millis(self.batch_window_ms)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut namespaces = BTreeMap::new();
        namespaces.insert(DEFAULT_NAMESPACE.to_owned(), Namespace::default());
        // The chat demo's rooms tell who comes and goes.
        namespaces.insert(
            "chat".to_owned(),
            Namespace {
                join_leave: true,
                ..Namespace::default()
            },
        );
        // The demo ticker's channels are written by the server only.
        namespaces.insert(
            "ticker".to_owned(),
            Namespace {
                client_publish: false,
                ..Namespace::default()
            },
        );
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            redis: None,
            api_key: None,
            demo: true,
            limits: Limits::default(),
            namespaces,
            security: Security::default(),
            auth: None,
            backend: BackendConfig::default(),
            log: LogConfig::default(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The TOML file's shape; every field optional so a file only says what differs.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    /// `HOST:PORT`, resolved by [`resolve_listen`].
    listen: Option<String>,
    redis: Option<String>,
    api_key: Option<String>,
    demo: Option<bool>,
    limits: Option<Limits>,
    /// Each merged over the built-in namespace of its name ([`merge_namespaces`]).
    namespaces: Option<BTreeMap<String, toml::Table>>,
    security: Option<Security>,
    auth: Option<Auth>,
    backend: Option<BackendConfig>,
    log: Option<LogConfig>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read { path: String, error: std::io::Error },
    /// The file is not valid TOML for this schema.
    Parse { path: String, error: String },
    /// A value is out of range or inconsistent.
    Invalid(String),
    /// A TLS file (`what`: certificate or key) cannot be used (see `crate::tls`).
    Tls {
        what: &'static str,
        path: String,
        problem: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "cannot read config file {path}: {error}"),
            Self::Parse { path, error } => write!(f, "invalid config file {path}: {error}"),
            Self::Invalid(msg) => write!(f, "invalid configuration: {msg}"),
            Self::Tls {
                what,
                path,
                problem,
            } => write!(f, "TLS {what} {path}: {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<switchboard_auth::KeyError> for ConfigError {
    fn from(e: switchboard_auth::KeyError) -> Self {
        match e {
            switchboard_auth::KeyError::Read { path, error } => Self::Read { path, error },
            switchboard_auth::KeyError::Invalid(msg) => Self::Invalid(msg),
        }
    }
}

/// Values given on the command line or in the environment (clap merges those two,
/// the flag winning); `None` means "not given". `Debug` hides the secrets.
#[derive(Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub redis: Option<String>,
    pub api_key: Option<String>,
    /// `auth.token_secret` ([`ENV_TOKEN_SECRET`]); turns tokens on by itself.
    pub token_secret: Option<String>,
    /// `log.format`.
    pub log_format: Option<LogFormat>,
    /// `tls_cert` (`SWITCHBOARD_TLS_CERT`, `--tls-cert`).
    pub tls_cert: Option<PathBuf>,
    /// `tls_key` (`SWITCHBOARD_TLS_KEY`, `--tls-key`).
    pub tls_key: Option<PathBuf>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("Overrides")
            .field("listen", &self.listen)
            .field("redis", &self.redis)
            .field("api_key", &hidden(&self.api_key))
            .field("token_secret", &hidden(&self.token_secret))
            .field("log_format", &self.log_format)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl Config {
    /// Parses a TOML document over the defaults. Each `[namespaces.NAME]` table is merged
    /// over the namespace of that name ([`merge_namespaces`]): the built-in ones stay.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            error: e.to_string(),
        })?;
        let mut cfg = Self::default();
        if let Some(v) = file.listen {
            cfg.listen =
                resolve_listen(&v).map_err(|e| ConfigError::Invalid(format!("listen: {e}")))?;
        }
        cfg.redis = file.redis.or(cfg.redis);
        cfg.api_key = file.api_key.or(cfg.api_key);
        if let Some(v) = file.demo {
            cfg.demo = v;
        }
        if let Some(v) = file.limits {
            cfg.limits = v;
        }
        if let Some(v) = file.namespaces {
            merge_namespaces(&mut cfg.namespaces, v, origin)?;
        }
        if let Some(v) = file.security {
            cfg.security = v;
        }
        if let Some(v) = file.backend {
            cfg.backend = v;
        }
        if let Some(v) = file.log {
            cfg.log = v;
        }
        cfg.auth = file.auth;
        cfg.tls_cert = file.tls_cert;
        cfg.tls_key = file.tls_key;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads: defaults, the file (if any), then `overrides` (flags / environment).
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: shown.clone(),
                    error,
                })?;
                Self::from_toml(&text, &shown)?
            }
            None => Self::default(),
        };
        if let Some(v) = overrides.listen {
            cfg.listen = v;
        }
        if overrides.redis.is_some() {
            cfg.redis = overrides.redis;
        }
        if overrides.api_key.is_some() {
            cfg.api_key = overrides.api_key;
        }
        if let Some(v) = overrides.log_format {
            cfg.log.format = v;
        }
        if let Some(secret) = overrides.token_secret {
            cfg.auth.get_or_insert_with(Auth::default).token_secret = Some(secret);
        }
        if overrides.tls_cert.is_some() {
            cfg.tls_cert = overrides.tls_cert;
        }
        if overrides.tls_key.is_some() {
            cfg.tls_key = overrides.tls_key;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.max_publish_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_publish_bytes must be > 0".into(),
            ));
        }
        if self.limits.max_channels == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_channels must be > 0".into(),
            ));
        }
        if self.limits.max_channels_per_request == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_channels_per_request must be > 0".into(),
            ));
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.limits.max_header_bytes) {
            return Err(ConfigError::Invalid(
                "limits.max_header_bytes must be between 8192 and 1048576".into(),
            ));
        }
        if matches!(&self.api_key, Some(k) if k.is_empty()) {
            return Err(ConfigError::Invalid("api_key must not be empty".into()));
        }
        for (name, ns) in &self.namespaces {
            if name.is_empty() || name.contains(':') {
                return Err(ConfigError::Invalid(format!(
                    "namespace name {name:?} must be non-empty and contain no ':'"
                )));
            }
            if self.auth.is_none() && (!ns.anonymous || ns.private) {
                return Err(ConfigError::Invalid(format!(
                    "namespace {name:?} needs client tokens (anonymous = false or private = \
                     true) but there is no [auth] section: nobody could use it"
                )));
            }
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "tls_cert is set but tls_key is not: TLS needs both (PEM files)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "tls_key is set but tls_cert is not: TLS needs both (PEM files)".into(),
                ))
            }
            (Some(_), Some(_)) if cfg!(not(feature = "tls")) => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key are set but this build has no TLS: build with \
                     `--features tls`"
                        .into(),
                ))
            }
            _ => {}
        }
        Ok(())
    }

    /// The hub configuration: namespaces keyed as the hub keys them (`default` → `""`).
    pub fn hub_config(&self) -> switchboard_hub::HubConfig {
        let mut namespaces = self
            .namespaces
            .iter()
            .map(|(name, ns)| {
                let key = if name == DEFAULT_NAMESPACE {
                    String::new()
                } else {
                    name.clone()
                };
                (key, ns.to_hub(self.limits.max_publish_bytes))
            })
            .collect::<std::collections::HashMap<_, _>>();
        // The server's own namespace (the status feed), whatever the file says.
        namespaces.insert(
            crate::observe::sys::NAMESPACE.to_owned(),
            crate::observe::sys::namespace(),
        );
        switchboard_hub::HubConfig {
            namespaces,
            idempotency_window: Duration::from_millis(self.limits.idempotency_window_ms),
            memory: self.memory_limits(),
            max_channels: self.limits.max_channels,
            ..switchboard_hub::HubConfig::default()
        }
    }

    /// What the in-memory broker may hold.
    pub fn memory_limits(&self) -> switchboard_hub::MemoryLimits {
        switchboard_hub::MemoryLimits {
            max_retained_bytes: self.limits.max_retained_bytes,
            idempotency_bytes: self.limits.idempotency_max_bytes,
            max_channels: self.limits.max_channels,
        }
    }

    /// The namespace a channel name belongs to (`ns:rest` → `ns`, else `default`).
    pub fn namespace_of(channel: &str) -> &str {
        match channel.split_once(':') {
            Some((ns, _)) => ns,
            None => DEFAULT_NAMESPACE,
        }
    }

    /// Whether client tokens are on (an `[auth]` section).
    pub fn tokens_on(&self) -> bool {
        self.auth.is_some()
    }

    /// Policy for a channel, `None` when its namespace is not configured.
    pub fn namespace_for(&self, channel: &str) -> Option<&Namespace> {
        self.namespaces.get(Self::namespace_of(channel))
    }
}

/// Sets each namespace of a file over the one of its name in `namespaces` (the built-in
/// ones), key by key: `[namespaces.ticker] history_size = 10` keeps the ticker closed to
/// client publishes. A new name starts from [`Namespace::default`]; `enabled = false`
/// removes the namespace. Replacing the map wholesale, as before, silently dropped
/// `default` (and with it every channel without a prefix) from any file naming one
/// namespace.
fn merge_namespaces(
    namespaces: &mut BTreeMap<String, Namespace>,
    file: BTreeMap<String, toml::Table>,
    origin: &str,
) -> Result<(), ConfigError> {
    for (name, table) in file {
        let parse = |error: String| ConfigError::Parse {
            path: origin.to_owned(),
            error: format!("[namespaces.{name}]: {error}"),
        };
        let mut merged = match namespaces.get(&name) {
            Some(builtin) => match toml::Value::try_from(builtin) {
                Ok(toml::Value::Table(t)) => t,
                Ok(_) => toml::Table::new(),
                Err(e) => return Err(parse(e.to_string())),
            },
            None => toml::Table::new(),
        };
        merged.extend(table);
        let ns: Namespace = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| parse(e.to_string()))?;
        if ns.enabled {
            namespaces.insert(name, ns);
        } else {
            namespaces.remove(&name);
        }
    }
    Ok(())
}

/// The address `HOST:PORT` names: an IP address as it is, a host name (`localhost:8080`)
/// resolved now, to its first IPv4 address when it has one (so that `127.0.0.1` reaches
/// a server started on `localhost`), else its first address.
pub fn resolve_listen(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = addr.parse::<SocketAddr>() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    let found: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?} (expected HOST:PORT, e.g. 127.0.0.1:8080 or localhost:8080): {e}"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| found.first())
        .copied()
        .ok_or_else(|| format!("{addr:?} resolves to no address"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_let_anyone_use_default_namespace() {
        let c = Config::default();
        let ns = c.namespace_for("room").unwrap();
        assert!(ns.subscribe && ns.client_publish);
        assert!(!c.namespace_for("ticker:ACME").unwrap().client_publish);
        assert!(c.namespace_for("chat:room").unwrap().join_leave);
        assert!(c.namespace_for("nope:x").is_none());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.api_key.is_none());
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let text = r#"
            listen = "127.0.0.1:9000"
            api_key = "from-file"
            [limits]
            longpoll_timeout_ms = 100
            listen_backlog = 512
            [namespaces.chat]
            client_publish = false
            batch_window_ms = 20
        "#;
        let c = Config::from_toml(text, "t").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.longpoll_timeout_ms, 100);
        assert_eq!(c.limits.listen_backlog(), 512);
        assert_eq!(
            Limits::default().listen_backlog(),
            kernel_max_backlog(),
            "0: the kernel's maximum"
        );
        assert_eq!(
            c.limits.max_publish_bytes,
            Limits::default().max_publish_bytes
        );
        assert!(
            c.namespace_for("room").is_some() && c.namespace_for("ticker:x").is_some(),
            "a file naming one namespace keeps the built-in ones"
        );
        let chat = c.namespace_for("chat:x").unwrap();
        assert!(!chat.client_publish);
        assert!(chat.join_leave, "the built-in's other settings stay");
        assert_eq!(chat.to_hub(1).batch_window, Some(Duration::from_millis(20)));
        assert_eq!(Namespace::default().to_hub(1).batch_window, None);

        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::write(&dir, text).unwrap();
        let over = Overrides {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            api_key: Some("from-flag".into()),
            ..Overrides::default()
        };
        let c = Config::load(Some(&dir), over).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.api_key.as_deref(), Some("from-flag"));
    }

    #[test]
    fn file_namespaces_merge_over_the_built_in_ones() {
        let c = Config::from_toml(
            "[namespaces.ticker]\nhistory_size = 10\n[namespaces.news]\nclient_publish = false\n",
            "t",
        )
        .unwrap();
        let ticker = c.namespace_for("ticker:x").unwrap();
        assert_eq!(ticker.history_size, 10);
        assert!(!ticker.client_publish, "the built-in's setting stays");
        let news = c.namespace_for("news:x").unwrap();
        assert!(!news.client_publish && news.subscribe);
        assert_eq!(news.history_size, Namespace::default().history_size);
        assert!(c.namespace_for("room").is_some() && c.namespace_for("chat:x").is_some());

        let c = Config::from_toml(
            "[namespaces.default]\nenabled = false\n[namespaces.chat]\nenabled = false\n",
            "t",
        )
        .unwrap();
        assert!(c.namespace_for("room").is_none() && c.namespace_for("chat:x").is_none());
        assert!(c.namespace_for("ticker:x").is_some());

        let e = Config::from_toml("[namespaces.ticker]\nhistroy_size = 1\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.toml") && e.contains("[namespaces.ticker]") && e.contains("histroy_size"),
            "{e}"
        );
    }

    #[test]
    fn listen_takes_a_host_name() {
        assert_eq!(
            resolve_listen("localhost:8080").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert_eq!(
            resolve_listen("[::1]:9").unwrap(),
            "[::1]:9".parse::<SocketAddr>().unwrap()
        );
        let e = resolve_listen("localhost").unwrap_err();
        assert!(
            e.contains("\"localhost\"") && e.contains("HOST:PORT"),
            "{e}"
        );
        let c = Config::from_toml("listen = \"localhost:9000\"", "t").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
        let e = Config::from_toml("listen = \"nowhere.invalid:1\"", "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listen") && e.contains("nowhere.invalid:1"),
            "{e}"
        );
    }

    #[test]
    fn the_log_format_from_the_file_and_the_flag() {
        assert_eq!(Config::default().log.format, LogFormat::Text);
        let c = Config::from_toml("[log]\nformat = \"json\"", "t").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let e = Config::from_toml("[log]\nformat = \"xml\"", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
        let over = Overrides {
            log_format: Some("json".parse().unwrap()),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(None, over).unwrap().log.format,
            LogFormat::Json
        );
        assert!("xml"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("text or json"));
    }

    #[test]
    fn bad_files_are_explained() {
        let e = Config::from_toml("lisen = 1", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.toml") && e.contains("lisen"), "{e}");
        let e = Config::from_toml("[namespaces.\"a:b\"]", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a:b"), "{e}");
        let e = Config::load(Some(Path::new("/nonexistent/x.toml")), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.toml"), "{e}");
    }

    #[test]
    fn the_auth_section_and_namespace_locks() {
        let c = Config::from_toml(
            r#"
            [auth]
            token_secret = "0123456789abcdef0123456789abcdef"
            token_audience = "sb"
            [namespaces.default]
            anonymous = false
            [namespaces.secret]
            private = true
            "#,
            "t",
        )
        .unwrap();
        let auth = c.auth.as_ref().unwrap();
        assert_eq!(auth.token_audience.as_deref(), Some("sb"));
        assert_eq!(auth.refresh_grace(), Duration::from_secs(10));
        assert!(!c.namespace_for("room").unwrap().anonymous);
        let secret = c.namespace_for("secret:x").unwrap();
        assert!(secret.private && secret.anonymous);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("0123456789abcdef"),
            "Debug hides the secret"
        );
        let c = Config::from_toml(
            "api_key = \"the-api-key\"\nredis = \"redis://u:the-password@127.0.0.1:6379/0\"",
            "t",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("the-api-key") && !shown.contains("the-password"),
            "Debug hides the API key and the Redis password: {shown}"
        );
        assert!(shown.contains("127.0.0.1:6379/0"), "{shown}");
        assert!(
            Config::default().auth.is_none(),
            "no tokens unless configured"
        );

        // The secret alone (the environment variable) turns tokens on.
        let over = Overrides {
            token_secret: Some("s".repeat(40)),
            ..Overrides::default()
        };
        let c = Config::load(None, over.clone()).unwrap();
        assert!(c.tokens_on());
        assert!(!format!("{over:?}").contains("sss"), "Debug hides it");

        let refused: &[(&str, &str)] = &[
            ("[auth]\n", "needs a key"),
            ("[auth]\ntoken_secret = \"short\"\n", "32 bytes"),
            ("[auth]\ntoken_secre = \"x\"\n", "token_secre"),
            ("[namespaces.default]\nanonymous = false\n", "no [auth]"),
            ("[namespaces.s]\nprivate = true\n", "no [auth]"),
        ];
        for (text, want) in refused {
            let e = Config::from_toml(text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn tls_needs_both_files() {
        let both = Config::from_toml("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n", "t");
        if cfg!(feature = "tls") {
            let c = both.unwrap();
            assert_eq!(c.tls_cert.as_deref(), Some(Path::new("c.pem")));
            assert_eq!(c.tls_key.as_deref(), Some(Path::new("k.pem")));
        } else {
            let e = both.unwrap_err().to_string();
            assert!(e.contains("--features tls"), "{e}");
        }
        for (text, want) in [
            ("tls_cert = \"c.pem\"", "tls_key is not"),
            ("tls_key = \"k.pem\"", "tls_cert is not"),
        ] {
            let e = Config::from_toml(text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
