//! `retained`: what one stored message costs the server, by the path that published it.
//! For each path and payload size, a fresh server process (`--server-cmd`, whose
//! configuration must keep every message: `history_size` ≥ the messages per channel, no
//! age limit, no publish rate limit, the API key given here, `demo = false`) takes a
//! warm-up of the same path, then `--messages` messages of `--size` bytes spread over
//! `--channels` channels; its resident memory after minus before, divided by the
//! messages, is the figure (`bytes_per_message`; minus the payload: `overhead`).
//!
//! Paths: `post` (`POST /ch/NAME`, text), `api` (`POST /api/publish`, `text`),
//! `broadcast` (`POST /api/broadcast` to every channel at once, `text`), `ws-frame` (a
//! text frame on a native WebSocket of `/ch/NAME`), `ws-command` (the `/ws` publish
//! command, `data` a JSON string). The native WebSocket publisher is also its channel's
//! subscriber, so its messages are delivered once (to it) and carry the encodings that
//! made; with `--subscribed`, every path gets one such subscriber per channel and the
//! figure is the cost after first delivery.
//!
//! Publishing connections are closed before memory is read, and memory is read after a
//! settling pause. Run the server with `_RJEM_MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0`
//! (jemalloc's, as the server binary uses) so that freed pages leave at once and the
//! figure is what the server keeps, not what its allocator caches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use switchboard_ws_tokio::Message;

use crate::common::{self, r3, ServerArgs};
use crate::counting::WireCounters;
use crate::net::{self, HttpConn};

/// How a message reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PublishPath {
    Post,
    Api,
    Broadcast,
    WsFrame,
    WsCommand,
}

impl PublishPath {
    fn name(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Api => "api",
            Self::Broadcast => "broadcast",
            Self::WsFrame => "ws-frame",
            Self::WsCommand => "ws-command",
        }
    }
}

/// Options of `retained`.
#[derive(Debug, Clone, clap::Args)]
pub struct RetainedArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Paths to measure, each on a fresh server.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [PublishPath::Post, PublishPath::Api, PublishPath::Broadcast, PublishPath::WsFrame, PublishPath::WsCommand])]
    pub paths: Vec<PublishPath>,
    /// Payload sizes in bytes, each on a fresh server.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 1024])]
    pub sizes: Vec<usize>,
    /// Messages stored per run.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Channels they are spread over.
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// Messages of the warm-up (same path, its own channel) before memory is first read.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// The backend API key the server was started with.
    #[arg(long, default_value = "bench")]
    pub api_key: String,
    /// One native WebSocket subscriber per channel reads every message (the cost after
    /// first delivery).
    #[arg(long)]
    pub subscribed: bool,
    /// Milliseconds to wait before each memory reading.
    #[arg(long, default_value_t = 1500)]
    pub settle_ms: u64,
}

/// Runs every path × size and prints one JSON line each.
pub fn run(args: RetainedArgs) -> std::io::Result<()> {
    if args.server.server_cmd.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "retained needs --server-cmd: every run starts a fresh server",
        ));
    }
    for &size in &args.sizes {
        for &path in &args.paths {
            let line = one(&args, path, size)?;
            common::emit(&line);
        }
    }
    Ok(())
}

fn one(args: &RetainedArgs, path: PublishPath, size: usize) -> std::io::Result<serde_json::Value> {
    let server = args.server.open()?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no server process")
    })?;
    let rt = args.server.runtime()?;
    let settle = Duration::from_millis(args.settle_ms);
    let channels: Vec<String> = (0..args.channels.max(1))
        .map(|i| format!("retained-{i}"))
        .collect();
    let (before, after) = rt.block_on(async {
        let counters = Arc::new(WireCounters::default());
        let warm = vec!["retained-warmup".to_owned()];
        publish(args, path, &warm, size, args.warmup, &counters).await?;
        let mut readers = Vec::new();
        if args.subscribed {
            for c in &channels {
                readers.push(tokio::spawn(read_all(
                    args.server.clone(),
                    c.clone(),
                    counters.clone(),
                )));
            }
            // The subscribers' own connections are counted before.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(settle).await;
        let before = server.rss_kib()?;
        publish(args, path, &channels, size, args.messages, &counters).await?;
        stored(args, &channels, args.messages).await?;
        // Subscribers have had every message once they see the last one's cursor; give
        // them a moment, then close them so that only what the server keeps remains.
        tokio::time::sleep(settle).await;
        for r in readers {
            r.abort();
        }
        tokio::time::sleep(settle).await;
        let after = server.rss_kib()?;
        Ok::<_, std::io::Error>((before, after))
    })?;
    drop(server);
    let grown = after.saturating_sub(before) as f64 * 1024.0;
    let per = grown / args.messages as f64;
    eprintln!(
        "[retained {} {} {size} B] {:.0} B per message ({} KiB -> {} KiB)",
        args.server.label,
        path.name(),
        per,
        before,
        after
    );
    Ok(json!({
        "mode": "retained",
        "label": args.server.label,
        "path": path.name(),
        "payload_bytes": size,
        "messages": args.messages,
        "channels": channels.len(),
        "subscribed": args.subscribed,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_message": r3(per),
        "overhead_per_message": r3(per - size as f64),
    }))
}

