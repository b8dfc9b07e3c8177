//! Subscribing over each transport: [`Client::subscribe`] opens a [`Subscription`] whose
//! [`Subscription::next`] yields envelopes in order, tracking the latest cursor of every
//! channel so a later subscription can resume exactly after it.
//!
//! A client token ([`Client::with_token`]) goes as `Authorization: Bearer` on every HTTP
//! request and as `?token=` on a WebSocket handshake (the one request whose headers the
//! client's WebSocket connect does not let it set). When it expires, a live subscription
//! ends with [`Error::TokenExpired`]: subscribe again with a new token, from
//! [`Subscription::cursor`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_proto::{Cursor, Event, ReceivedData, ReceivedEnvelope};
use switchboard_ws_tokio::{ClientConfig, Message, WebSocket};

use crate::connect::{Remote, Stream};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::http::{encode_component, HttpConn};
use crate::retry::Retry;
use crate::sse::SseParser;

/// Largest poll / long-poll / publish answer the client reads.
const MAX_BODY: usize = 64 << 20;

/// The five ways to receive messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// RFC 6455 WebSocket (`GET /ch/NAME` with `Upgrade: websocket`).
    WebSocket,
    /// Server-Sent Events (`Accept: text/event-stream`).
    Sse,
    /// HTTP streaming (`?transport=stream`): one envelope per line.
    Stream,
    /// Long-polling (`?transport=longpoll&since=`), a new TCP connection per request.
    LongPoll,
    /// Polling (`?transport=poll&since=`), a new TCP connection per request.
    Poll,
}

impl Transport {
    /// All five, in fallback order.
    pub const ALL: [Transport; 5] = [
        Self::WebSocket,
        Self::Sse,
        Self::Stream,
        Self::LongPoll,
        Self::Poll,
    ];

    /// The `transport=` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
            Self::Stream => "stream",
            Self::LongPoll => "longpoll",
            Self::Poll => "poll",
        }
    }
}

/// A client of one Switchboard server.
#[derive(Debug, Clone)]
pub struct Client {
    remote: Remote,
    poll_interval: Duration,
    token: Option<Secret>,
}

