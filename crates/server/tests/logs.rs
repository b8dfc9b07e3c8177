//! What `switchboard serve` logs, read from the real binary's stderr written to a file:
//! at `RUST_LOG=trace`, after requests with the API key, a wrong key, a client token
//! (header, query, WebSocket) and a wrong one, no secret appears; no ANSI escape reaches
//! a file; each connection has its `opened` and `closed` lines in its `conn` span, and
//! each refused request a `request failed` line; `--log-format json` writes one JSON
//! object a line, the connection's span on the lines about it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{bounded, raw_at};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

const API_KEY: &str = "api-key-SECRET-7f3a91d2";
const WRONG_API_KEY: &str = "wrong-key-SECRET-c02b55e1";
const TOKEN_SECRET: &str = "token-secret-SECRET-5e8d4420a1b9c3f7e6d5";
const OTHER_SECRET: &str = "other-secret-SECRET-99a0b1c2d3e4f5a6b7c8";

/// A `switchboard serve` whose stderr goes to a file.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Served {
    async fn start(name: &str, rust_log: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("sb-logs-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("stderr.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", rust_log)
            .env("SWITCHBOARD_API_KEY", API_KEY)
            .env("SWITCHBOARD_TOKEN_SECRET", TOKEN_SECRET)
            .env_remove("SWITCHBOARD_LISTEN")
            .env_remove("SWITCHBOARD_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = bounded(tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        }))
        .await
        .unwrap();
        let addr = line
            .trim()
            .strip_prefix("switchboard listening on http://")
            .unwrap_or_else(|| panic!("no listening line: {line:?}"))
            .parse()
            .unwrap();
        Self { child, addr, log }
    }

    /// Stops the server (SIGTERM, graceful) and returns everything it logged.
    async fn stop(self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let mut child = self.child;
        let status = bounded(tokio::task::spawn_blocking(move || child.wait()))
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
        let text = std::fs::read_to_string(&self.log).unwrap();
        std::fs::remove_dir_all(self.log.parent().unwrap()).unwrap();
        text
    }
}

/// An HS256 client token for `sub`, valid ten minutes, signed with `secret`.
fn token(secret: &str, sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({ "sub": sub, "exp": exp });
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

/// Opens an SSE subscription, reads its first bytes and hangs up.
async fn sse_and_hang_up(addr: SocketAddr, target: &str) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = bounded(s.read(&mut buf)).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Requests that carry every kind of secret, right and wrong.
async fn traffic_with_secrets(addr: SocketAddr, good: &str, bad: &str) {
    let publish = br#"{"channel":"room","data":{"n":1}}"#;
    let bearer = format!("Bearer {API_KEY}");
    let (status, ..) = raw_at(
        addr,
        "POST",
        "/api/publish",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        publish,
    )
    .await;
    assert_eq!(status, 200);
    let (status, ..) = raw_at(
        addr,
        "POST",
        "/api/publish",
        &[
            ("X-Api-Key", WRONG_API_KEY),
            ("Content-Type", "application/json"),
        ],
        publish,
    )
    .await;
    assert_eq!(status, 401);

    let good_bearer = format!("Bearer {good}");
    let bad_bearer = format!("Bearer {bad}");
    let poll = "/ch/room?transport=poll&since=oldest";
    let (status, ..) = raw_at(addr, "GET", poll, &[("Authorization", &good_bearer)], b"").await;
    assert_eq!(status, 200);
    let (status, ..) = raw_at(addr, "GET", poll, &[("Authorization", &bad_bearer)], b"").await;
    assert_eq!(status, 401);
    let (status, ..) = raw_at(addr, "GET", &format!("{poll}&token={good}"), &[], b"").await;
    assert_eq!(status, 200);
    let (status, ..) = raw_at(addr, "GET", &format!("{poll}&token={bad}"), &[], b"").await;
    assert_eq!(status, 401);

    sse_and_hang_up(addr, &format!("/ch/room?token={good}")).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={good}"))
        .await
        .unwrap();
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = bounded(futures_util::StreamExt::next(&mut ws)).await {}
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={bad}")).await;
    assert!(refused.is_err(), "a wrong token is refused");
}

fn assert_no_secret(log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!log.contains(secret), "{secret:?} is in the log");
    }
}

