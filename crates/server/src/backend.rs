//! The application's backend decides (optional; `[backend]` in the config): before a
//! client request to a channel endpoint goes on, the server asks an HTTP endpoint of the
//! application, with the request's cookies and credentials, whether it may, and who the
//! client is — the way a session-cookie application admits clients without issuing
//! tokens (Centrifugo's connect and subscribe proxies do the same).
//!
//! - **Connect** (`backend.connect_url`): asked once per client request to `/ch/NAME`
//!   (every transport, and `POST` publishes), `/sub` and `/ws`, by the connection front
//!   after its own checks (so the refusal is the answer, before any byte). A long-poll or
//!   poll is one request each, so each is asked.
//! - **Subscribe** (`backend.subscribe_url`): asked for each `/ws` subscribe command.
//!
//! The question, `POST` with a JSON body: `{"kind": "connect"|"subscribe", "method",
//! "path", "query", "channels": [...], "transport", "peer", "user" (a client token's
//! `sub`, if any), "headers": {"cookie", "authorization", "origin", "user-agent"}}` (the
//! headers the request had). The answer, a 2xx with `{"allow": true, "user": "alice"}`
//! (the user is optional: presence and disconnects then know the client by it; a client
//! token's `sub` wins over it), and optionally the same grant lists a client token carries
//! (`"subscribe"`, `"publish"`, `"presence"`, `"history"`: channel patterns); or
//! `{"allow": false, "reason": "…"}`, answered to the client as 403 `denied_by_backend`
//! with that reason.
//!
//! **When the backend fails** (no answer within `backend.timeout_ms`, default 2 s; a
//! refused connection; a non-2xx status; a body that is not the JSON above or over
//! 64 KiB): `backend.on_error = "deny"` (the default: fail closed) answers the client 503
//! `backend_unavailable`; `"allow"` lets the request go on as if no backend were
//! configured. Answers are not cached. Only `http://` URLs (a backend next to the server);
//! the connections to it are pooled (hyper's client).

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, Method, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::auth::{Grants, Identity, Pattern};
use crate::config::{BackendConfig, ConfigError, OnError};
use crate::error::ServerError;

/// Largest answer read from the backend.
const MAX_ANSWER: usize = 64 * 1024;

/// The headers of a client request the backend is shown.
const FORWARDED: [header::HeaderName; 4] = [
    header::COOKIE,
    header::AUTHORIZATION,
    header::ORIGIN,
    header::USER_AGENT,
];

/// Asks the backend (see the module docs). Cheap to clone (the client is pooled).
#[derive(Clone)]
pub struct Backend {
    client: Client<HttpConnector, Full<Bytes>>,
    connect: Option<Uri>,
    subscribe: Option<Uri>,
    timeout: Duration,
    on_error: OnError,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("connect", &self.connect)
            .field("subscribe", &self.subscribe)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What is being asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A client request to a channel endpoint.
    Connect,
    /// A `/ws` subscribe command.
    Subscribe,
}

/// The question's facts about the client request. `Debug` shows the request's path and
/// header names, never their values or the query (cookies, tokens).
pub struct Question<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub peer: std::net::IpAddr,
    pub channels: &'a [String],
    pub transport: Option<&'a str>,
    /// The user a client token named, if any.
    pub user: Option<&'a str>,
}

impl std::fmt::Debug for Question<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Question")
            .field("method", self.method)
            .field("path", &self.uri.path())
            .field("headers", &header_names(self.headers))
            .field("peer", &self.peer)
            .field("channels", &self.channels)
            .field("transport", &self.transport)
            .field("user", &self.user)
            .finish()
    }
}

/// The names of `headers`, for `Debug`: their values may be secrets.
fn header_names(headers: &HeaderMap) -> Vec<&str> {
    headers.keys().map(HeaderName::as_str).collect()
}

/// What the backend decided for an allowed request.
#[derive(Debug, Default)]
pub struct Allowed {
    /// The user it named, with the grants it gave (`None`: it named nobody).
    pub identity: Option<Identity>,
}

/// What a `/ws` session keeps to ask about its subscribe commands: the handshake's
/// forwarded headers and the client's address. `Debug` shows the headers' names only.
pub struct Asker {
    headers: HeaderMap,
    peer: std::net::IpAddr,
}

impl std::fmt::Debug for Asker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asker")
            .field("headers", &header_names(&self.headers))
            .field("peer", &self.peer)
            .finish()
    }
}

impl Asker {
    /// The asker for a session opened by a handshake with `headers` from `peer`.
    pub fn new(headers: &HeaderMap, peer: std::net::IpAddr) -> Self {
        let mut kept = HeaderMap::new();
        for name in &FORWARDED {
            if let Some(v) = headers.get(name) {
                kept.insert(name.clone(), v.clone());
            }
        }
        Self {
            headers: kept,
            peer,
        }
    }

