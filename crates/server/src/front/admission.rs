//! The admission hook: one check that every request passes, whichever path answers it
//! (the front's own or hyper's), before any byte of its response is written.
//!
//! The front calls [`Admission::admit`] exactly once per request: for a request it
//! answers itself (streaming subscribes, polls and long-polls, WebSocket upgrades) right
//! after reading its head; for a request hyper reads (anything else: publishes, the
//! backend API, demo pages, requests with bodies), first thing in the service hyper
//! calls. A refusal is answered like any other failure: its status and a JSON body
//! (`{"error", "message"}`, [`crate::error`]), and nothing else of the request happens
//! (no subscription, no publish, no upgrade).
//!
//! The front's own checks run first, in this order, on the same [`Ask`]: the `Host` and
//! `Origin` checks ([`super::origin`]; a CORS preflight from an allowed origin is answered
//! there), the client token when tokens are on (`front/identify.rs`), then the hook a
//! program installed ([`Admission`], default [`AdmitAll`]). The hook sees only requests
//! the server's own checks let through.
//!
//! A check sees the request through an [`Ask`]: method, path and query, headers,
//! `Origin`, the bearer token (`Authorization: Bearer` or a `token` query parameter, the
//! only way `EventSource` and `WebSocket` can send one), the peer's address, and what
//! the request asks for ([`Ask::endpoint`]: which channels, over which transport). The
//! parts a check does not ask for are not computed, so the default ([`AdmitAll`]) costs
//! nothing per request.
//!
//! Commands sent later over an open connection (the `/ws` protocol's subscribe and
//! publish) are not requests: they are checked where they are executed.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use axum::http::{header, HeaderMap, Method, Uri};

use crate::error::ServerError;
use crate::transport::{self, Kind, SubQuery};

/// A check every request passes before it is answered (see the module docs).
pub trait Admission: Send + Sync + 'static {
    /// `Ok` lets `request` go on; an error is the answer (its status and JSON body).
    /// Called exactly once per request, before any response byte; it must not block.
    fn admit(&self, request: &Ask<'_>) -> Result<(), ServerError>;
}

/// The default: every request goes on.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: &Ask<'_>) -> Result<(), ServerError> {
        Ok(())
    }
}

/// What a check sees of one request (borrowed from it; see the module docs).
pub struct Ask<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    peer: SocketAddr,
}

impl fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers may carry secrets (tokens, cookies): only the request line and peer.
        f.debug_struct("Ask")
            .field("method", self.method)
            .field("path", &self.uri.path())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<'a> Ask<'a> {
    /// The request line and headers of a request from `peer`.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap, peer: SocketAddr) -> Self {
        Self {
            method,
            uri,
            headers,
            peer,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request path, as sent (percent-encoded).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string, as sent.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// Every request header.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The address of the connection's peer (a proxy's, behind a reverse proxy).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The `Origin` header (sent by browsers on cross-origin requests and on every
    /// WebSocket handshake), when it is text.
    pub fn origin(&self) -> Option<&'a str> {
        self.headers.get(header::ORIGIN)?.to_str().ok()
    }

    /// The bearer token: `Authorization: Bearer TOKEN`, else the `token` query parameter
    /// (percent-decoded).
    pub fn token(&self) -> Option<Cow<'a, str>> {
        let bearer = self
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .map(str::trim);
        if let Some(t) = bearer {
            return Some(Cow::Borrowed(t));
        }
        form_urlencoded::parse(self.uri.query()?.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
    }

    /// What the request asks for (computed on each call).
    pub fn endpoint(&self) -> Endpoint {
        let path = self.uri.path();
        let get = self.method == Method::GET;
        if let Some(raw) = path.strip_prefix("/ch/") {
            let channel = percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned();
            if self.method == Method::POST {
                return Endpoint::Publish { channel };
            }
            if get {
                return Endpoint::Channel {
                    channel,
                    transport: self.transport(),
                };
            }
        }
        match path {
            "/sub" if get => Endpoint::Channels {
                channels: self.query_parts().channels,
                transport: self.transport(),
            },
            // `POST /ws` (one command over HTTP) is the same session, checked the same way.
            "/ws" if get || self.method == Method::POST => Endpoint::Multiplexed,
            _ if path == "/api" || path.starts_with("/api/") => Endpoint::Api,
            _ => Endpoint::Other,
        }
    }

    fn query_parts(&self) -> SubQuery {
        let mut q = SubQuery::parse(self.uri.query());
        // `/sub`'s values are NAME[,CURSOR]; a check wants the names.
        for c in &mut q.channels {
            if let Some(comma) = c.find(',') {
                c.truncate(comma);
            }
        }
        q
    }

    /// The transport the request asks for, as the subscribe handlers choose it; `None`
    /// when it names none they know (they then refuse it).
    fn transport(&self) -> Option<Kind> {
        transport::choose(self.headers, &SubQuery::parse(self.uri.query())).ok()
    }
}