/// The lines of `log` that sit in a connection's span (text format).
fn conn_lines<'a>(log: &'a str, message: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains("conn{conn=") && l.contains(message))
        .collect()
}

#[tokio::test]
async fn a_trace_log_holds_no_secret_and_no_ansi_escape() {
    let good = token(TOKEN_SECRET, "alice");
    let bad = token(OTHER_SECRET, "mallory");
    let srv = Served::start("trace", "trace", &[]).await;
    traffic_with_secrets(srv.addr, &good, &bad).await;
    let log = srv.stop().await;

    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    let (good_sig, bad_sig) = (signature(&good), signature(&bad));
    assert_no_secret(
        &log,
        &[
            API_KEY,
            WRONG_API_KEY,
            TOKEN_SECRET,
            OTHER_SECRET,
            &good,
            &bad,
            &good_sig,
            &bad_sig,
        ],
    );
    assert!(!log.contains('\u{1b}'), "no ANSI escape in a file");

    // The connection lines are there, in their spans (so this log is not empty by
    // accident, and the secrets were near the lines that might have shown them).
    let opened = conn_lines(&log, "opened");
    let closed = conn_lines(&log, "closed");
    assert!(opened.len() >= 8, "{log}");
    assert_eq!(opened.len(), closed.len(), "{log}");
    assert!(
        closed.iter().all(|l| l.contains("duration_ms=")),
        "{closed:#?}"
    );
    for transport in ["poll", "sse", "websocket", "http"] {
        assert!(
            closed
                .iter()
                .any(|l| l.contains(&format!("transport={transport}"))
                    || l.contains(&format!("transport=\"{transport}\""))),
            "a closed {transport} connection: {closed:#?}"
        );
    }
    let failed = conn_lines(&log, "request failed");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("status=401") && l.contains("invalid_token")),
        "{failed:#?}"
    );
    assert!(
        failed
            .iter()
            .any(|l| l.contains("status=401") && l.contains("unauthorized")),
        "{failed:#?}"
    );
}

#[tokio::test]
async fn json_lines_parse_and_carry_the_connection() {
    let srv = Served::start("json", "debug", &["--log-format", "json"]).await;
    let (status, ..) = raw_at(
        srv.addr,
        "GET",
        "/ch/room?transport=poll&since=x:y",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 400);
    sse_and_hang_up(srv.addr, "/ch/room").await;
    let log = srv.stop().await;

    assert!(!log.contains('\u{1b}'), "no ANSI escape in JSON");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let with_message = |m: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == m)
            .collect()
    };
    let opened = with_message("opened");
    assert_eq!(opened.len(), 2, "{log}");
    for line in &opened {
        assert!(line["span"]["conn"].is_u64(), "{line}");
        assert!(line["span"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
    }
    let failed = with_message("request failed");
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(failed[0]["fields"]["status"], 400);
    assert_eq!(failed[0]["fields"]["error"], "malformed_cursor");
    assert_eq!(failed[0]["span"]["conn"], opened[0]["span"]["conn"]);
    let message = failed[0]["fields"]["detail"].as_str().unwrap();
    assert_eq!(message.matches("malformed cursor").count(), 1, "{message}");

    let closed = with_message("closed");
    assert_eq!(closed.len(), 2, "{log}");
    let sse = closed
        .iter()
        .find(|l| l["span"]["transport"] == "sse")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(sse["span"]["channels"], 1);
    assert_eq!(sse["span"]["close"], "peer closed");
    assert!(sse["fields"]["duration_ms"].is_u64());
}
