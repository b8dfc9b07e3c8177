//! `baseline-fastws [--listen ADDR]`: a minimal fastwebsockets server (hyper upgrade) for
//! the generator to compare against, written the way that crate's examples are.
//!
//! `/ch/NAME`: a subscriber of channel NAME; text and binary messages it sends are
//! broadcast to every subscriber of NAME (itself included). Any other path echoes.
//! A subscriber is split in two: a reader task publishing what it receives and a writer
//! task forwarding a `tokio::sync::broadcast` channel per channel name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fastwebsockets::{
    upgrade, FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError,
};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

type Channels = Arc<Mutex<HashMap<String, broadcast::Sender<Bytes>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = listen_addr();
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("baseline-fastws listening on {}", listener.local_addr()?);
    let channels = Channels::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let channels = channels.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, channels.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn listen_addr() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--listen" {
            if let Some(v) = args.next() {
                return v;
            }
        }
    }
    "127.0.0.1:9002".into()
}

async fn handle(
    mut req: Request<Incoming>,
    channels: Channels,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let path = req.uri().path().to_owned();
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let Ok(ws) = fut.await else { return };
        match path.strip_prefix("/ch/") {
            Some(name) => {
                let _ = subscriber(ws, name, &channels).await;
            }
            None => {
                let _ = echo(FragmentCollector::new(ws)).await;
            }
        }
    });
    Ok(response)
}

type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

async fn echo(mut ws: FragmentCollector<Upgraded>) -> Result<(), WebSocketError> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn subscriber(
    ws: fastwebsockets::WebSocket<Upgraded>,
    name: &str,
    channels: &Channels,
) -> Result<(), WebSocketError> {
    let tx = {
        let mut map = channels
            .lock()
            .map_err(|_| WebSocketError::ConnectionClosed)?;
        map.entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    };
    let mut rx = tx.subscribe();
    let (read, mut write) = ws.split(tokio::io::split);
    let writer = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(b) => {
                    if write
                        .write_frame(Frame::text(Payload::Borrowed(&b)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let mut read = FragmentCollectorRead::new(read);
    // Pongs and close replies would go through the writer; the generator sends neither
    // pings nor closes it waits on, so they are dropped here.
    let mut obligated = |_: Frame<'_>| async { Ok::<(), WebSocketError>(()) };
    let res = loop {
        match read.read_frame(&mut obligated).await {
            Ok(f) if matches!(f.opcode, OpCode::Text | OpCode::Binary) => {
                let _ = tx.send(Bytes::copy_from_slice(&f.payload));
            }
            Ok(f) if f.opcode == OpCode::Close => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    writer.abort();
    res
}
