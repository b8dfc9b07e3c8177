//! Command-line arguments: one variant of [`Command`] per subcommand, each implemented in
//! its own module.

pub(crate) mod bench;
pub(crate) mod echo;
pub(crate) mod publish;
pub(crate) mod serve;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use switchboard_server::config::LogFormat;

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

/// A secret given as a flag or an environment variable (an API key, a token secret):
/// `Debug` hides it.
#[derive(Clone)]
pub(crate) struct Hidden(String);

impl Hidden {
    pub(crate) fn into_inner(self) -> String {
        self.0
    }
}

impl std::str::FromStr for Hidden {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl Command {
    /// Whether the subcommand starts logging itself (`serve`: once its configuration,
    /// which may choose the format, is read).
    pub(crate) fn inits_tracing(&self) -> bool {
        matches!(self, Self::Serve(_))
    }
}

/// Log to stderr in `format`; which lines, `RUST_LOG` says (default `info`). Text is
/// coloured only when stderr is a terminal and `NO_COLOR` is not set: a file, a pipe or
/// a journal gets plain lines.
pub(crate) fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            lines.with_ansi(colour).init();
        }
        // The connection's span is the only one lines sit in: no list of spans.
        LogFormat::Json => lines.with_ansi(false).json().with_span_list(false).init(),
    }
}
