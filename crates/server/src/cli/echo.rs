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

use switchboard_ws_tokio::{
    self as ws, AcceptOptions, DeflateConfig, Message, ServerConfig, Wheel,
};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
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
    let listener = TcpListener::bind(args.listen).await?;
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
            m @ (Message::Text(_) | Message::Binary(_)) => {
                if let Err(e) = socket.send(m).await {
                    // The peer's close may have crossed our echo; keep driving the close.
                    debug!(error = %e, "echo not sent");
                }
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    Ok(())
}
