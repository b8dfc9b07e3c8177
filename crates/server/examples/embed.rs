//! Switchboard inside another program: the whole server (every transport, the backend
//! API, the connection front's fast path) on a listener this program owns, with one
//! route of the program's own (`GET /hello`) and one WebSocket endpoint of its own
//! (`/shout`: every text message comes back in upper case and is published to the
//! channel `shouts`, which any Switchboard subscriber can follow).
//!
//! ```sh
//! cargo run -p switchboard-server --example embed            # 127.0.0.1:8090
//! cargo run -p switchboard-server --example embed -- 127.0.0.1:0
//! ```
//!
//! Then `websocat ws://127.0.0.1:8090/shout` and, in another shell,
//! `curl -N -H 'Accept: text/event-stream' http://127.0.0.1:8090/ch/shouts`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use switchboard_hub::Payload;
use switchboard_server::config::Config;
use switchboard_server::server::Builder;
use switchboard_server::transport::websocket::endpoint::{CloseFrame, Endpoint, Message, Session};

/// The `/shout` endpoint; `open` counts its open sessions.
#[derive(Debug, Default, Clone)]
pub struct Shout {
    pub open: Arc<AtomicUsize>,
}

impl Endpoint for Shout {
    fn on_open(&self, session: &Session) {
        self.open.fetch_add(1, Ordering::SeqCst);
        let _ = session.send_text(format!("welcome, {}", session.id()));
    }

    fn on_message(&self, session: &Session, message: Message) {
        let Some(text) = message.as_text() else {
            return;
        };
        let loud = text.to_uppercase();
        let _ = session.send_text(loud.clone());
        // Publishing waits for the broker: not on the connection's task.
        let hub = session.hub().clone();
        tokio::spawn(async move {
            if let Ok(payload) = Payload::text(loud.into()) {
                let _ = hub.publish("shouts", payload).await;
            }
        });
    }

    fn on_close(&self, session: &Session, frame: Option<CloseFrame>) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        println!("{} left: {frame:?}", session.id());
    }
}

/// The server this program runs: Switchboard's own routes, plus `/hello` and `/shout`.
pub fn builder(config: Config, shout: Shout) -> Builder {
    let hello = Router::new().route("/hello", get(|| async { "hello from the host program" }));
    Builder::new(config)
        .routes(hello)
        .websocket("/shout", shout)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let server = builder(Config::default(), Shout::default())
        .build()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    println!("embedded switchboard on http://{}", listener.local_addr()?);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server.serve(listener, stop).await;
    Ok(())
}
