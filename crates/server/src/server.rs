//! Running a server: the [`Builder`] that assembles one from a [`Config`] (the broker,
//! the admission check, routes and WebSocket endpoints of a program embedding it), the
//! accept loop that hands every connection to the connection front ([`crate::front`])
//! (over TLS when `tls_cert`/`tls_key` are set, feature `tls`), and the graceful drain
//! described in [`crate::shutdown`].
//!
//! Embedding, in short (a whole program: `crates/server/examples/embed.rs`):
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use switchboard_server::config::Config;
//! use switchboard_server::server::Builder;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = Builder::new(Config::default())
//!     .routes(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })))
//!     .build()
//!     .expect("valid configuration");
//! let hub = server.hub().clone(); // publish from the program itself
//! let running = server.spawn(listener)?;
//! // ... later
//! running.shutdown().await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use switchboard_hub::{Broker, Hub, MemoryBroker};
use tokio::net::TcpListener;

use crate::accept::Accepting;
use crate::config::{Config, ConfigError};
use crate::front::{Admission, AdmitAll, Front};
use crate::loops::Loops;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::transport::websocket::endpoint::Endpoint;

/// Assembles a server (see the module docs).
pub struct Builder {
    config: Config,
    broker: Option<Arc<dyn Broker>>,
    admission: Box<dyn Admission>,
    endpoints: Vec<(String, Arc<dyn Endpoint>)>,
    routes: Router,
    workers: usize,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.endpoints.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("Builder")
            .field("listen", &self.config.listen)
            .field("websocket_endpoints", &paths)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A server with `config`, an in-memory broker, every request admitted, and only the
    /// server's own routes.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            broker: None,
            admission: Box::new(AdmitAll),
            endpoints: Vec::new(),
            routes: Router::new(),
            workers: 1,
        }
    }

    /// Serves on `n` event loops (at least 1, the default): the caller's runtime, and
    /// `n - 1` threads each running its own tokio current-thread runtime, which accept on
    /// the listener's address (a socket each when the listener has `SO_REUSEPORT`, else
    /// from the listener itself) and serve what they accept (see [`Server::serve`]).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Channels live in `broker` (nodes that share a broker act as one server).
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Every request passes `admission` before it is answered (see
    /// [`crate::front::admission`]).
    pub fn admission(mut self, admission: impl Admission) -> Self {
        self.admission = Box::new(admission);
        self
    }

    /// Serves `routes` beside the server's own (a path both name panics at
    /// [`Builder::build`], as axum's `merge` does). They pass the admission check too.
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Answers WebSocket upgrades of `path` with `endpoint`'s callbacks (see
    /// [`crate::transport::websocket::endpoint`]).
    pub fn websocket(mut self, path: &str, endpoint: impl Endpoint) -> Self {
        self.endpoints.push((path.to_owned(), Arc::new(endpoint)));
        self
    }

    /// The server, ready to serve; fails when the configuration's allow-lists
    /// (`security`) do not parse, or a token key file (`auth`) cannot be read or used.
    pub fn build(self) -> Result<Server, ConfigError> {
        let config = self.config;
        #[cfg(not(feature = "tls"))]
        if config.tls_cert.is_some() || config.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert/tls_key are set but this build has no TLS: build with `--features tls`"
                    .into(),
            ));
        }
        let broker = self.broker.unwrap_or_else(|| {
            Arc::new(MemoryBroker::with_limits(config.memory_limits())) as Arc<dyn Broker>
        });
        let shutdown = Shutdown::new();
        let auth = match &config.auth {
            Some(auth) => Some(Arc::new(crate::auth::Verifier::new(auth)?)),
            None => None,
        };
        let state = AppState {
            auth,
            backend: crate::backend::Backend::new(&config.backend)?,
            ws_config: Arc::new(crate::transport::websocket::ws_config(&config)),
            hub: Hub::with_broker(config.hub_config(), broker),
            clients: crate::clients::Clients::new(crate::throttle::Throttle::new(&config.limits)),
            shutdown: shutdown.signal(),
            config: Arc::new(config),
        };
        // A disconnect another node asks for ends the connections this node lists; the
        // hub then closes their subscriptions.
        let clients = state.clients.clone();
        state.hub.on_remote_disconnect(move |target| {
            clients.disconnect(target);
        });
        let router = crate::app::router(state.clone(), &self.endpoints, self.routes);
        Ok(Server {
            #[cfg(feature = "tls")]
            tls: match (&state.config.tls_cert, &state.config.tls_key) {
                (Some(cert), Some(key)) => Some(crate::tls::Tls::load(cert, key)?),
                _ => None,
            },
            front: Front::new(state, router, self.admission)?,
            shutdown,
            workers: self.workers,
        })
    }
}

