//! `switchboard publish CHANNEL DATA [--url URL] [--api-key KEY] [--text]`: publishes one
//! message through the backend API and prints the answer (`{"channel","cursor"}`).
//! DATA is sent as JSON when it parses as JSON, else as text (or always as text with
//! `--text`).

use switchboard_client::ApiClient;

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
}

pub(crate) async fn run(args: PublishArgs) -> std::io::Result<()> {
    let client = ApiClient::new(&args.url, args.api_key.map(super::Hidden::into_inner))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let json = (!args.text)
        .then(|| serde_json::from_str::<serde_json::Value>(&args.data).ok())
        .flatten();
    let answer = match json {
        Some(v) => client.publish(&args.channel, v).await,
        None => client.publish_text(&args.channel, &args.data).await,
    }
    .map_err(|e| match e {
        // Nothing answered: say where it looked, and how to point it elsewhere.
        switchboard_client::Error::Io(_) | switchboard_client::Error::Http(_) => {
            std::io::Error::other(format!(
                "cannot reach the server at {}: {e} (is `switchboard serve` running there? \
                 --url or SWITCHBOARD_URL names another)",
                args.url
            ))
        }
        other => std::io::Error::other(format!("{}: {other}", args.url)),
    })?;
    println!("{answer}");
    Ok(())
}
