//! The schedule of connection ends: at a steady rate, one end of a kind picked at random
//! from both sides. Client side: the relay resets a connection, closes it cleanly, or
//! cuts it in the middle of what the server was sending; or a subscriber closes its own
//! connection (a WebSocket close handshake, or dropping the response), a third of them
//! staying away while 25 to 40 messages are published on their channel before resuming. Server side: the backend API's
//! `POST /api/disconnect {"client": ID}` on a client picked from a channel's presence.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use switchboard_client::ApiClient;

use crate::proxy::{Cut, Proxy};
use crate::subscriber::Subscriber;

/// What the schedule did besides the relay's own counts.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) leaves: AtomicU64,
    pub(crate) disconnect_calls: AtomicU64,
    pub(crate) disconnected: AtomicU64,
}

/// Causes one end of a kind picked at random.
pub(crate) fn one(
    proxy: &Proxy,
    subs: &[Subscriber],
    api: &ApiClient,
    channels: &[String],
    counts: &Arc<Counts>,
) {
    let mut rng = rand::rng();
    match rng.random_range(0..100) {
        0..25 => {
            proxy.cut_random(Cut::Rst);
        }
        25..45 => {
            proxy.cut_random(Cut::Fin);
        }
        45..60 => {
            proxy.cut_random(Cut::MidRead);
        }
        60..80 => {
            let sub = &subs[rng.random_range(0..subs.len())];
            let away = if rng.random_range(0..3) == 0 {
                rng.random_range(25..40)
            } else {
                0
            };
            if sub.leave.try_send(away).is_ok() {
                counts.leaves.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => {
            let channel = channels[rng.random_range(0..channels.len())].clone();
            tokio::spawn(disconnect_one(api.clone(), channel, counts.clone()));
        }
    }
}

/// Ends one connection from the server side: a client picked at random from `channel`'s
/// presence, by the backend API.
async fn disconnect_one(api: ApiClient, channel: String, counts: Arc<Counts>) {
    let bound = Duration::from_secs(5);
    let Ok(Ok(presence)) = tokio::time::timeout(bound, api.presence(&channel)).await else {
        return;
    };
    let Some(clients) = presence["clients"].as_array().filter(|c| !c.is_empty()) else {
        return;
    };
    let pick = &clients[rand::rng().random_range(0..clients.len())]["client"];
    let body = serde_json::json!({ "client": pick });
    counts.disconnect_calls.fetch_add(1, Ordering::Relaxed);
    if let Ok(Ok(answer)) = tokio::time::timeout(bound, api.disconnect(body)).await {
        let n = answer["disconnected"].as_u64().unwrap_or(0);
        counts.disconnected.fetch_add(n, Ordering::Relaxed);
    }
}
