//! The demo pages (embedded in the binary): `/` links both, `/demo/chat` is a chat room
//! over the native WebSocket endpoint (or EventSource + POST with `?transport=sse`),
//! `/demo/ticker` shows prices that [`crate::ticker`] publishes every second. They use
//! only the browser's own WebSocket / EventSource / fetch.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX: &str = include_str!("demo/index.html");
const CHAT: &str = include_str!("demo/chat.html");
const TICKER: &str = include_str!("demo/ticker.html");

fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
}

/// Routes of the demo pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(INDEX) }))
        .route("/demo/chat", get(|| async { page(CHAT) }))
        .route("/demo/ticker", get(|| async { page(TICKER) }))
}