/// The credentials of an `Authorization: Bearer …` value (the scheme's name is
/// case-insensitive, RFC 7235).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

/// What a request asks for, as far as its head tells.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `GET /ch/NAME`: one channel, over `transport`.
    Channel {
        channel: String,
        transport: Option<Kind>,
    },
    /// `GET /sub`: several channels over one HTTP `transport`.
    Channels {
        channels: Vec<String>,
        transport: Option<Kind>,
    },
    /// `GET /ws`: the multiplexed WebSocket (its channels come later, in commands).
    Multiplexed,
    /// `POST /ch/NAME`: a client publishes.
    Publish { channel: String },
    /// `/api/…`: the backend API (key-authenticated by its own check as well).
    Api,
    /// Anything else: demo pages, health, routes and WebSocket endpoints an embedding
    /// program added.
    Other,
}

impl Endpoint {
    /// The channels the request names (decoded, not yet validated).
    pub fn channels(&self) -> &[String] {
        match self {
            Self::Channel { channel, .. } | Self::Publish { channel } => {
                std::slice::from_ref(channel)
            }
            Self::Channels { channels, .. } => channels,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ask_endpoint(method: Method, target: &str, headers: &[(&str, &str)]) -> Endpoint {
        let uri: Uri = target.parse().unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let peer = "127.0.0.1:9".parse().unwrap();
        Ask::new(&method, &uri, &map, peer).endpoint()
    }

    #[test]
    fn endpoints_name_their_channels_and_transport() {
        let sse = [("accept", "text/event-stream")];
        let ws = [("upgrade", "websocket")];
        let channel = |c: &str, t: Option<Kind>| Endpoint::Channel {
            channel: c.into(),
            transport: t,
        };
        type Row<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], Endpoint);
        let table: Vec<Row<'_>> = vec![
            (
                Method::GET,
                "/ch/a%3Ab",
                &[],
                channel("a:b", Some(Kind::Poll)),
            ),
            (Method::GET, "/ch/a", &sse, channel("a", Some(Kind::Sse))),
            (
                Method::GET,
                "/ch/a",
                &ws,
                channel("a", Some(Kind::WebSocket)),
            ),
            (
                Method::GET,
                "/ch/a?transport=longpoll",
                &[],
                channel("a", Some(Kind::LongPoll)),
            ),
            (
                Method::GET,
                "/ch/a?transport=pigeon",
                &[],
                channel("a", None),
            ),
            (
                Method::GET,
                "/sub?channel=a,E:1&channel=b&transport=stream",
                &[],
                Endpoint::Channels {
                    channels: vec!["a".into(), "b".into()],
                    transport: Some(Kind::Stream),
                },
            ),
            (
                Method::POST,
                "/ch/a",
                &[],
                Endpoint::Publish {
                    channel: "a".into(),
                },
            ),
            (Method::GET, "/ws", &ws, Endpoint::Multiplexed),
            (Method::POST, "/api/publish", &[], Endpoint::Api),
            (Method::GET, "/api", &[], Endpoint::Api),
            (Method::GET, "/apis", &[], Endpoint::Other),
            (Method::GET, "/", &[], Endpoint::Other),
            (Method::DELETE, "/ch/a", &[], Endpoint::Other),
        ];
        for (method, target, headers, want) in table {
            assert_eq!(
                ask_endpoint(method.clone(), target, headers),
                want,
                "{method} {target}"
            );
        }
    }

    #[test]
    fn the_token_comes_from_the_header_first_then_the_query() {
        let uri: Uri = "/ch/a?x=1&token=q%2Bt".parse().unwrap();
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut h = HeaderMap::new();
        let ask = Ask::new(&Method::GET, &uri, &h, peer);
        assert_eq!(ask.token().as_deref(), Some("q+t"));
        h.insert(header::AUTHORIZATION, "Bearer  h.t ".parse().unwrap());
        let ask = Ask::new(&Method::GET, &uri, &h, peer);
        assert_eq!(ask.token().as_deref(), Some("h.t"));
        assert!(!format!("{ask:?}").contains("h.t"), "Debug shows no secret");
        h.insert(header::AUTHORIZATION, "bearer lower".parse().unwrap());
        let ask = Ask::new(&Method::GET, &uri, &h, peer);
        assert_eq!(
            ask.token().as_deref(),
            Some("lower"),
            "the scheme is case-insensitive"
        );
        h.insert(header::AUTHORIZATION, "Basic dTpw".parse().unwrap());
        let ask = Ask::new(&Method::GET, &uri, &h, peer);
        assert_eq!(
            ask.token().as_deref(),
            Some("q+t"),
            "not a bearer: the query's"
        );
        let bare: Uri = "/ch/a".parse().unwrap();
        assert_eq!(
            Ask::new(&Method::GET, &bare, &HeaderMap::new(), peer).token(),
            None
        );
    }
}