/// A server built by [`Builder`], not serving yet.
#[derive(Debug)]
pub struct Server {
    front: Front,
    shutdown: Shutdown,
    /// Event loops serving connections, the caller's included ([`Builder::workers`]).
    workers: usize,
    /// The certificate connections are accepted with; `None`: plain TCP.
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Tls>,
}

impl Server {
    /// Its shared state (configuration, hub, connection registry).
    pub fn state(&self) -> &AppState {
        self.front.state()
    }

    /// Its hub: publish, history, presence from the embedding program.
    pub fn hub(&self) -> &Hub {
        &self.front.state().hub
    }

    /// The connection front, for a program that accepts connections itself (a TLS
    /// acceptor, a Unix socket): spawn [`Front::connection`] for each.
    pub fn front(&self) -> &Front {
        &self.front
    }

    /// Serves on `listener` in a background task (with the housekeeping tasks: the hub's
    /// shutdown and sweep, the demo ticker when `demo` is on).
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let state = self.front.state().clone();
        let front = self.front.clone();
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(self.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr,
            state,
            front,
            #[cfg(feature = "tls")]
            tls,
            stop: Some(stop),
            done,
        })
    }

    /// Serves on `listener` until `stop` resolves, then stops accepting, tells every
    /// connection to go and waits up to `limits.shutdown_drain_ms` for them to leave.
    /// Returns whether every connection left before the deadline.
    pub async fn serve(self, listener: TcpListener, stop: impl Future<Output = ()>) -> bool {
        let state = self.front.state().clone();
        spawn_housekeeping(&state);
        // This loop's pacer writes to the sockets it serves (none on a multi-thread runtime).
        let _event_loop = switchboard_hub::EventLoop::register();
        let current_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread;
        let _lot = if current_thread || self.workers > 1 {
            // Event loops of one thread each: the fan-out's pacer may write a waiting
            // native connection's messages itself (transport::websocket::direct), and
            // this loop's idle connections park in its lot (crate::park).
            state
                .hub
                .set_direct_write(crate::transport::websocket::direct::write_frames);
            crate::park::Lot::start_for(&state.hub)
        } else {
            None
        };
        let drain = state.config.limits.shutdown_drain();
        let accepting = Accepting {
            front: self.front.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.as_ref().map(|t| {
                (
                    t.server_config(),
                    state.config.limits.tls_handshake_timeout(),
                )
            }),
        };
        let loops = match Loops::start(self.workers - 1, &listener, &accepting) {
            Ok(loops) => {
                tracing::info!(event_loops = self.workers, "serving");
                Some(loops)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the other event loops: serving on one");
                None
            }
        };
        accepting.until(listener, stop).await;
        if let Some(loops) = &loops {
            loops.stop_accepting();
        }
        let Self {
            front, shutdown, ..
        } = self;
        tracing::info!("shutting down: no longer accepting, draining connections");
        shutdown.trigger();
        let all_left = front.connections().wait_idle(drain).await;
        if !all_left {
            tracing::warn!("drain deadline passed with connections still open");
        }
        if let Some(loops) = loops {
            loops.end().await;
        }
        all_left
    }
}

/// The hub closes every subscription (exact resume cursors) once shutdown begins; the
/// broker's housekeeping (expired history, idle channels) and the rate limiters' runs
/// every minute; the status feed ([`crate::observe::status::run`]); the demo
/// ticker publishes prices when the demo is on.
fn spawn_housekeeping(state: &AppState) {
    crate::observe::counters::mark_start();
    tokio::spawn(crate::observe::status::run(state.clone()));
    let (hub, signal) = (state.hub.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        signal.wait().await;
        hub.shutdown();
    });
    let (hub, signal, throttle) = (
        state.hub.clone(),
        state.shutdown.clone(),
        state.clients.throttle().clone(),
    );
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = signal.wait() => return,
                _ = every.tick() => {
                    throttle.sweep();
                    if let Err(e) = hub.sweep().await {
                        tracing::warn!(error = %e, "hub sweep failed");
                    }
                }
            }
        }
    });
    if state.config.demo {
        tokio::spawn(crate::ticker::run(
            state.hub.clone(),
            state.shutdown.clone(),
            Duration::from_secs(1),
        ));
    }
}

/// A server started in the background (by `switchboard serve` and by tests).
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (the real port when `:0` was asked for).
    pub addr: SocketAddr,
    /// Its shared state (hub, registry, configuration).
    pub state: AppState,
    front: Front,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Tls>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<bool>,
}

impl Running {
    /// Its connection counts.
    pub fn connections(&self) -> &crate::front::Connections {
        self.front.connections()
    }

