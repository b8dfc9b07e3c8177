//! Async Rust client for every Switchboard transport.
//!
//! ```text
//!   Client::new("http://127.0.0.1:8080")              or https://… (feature `tls`)
//!     .with_token(jwt)                                 optional: a client token
//!     .with_tls_roots(TlsRoots::from_pem(ca)?)         optional: trust a private CA
//!     .subscribe(Transport::Sse, &[("room", None)])  → Subscription
//!        .next().await                                → Envelope (message / reset / join / leave)
//!        .cursor("room")                              → where a later subscribe resumes
//!     .publish("room", body, content_type)            → the message's cursor
//!   ApiClient::new(url, key)                          → the backend API (/api/...)
//! ```
//!
//! Every publish (`Client::publish`, `ApiClient::publish`, `publish_text`, `broadcast`)
//! carries an idempotency key of its own and is retried with it when its answer is lost
//! (connection error, timeout, 503): the server stores it once ([`retry`]).
//!
//! One channel uses the native endpoint `GET /ch/NAME` (WebSocket upgrade, `Accept:
//! text/event-stream`, `?transport=stream|longpoll|poll`); several channels use
//! `GET /sub?channel=NAME[,CURSOR]&...` (SSE, stream, long-poll, poll). Long-poll and poll
//! subscriptions re-issue their request with the latest cursor, each on a fresh TCP
//! connection (they are stateless on the server). A `reset` answer (history gone) is
//! delivered as an envelope with [`Event::Reset`] and the cursor to continue from (just
//! before the oldest message still held, which follow), with data `{"lost":N}` when the
//! number lost is known, on every transport. A binary message arrives as
//! [`ReceivedData::Binary`] on every transport (native SSE sends it as `event: binary`).

mod api;
mod connect;
mod endpoint;
mod error;
mod http;
pub mod retry;
mod sse;
mod subscription;
#[cfg(feature = "tls")]
mod tls;

pub use api::ApiClient;
pub use endpoint::Endpoint;
pub use error::Error;
pub use http::encode_component;
pub use retry::{new_key, Retry};
pub use sse::{SseEvent, SseParser};
pub use subscription::{Client, Subscription, Transport};
pub use switchboard_proto::{Cursor, Epoch, Event, ReceivedData, ReceivedEnvelope};
#[cfg(feature = "tls")]
pub use tls::TlsRoots;
