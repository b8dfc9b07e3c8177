//! The demo ticker's publisher: while the server runs (and demos are on), publishes a
//! JSON array of fake quotes `[{"symbol","price","change"},…]` to `ticker:prices` about
//! once a second; stops when shutdown begins.

use std::time::Duration;

use bytes::Bytes;

use switchboard_hub::{Hub, Payload};

use crate::shutdown::ShutdownSignal;

/// The channel the ticker publishes to.
pub const CHANNEL: &str = "ticker:prices";

const SYMBOLS: [(&str, f64); 5] = [
    ("ACME", 120.0),
    ("GLOBX", 54.5),
    ("INITECH", 13.2),
    ("UMBR", 310.0),
    ("WONKA", 88.8),
];

/// Runs until `shutdown` fires.
pub async fn run(hub: Hub, shutdown: ShutdownSignal, every: Duration) {
    let mut prices: Vec<f64> = SYMBOLS.iter().map(|(_, p)| *p).collect();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let mut quotes = Vec::with_capacity(SYMBOLS.len());
        for ((symbol, _), price) in SYMBOLS.iter().zip(prices.iter_mut()) {
            // A random walk of up to ±1 %, never below 1.
            let change = *price * (rand::random::<f64>() - 0.5) * 0.02;
            *price = (*price + change).max(1.0);
            quotes.push(serde_json::json!({ "symbol": symbol, "price": *price, "change": change }));
        }
        let body = serde_json::Value::Array(quotes).to_string();
        if let Err(e) = hub
            .publish(CHANNEL, Payload::json_prevalidated(Bytes::from(body)))
            .await
        {
            tracing::warn!(error = %e, "ticker publish failed");
        }
    }
}
