//! `switchboard echo --listen ADDR`: a WebSocket echo server on every path.
//!
//! Every text and binary message is sent back unchanged; pings, pongs and the closing
//! handshake are the codec's. permessage-deflate is accepted for every offer the codec can
//! satisfy. Limits are generous (messages up to 64 MiB, frames up to 32 MiB) because
//! conformance suites send 16 MiB messages, and there are no keepalive pings, so that the
//! only frames on the wire are the ones a test expects. One tokio task per connection;
//! the idle and close timeouts run on one shared coarse timer wheel, as `serve`'s do.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_timer::Wheel;
use switchboard_ws_tokio::{self as ws, AcceptOptions, DeflateConfig, Message, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on, `HOST:PORT` (a name is resolved: `localhost:8080`).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = switchboard_server::config::resolve_listen)]
    listen: SocketAddr,
    /// Refuse permessage-deflate.
    #[arg(long)]
    no_deflate: bool,
    /// Compress with context takeover when the client allows it (smaller output; by
    /// default every message is compressed on its own, as the hub does for fan-out).
    #[arg(long)]
    context_takeover: bool,
}

pub(crate) async fn run(args: EchoArgs) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.listen))
    })?;
    info!(addr = %listener.local_addr()?, "echo server listening");
    let config = std::sync::Arc::new(server_config(&args));
    let wheel = Wheel::new(switchboard_server::clients::WHEEL_RESOLUTION);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let config = config.clone();
        let wheel = wheel.clone();
        tokio::spawn(async move {
            if let Err(e) = echo(stream, &config, wheel).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn server_config(args: &EchoArgs) -> ServerConfig {
    let deflate = (!args.no_deflate).then(|| DeflateConfig {
        server_no_context_takeover: !args.context_takeover,
        ..DeflateConfig::default()
    });
    let connection = ws::Config {
        max_frame_size: 32 << 20,
        max_message_size: 64 << 20,
        ping_interval: None,
        deflate: deflate.clone(),
        ..ws::Config::default()
    };
    ServerConfig {
        accept: AcceptOptions {
            deflate,
            ..AcceptOptions::default()
        },
        connection,
        high_water_mark: 0,
    }
}

async fn echo(stream: TcpStream, config: &ServerConfig, wheel: Wheel) -> ws::Result<()> {
    stream.set_nodelay(true)?;
    echo_over(stream, config, wheel).await
}

async fn echo_over<S>(stream: S, config: &ServerConfig, wheel: Wheel) -> ws::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut socket, request) = ws::accept(stream, config).await?;
    socket.set_wheel(wheel);
    debug!(path = %request.path, "accepted");
    while let Some(message) = socket.recv().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                // A protocol error of the peer: the codec queued the close frame for it,
                // and further recv calls send it and finish the connection.
                debug!(error = %e, "peer error");
                continue;
            }
        };
        match message {
            // Queued, not sent: `recv` returns the messages already read first and writes
            // everything queued before it waits for more input, so the echoes of one read
            // leave in one vectored write. `recv` reads nothing more while the socket
            // takes no output and over the high-water mark (1 MiB) is queued, so a peer
            // that does not read grows the queue by one message at most past that.
            m @ (Message::Text(_) | Message::Binary(_)) => {
                if let Err(e) = socket.queue(m) {
                    // The peer's close may have crossed our echo; keep driving the close.
                    debug!(error = %e, "echo not sent");
                }
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::IoSlice;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use clap::Parser as _;
    use tokio::io::{DuplexStream, ReadBuf};

    use super::*;

    /// A stream that counts write calls; a vectored write takes every slice, as a socket's
    /// `writev` does.
    struct Counting {
        inner: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counting {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &all))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        echo: EchoArgs,
    }

    /// Messages that arrive in one read are echoed, in order, with one write.
    #[tokio::test]
    async fn the_echoes_of_one_read_leave_in_one_write() {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let server_io = Counting {
            inner: server_io,
            writes: writes.clone(),
        };
        let args = Cli::parse_from(["echo", "--no-deflate"]).echo;
        let config = server_config(&args);
        let wheel = Wheel::new(Duration::from_millis(100));
        let server = tokio::spawn(async move { echo_over(server_io, &config, wheel).await });

        let (mut client, _) =
            ws::connect(client_io, "localhost", "/", &ws::ClientConfig::default())
                .await
                .unwrap();
        let after_handshake = writes.load(Ordering::Relaxed);
        let sent: Vec<Bytes> = (0..8)
            .map(|i| Bytes::from(format!("message {i}")))
            .collect();
        for text in &sent {
            client.queue(Message::Text(text.clone())).unwrap();
        }
        // One flush: all eight frames are in the pipe before the server reads.
        client.flush().await.unwrap();
        for text in &sent {
            let got = tokio::time::timeout(Duration::from_secs(5), client.recv())
                .await
                .unwrap();
            assert!(matches!(got, Some(Ok(Message::Text(t))) if t == *text));
        }
        assert_eq!(writes.load(Ordering::Relaxed) - after_handshake, 1);

        client.close(ws::CloseCode::NORMAL, "").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
