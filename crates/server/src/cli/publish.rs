//! `switchboard publish CHANNEL DATA [--url URL] [--api-key KEY] [--text]
//! [--idempotency-key KEY] [--ca-file PEM]`: publishes one message through the backend API and prints the
//! answer (`{"channel","cursor"}`). DATA is sent as JSON when it parses as JSON, else as
//! text (or always as text with `--text`).
//!
//! The message carries an idempotency key (random unless `--idempotency-key` gives one)
//! and is sent again with it when the answer is lost (connection error, no answer in
//! 10 s, 503), up to three times: the server stores it once. A script that retries the
//! command itself passes the same `--idempotency-key` each time.
//!
//! An `https://` URL (feature `tls`) trusts the system's certificate authorities, or those
//! of `--ca-file`.

use switchboard_client::{ApiClient, Retry};

/// Arguments of `switchboard publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// Channel to publish to.
    channel: String,
    /// The message: JSON, or text.
    data: String,
    /// Server URL (`http://` or `https://`).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "SWITCHBOARD_URL")]
    url: String,
    /// Backend API key.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<super::Hidden>,
    /// Send DATA as text even if it is valid JSON.
    #[arg(long)]
    text: bool,
    /// The message's idempotency key (1 to 128 bytes; default: a random one): the same
    /// key on the same channel within the server's window is stored once.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Trust the certificate authorities in this PEM file (instead of the system's) for
    /// an https:// URL.
    #[cfg(feature = "tls")]
    #[arg(long, env = "SWITCHBOARD_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

/// What to check when nothing answered.
const WHERE: &str =
    " (is `switchboard serve` running there? --url or SWITCHBOARD_URL names another)";

pub(crate) async fn run(args: PublishArgs) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let client = ApiClient::new(&args.url, args.api_key.map(super::Hidden::into_inner))
        .map_err(|e| invalid(e.to_string()))?;
    #[cfg(feature = "tls")]
    let client = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
            let roots = switchboard_client::TlsRoots::from_pem(&pem)
                .map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
            client.with_tls_roots(roots)
        }
        None => client,
    };
    let json = (!args.text)
        .then(|| serde_json::from_str::<serde_json::Value>(&args.data).ok())
        .flatten();
    let mut body = match json {
        Some(v) => serde_json::json!({ "channel": args.channel, "data": v }),
        None => serde_json::json!({ "channel": args.channel, "text": args.data }),
    };
    if let Some(key) = args.idempotency_key {
        body["idempotency_key"] = key.into();
    }
    let answer = client
        .send_keyed("/api/publish", body, Retry::default())
        .await
        .map_err(|e| match e {
            // Nothing answered: say where it looked, and how to point it elsewhere.
            switchboard_client::Error::Io(_) | switchboard_client::Error::Http(_) => {
                std::io::Error::other(format!(
                    "cannot reach the server at {}: {e}{WHERE}",
                    args.url
                ))
            }
            switchboard_client::Error::Connect { error, .. } => std::io::Error::other(format!(
                "cannot reach the server at {}: {error}{WHERE}",
                args.url
            )),
            other => std::io::Error::other(format!("{}: {other}", args.url)),
        })?;
    println!("{answer}");
    Ok(())
}