    /// Asks `backend` whether the session may subscribe to `channel`; `Ok(true)` when it
    /// said so (the channel is then admitted, as a subscription token would).
    pub async fn subscribe(
        &self,
        backend: &Backend,
        channel: &str,
        user: Option<&str>,
    ) -> Result<bool, ServerError> {
        if !backend.asks(Kind::Subscribe) {
            return Ok(false);
        }
        let uri = Uri::from_static("/ws");
        let channels = [channel.to_owned()];
        let question = Question {
            method: &Method::GET,
            uri: &uri,
            headers: &self.headers,
            peer: self.peer,
            channels: &channels,
            transport: Some("websocket"),
            user,
        };
        backend.ask(Kind::Subscribe, question).await.map(|_| true)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    kind: &'static str,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    channels: &'a [String],
    transport: Option<&'a str>,
    peer: String,
    user: Option<&'a str>,
    headers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Answer {
    allow: bool,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    presence: Vec<String>,
    #[serde(default)]
    history: Vec<String>,
}

impl Backend {
    /// The backend of `config`; `None` when neither URL is set.
    pub fn new(config: &BackendConfig) -> Result<Option<Self>, ConfigError> {
        let parse = |key: &str, url: &Option<String>| -> Result<Option<Uri>, ConfigError> {
            let Some(url) = url else { return Ok(None) };
            let uri: Uri = url
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("backend.{key} {url:?}: {e}")))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(ConfigError::Invalid(format!(
                    "backend.{key} {url:?} must be an http:// URL (a backend next to the server)"
                )));
            }
            Ok(Some(uri))
        };
        let connect = parse("connect_url", &config.connect_url)?;
        let subscribe = parse("subscribe_url", &config.subscribe_url)?;
        if connect.is_none() && subscribe.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            connect,
            subscribe,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            on_error: config.on_error,
        }))
    }

    /// Whether it is asked about `kind`.
    pub fn asks(&self, kind: Kind) -> bool {
        match kind {
            Kind::Connect => self.connect.is_some(),
            Kind::Subscribe => self.subscribe.is_some(),
        }
    }

    /// Asks about `question`: the decision, or the answer for the client (403 when the
    /// backend refused, 503 when it failed and `on_error` is `deny`).
    pub async fn ask(&self, kind: Kind, question: Question<'_>) -> Result<Allowed, ServerError> {
        let url = match kind {
            Kind::Connect => &self.connect,
            Kind::Subscribe => &self.subscribe,
        };
        let Some(url) = url else {
            return Ok(Allowed::default());
        };
        match tokio::time::timeout(self.timeout, self.call(url, kind, &question)).await {
            Ok(Ok(answer)) => decide(answer),
            Ok(Err(why)) => self.failed(&why),
            Err(_) => self.failed(&format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    fn failed(&self, why: &str) -> Result<Allowed, ServerError> {
        tracing::warn!(reason = why, "the backend did not decide");
        match self.on_error {
            OnError::Allow => Ok(Allowed::default()),
            OnError::Deny => Err(ServerError::BackendUnavailable(why.to_owned())),
        }
    }

    async fn call(&self, url: &Uri, kind: Kind, q: &Question<'_>) -> Result<Answer, String> {
        let mut headers = serde_json::Map::new();
        for name in &FORWARDED {
            if let Some(v) = q.headers.get(name).and_then(|v| v.to_str().ok()) {
                headers.insert(name.as_str().to_owned(), v.into());
            }
        }
        let body = Body {
            kind: match kind {
                Kind::Connect => "connect",
                Kind::Subscribe => "subscribe",
            },
            method: q.method.as_str(),
            path: q.uri.path(),
            query: q.uri.query().unwrap_or(""),
            channels: q.channels,
            transport: q.transport,
            peer: q.peer.to_string(),
            user: q.user,
            headers,
        };
        let json = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let req = http::Request::post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("it answered {status}"));
        }
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("its answer could not be read: {e}"))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("its answer is not the expected JSON: {e}"))
    }
}

/// The decision an answer carries.
fn decide(answer: Answer) -> Result<Allowed, ServerError> {
    if !answer.allow {
        let reason = answer
            .reason
            .unwrap_or_else(|| "the application does not allow this request".into());
        return Err(ServerError::DeniedByBackend(reason));
    }
    let patterns = |list: Vec<String>| -> Result<Box<[Pattern]>, ServerError> {
        list.iter()
            .map(|p| Pattern::parse(p))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ServerError::BackendUnavailable("it granted a malformed channel pattern".into())
            })
    };
    let grants = Grants {
        subscribe: patterns(answer.subscribe)?,
        publish: patterns(answer.publish)?,
        presence: patterns(answer.presence)?,
        history: patterns(answer.history)?,
    };
    let user = answer.user.filter(|u| !u.is_empty() && u.len() <= 128);
    let identity = (user.is_some() || grants != Grants::default()).then(|| Identity {
        user: user.map(String::into_boxed_str),
        grants,
        expires: None,
    });
    Ok(Allowed { identity })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_cookie_token_or_query() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "session=cookie-SECRET".parse().unwrap());
        headers.insert(
            header::AUTHORIZATION,
            "Bearer token-SECRET".parse().unwrap(),
        );
        let uri: Uri = "/ch/room?token=query-SECRET".parse().unwrap();
        let question = Question {
            method: &Method::GET,
            uri: &uri,
            headers: &headers,
            peer: std::net::IpAddr::from([127, 0, 0, 1]),
            channels: &[],
            transport: Some("sse"),
            user: None,
        };
        let asker = Asker::new(&headers, question.peer);
        for shown in [format!("{question:?}"), format!("{asker:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("cookie"), "{shown}");
        }
    }
}
