//! `switchboard serve [--listen ADDR] [--config FILE] [--redis URL] [--api-key KEY]
//! [--token-secret SECRET] [--log-format text|json] [--tls-cert FILE --tls-key FILE]`:
//! the server with an in-memory broker, or on Redis with other nodes (`--redis`, feature
//! `redis`), and (by default) the demo pages. Configuration:
//! defaults < `--config` file < environment (`SWITCHBOARD_LISTEN`, `SWITCHBOARD_CONFIG`,
//! `SWITCHBOARD_REDIS`, `SWITCHBOARD_API_KEY`, `SWITCHBOARD_TOKEN_SECRET`,
//! `SWITCHBOARD_LOG_FORMAT`, `SWITCHBOARD_TLS_CERT`, `SWITCHBOARD_TLS_KEY`) < flags; logging
//! starts once the configuration is read. Prints `switchboard listening on http://ADDR`
//! (`https://` with TLS) once it accepts connections; SIGINT/SIGTERM start a graceful
//! shutdown; SIGHUP reloads the TLS certificate and key.

use std::net::SocketAddr;
use std::path::PathBuf;

use switchboard_server::config::{resolve_listen, Config, LogFormat, Overrides};

/// Arguments of `switchboard serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on, `HOST:PORT` (a name is resolved: `localhost:8080`)
    /// [default: 127.0.0.1:8080, or the config file's `listen`].
    #[arg(long, env = "SWITCHBOARD_LISTEN", value_parser = resolve_listen)]
    listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Redis URL (`redis://[user:password@]host:port/db`, or a Redis Cluster's seed nodes
    /// `redis+cluster://[user:password@]host:port,host:port/`): share channels with every
    /// node on the same Redis (needs a build with the `redis` feature).
    #[arg(long, env = "SWITCHBOARD_REDIS")]
    redis: Option<String>,
    /// Backend API key (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<super::Hidden>,
    /// HS256 secret of client tokens, `auth.token_secret` (prefer the environment
    /// variable: flags show in `ps`); turns tokens on.
    #[arg(long, env = "SWITCHBOARD_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<super::Hidden>,
    /// Log lines as `text` (coloured on a terminal only) or `json` (one object a line)
    /// [default: text, or the config file's `log.format`]. Which lines: `RUST_LOG`.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_name = "text|json")]
    log_format: Option<LogFormat>,
    /// TLS certificate chain (PEM): serve https:// and wss:// (with --tls-key; reloaded
    /// on SIGHUP).
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Event loops serving connections, a thread each [default: one per CPU the process
    /// may run on, e.g. as `taskset` allows]. With one, the process runs on one thread
    /// in all.
    #[arg(long, env = "SWITCHBOARD_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
}

impl ServeArgs {
    /// The event loops to run: as set, or one per CPU the process may run on.
    fn workers(&self) -> usize {
        self.workers
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

pub(crate) async fn run(args: ServeArgs) -> std::io::Result<()> {
    let workers = args.workers();
    let overrides = Overrides {
        listen: args.listen,
        redis: args.redis,
        api_key: args.api_key.map(super::Hidden::into_inner),
        token_secret: args.token_secret.map(super::Hidden::into_inner),
        log_format: args.log_format,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    let config = Config::load(args.config.as_deref(), overrides)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    super::init_tracing(config.log.format);
    if config.api_key.is_none() {
        tracing::info!(
            "no API key configured: the backend API (/api/...) answers 403; \
             set SWITCHBOARD_API_KEY or api_key in the config file to enable it"
        );
    }
    // Handlers first: a script that reads the line below and sends SIGTERM at once must
    // get a graceful exit, not the default action.
    let stop = stop_signal()?;
    let reload = reload_signal()?;
    let running = switchboard_server::server::start_workers(config, workers)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start: {e}")))?;
    // Scripts wait for this line (and read the port from it when listening on :0).
    println!("switchboard listening on {}", running.url());
    tracing::info!(url = %running.url(), "listening");
    let reloading = reload_on(reload, &running);
    tokio::select! {
        () = stop => {}
        () = reloading => {}
    }
    tracing::info!("signal received, shutting down");
    if !running.shutdown().await {
        tracing::warn!("some connections were still open at the drain deadline");
    }
    Ok(())
}

/// Reloads the TLS certificate and key at every SIGHUP (never resolves). A reload that
/// fails keeps the certificate in use and says why.
async fn reload_on(mut reload: impl ReloadSignal, running: &switchboard_server::server::Running) {
    while reload.next().await {
        match running.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Ok(false) => tracing::info!("SIGHUP: no TLS configured, nothing to reload"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded, the old one stays");
            }
        }
    }
    std::future::pending::<()>().await;
}

/// A stream of reload requests (SIGHUP).
trait ReloadSignal {
    /// The next request; `false` when no more can come.
    async fn next(&mut self) -> bool;
}

#[cfg(unix)]
impl ReloadSignal for tokio::signal::unix::Signal {
    async fn next(&mut self) -> bool {
        self.recv().await.is_some()
    }
}

/// Installs the SIGHUP handler now (a SIGHUP would otherwise end the process).
#[cfg(unix)]
fn reload_signal() -> std::io::Result<impl ReloadSignal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// No SIGHUP here: no reload requests.
#[cfg(not(unix))]
fn reload_signal() -> std::io::Result<impl ReloadSignal> {
    struct Never;
    impl ReloadSignal for Never {
        async fn next(&mut self) -> bool {
            false
        }
    }
    Ok(Never)
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves at the first signal.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Ctrl-C; the future resolves at the first one.
#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
