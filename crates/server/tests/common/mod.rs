//! Helpers shared by the integration tests: a server on 127.0.0.1:0 and small raw-HTTP
//! tools (each request on its own TCP connection).
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod paths;
pub(crate) mod raw_ws;

use std::time::Duration;

use futures_util::StreamExt;

use switchboard_server::config::Config;
use switchboard_server::server::{start, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const KEY: &str = "test-key";

/// A test configuration: loopback, port 0, an API key, a short long-poll hold.
pub(crate) fn config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_key: Some(KEY.into()),
        ..Config::default()
    };
    c.limits.longpoll_timeout_ms = 500;
    c.limits.shutdown_drain_ms = 3000;
    c
}

pub(crate) async fn server() -> Running {
    server_with(config()).await
}

pub(crate) async fn server_with(c: Config) -> Running {
    start(c).await.unwrap()
}

/// A server whose long-polls are held `ms` without news: long enough that a test can
/// tell an answer caused by something else from the timeout.
pub(crate) async fn server_holding_longpolls(ms: u64) -> Running {
    let mut c = config();
    c.limits.longpoll_timeout_ms = ms;
    server_with(c).await
}

/// Waits (bounded, polling) until `channel` has exactly `n` subscribers on this node.
pub(crate) async fn subscribers_become(r: &Running, channel: &str, n: usize) {
    bounded(async {
        while r.state.hub.subscriber_count(channel) != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Waits (bounded, polling) until the shared timer wheel holds exactly `n` registrations.
pub(crate) async fn wheel_holds(r: &Running, n: usize) {
    bounded(async {
        while r.state.clients.wheel().registered() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

pub(crate) fn url(r: &Running) -> String {
    format!("http://{}", r.addr)
}

/// Bounds a test step so a bug fails the test instead of hanging it.
pub(crate) async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step took too long")
}

/// A raw HTTP/1.1 request on a new connection with `Connection: close`; returns
/// (status, headers text, body bytes). Chunked bodies are de-chunked.
pub(crate) async fn raw(
    r: &Running,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    raw_at(r.addr, method, target, headers, body).await
}

/// [`raw`] to a server at `addr` (one the test did not start in process).
pub(crate) async fn raw_at(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    bounded(s.read_to_end(&mut buf)).await.unwrap();
    parse_response(&buf)
}

/// Reads one response (its body `content-length` bytes) off a kept-alive connection; `buf` holds
/// what was read past the previous one, and keeps what is read past this one.
pub(crate) async fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
    let len = bounded(async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    return end + 4 + len;
                }
            }
            let mut chunk = [0u8; 4096];
            let k = s.read(&mut chunk).await.unwrap();
            assert!(k > 0, "closed: {}", String::from_utf8_lossy(buf));
            buf.extend_from_slice(&chunk[..k]);
        }
    })
    .await;
    let one: Vec<u8> = buf.drain(..len).collect();
    parse_response(&one)
}

pub(crate) fn parse_response(buf: &[u8]) -> (u16, String, Vec<u8>) {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// A WebSocket client connection (tokio-tungstenite, an independent implementation).
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a WebSocket to `path`; returns it and the client id the server named.
pub(crate) async fn ws_open(r: &Running, path: &str) -> (Ws, String) {
    let (ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}{path}", r.addr))
        .await
        .unwrap();
    (ws, client_id(resp.headers()))
}

/// Connects a WebSocket to `path` asking for the compact format
/// (`Sec-WebSocket-Protocol: switchboard.compact`); the server must agree.
pub(crate) async fn ws_open_compact(r: &Running, path: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}{path}", r.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static(switchboard_proto::COMPACT_PROTOCOL),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        switchboard_proto::COMPACT_PROTOCOL
    );
    ws
}

/// The close frame the server sends (skipping anything before it).
pub(crate) async fn close_of(ws: &mut Ws) -> CloseFrame {
    bounded(async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return f,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
}

/// The client id a response names (`x-switchboard-client`).
pub(crate) fn client_id(headers: &http::HeaderMap) -> String {
    headers["x-switchboard-client"].to_str().unwrap().to_owned()
}

pub(crate) fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Opens a GET and reads until `done(bytes so far)` holds; returns the bytes.
pub(crate) async fn read_until(
    addr: std::net::SocketAddr,
    target: &str,
    headers: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    bounded(async {
        while !done(&String::from_utf8_lossy(&buf)) {
            let mut chunk = vec![0u8; 8192];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "ended early: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The next text frame of `ws` as JSON (pings and pongs skipped).
pub(crate) async fn ws_json(ws: &mut Ws) -> serde_json::Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match bounded(ws.next()).await.unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Starts the `switchboard serve` binary with `args` (ignoring `SWITCHBOARD_API_KEY`,
/// `SWITCHBOARD_LISTEN` and `SWITCHBOARD_CONFIG` from the environment) and returns it
/// with the base URL its first line names (`http://…`, or `https://…` with TLS).
pub(crate) fn serve_process<I, S>(args: I) -> (std::process::Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .args(args)
        .env_remove("SWITCHBOARD_API_KEY")
        .env_remove("SWITCHBOARD_LISTEN")
        .env_remove("SWITCHBOARD_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("switchboard listening on ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();
    (child, base)
}

/// The server of a `switchboard bench` run started by a test: `config` written to a file in
/// a directory of its own (removed on drop), a free loopback port (a restarted server comes
/// back on it), and the `--server-cmd` that starts this build's binary there.
pub(crate) struct BenchServer {
    dir: std::path::PathBuf,
    port: u16,
    cmd: String,
}

impl BenchServer {
    pub(crate) fn new(name: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(&file, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cmd = format!(
            "{} serve --listen {{ADDR}} --config {}",
            env!("CARGO_BIN_EXE_switchboard"),
            file.display()
        );
        Self { dir, port, cmd }
    }

    /// Runs `switchboard bench MODE` against this server (`--addr`, `--server-cmd`, then
    /// `args`), asserts that it succeeded, and returns its JSON line.
    pub(crate) fn bench(&self, mode: &str, args: &[&str]) -> serde_json::Value {
        let addr = format!("127.0.0.1:{}", self.port);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["bench", mode, "--addr", &addr, "--server-cmd", &self.cmd])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
