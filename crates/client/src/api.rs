//! Client of the backend API (`/api/...`, JSON, authenticated with an API key). Used by
//! `switchboard publish` and by tests. Publishes and broadcasts carry an idempotency key
//! and are retried with it when their answer is lost ([`crate::retry`]).

use bytes::Bytes;
use serde_json::Value;

use crate::connect::Remote;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::http::{encode_component, HttpConn};
use crate::retry::{new_key, Retry};

const MAX_BODY: usize = 64 << 20;

/// A backend API client: every call is one request on a fresh connection. `Debug`
/// hides the key.
#[derive(Clone)]
pub struct ApiClient {
    remote: Remote,
    key: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("ep", &self.remote.ep)
            .field("key", &self.key.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl ApiClient {
    /// A client for `http://host:port` (or `https://`) sending `key` as
    /// `Authorization: Bearer KEY`.
    pub fn new(url: &str, key: Option<String>) -> Result<Self, Error> {
        Ok(Self {
            remote: Remote::new(Endpoint::parse(url)?),
            key,
        })
    }

    /// Trusts `roots` for an `https://` server instead of the system's authorities.
    #[cfg(feature = "tls")]
    pub fn with_tls_roots(mut self, roots: crate::TlsRoots) -> Self {
        self.remote.set_roots(roots);
        self
    }

    /// Sends one request; returns the JSON answer or `Error::Status` with the server's
    /// explanation.
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut conn = HttpConn::connect(&self.remote).await?;
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let payload = match body {
            Some(v) => {
                headers.push(("content-type", "application/json"));
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let (status, body) = conn
            .send_full(method, path, &headers, payload, MAX_BODY)
            .await?;
        if !status.is_success() {
            return Err(Error::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("API answer: {e}")))
    }

    /// `POST /api/publish`: `data` is any JSON value. Returns the answer
    /// (`{"channel", "cursor"}`).
    pub async fn publish(&self, channel: &str, data: Value) -> Result<Value, Error> {
        let body = serde_json::json!({ "channel": channel, "data": data });
        self.send_keyed("/api/publish", body, Retry::default())
            .await
    }

    /// `POST /api/publish` with a text payload (sent as a JSON string to subscribers).
    pub async fn publish_text(&self, channel: &str, text: &str) -> Result<Value, Error> {
        let body = serde_json::json!({ "channel": channel, "text": text });
        self.send_keyed("/api/publish", body, Retry::default())
            .await
    }

    /// `POST /api/broadcast`: the same data to many channels (one key for all: each
    /// channel stores it once).
    pub async fn broadcast(&self, channels: &[&str], data: Value) -> Result<Value, Error> {
        let body = serde_json::json!({ "channels": channels, "data": data });
        self.send_keyed("/api/broadcast", body, Retry::default())
            .await
    }

    /// Sends a publish or broadcast `body` to `path` (`/api/publish`, `/api/broadcast`)
    /// as it is, with a fresh `idempotency_key` unless it has one, retried with that key
    /// while its answer is lost.
    pub async fn send_keyed(
        &self,
        path: &str,
        mut body: Value,
        retry: Retry,
    ) -> Result<Value, Error> {
        if let Some(fields) = body.as_object_mut() {
            fields
                .entry("idempotency_key")
                .or_insert_with(|| Value::String(new_key()));
        }
        retry
            .run(|| self.call(http::Method::POST, path, Some(&body)))
            .await
    }

    /// `GET /api/channels/NAME/history[?since=C&limit=N]`.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Value, Error> {
        let mut path = format!("/api/channels/{}/history", encode_component(channel));
        let mut q = Vec::new();
        if let Some(s) = since {
            q.push(format!("since={}", encode_component(s)));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        if !q.is_empty() {
            path = format!("{path}?{}", q.join("&"));
        }
        self.call(http::Method::GET, &path, None).await
    }

    /// `GET /api/channels/NAME/presence`.
    pub async fn presence(&self, channel: &str) -> Result<Value, Error> {
        let path = format!("/api/channels/{}/presence", encode_component(channel));
        self.call(http::Method::GET, &path, None).await
    }

    /// `GET /api/channels`: active channels with their stats.
    pub async fn channels(&self) -> Result<Value, Error> {
        self.call(http::Method::GET, "/api/channels", None).await
    }

    /// `POST /api/disconnect`: `{"client": ID}` or `{"user": ID}`.
    pub async fn disconnect(&self, target: Value) -> Result<Value, Error> {
        self.call(http::Method::POST, "/api/disconnect", Some(&target))
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn debug_hides_the_key() {
        let client =
            super::ApiClient::new("http://127.0.0.1:1", Some("key-SECRET".into())).unwrap();
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("SECRET") && shown.contains("<hidden>"),
            "{shown}"
        );
    }
}