    /// Where clients reach it: `http://ADDR`, or `https://ADDR` with TLS.
    pub fn url(&self) -> String {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return format!("https://{}", self.addr);
        }
        format!("http://{}", self.addr)
    }

    /// Reads the TLS certificate and key files again (SIGHUP): new connections get the
    /// new certificate, open ones keep theirs; on an error the old certificate stays.
    /// `Ok(false)`: no TLS configured, nothing to reload.
    pub fn reload_tls(&self) -> Result<bool, ConfigError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            tls.reload()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Begins a graceful shutdown and waits for it; returns whether every connection
    /// left before the drain deadline.
    pub async fn shutdown(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.done).await.unwrap_or(false)
    }

    /// Waits until the server stops by itself (it only stops via [`Running::shutdown`]
    /// or a signal handled by the caller).
    pub async fn wait(self) -> bool {
        self.done.await.unwrap_or(false)
    }
}

/// Connects the broker `config` names ([`crate::broker::from_config`]), binds
/// `config.listen` (with `limits.listen_backlog`, see [`bind`]) and serves in a
/// background task.
pub async fn start(config: Config) -> std::io::Result<Running> {
    start_workers(config, 1).await
}

/// [`start`] on `workers` event loops ([`Builder::workers`]): what `switchboard serve`
/// runs, on a current-thread runtime.
pub async fn start_workers(config: Config, workers: usize) -> std::io::Result<Running> {
    let broker = crate::broker::from_config(&config).await?;
    let listener = bind_with(config.listen, config.limits.listen_backlog(), workers > 1)?;
    spawn_on(listener, config, broker, workers)
}

/// A listener on `addr` with `backlog` (`TcpListener::bind` listens with mio's 128,
/// which a reconnect storm overflows: the kernel then drops SYNs, and each client so
/// dropped waits about a second before it tries again). `SO_REUSEADDR` as `bind` sets it,
/// so a restarted server binds at once. An error names `addr` (and, when the address is
/// taken, says what to do).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    bind_with(addr, backlog, false)
}

/// [`bind`], with `SO_REUSEPORT` when `reuse_port` (each event loop then listens on a
/// socket of its own, `loops.rs`).
fn bind_with(addr: SocketAddr, backlog: u32, reuse_port: bool) -> std::io::Result<TcpListener> {
    crate::accept::listen_on(addr, backlog, reuse_port).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another process listens there: stop it, or choose another address with \
                 --listen or `listen` in the config file)"
            }
            _ => "",
        };
        std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{hint}"))
    })
}

/// Serves on an already bound listener in a background task, with an in-memory broker.
pub fn start_on(listener: TcpListener, config: Config) -> std::io::Result<Running> {
    Builder::new(config)
        .build()
        .map_err(invalid)?
        .spawn(listener)
}

/// Serves on an already bound listener in a background task, on `broker` (nodes that
/// share a broker act as one server).
pub fn start_with(
    listener: TcpListener,
    config: Config,
    broker: Arc<dyn Broker>,
) -> std::io::Result<Running> {
    spawn_on(listener, config, broker, 1)
}

/// A server with `config` on `broker` and `workers` event loops, serving on `listener`.
fn spawn_on(
    listener: TcpListener,
    config: Config,
    broker: Arc<dyn Broker>,
    workers: usize,
) -> std::io::Result<Running> {
    Builder::new(config)
        .broker(broker)
        .workers(workers)
        .build()
        .map_err(invalid)?
        .spawn(listener)
}

fn invalid(e: ConfigError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Connects `n` clients at once, none of them accepted; returns how many completed
    /// their handshake (a SYN the kernel dropped is resent only after a second).
    async fn handshakes(addr: SocketAddr, n: usize) -> usize {
        let attempts = (0..n).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let done = futures_util::future::join_all(attempts).await;
        // Kept open (dropped at the end) so each one holds its place in the queue.
        done.iter().filter(|r| matches!(r, Ok(Ok(_)))).count()
    }

    /// The backlog given reaches `listen`: with 2 the kernel completes at most 3
    /// handshakes that nobody accepts (Linux queues backlog + 1), with the configured
    /// default (the kernel's maximum) all of them.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_backlog_reaches_listen() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let small = bind(loopback, 2).unwrap();
        let got = handshakes(small.local_addr().unwrap(), 8).await;
        assert!(
            (1..=3).contains(&got),
            "{got} handshakes with a backlog of 2"
        );

        let backlog = crate::config::Limits::default().listen_backlog();
        assert_eq!(backlog, crate::config::kernel_max_backlog());
        assert!(backlog >= 128, "{backlog}");
        let large = bind(loopback, backlog).unwrap();
        assert_eq!(handshakes(large.local_addr().unwrap(), 8).await, 8);
    }
}
