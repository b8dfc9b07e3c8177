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
//! `GET /sub?channel=NAME[,SINCE]&channel=…` subscribes to several channels with one
//! start each over SSE, stream, long-poll or poll (same choice, minus WebSocket: the
//! multiplexed WebSocket is `/ws`).
//!
//! With client tokens on, a subscribe request may also carry subscription tokens for
//! private channels, `channel_token=JWT` (repeatable; each names its channel in its
//! `channel` claim), and a live connection with a token ends when the token expires
//! ([`expiry`]).
//!
//! Where a subscription starts (`?since=` on `/ch/NAME`, `SINCE` on `/sub`): a cursor
//! to resume after, `oldest` (with all the history held) or `last:N` (with the last N
//! messages); `?last=N` on `/ch/NAME` is `?since=last:N`. See [`join`].

pub mod expiry;
pub mod handoff;
pub mod http_command;
pub mod join;
pub mod live;
pub mod longpoll;
pub mod poll;
pub mod sse;
pub mod stream;
pub mod websocket;

use std::task::{Context, Poll};

use axum::http::{header, HeaderMap, HeaderValue};
use switchboard_hub::{
    ClientInfo, CloseReason, Message, RecvError, SubscribeOptions, Subscription,
};
use switchboard_proto::{Cursor, Since};
use switchboard_ws::handshake;

use crate::auth::Identity;
use crate::channel::Caller;
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::observe::counters::{self, Transport};
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

impl Kind {
    /// Its name, as `?transport=` says it (`websocket` for an upgrade).
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
            Self::Stream => "stream",
            Self::LongPoll => "longpoll",
            Self::Poll => "poll",
        }
    }
}

/// One channel of a request and where it starts (resolved by [`join::start`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub channel: String,
    pub since: Option<Since>,
}

/// The parsed query of a subscribe request.
#[derive(Debug, Default)]
pub struct SubQuery {
    /// `transport=`
    pub transport: Option<String>,
    /// `since=` (native endpoint).
    pub since: Option<String>,
    /// `last=N` (native endpoint): `since=last:N`.
    pub last: Option<String>,
    /// `channel=` values (`/sub`).
    pub channels: Vec<String>,
    /// `user=`: an optional user id for presence and disconnects (not authenticated;
    /// refused when client tokens are on).
    pub user: Option<String>,
    /// `channel_token=` values: subscription tokens for private channels.
    pub channel_tokens: Vec<String>,
    /// `format=compact` (a poll or long-poll of one channel): the compact body.
    pub compact: bool,
}

impl SubQuery {
    /// Collects the known parameters of a query string (percent- and `+`-decoded; a
    /// later value wins, `channel` collects every value); unknown ones are ignored. Only
    /// the values kept are copied.
    pub fn parse(query: Option<&str>) -> Self {
        let mut q = Self::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "transport" => q.transport = Some(v.into_owned()),
                "since" => q.since = Some(v.into_owned()),
                "last" => q.last = Some(v.into_owned()),
                "channel" => q.channels.push(v.into_owned()),
                "user" if !v.is_empty() && v.len() <= 128 => q.user = Some(v.into_owned()),
                "channel_token" => q.channel_tokens.push(v.into_owned()),
                "format" => q.compact = v == "compact",
                _ => {}
            }
        }
        q
    }
}

/// Who opens a connection or sends a subscribe request.
#[derive(Debug, Default, Clone)]
pub struct Principal {
    /// Its user id: the token's `sub` with tokens on, else `?user=` (not authenticated).
    pub user: Option<String>,
    /// What its connection token says (tokens on, a token given).
    pub identity: Option<Identity>,
    /// The channels its subscription tokens admit (`channel_token=`).
    pub admitted: Vec<String>,
}