/// A client token, hidden from `Debug`.
#[derive(Clone)]
struct Secret(std::sync::Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The close code a server ends a WebSocket with when its client token expired.
const TOKEN_EXPIRED_CLOSE: u16 = 3000;

enum Kind {
    Ws(Box<WebSocket<Stream>>),
    /// SSE or stream: a response body read incrementally.
    Http {
        body: Incoming,
        sse: Option<SseParser>,
        line: Vec<u8>,
        _conn: HttpConn,
    },
    /// Long-poll or poll: a request per answer.
    Poll {
        long: bool,
        first: bool,
    },
}

/// An open subscription to one or more channels.
pub struct Subscription {
    client: Client,
    transport: Transport,
    kind: Kind,
    /// Whether the native single-channel endpoint is used (vs `/sub`).
    native: Option<String>,
    channels: Vec<String>,
    cursors: HashMap<String, Cursor>,
    pending: VecDeque<ReceivedEnvelope>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("transport", &self.transport)
            .field("channels", &self.channels)
            .field("cursors", &self.cursors)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `http://host:port` (or `https://host:port`, feature `tls`).
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self {
            remote: Remote::new(Endpoint::parse(url)?),
            poll_interval: Duration::from_millis(100),
            token: None,
        })
    }

    /// Sends `token` (a client token, a JWT) with every request (see the module docs).
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    /// `authorization: Bearer TOKEN` when the client has a token.
    fn auth_header(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {}", t.0))
    }

    /// The headers of an HTTP request: `extra` and the token's.
    fn headers<'a>(
        &self,
        auth: &'a Option<String>,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut headers = extra.to_vec();
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        headers
    }

    /// Trusts `roots` for an `https://` server instead of the system's authorities.
    #[cfg(feature = "tls")]
    pub fn with_tls_roots(mut self, roots: crate::TlsRoots) -> Self {
        self.remote.set_roots(roots);
        self
    }

    /// Pause between two poll requests that brought nothing (default 100 ms).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The server's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.remote.ep
    }

    /// Subscribes to `channels`, each resuming after its cursor when one is given.
    pub async fn subscribe(
        &self,
        transport: Transport,
        channels: &[(&str, Option<Cursor>)],
    ) -> Result<Subscription, Error> {
        if channels.is_empty() {
            return Err(Error::Url("no channel to subscribe to".into()));
        }
        if channels.len() > 1 && transport == Transport::WebSocket {
            return Err(Error::Url(
                "several channels over one WebSocket use the /ws command protocol".into(),
            ));
        }
        let native = (channels.len() == 1).then(|| channels[0].0.to_owned());
        let cursors: HashMap<String, Cursor> = channels
            .iter()
            .filter_map(|(c, k)| k.map(|k| ((*c).to_owned(), k)))
            .collect();
        let mut sub = Subscription {
            client: self.clone(),
            transport,
            kind: Kind::Poll {
                long: false,
                first: true,
            },
            native,
            channels: channels.iter().map(|(c, _)| (*c).to_owned()).collect(),
            cursors,
            pending: VecDeque::new(),
        };
        sub.kind = match transport {
            Transport::WebSocket => {
                let stream = self.remote.open().await?;
                let mut path = sub.target(None);
                if let Some(t) = &self.token {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    path = format!("{path}{sep}token={}", encode_component(&t.0));
                }
                let (ws, _) = switchboard_ws_tokio::connect(
                    stream,
                    &self.remote.ep.authority(),
                    &path,
                    &ClientConfig::default(),
                )
                .await
                .map_err(|e| Error::WebSocket(e.to_string()))?;
                Kind::Ws(Box::new(ws))
            }
            Transport::Sse | Transport::Stream => {
                let mut conn = HttpConn::connect(&self.remote).await?;
                let target = sub.target(Some(transport));
                let accept: &[(&str, &str)] = if transport == Transport::Sse {
                    &[("accept", "text/event-stream")]
                } else {
                    &[]
                };
                let auth = self.auth_header();
                let headers = self.headers(&auth, accept);
                let resp = conn
                    .send(http::Method::GET, &target, &headers, Bytes::new())
                    .await?;
                if !resp.status().is_success() {
                    let status = resp.status().as_u16();
                    let body = read_all(resp.into_body()).await.unwrap_or_default();
                    return Err(Error::Status {
                        status,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                }
                Kind::Http {
                    body: resp.into_body(),
                    sse: (transport == Transport::Sse).then(SseParser::default),
                    line: Vec::new(),
                    _conn: conn,
                }
            }
            Transport::LongPoll => Kind::Poll {
                long: true,
                first: true,
            },
            Transport::Poll => Kind::Poll {
                long: false,
                first: true,
            },
        };
        Ok(sub)
    }

    /// Publishes `body` to `channel` with `POST /ch/NAME`; returns the message's cursor.
    /// `content_type`: `application/json` (must be valid JSON), `application/octet-stream`
    /// (binary), anything else or `None` is text. The publish carries an idempotency key
    /// of its own and is retried with it when its answer is lost ([`crate::retry`]), so it
    /// is stored once.
    pub async fn publish(
        &self,
        channel: &str,
        body: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<Cursor, Error> {
        let key = crate::retry::new_key();
        self.publish_keyed(channel, body, content_type, &key, Retry::default())
            .await
    }

    /// [`Client::publish`] with the caller's own idempotency key (at most 128 bytes of
    /// visible ASCII) and retry policy: a caller that retries later itself (after a
    /// restart, say) sends the same key again.
    pub async fn publish_keyed(
        &self,
        channel: &str,
        body: impl Into<Bytes>,
        content_type: Option<&str>,
        key: &str,
        retry: Retry,
    ) -> Result<Cursor, Error> {
        let body = body.into();
        let path = format!("/ch/{}", encode_component(channel));
        let mut extra: Vec<(&str, &str)> = vec![("idempotency-key", key)];
        if let Some(c) = content_type {
            extra.push(("content-type", c));
        }
        let auth = self.auth_header();
        let headers = self.headers(&auth, &extra);
        let (status, body) = retry
            .run(|| async {
                let mut conn = HttpConn::connect(&self.remote).await?;
                conn.send_full(http::Method::POST, &path, &headers, body.clone(), MAX_BODY)
                    .await
                    .and_then(|(status, body)| {
                        if status == http::StatusCode::SERVICE_UNAVAILABLE {
                            Err(status_error(status, &body))
                        } else {
                            Ok((status, body))
                        }
                    })
            })
            .await?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        #[derive(Deserialize)]
        struct Published {
            cursor: Cursor,
        }
        let p: Published = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("publish answer: {e}")))?;
        Ok(p.cursor)
    }
}

