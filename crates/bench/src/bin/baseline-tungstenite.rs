//! `baseline-tungstenite [--listen ADDR]`: a minimal tokio-tungstenite server for the
//! generator to compare against, written the way that crate's examples are.
//!
//! `/ch/NAME`: a subscriber of channel NAME; text and binary messages it sends are
//! broadcast to every subscriber of NAME (itself included). Any other path echoes.
//! One task per connection, a `tokio::sync::broadcast` channel per channel name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

type Channels = Arc<Mutex<HashMap<String, broadcast::Sender<Message>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = listen_addr();
    let listener = TcpListener::bind(&listen).await?;
    eprintln!(
        "baseline-tungstenite listening on {}",
        listener.local_addr()?
    );
    let channels = Channels::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, channels.clone()));
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
    "127.0.0.1:9001".into()
}

async fn serve(stream: TcpStream, channels: Channels) {
    let mut path = String::new();
    // The signature is tungstenite's `Callback`; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some(name) = path.strip_prefix("/ch/") else {
        // Echo.
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                break;
            }
        }
        return;
    };
    let tx = {
        let Ok(mut map) = channels.lock() else { return };
        map.entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    };
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    let _ = tx.send(m);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            r = rx.recv() => match r {
                Ok(m) => {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}