impl Principal {
    /// The principal of `req`: the identity the front put in its extensions (taken out:
    /// a client token's, or the one the application's backend named), the user it names,
    /// and the channels of `query`'s subscription tokens (checked here: a refused one is
    /// the answer). With tokens off and no identity, `?user=` and nothing else.
    pub fn of<B>(
        state: &AppState,
        req: &mut http::Request<B>,
        query: &mut SubQuery,
    ) -> Result<Self, ServerError> {
        let identity = req.extensions_mut().remove::<Identity>();
        // A live status ticket (checked by the front) admits the status feed.
        let status = req
            .extensions_mut()
            .remove::<crate::observe::status::StatusPass>()
            .map(|_| crate::observe::status::CHANNEL.to_owned());
        let Some(verifier) = &state.auth else {
            let named = identity.as_ref().and_then(|i| i.user.as_deref());
            return Ok(Self {
                // A user the backend named is the user; `?user=` is not trusted over it.
                user: named.map(str::to_owned).or_else(|| query.user.take()),
                identity,
                admitted: status.into_iter().collect(),
            });
        };
        let user = identity
            .as_ref()
            .and_then(|i| i.user.as_deref().map(str::to_owned));
        let limit = state.config.limits.max_channels_per_request;
        if query.channel_tokens.len() > limit {
            return Err(ServerError::TooManyChannels { limit });
        }
        let mut admitted = query
            .channel_tokens
            .iter()
            .map(|t| verifier.subscription_channel(t, user.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        admitted.extend(status);
        Ok(Self {
            user,
            identity,
            admitted,
        })
    }

    /// The principal as the channel policy sees it.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            identity: self.identity.as_ref(),
            admitted: &self.admitted,
        }
    }

    /// When its connection token expires.
    pub fn expires(&self) -> Option<std::time::SystemTime> {
        self.identity.as_ref()?.expires
    }
}

/// Picks the transport (see the module docs).
pub fn choose(headers: &HeaderMap, query: &SubQuery) -> Result<Kind, ServerError> {
    let values = headers.get_all(header::UPGRADE).into_iter();
    let upgrade = handshake::list_contains_token(values.map(HeaderValue::as_bytes), "websocket");
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
    Cursor::parse(s.as_bytes()).map_err(ServerError::from)
}

/// Parses where a subscription starts: a cursor, `oldest` or `last:N`.
pub fn parse_since(s: &str) -> Result<Since, ServerError> {
    Since::parse(s.as_bytes()).map_err(|e| {
        ServerError::MalformedCursor(format!(
            "{} (or `oldest`, or `last:N` for the last N)",
            e.reason()
        ))
    })
}

/// The native endpoint's start: `?since=` or `?last=N` (not both).
pub fn native_since(query: &SubQuery) -> Result<Option<Since>, ServerError> {
    match (&query.since, &query.last) {
        (Some(_), Some(_)) => Err(ServerError::BadRequest(
            "give since= or last=, not both".into(),
        )),
        (Some(s), None) => parse_since(s).map(Some),
        (None, Some(n)) => n.parse().map(|n| Some(Since::Last(n))).map_err(|_| {
            ServerError::BadRequest(format!("last={n:?}: expected a count of messages"))
        }),
        (None, None) => Ok(None),
    }
}