fn status_error(status: http::StatusCode, body: &[u8]) -> Error {
    Error::Status {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

impl Subscription {
    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The last cursor seen on `channel` (from a message or a reset).
    pub fn cursor(&self, channel: &str) -> Option<Cursor> {
        self.cursors.get(channel).copied()
    }

    /// The next envelope. `Err(Error::Closed { reconnect })` when the server ended the
    /// subscription (`reconnect` when it asked clients to come back, e.g. on shutdown).
    pub async fn next(&mut self) -> Result<ReceivedEnvelope, Error> {
        loop {
            if let Some(env) = self.pending.pop_front() {
                if let Some(c) = env.cursor {
                    if matches!(env.event, Event::Message | Event::Reset) {
                        self.cursors.insert(env.channel.clone(), c);
                    }
                }
                return Ok(env);
            }
            self.fill().await?;
        }
    }

    /// Publishes a text message over this subscription's WebSocket (native endpoint:
    /// text and binary frames publish to the channel when the namespace allows it).
    pub async fn send_ws(&mut self, msg: Message) -> Result<(), Error> {
        match &mut self.kind {
            Kind::Ws(ws) => ws
                .send(msg)
                .await
                .map_err(|e| Error::WebSocket(e.to_string())),
            _ => Err(Error::Url("not a WebSocket subscription".into())),
        }
    }

    /// Closes the subscription (WebSocket: close handshake 1000).
    pub async fn close(mut self) {
        if let Kind::Ws(ws) = &mut self.kind {
            let _ = ws
                .close(switchboard_ws_tokio::CloseCode::NORMAL, "bye")
                .await;
            while let Some(Ok(_)) = ws.recv().await {}
        }
    }

    /// Request target for the current cursors (`since=` / `,CURSOR`).
    fn target(&self, transport: Option<Transport>) -> String {
        let mut q = Vec::new();
        let path = match &self.native {
            Some(ch) => {
                if let Some(c) = self.cursors.get(ch) {
                    q.push(format!("since={}", encode_component(&c.to_string())));
                }
                format!("/ch/{}", encode_component(ch))
            }
            None => {
                for ch in &self.channels {
                    let v = match self.cursors.get(ch) {
                        Some(c) => format!("{ch},{c}"),
                        None => ch.clone(),
                    };
                    q.push(format!("channel={}", encode_component(&v)));
                }
                "/sub".to_owned()
            }
        };
        match transport {
            Some(Transport::Sse) if self.native.is_none() => q.push("transport=sse".into()),
            Some(t @ (Transport::Stream | Transport::LongPoll | Transport::Poll)) => {
                q.push(format!("transport={}", t.as_str()));
            }
            _ => {}
        }
        if q.is_empty() {
            path
        } else {
            format!("{path}?{}", q.join("&"))
        }
    }

    async fn fill(&mut self) -> Result<(), Error> {
        let native = self.native.clone();
        match &mut self.kind {
            Kind::Ws(ws) => match ws.recv().await {
                Some(Ok(Message::Text(t))) => {
                    let env = switchboard_proto::parse_envelope(&t)
                        .map_err(|e| Error::Protocol(e.to_string()))?;
                    self.pending.push_back(env);
                    Ok(())
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| f.code.as_u16());
                    while let Some(Ok(_)) = ws.recv().await {}
                    if code == Some(TOKEN_EXPIRED_CLOSE) {
                        return Err(Error::TokenExpired);
                    }
                    Err(Error::Closed {
                        reconnect: code == Some(1012),
                    })
                }
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(Error::WebSocket(e.to_string())),
                None => Err(Error::Closed { reconnect: false }),
            },
            Kind::Http {
                body, sse, line, ..
            } => {
                let frame = match body.frame().await {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => return Err(Error::Http(e)),
                    None => return Err(Error::Closed { reconnect: false }),
                };
                let Ok(data) = frame.into_data() else {
                    return Ok(());
                };
                if let Some(parser) = sse {
                    for ev in parser.feed(&data) {
                        match ev.event.as_str() {
                            "reconnect" => return Err(Error::Closed { reconnect: true }),
                            "disconnect" => return Err(Error::Closed { reconnect: false }),
                            "refresh" => return Err(Error::TokenExpired),
                            // `/sub`'s opening and heartbeat events carry no envelope.
                            "ready" | "heartbeat" => continue,
                            _ => {}
                        }
                        let env = match &native {
                            Some(ch) => native_sse_envelope(ch, &ev)?,
                            None => switchboard_proto::parse_envelope(ev.data.as_bytes())
                                .map_err(|e| Error::Protocol(e.to_string()))?,
                        };
                        self.pending.push_back(env);
                    }
                } else {
                    line.extend_from_slice(&data);
                    while let Some(pos) = line.iter().position(|&b| b == b'\n') {
                        let l: Vec<u8> = line.drain(..=pos).collect();
                        let l = &l[..pos];
                        if l.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        match switchboard_proto::parse_envelope(l) {
                            Ok(env) => self.pending.push_back(env),
                            Err(e) => {
                                return Err(farewell_line(l)
                                    .unwrap_or_else(|| Error::Protocol(e.to_string())));
                            }
                        }
                    }
                }
                Ok(())
            }
            Kind::Poll { long, first } => {
                let long = *long;
                if !*first && !long {
                    tokio::time::sleep(self.client.poll_interval).await;
                }
                *first = false;
                self.poll_once(long).await
            }
        }
    }

    async fn poll_once(&mut self, long: bool) -> Result<(), Error> {
        // A fresh connection per request: the server keeps no session state.
        let mut conn = HttpConn::connect(&self.client.remote).await?;
        let t = if long {
            Transport::LongPoll
        } else {
            Transport::Poll
        };
        let target = self.target(Some(t));
        let auth = self.client.auth_header();
        let headers = self.client.headers(&auth, &[]);
        let (status, body) = conn
            .send_full(http::Method::GET, &target, &headers, Bytes::new(), MAX_BODY)
            .await?;
        if status == http::StatusCode::SERVICE_UNAVAILABLE {
            return Err(Error::Closed { reconnect: true });
        }
        if !status.is_success() {
            return Err(Error::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        #[derive(Deserialize)]
        struct PollAnswer<'a> {
            #[serde(borrow)]
            messages: Vec<&'a RawValue>,
            #[serde(default)]
            cursor: Option<Cursor>,
            #[serde(default)]
            cursors: Option<HashMap<String, Cursor>>,
            #[serde(default)]
            reset: bool,
            #[serde(default)]
            lost: Option<u64>,
        }
        let answer: PollAnswer<'_> = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("poll answer: {e}")))?;
        let native = self.native.clone();
        let mut envs = Vec::with_capacity(answer.messages.len());
        for raw in answer.messages {
            let env = switchboard_proto::parse_envelope(raw.get().as_bytes())
                .map_err(|e| Error::Protocol(e.to_string()))?;
            envs.push(env);
        }
        if let (Some(ch), Some(c), true) = (&native, answer.cursor, answer.reset) {
            // The reset comes before the messages: the stream continues just before the
            // first one returned (or at the answer's cursor when none was).
            let at = envs
                .first()
                .and_then(|e| e.cursor)
                .map_or(c, |f| Cursor::new(f.epoch, f.offset.saturating_sub(1)));
            // As the other transports carry it: `{"lost":N}` when known.
            let data = answer.lost.map_or(ReceivedData::None, |n| {
                ReceivedData::Json(
                    String::from_utf8_lossy(&switchboard_proto::reset_data(n)).into_owned(),
                )
            });
            self.pending.push_back(ReceivedEnvelope {
                channel: ch.clone(),
                event: Event::Reset,
                cursor: Some(at),
                data,
            });
        }
        self.pending.extend(envs);
        // The answer's cursor(s) may be past the last message (e.g. an empty answer to a
        // request without cursor tells where "now" is).
        if let (Some(ch), Some(c)) = (&native, answer.cursor) {
            self.cursors.insert(ch.clone(), c);
        }
        if let Some(cs) = answer.cursors {
            self.cursors.extend(cs);
        }
        Ok(())
    }
}

/// The end a streaming farewell line announces (`reconnect`, `disconnect`, `refresh`).
fn farewell_line(l: &[u8]) -> Option<Error> {
    #[derive(Deserialize)]
    struct Ev<'a> {
        event: &'a str,
    }
    match serde_json::from_slice::<Ev<'_>>(l).ok()?.event {
        "reconnect" => Some(Error::Closed { reconnect: true }),
        "disconnect" => Some(Error::Closed { reconnect: false }),
        "refresh" => Some(Error::TokenExpired),
        _ => None,
    }
}

