//! `switchboard publish CHANNEL DATA [--url URL] [--api-key KEY] [--text]
//! [--idempotency-key KEY]`: publishes one message through the backend API and prints the
//! answer (`{"channel","cursor"}`). DATA is sent as JSON when it parses as JSON, else as
//! text (or always as text with `--text`).
//!
//! The message carries an idempotency key (random unless `--idempotency-key` gives one)
//! and is sent again with it when the answer is lost (connection error, no answer in
//! 10 s, 503), up to three times: the server stores it once. A script that retries the
//! command itself passes the same `--idempotency-key` each time.

use switchboard_client::{ApiClient, Retry};

/// Arguments of `switchboard publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// Channel to publish to.
    channel: String,
    /// The message: JSON, or text.
    data: String,
    /// Server URL.
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
}

pub(crate) async fn run(args: PublishArgs) -> std::io::Result<()> {
    let client = ApiClient::new(&args.url, args.api_key.map(super::Hidden::into_inner))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
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
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    println!("{answer}");
    Ok(())
}