/// Parses `/sub`'s `channel=NAME[,SINCE]` values, checking names and `caller`'s policy.
/// (`,` is not allowed in channel names, so the split is unambiguous.)
pub fn parse_targets(
    state: &AppState,
    caller: Caller<'_>,
    values: &[String],
) -> Result<Vec<Target>, ServerError> {
    if values.is_empty() {
        return Err(ServerError::BadRequest(
            "no channel given; use /sub?channel=NAME[,SINCE]&channel=...".into(),
        ));
    }
    let limit = state.config.limits.max_channels_per_request;
    if values.len() > limit {
        return Err(ServerError::TooManyChannels { limit });
    }
    let mut out: Vec<Target> = Vec::with_capacity(values.len());
    for v in values {
        let (name, since) = match v.split_once(',') {
            Some((n, c)) => (n, Some(parse_since(c)?)),
            None => (v.as_str(), None),
        };
        crate::channel::for_subscribe(state, caller, name)?;
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

/// A new connection's identity for presence and disconnects.
pub fn client_info(client: &ClientHandle) -> ClientInfo {
    let info = ClientInfo::new(client.id());
    match client.user() {
        Some(u) => info.with_user(u),
        None => info,
    }
}

/// What a [`Feed`] yields.
#[derive(Debug)]
pub enum FeedEvent {
    /// A message, `reset`, `join` or `leave` of one channel.
    Message(Message),
    /// One of the subscriptions ended (shutdown, disconnect, slow consumer, broker).
    Closed {
        channel: String,
        reason: CloseReason,
        resume_from: Cursor,
    },
}

/// Closes `client`'s subscriptions (as the backend's disconnect would have) when its user
/// was disconnected while they were being opened; call it once they all exist.
pub fn end_if_kicked_while_opening(state: &AppState, client: &ClientHandle) {
    if client.kicked_while_opening() {
        state.hub.disconnect(client.id());
    }
}

/// Several subscriptions read as one sequence, polled with the caller's task (no task
/// per subscription). Each channel's order is kept; channels are taken in turn. Its
/// subscriptions are counted per transport (`switchboard_subscriptions_by_transport`)
/// while it holds them.
#[derive(Debug, Default)]
pub struct Feed {
    subs: Vec<Subscription>,
    /// u32 (a connection's channels are few), so the transport fits in the same word.
    next: u32,
    /// Whose subscriptions these are (`None`: not counted, as `POST /ws`'s).
    transport: Option<Transport>,
}

// Every live connection keeps one: counting costs it no byte.
const _: () = assert!(std::mem::size_of::<Feed>() == 32);

impl Feed {
    /// Subscribes to every target as `client` (counted in presence where the namespace
    /// tracks it).
    pub async fn open(
        state: &AppState,
        targets: &[Target],
        client: &ClientHandle,
    ) -> Result<Self, ServerError> {
        Self::open_with(state, targets, client, SubscribeOptions::default()).await
    }

    /// [`Feed::open`] with hub options (long-polls leave presence out).
    pub async fn open_with(
        state: &AppState,
        targets: &[Target],
        client: &ClientHandle,
        options: SubscribeOptions,
    ) -> Result<Self, ServerError> {
        // Sized exactly: a connection keeps this Vec for its whole life.
        let mut feed = Self {
            subs: Vec::with_capacity(targets.len()),
            next: 0,
            transport: client.transport(),
        };
        for t in targets {
            let since = join::start(&state.hub, &t.channel, t.since).await?;
            let sub = state
                .hub
                .subscribe_with(&t.channel, since, client_info(client), options)
                .await?;
            feed.push(sub);
        }
        end_if_kicked_while_opening(state, client);
        Ok(feed)
    }

    /// An empty feed whose subscriptions count as `transport`'s.
    pub fn of(transport: Transport) -> Self {
        Self {
            subs: Vec::new(),
            next: 0,
            transport: Some(transport),
        }
    }

    /// Adds a subscription.
    pub fn push(&mut self, sub: Subscription) {
        self.subs.push(sub);
        if let Some(t) = self.transport {
            counters::subscribed_as(t, 1);
        }
    }

    /// Removes the subscription to `channel`; whether there was one.
    pub fn remove(&mut self, channel: &str) -> bool {
        let before = self.subs.len();
        self.subs.retain(|s| s.channel() != channel);
        self.next = 0;
        let removed = before - self.subs.len();
        if let Some(t) = self.transport {
            counters::unsubscribed_as(t, removed);
        }
        removed > 0
    }

    /// Whether a subscription to `channel` exists.
    pub fn contains(&self, channel: &str) -> bool {
        self.subs.iter().any(|s| s.channel() == channel)
    }

    /// The subscriptions, in order.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subs
    }

    /// Each subscription's position (the cursor of the last event taken), in order.
    pub fn positions(&self) -> impl Iterator<Item = Cursor> + '_ {
        self.subs.iter().map(Subscription::position)
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    fn step(&mut self, idx: usize, r: Result<Message, RecvError>) -> Option<FeedEvent> {
        match r {
            Ok(m) => {
                // Below the length, which a u32 holds (see `next`).
                self.next = u32::try_from((idx + 1) % self.subs.len()).unwrap_or(0);
                Some(FeedEvent::Message(m))
            }
            // Informational: the subscription refills the gap from history itself.
            Err(RecvError::Lagged { .. }) => None,
            Err(RecvError::Closed {
                reason,
                resume_from,
            }) => Some(FeedEvent::Closed {
                channel: self.subs[idx].channel().to_owned(),
                reason,
                resume_from,
            }),
        }
    }

    /// An event that is ready now, taking channels in turn.
    pub fn try_next(&mut self) -> Option<FeedEvent> {
        let n = self.subs.len();
        for i in 0..n {
            let idx = (self.next as usize + i) % n;
            // A `Lagged` report is followed by more; keep draining that subscription.
            loop {
                match self.subs[idx].try_recv() {
                    Ok(None) => break,
                    Ok(Some(m)) => return self.step(idx, Ok(m)),
                    Err(e) => match self.step(idx, Err(e)) {
                        Some(ev) => return Some(ev),
                        None => continue,
                    },
                }
            }
        }
        None
    }

    /// Polls every subscription with `cx`.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<FeedEvent> {
        let n = self.subs.len();
        for i in 0..n {
            let idx = (self.next as usize + i) % n;
            loop {
                match self.subs[idx].poll_recv(cx) {
                    Poll::Pending => break,
                    Poll::Ready(r) => {
                        if let Some(ev) = self.step(idx, r) {
                            return Poll::Ready(ev);
                        }
                    }
                }
            }
        }
        Poll::Pending
    }

    /// The next event, waiting for one (forever when there is no subscription).
    pub async fn next(&mut self) -> FeedEvent {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(t) = self.transport {
            counters::unsubscribed_as(t, self.subs.len());
        }
    }
}

