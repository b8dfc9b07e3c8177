//! The five transports, each a thin driver between the hub and one wire format, and what
//! they share: which transport a request asks for, its channels and cursors, and a
//! [`Feed`] merging several subscriptions.
//!
//! Choosing the transport for `GET /ch/NAME` (first match wins):
//! 1. `Upgrade: websocket` → [`websocket`];
//! 2. `?transport=sse|stream|longpoll|poll` → that one;
//! 3. `Accept: text/event-stream` → [`sse`];
//! 4. otherwise → [`poll`] (so `fetch("/ch/NAME?since=C")` works as is).
//!
//! `GET /sub?channel=NAME[@CURSOR]&channel=…` subscribes to several channels with one
//! cursor each over SSE, stream, long-poll or poll (same choice, minus WebSocket: the
//! multiplexed WebSocket is `/ws`).

pub mod live;
pub mod longpoll;
pub mod poll;
pub mod sse;
pub mod stream;
pub mod websocket;

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use futures_util::future::select_all;
use switchboard_proto::Cursor;

use crate::error::ServerError;
use crate::hub::{Item, Subscriber};
use crate::state::AppState;

/// Which transport a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WebSocket,
    Sse,
    Stream,
    LongPoll,
    Poll,
}

/// One channel of a request and where to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub channel: String,
    pub since: Option<Cursor>,
}

/// The parsed query of a subscribe request.
#[derive(Debug, Default)]
pub struct SubQuery {
    /// `transport=`
    pub transport: Option<String>,
    /// `since=` (native endpoint).
    pub since: Option<String>,
    /// `channel=` values (`/sub`).
    pub channels: Vec<String>,
    /// `user=`: an optional user id for presence and disconnects (not authenticated).
    pub user: Option<String>,
}

impl SubQuery {
    /// Collects the known parameters; unknown ones are ignored.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut q = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "transport" => q.transport = Some(v),
                "since" => q.since = Some(v),
                "channel" => q.channels.push(v),
                "user" if !v.is_empty() && v.len() <= 128 => q.user = Some(v),
                _ => {}
            }
        }
        q
    }
}

/// Picks the transport (see the module docs).
pub fn choose(headers: &HeaderMap, query: &SubQuery) -> Result<Kind, ServerError> {
    let upgrade = headers.get_all(header::UPGRADE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        })
    });
    if upgrade {
        return Ok(Kind::WebSocket);
    }
    if let Some(t) = &query.transport {
        return match t.as_str() {
            "sse" => Ok(Kind::Sse),
            "stream" => Ok(Kind::Stream),
            "longpoll" => Ok(Kind::LongPoll),
            "poll" => Ok(Kind::Poll),
            "websocket" | "ws" => Err(ServerError::BadRequest(
                "transport=websocket needs a WebSocket upgrade request".into(),
            )),
            other => Err(ServerError::BadRequest(format!(
                "unknown transport {other:?}; use sse, stream, longpoll or poll"
            ))),
        };
    }
    let wants_sse = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains("text/event-stream")));
    Ok(if wants_sse { Kind::Sse } else { Kind::Poll })
}

/// Parses a cursor from a query or header value.
pub fn parse_cursor(s: &str) -> Result<Cursor, ServerError> {
    Cursor::parse(s.as_bytes()).map_err(|e| ServerError::MalformedCursor(e.to_string()))
}

/// Parses `/sub`'s `channel=NAME[@CURSOR]` values, checking names and policy.
pub fn parse_targets(state: &AppState, values: &[String]) -> Result<Vec<Target>, ServerError> {
    if values.is_empty() {
        return Err(ServerError::BadRequest(
            "no channel given; use /sub?channel=NAME[@CURSOR]&channel=...".into(),
        ));
    }
    let limit = state.config.limits.max_channels_per_request;
    if values.len() > limit {
        return Err(ServerError::TooManyChannels { limit });
    }
    let mut out: Vec<Target> = Vec::with_capacity(values.len());
    for v in values {
        let (name, since) = match v.split_once('@') {
            Some((n, c)) => (n, Some(parse_cursor(c)?)),
            None => (v.as_str(), None),
        };
        crate::channel::for_subscribe(&state.config, name)?;
        if out.iter().any(|t| t.channel == name) {
            return Err(ServerError::BadRequest(format!(
                "channel {name:?} is given twice"
            )));
        }
        out.push(Target {
            channel: name.to_owned(),
            since,
        });
    }
    Ok(out)
}

/// Several subscriptions read as one sequence. Each channel's order is kept; between
/// channels, items come in the order they are noticed.
#[derive(Debug)]
pub struct Feed {
    subs: Vec<Subscriber>,
    next: usize,
}

impl Feed {
    /// Subscribes to every target.
    pub fn open(state: &AppState, targets: &[Target]) -> Result<Self, ServerError> {
        let subs = targets
            .iter()
            .map(|t| state.hub.subscribe(&t.channel, t.since))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServerError::Broker(e.to_string()))?;
        Ok(Self { subs, next: 0 })
    }

    /// The subscriptions, in request order.
    pub fn subscribers(&self) -> &[Subscriber] {
        &self.subs
    }

    /// An item that is ready now, taking channels in turn.
    pub fn try_next(&mut self) -> Option<Item> {
        let n = self.subs.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            if let Some(item) = self.subs[idx].try_recv() {
                self.next = (idx + 1) % n;
                return Some(item);
            }
        }
        None
    }

    /// The next item, waiting for one.
    pub async fn next(&mut self) -> Item {
        if let Some(item) = self.try_next() {
            return item;
        }
        if self.subs.len() == 1 {
            return self.subs[0].recv().await;
        }
        let (item, _, _) = select_all(self.subs.iter_mut().map(|s| Box::pin(s.recv()))).await;
        item
    }
}

/// The channel name an item belongs to.
pub fn item_channel(item: &Item) -> Arc<str> {
    match item {
        Item::Message(m) => Arc::from(m.channel()),
        Item::Reset { channel, .. } => channel.clone(),
    }
}

/// Headers for responses that stream: no caching, no proxy buffering.
pub fn streaming_headers(content_type: &'static str) -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache, no-store"),
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn transport_choice() {
        let q = |t: Option<&str>| SubQuery {
            transport: t.map(str::to_owned),
            ..SubQuery::default()
        };
        let mut h = HeaderMap::new();
        assert_eq!(choose(&h, &q(None)).ok(), Some(Kind::Poll));
        assert_eq!(choose(&h, &q(Some("longpoll"))).ok(), Some(Kind::LongPoll));
        assert_eq!(choose(&h, &q(Some("stream"))).ok(), Some(Kind::Stream));
        assert!(choose(&h, &q(Some("carrier-pigeon"))).is_err());
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        assert_eq!(choose(&h, &q(None)).ok(), Some(Kind::Sse));
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert_eq!(choose(&h, &q(Some("poll"))).ok(), Some(Kind::WebSocket));
    }
}
