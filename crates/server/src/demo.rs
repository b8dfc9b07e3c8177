//! The demo pages (embedded in the binary): `/` links both, `/demo/chat` is a chat room
//! (`chat:ROOM`: the last messages on join, who is here, the transport in use, one forced
//! with `?transport=`), `/demo/ticker` shows prices that [`crate::ticker`] publishes
//! every second. Both run on the browser client this server serves at `/switchboard.js`
//! ([`crate::sdk`]): no hand-written transport code, no build step.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX: &str = include_str!("demo/index.html");
const CHAT: &str = include_str!("demo/chat.html");
const TICKER: &str = include_str!("demo/ticker.html");

/// The pages' content policy: scripts and connections to this origin only (the pages'
/// own inline scripts included), no framing by other sites (clickjacking), no plugins.
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
                   style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; \
                   img-src 'self' data:; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
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