/// `size` bytes of text (`x`), or a JSON string of `size` bytes with its quotes.
fn text(size: usize) -> String {
    "x".repeat(size)
}

fn json_string(size: usize) -> String {
    format!("\"{}\"", "x".repeat(size.saturating_sub(2)))
}

/// Publishes `n` messages round robin over `channels` through `path`.
async fn publish(
    args: &RetainedArgs,
    path: PublishPath,
    channels: &[String],
    size: usize,
    n: usize,
    counters: &Arc<WireCounters>,
) -> std::io::Result<()> {
    let host = args.server.host();
    let auth = format!("Authorization: Bearer {}\r\n", args.api_key);
    match path {
        PublishPath::Post | PublishPath::Api | PublishPath::Broadcast => {
            let mut conn = HttpConn::new(net::connect(args.server.addr, 0, 1, counters).await?);
            let requests = if path == PublishPath::Broadcast {
                n.div_ceil(channels.len())
            } else {
                n
            };
            for i in 0..requests {
                let channel = &channels[i % channels.len()];
                let (target, extra, body) = match path {
                    PublishPath::Post => (
                        format!("/ch/{channel}"),
                        "Content-Type: text/plain\r\n".to_owned(),
                        text(size),
                    ),
                    PublishPath::Api => (
                        "/api/publish".to_owned(),
                        format!("{auth}Content-Type: application/json\r\n"),
                        json!({ "channel": channel, "text": text(size) }).to_string(),
                    ),
                    _ => (
                        "/api/broadcast".to_owned(),
                        format!("{auth}Content-Type: application/json\r\n"),
                        json!({ "channels": channels, "text": text(size) }).to_string(),
                    ),
                };
                conn.post(&host, &target, &extra, body.as_bytes()).await?;
                let head = conn.read_head().await?;
                let mut answer = Vec::new();
                conn.read_to_end(&mut answer).await?;
                if head.status != 200 {
                    return Err(std::io::Error::other(format!(
                        "{target} answered {}: {}",
                        head.status,
                        String::from_utf8_lossy(&answer)
                    )));
                }
            }
        }
        PublishPath::WsFrame => {
            let mut sockets = Vec::new();
            for c in channels {
                let ws =
                    common::ws_connect(&args.server, &format!("/ch/{c}"), false, 0, 1, counters)
                        .await?;
                sockets.push(ws);
            }
            let frame = Bytes::from(text(size));
            for i in 0..n {
                let k = i % sockets.len();
                sockets[k]
                    .send(Message::Text(frame.clone()))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                // The publisher is its channel's subscriber: it reads its message back, or
                // the unread echoes stop its sends after a few dozen frames.
                match sockets[k].recv().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                    None => return Err(std::io::Error::other("the WebSocket closed")),
                }
            }
            // Every frame stored before the sockets go (the server reads in order).
            stored(args, channels, n).await?;
            for mut ws in sockets {
                let _ = ws.close(1000.into(), "").await;
            }
        }
        PublishPath::WsCommand => {
            let mut ws = common::ws_connect(&args.server, "/ws", false, 0, 1, counters).await?;
            let data = json_string(size);
            for i in 0..n {
                let channel = &channels[i % channels.len()];
                let cmd =
                    format!(r#"{{"id":{i},"op":"publish","channel":"{channel}","data":{data}}}"#);
                ws.send(Message::Text(Bytes::from(cmd)))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                // One reply per command: wait for it (the server answers in order).
                match ws.recv().await {
                    Some(Ok(Message::Text(t))) if t.windows(7).any(|w| w == b"\"error\"") => {
                        return Err(std::io::Error::other(format!(
                            "publish command refused: {}",
                            String::from_utf8_lossy(&t)
                        )));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                    None => return Err(std::io::Error::other("/ws closed")),
                }
            }
            let _ = ws.close(1000.into(), "").await;
        }
    }
    Ok(())
}

/// Waits until the channels hold `n` messages in all (the API's channel statistics).
async fn stored(args: &RetainedArgs, channels: &[String], n: usize) -> std::io::Result<()> {
    let counters = Arc::new(WireCounters::default());
    let auth = format!("Authorization: Bearer {}\r\n", args.api_key);
    for _ in 0..600 {
        let mut held = 0;
        for c in channels {
            let mut conn = HttpConn::new(net::connect(args.server.addr, 0, 1, &counters).await?);
            conn.get(&args.server.host(), &format!("/api/channels/{c}"), &auth)
                .await?;
            let head = conn.read_head().await?;
            let mut body = Vec::new();
            conn.read_to_end(&mut body).await?;
            if head.status == 200 {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                held += v["retained"].as_u64().unwrap_or(0) as usize;
            }
        }
        if held >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(std::io::Error::other(format!(
        "the server did not hold {n} messages within 30 s"
    )))
}

/// A native WebSocket subscriber that reads (and drops) everything until aborted.
async fn read_all(
    server: ServerArgs,
    channel: String,
    counters: Arc<WireCounters>,
) -> std::io::Result<()> {
    let mut ws =
        common::ws_connect(&server, &format!("/ch/{channel}"), false, 0, 1, &counters).await?;
    while let Some(m) = ws.recv().await {
        m.map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(())
}
