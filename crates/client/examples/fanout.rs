//! Fan-out cost of a running server, per server-CPU-second.
//!
//! Opens `--subscribers` WebSocket connections to `/ch/CHANNEL`, publishes `--messages`
//! messages over one `/ws` connection in windows of `--window` (each window waits until
//! every subscriber has everything sent so far, so no subscriber is ever a slow
//! consumer), and reads the server's CPU time (`utime + stime` of `/proc/PID/stat`)
//! before and after. Prints deliveries per server-CPU-second and per wall-clock second.
//!
//! ```text
//! switchboard serve --listen 127.0.0.1:8090 &   # release build
//! cargo run --release -p switchboard-client --example fanout -- \
//!     --url http://127.0.0.1:8090 --pid $! --subscribers 1000 --messages 2000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use switchboard_ws_tokio::{ClientConfig, Message};
use tokio::net::TcpStream;
use tokio::sync::Notify;

struct Args {
    url: String,
    pid: Option<u32>,
    subscribers: usize,
    messages: u64,
    window: u64,
    size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: "http://127.0.0.1:8080".into(),
        pid: None,
        subscribers: 1000,
        messages: 2000,
        window: 50,
        size: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => a.url = v,
            "--pid" => a.pid = Some(num(&v)? as u32),
            "--subscribers" => a.subscribers = num(&v)? as usize,
            "--messages" => a.messages = num(&v)?,
            "--window" => a.window = num(&v)?.max(1),
            "--size" => a.size = num(&v)? as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// The process's CPU time in seconds (all threads), from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks as f64 / 100.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let ep = switchboard_client::Endpoint::parse(&args.url)?;
    let channel = format!("fanout-{}", std::process::id());
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());

    for _ in 0..args.subscribers {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        tcp.set_nodelay(true)?;
        let (mut ws, _) = switchboard_ws_tokio::connect(
            tcp,
            &ep.authority(),
            &format!("/ch/{channel}"),
            &ClientConfig::default(),
        )
        .await?;
        let (received, progress) = (received.clone(), progress.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Text(_)) {
                    received.fetch_add(1, Ordering::Relaxed);
                    progress.notify_one();
                }
            }
        });
    }

    let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
    let (mut publisher, _) =
        switchboard_ws_tokio::connect(tcp, &ep.authority(), "/ws", &ClientConfig::default())
            .await?;
    let payload = "x".repeat(args.size);
    let cpu0 = args.pid.and_then(cpu_seconds);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < args.messages {
        let n = args.window.min(args.messages - sent);
        for i in 0..n {
            let cmd = format!(
                "{{\"id\":{},\"op\":\"publish\",\"channel\":\"{channel}\",\"data\":\"{payload}\"}}",
                sent + i
            );
            publisher.queue(Message::text(cmd))?;
        }
        publisher.flush().await?;
        sent += n;
        let want = sent * args.subscribers as u64;
        while received.load(Ordering::Relaxed) < want {
            tokio::select! {
                () = progress.notified() => {}
                // Keep reading the publisher's replies so its socket never backs up.
                r = publisher.recv() => { if r.is_none() { return Err("publisher closed".into()); } }
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let deliveries = args.messages * args.subscribers as u64;
    println!(
        "fanout: {} subscribers x {} messages of {} bytes = {deliveries} deliveries in {wall:.2} s \
         ({:.0}/s wall)",
        args.subscribers,
        args.messages,
        args.size,
        deliveries as f64 / wall
    );
    if let (Some(c0), Some(c1)) = (cpu0, args.pid.and_then(cpu_seconds)) {
        let cpu = c1 - c0;
        println!(
            "fanout: server CPU {cpu:.2} s -> {:.0} deliveries per server-CPU-second",
            deliveries as f64 / cpu.max(0.01)
        );
    }
    Ok(())
}
