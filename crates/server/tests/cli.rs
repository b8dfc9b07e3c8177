//! The `switchboard` binary: `serve` (config file, flags over file, the listening line,
//! graceful exit on SIGTERM, `--redis` refused without the `redis` feature, `--workers`) and `publish`
//! (a backend API client).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{bounded, url, KEY};
use switchboard_client::{Client, ReceivedData, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Runs the binary off the test's runtime thread (the server under test runs on it).
async fn run(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("SWITCHBOARD_API_KEY")
            .output()
    });
    bounded(out).await.unwrap().unwrap()
}

#[tokio::test]
async fn publish_command_uses_the_backend_api() {
    let srv = common::server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let mut sub = client
        .subscribe(Transport::WebSocket, &[("cli", None)])
        .await
        .unwrap();
    let base = url(&srv);
    let out = run(&[
        "publish",
        "cli",
        r#"{"from":"cli"}"#,
        "--url",
        &base,
        "--api-key",
        KEY,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = bounded(sub.next()).await.unwrap();
    assert_eq!(env.data, ReceivedData::Json(r#"{"from":"cli"}"#.into()));
    assert_eq!(
        env.cursor.unwrap().to_string(),
        answer["cursor"].as_str().unwrap()
    );

    let out = run(&[
        "publish",
        "cli",
        "plain words",
        "--url",
        &base,
        "--api-key",
        KEY,
    ])
    .await;
    assert!(out.status.success());
    assert_eq!(
        bounded(sub.next()).await.unwrap().data,
        ReceivedData::Json("\"plain words\"".into())
    );

    // A script retrying with its own key publishes once.
    let keyed = ["publish", "cli", "7", "--url", &base, "--api-key", KEY];
    let keyed = [&keyed[..], &["--idempotency-key", "script-run-1"]].concat();
    let first: serde_json::Value = serde_json::from_slice(&run(&keyed).await.stdout).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&run(&keyed).await.stdout).unwrap();
    assert_eq!(first["cursor"], again["cursor"]);
    assert_eq!(
        (first.get("duplicate"), &again["duplicate"]),
        (None, &true.into())
    );
    let out = run(&["publish", "cli", "8", "--url", &base, "--api-key", KEY]).await;
    assert!(out.status.success());
    let seven = bounded(sub.next()).await.unwrap();
    assert_eq!(seven.data, ReceivedData::Json("7".into()));
    let eight = bounded(sub.next()).await.unwrap();
    assert_eq!(eight.data, ReceivedData::Json("8".into()), "7 came once");

    let out = run(&["publish", "cli", "x", "--url", &base]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("API key"), "{err}");
    sub.close().await;
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn serve_reads_config_file_flags_win_and_exits_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("sb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switchboard.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\napi_key = \"from-file\"\n[namespaces.default]\nclient_publish = false\n",
    )
    .unwrap();
    let (mut child, base) = common::serve_process([
        "--config",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!base.ends_with(":1"), "the flag wins over the file: {base}");

    // The file's settings apply: its key opens the API, its namespace forbids clients.
    let api = switchboard_client::ApiClient::new(&base, Some("from-file".into())).unwrap();
    api.publish("room", serde_json::json!(1)).await.unwrap();
    let client = Client::new(&base).unwrap();
    match client.publish("room", "x", None).await {
        Err(switchboard_client::Error::Status { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = bounded(tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A build without the `redis` feature refuses `--redis` and says how to get it (with the
/// feature, `redis_nodes.rs` covers `--redis`).
#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn serve_without_the_redis_feature_refuses_redis_with_a_reason() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            "redis://127.0.0.1:6390",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features redis"), "{err}");
}

#[tokio::test]
async fn serve_refuses_a_bad_config_with_a_reason() {
    let out = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/switchboard.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/switchboard.toml"));
}

/// `--listen localhost:0` resolves the name; a file naming one namespace keeps the
/// built-in `default` and `ticker` (merged over them, not replacing them).
#[tokio::test]
async fn serve_resolves_a_host_name_and_keeps_the_built_in_namespaces() {
    let dir = std::env::temp_dir().join(format!("sb-cli-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, "[namespaces.news]\nhistory_size = 10\n").unwrap();
    let (mut child, base) = common::serve_process([
        "--listen",
        "localhost:0",
        "--config",
        file.to_str().unwrap(),
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let client = Client::new(&base).unwrap();
    client.publish("room", "x", None).await.unwrap();
    client.publish("news:today", "x", None).await.unwrap();
    match client.publish("ticker:ACME", "x", None).await {
        Err(switchboard_client::Error::Status { status: 403, .. }) => {}
        other => panic!("the ticker stays closed to clients: {other:?}"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn serve_names_the_address_already_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["serve", "--listen", &addr]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"),
        "{err}"
    );
}

/// `--workers N` runs N event loops, a thread each: one (one thread in all) or two serve
/// a publish and deliver it to a WebSocket and an SSE subscriber; none is refused with
/// the flag named.
#[tokio::test]
async fn serve_takes_a_worker_count() {
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--workers", "0"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers"), "{err}");

    for workers in [1, 2] {
        let n = workers.to_string();
        let (mut child, base) =
            common::serve_process(["--listen", "127.0.0.1:0", "--workers", n.as_str()]);
        let client = Client::new(&base).unwrap();
        // Everything runs under a timeout, so the server is stopped whatever happens.
        let delivered = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            let mut ws = client
                .subscribe(Transport::WebSocket, &[("room", None)])
                .await?;
            let mut sse = client.subscribe(Transport::Sse, &[("room", None)]).await?;
            client.publish("room", "x", None).await?;
            Ok::<_, switchboard_client::Error>((ws.next().await?, sse.next().await?))
        })
        .await;
        // One thread per loop, and no other but the allocator's background thread, which
        // returns freed pages (main.rs); and a listening socket per loop.
        let threads = std::fs::read_dir(format!("/proc/{}/task", child.id())).map(|d| {
            d.filter(|t| {
                let comm = t.as_ref().map(|t| t.path().join("comm")).ok();
                comm.and_then(|c| std::fs::read_to_string(c).ok())
                    .is_none_or(|name| name.trim() != "jemalloc_bg_thd")
            })
            .count()
        });
        let listening = listening_sockets(&base);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            threads.unwrap(),
            workers,
            "threads of `serve --workers {n}`"
        );
        assert_eq!(
            listening, workers,
            "listening sockets of `serve --workers {n}`"
        );
        let (a, b) = delivered.expect("in time").unwrap();
        for got in [a, b] {
            assert_eq!(got.data, ReceivedData::Json("\"x\"".into()), "{got:?}");
        }
    }
}

/// IPv4 sockets listening on the port of `base` (`http://127.0.0.1:PORT`), from
/// `/proc/net/tcp` (state `0A` is LISTEN).
fn listening_sockets(base: &str) -> usize {
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        })
        .count()
}

#[tokio::test]
async fn publish_names_the_url_it_could_not_reach() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&["publish", "room", "x", "--url", &url]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach the server at {url}")),
        "{err}"
    );
}

#[tokio::test]
async fn help_describes_the_product() {
    let out = run(&["--help"]).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("real-time messaging server"), "{help}");
    assert!(
        help.contains("switchboard serve") && help.contains("docs/guide"),
        "{help}"
    );
    assert!(
        !help.contains(env!("CARGO_PKG_DESCRIPTION")),
        "not the crate's description: {help}"
    );
}