/// Response header naming the connection's client id (for presence and for
/// `POST /api/disconnect {"client": ID}`).
pub const CLIENT_ID_HEADER: &str = "x-switchboard-client";

/// Adds [`CLIENT_ID_HEADER`] to a response.
pub fn with_client_id(mut resp: axum::response::Response, id: &str) -> axum::response::Response {
    if let Ok(v) = header::HeaderValue::from_str(id) {
        resp.headers_mut()
            .insert(header::HeaderName::from_static(CLIENT_ID_HEADER), v);
    }
    resp
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

    #[test]
    fn query_parsing_decodes_collects_channels_and_bounds_the_user() {
        let q = SubQuery::parse(Some(
            "channel=a%3Ab,1:2&channel=c&since=7%3A9&transport=poll&transport=longpoll&user=al+ice&x=1",
        ));
        assert_eq!(q.channels, ["a:b,1:2", "c"]);
        assert_eq!(q.since.as_deref(), Some("7:9"));
        assert_eq!(
            q.transport.as_deref(),
            Some("longpoll"),
            "a later value wins"
        );
        assert_eq!(q.user.as_deref(), Some("al ice"));
        let long = format!("user={}", "u".repeat(129));
        assert_eq!(SubQuery::parse(Some(&long)).user, None);
        assert_eq!(SubQuery::parse(Some("user=")).user, None);
        let none = SubQuery::parse(None);
        assert!(none.channels.is_empty() && none.transport.is_none() && none.since.is_none());
    }

    #[test]
    fn native_start() {
        let at = |q: &str| native_since(&SubQuery::parse(Some(q))).map_err(|e| e.status().1);
        assert_eq!(at(""), Ok(None));
        assert_eq!(at("since=oldest"), Ok(Some(Since::Oldest)));
        assert_eq!(at("since=last%3A3"), Ok(Some(Since::Last(3))));
        assert_eq!(at("last=3"), Ok(Some(Since::Last(3))));
        assert_eq!(
            at("since=a:1"),
            Ok(Some(Since::After(Cursor::new(
                switchboard_proto::Epoch(0xa),
                1
            ))))
        );
        assert_eq!(at("last=x"), Err("bad_request"));
        assert_eq!(at("last=3&since=oldest"), Err("bad_request"));
        assert_eq!(at("since=newest"), Err("malformed_cursor"));
    }
}
