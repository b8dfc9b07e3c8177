//! The client side of the Autobahn|Testsuite conformance run.
//!
//! `autobahn_client --url ws://127.0.0.1:9001 [--agent NAME] [--update-reports-only]`
//! asks the fuzzing server how many cases it has (`/getCaseCount`), runs each one
//! (`/runCase?case=N&agent=NAME`) by echoing every text and binary message until the
//! server closes, then asks it to write its reports (`/updateReports?agent=NAME`).
//! permessage-deflate is offered, so the compression cases (12.*, 13.*) negotiate it.
//! Used by `conformance/autobahn/run.sh client`.

use std::process::ExitCode;

use switchboard_ws_tokio::{self as ws, ClientConfig, DeflateConfig, Message};
use tokio::net::TcpStream;

struct Args {
    host: String,
    agent: String,
    update_reports_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut agent = "switchboard".to_owned();
    let mut update_reports_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--url" => url = it.next(),
            "--agent" => agent = it.next().ok_or("--agent needs a value")?,
            "--update-reports-only" => update_reports_only = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("usage: autobahn_client --url ws://HOST:PORT [--agent NAME]")?;
    let host = url
        .strip_prefix("ws://")
        .ok_or("the URL must start with ws://")?
        .trim_end_matches('/')
        .to_owned();
    Ok(Args {
        host,
        agent,
        update_reports_only,
    })
}

fn config() -> ClientConfig {
    let deflate = DeflateConfig {
        // Let the server choose; the suite checks every combination it offers.
        server_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    ClientConfig {
        deflate: Some(deflate.clone()),
        connection: ws::Config {
            max_frame_size: 32 << 20,
            max_message_size: 64 << 20,
            ping_interval: None,
            deflate: Some(deflate),
            ..ws::Config::default()
        },
        ..ClientConfig::default()
    }
}

async fn open(args: &Args, path: &str) -> ws::Result<ws::WebSocket<TcpStream>> {
    let stream = TcpStream::connect(&args.host).await?;
    stream.set_nodelay(true)?;
    let (socket, _) = ws::connect(stream, &args.host, path, &config()).await?;
    Ok(socket)
}

/// Echo text and binary messages until the connection ends; returns the first text.
async fn echo_until_closed(socket: &mut ws::WebSocket<TcpStream>, echo: bool) -> Option<String> {
    let mut first_text = None;
    while let Some(message) = socket.recv().await {
        match message {
            Ok(Message::Text(t)) => {
                if first_text.is_none() {
                    first_text = Some(String::from_utf8_lossy(&t).into_owned());
                }
                if echo {
                    let _ = socket.send(Message::Text(t)).await;
                }
            }
            Ok(Message::Binary(b)) => {
                if echo {
                    let _ = socket.send(Message::Binary(b)).await;
                }
            }
            Ok(_) => {}
            // Protocol errors: the close frame is queued; keep driving until the end.
            Err(e) => eprintln!("  {e}"),
        }
    }
    first_text
}

async fn run(args: &Args) -> ws::Result<()> {
    let agent = &args.agent;
    if !args.update_reports_only {
        let mut socket = open(args, "/getCaseCount").await?;
        let count = echo_until_closed(&mut socket, false).await;
        let count: u32 = count.and_then(|c| c.trim().parse().ok()).unwrap_or(0);
        eprintln!("{count} cases");
        for case in 1..=count {
            match open(args, &format!("/runCase?case={case}&agent={agent}")).await {
                Ok(mut socket) => {
                    echo_until_closed(&mut socket, true).await;
                }
                Err(e) => eprintln!("case {case}: {e}"),
            }
        }
    }
    let mut socket = open(args, &format!("/updateReports?agent={agent}")).await?;
    echo_until_closed(&mut socket, false).await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}
