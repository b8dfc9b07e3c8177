//! Listening and the accept loop: a listening socket with the options the server wants
//! ([`listen_on`]), and every connection a listener accepts handed to the connection front
//! ([`crate::front`]), through a TLS handshake when TLS is on, as a task of the event
//! loop that accepted it.

use std::future::Future;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::front::Front;
use crate::io::Io;

/// A listening socket on `addr` with `backlog`, `SO_REUSEADDR` (a restarted server binds
/// at once), and `SO_REUSEPORT` when `reuse_port` (each event loop then listens on a socket
/// of its own, `crate::loops`).
pub(crate) fn listen_on(
    addr: SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Where accepted connections go: the front, through a TLS handshake when TLS is on.
#[derive(Clone)]
pub(crate) struct Accepting {
    pub(crate) front: Front,
    /// The configuration handshakes use and how long one may take.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<(Arc<rustls::ServerConfig>, Duration)>,
}

impl Accepting {
    /// Hands every connection `listener` accepts to the front until `stop` resolves.
    pub(crate) async fn until(&self, listener: TcpListener, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        // What an idle streaming subscriber's task holds inline (besides tokio's header).
        tracing::trace!(
            streaming = std::mem::size_of::<crate::front::Streaming<tokio::net::TcpStream>>(),
            "connection future bytes"
        );
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut stop => return,
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
            #[cfg(feature = "tls")]
            if let Some((config, timeout)) = &self.tls {
                let tls = crate::front::TlsIo::new(tcp, config.clone(), *timeout);
                serve_connection(&self.front, tls, peer);
                continue;
            }
            serve_connection(&self.front, tcp, peer);
        }
    }
}

/// Spawns the task serving one accepted connection (dropped when shutting down).
fn serve_connection<S: Io>(front: &Front, io: S, peer: SocketAddr) {
    if let Some(connection) = front.connection(io, peer) {
        tokio::spawn(connection);
    }
}
