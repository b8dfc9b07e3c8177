//! Command-line arguments: one variant of [`Command`] per subcommand, each implemented in
//! its own module.

pub(crate) mod bench;
pub(crate) mod echo;
pub(crate) mod publish;
pub(crate) mod serve;

use clap::{Parser, Subcommand};

/// Switchboard: a real-time messaging server. Clients subscribe to channels over
/// WebSocket, Server-Sent Events, HTTP streaming, long-polling or polling; backends
/// publish over HTTP; every subscriber gets every message in order, and resumes from its
/// cursor after a reconnect.
///
/// Start with `switchboard serve` (demo pages on http://127.0.0.1:8080/); publish with
/// `switchboard publish CHANNEL DATA`. The user guide: docs/guide/README.md.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// A plain WebSocket echo server on every path (conformance suites, smoke tests).
    Echo(echo::EchoArgs),
    /// The server: every transport, the backend API and the demo pages.
    Serve(serve::ServeArgs),
    /// Publish one message through a server's backend API.
    Publish(publish::PublishArgs),
    /// The load generator: echo, fanout, idle and quantum runs against a server.
    Bench(bench::BenchArgs),
}

/// Log to stderr; the level comes from `RUST_LOG` (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
