//! The accept loop: HTTP/1.1 connections (with upgrades) served by the router until a
//! stop future resolves, then the graceful drain described in [`crate::shutdown`]. A
//! connection's streaming subscribe requests and its polls and long-polls are answered by
//! [`crate::takeover`] for as long as they come one at a time; from its first request of
//! any other kind on, hyper serves it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::shutdown::{DrainGuard, Shutdown, ShutdownSignal};
use crate::state::AppState;
use crate::takeover::{self, AfterExchange, First, Streaming};

/// Serves `state`'s router on `listener` until `stop` resolves, then stops accepting,
/// fires `shutdown` and waits up to `drain` for connections to leave. Returns whether
/// every connection left before the deadline.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: Shutdown,
    drain: Duration,
    stop: impl Future<Output = ()>,
) -> bool {
    tokio::pin!(stop);
    let signal = shutdown.signal();
    let router = crate::app::router(state.clone());
    // What an idle taken-over subscriber's task holds inline (besides tokio's header).
    tracing::trace!(
        connection = std::mem::size_of::<Connection>(),
        streaming = std::mem::size_of::<Streaming>(),
        "connection future bytes"
    );
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(Connection::new(
            tcp,
            peer,
            router.clone(),
            state.clone(),
            signal.clone(),
            shutdown.guard(),
        ));
    }
    drop(listener);
    tracing::info!("shutting down: no longer accepting, draining connections");
    shutdown.trigger();
    let all_left = shutdown.drain(drain).await;
    if !all_left {
        tracing::warn!("drain deadline passed with connections still open");
    }
    all_left
}

/// Slow-loris guard: a request head must arrive within this time. (The first head is
/// read by [`crate::takeover`]; if it goes to hyper after all, hyper's own timer starts
/// anew, so a first head may take up to twice this.)
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One accepted connection, the future its task runs. Its requests are read and answered
/// in a boxed opening phase (freed once done): polls and long-polls one exchange after
/// another ([`crate::takeover`]); a request for a streaming response then continues as a
/// [`Streaming`] held in place, so the task of an idle subscriber is no bigger than that;
/// any other request hands the connection to hyper inside the opening phase. The drain
/// guard is held until the connection ends.
struct Connection {
    phase: Phase,
    _guard: DrainGuard,
}

// The big variant is the one that lives long; boxing it is the cost this avoids.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Opening(Pin<Box<dyn Future<Output = Option<Streaming>> + Send>>),
    Streaming(Streaming),
    Done,
}

impl Connection {
    fn new(
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        router: Router,
        state: AppState,
        signal: ShutdownSignal,
        guard: DrainGuard,
    ) -> Self {
        let opening = async move {
            let mut next = takeover::first_request(tcp, HEADER_READ_TIMEOUT, &signal).await;
            loop {
                next = match next {
                    First::Own(tcp, req) => return takeover::answer(tcp, req, &state).await,
                    First::Exchange(tcp, req) => {
                        let after =
                            takeover::exchange(tcp, req, &state, HEADER_READ_TIMEOUT, &signal);
                        match after.await {
                            AfterExchange::Next(next) => next,
                            AfterExchange::Stream(streaming) => return streaming,
                        }
                    }
                    First::Hyper(io) => {
                        serve_hyper(io, peer, router, signal).await;
                        return None;
                    }
                    First::Gone => return None,
                };
            }
        };
        Self {
            phase: Phase::Opening(Box::pin(opening)),
            _guard: guard,
        }
    }
}

impl Future for Connection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Opening(opening) => {
                    this.phase = match opening.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(streaming)) => Phase::Streaming(streaming),
                        Poll::Ready(None) => Phase::Done,
                    };
                }
                Phase::Streaming(streaming) => {
                    if Pin::new(streaming).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.phase = Phase::Done;
                }
                Phase::Done => return Poll::Ready(()),
            }
        }
    }
}

async fn serve_hyper(
    io: takeover::Rewind,
    peer: SocketAddr,
    router: Router,
    signal: ShutdownSignal,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        }
        () = signal.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A server started in the background (by `switchboard serve` and by tests).
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (the real port when `:0` was asked for).
    pub addr: SocketAddr,
    /// Its shared state (hub, registry, configuration).
    pub state: crate::state::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<bool>,
}

impl Running {
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
/// `config.listen` and serves in a background task.
pub async fn start(config: crate::config::Config) -> std::io::Result<Running> {
    let broker = crate::broker::from_config(&config).await?;
    let listener = TcpListener::bind(config.listen).await?;
    start_with(listener, config, broker)
}

/// Serves on an already bound listener in a background task, with an in-memory broker.
pub fn start_on(listener: TcpListener, config: crate::config::Config) -> std::io::Result<Running> {
    start_with(
        listener,
        config,
        std::sync::Arc::new(switchboard_hub::MemoryBroker::new()),
    )
}

/// Serves on an already bound listener in a background task, on `broker` (nodes that
/// share a broker act as one server).
pub fn start_with(
    listener: TcpListener,
    config: crate::config::Config,
    broker: std::sync::Arc<dyn switchboard_hub::Broker>,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let state = crate::state::AppState {
        config: std::sync::Arc::new(config.clone()),
        ws_config: std::sync::Arc::new(crate::transport::websocket::ws_config(&config)),
        hub: switchboard_hub::Hub::with_broker(config.hub_config(), broker),
        clients: crate::clients::Clients::default(),
        shutdown: shutdown.signal(),
    };
    // The hub closes every subscription (exact resume cursors) once shutdown begins.
    let (hub, signal) = (state.hub.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        signal.wait().await;
        hub.shutdown();
    });
    // Broker housekeeping: expired history and idle channels.
    let (hub, signal) = (state.hub.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = signal.wait() => return,
                _ = every.tick() => {
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
    let drain = state.config.limits.shutdown_drain();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(serve(
        listener,
        state.clone(),
        shutdown,
        drain,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Running {
        addr,
        state,
        stop: Some(stop),
        done,
    })
}