/// The native SSE endpoint sends the payload alone (`e.data`) with the cursor as `id`;
/// rebuild an envelope. A binary message is its own event (`binary`, base64 data); of
/// the rest, a payload that is valid JSON is taken as JSON, anything else as a string.
fn native_sse_envelope(
    channel: &str,
    ev: &crate::sse::SseEvent,
) -> Result<ReceivedEnvelope, Error> {
    let event = match ev.event.as_str() {
        "" | "message" | switchboard_proto::SSE_BINARY_EVENT => Event::Message,
        "reset" => Event::Reset,
        "join" => Event::Join,
        "leave" => Event::Leave,
        other => return Err(Error::Protocol(format!("unknown SSE event {other:?}"))),
    };
    let cursor = match ev.id.as_deref() {
        Some(id) if !id.is_empty() => Some(
            id.parse()
                .map_err(|e| Error::Protocol(format!("SSE id {id:?}: {e}")))?,
        ),
        _ => None,
    };
    let data = if ev.data.is_empty() && event == Event::Reset {
        ReceivedData::None
    } else if ev.event == switchboard_proto::SSE_BINARY_EVENT {
        use base64::Engine as _;
        ReceivedData::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(&ev.data)
                .map_err(|e| Error::Protocol(format!("binary SSE event: {e}")))?,
        )
    } else if serde_json::from_str::<serde::de::IgnoredAny>(&ev.data).is_ok() {
        ReceivedData::Json(ev.data.clone())
    } else {
        ReceivedData::Json(serde_json::Value::String(ev.data.clone()).to_string())
    };
    Ok(ReceivedEnvelope {
        channel: channel.to_owned(),
        event,
        cursor,
        data,
    })
}

async fn read_all(body: Incoming) -> Result<Bytes, Error> {
    http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Protocol(e.to_string()))
}
