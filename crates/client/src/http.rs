//! A minimal HTTP/1.1 client over hyper's connection API: one connection per
//! [`HttpConn`] (TLS for `https://`, see [`crate::connect`]), requests sent one after the
//! other on it. No pooling.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::connect::Remote;
use crate::error::Error;

/// Where the server is: `http://host:port` or `https://host:port` (`ws://`, `wss://`
/// alike; path prefixes are not supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP, as written in the URL (used for `Host:`, for connecting and as
    /// the TLS server name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS (`https://`, `wss://`).
    pub secure: bool,
}

impl Endpoint {
    /// Parses `http://host[:port][/]` (also `ws://`; `https://` and `wss://` with the
    /// `tls` feature); the port defaults to 80 (443 for TLS).
    pub fn parse(url: &str) -> Result<Self, Error> {
        let schemes = [
            ("http://", false),
            ("ws://", false),
            ("https://", true),
            ("wss://", true),
        ];
        let (rest, secure) = schemes
            .iter()
            .find_map(|(scheme, secure)| Some((url.strip_prefix(scheme)?, *secure)))
            .ok_or_else(|| {
                Error::Url(format!(
                    "{url}: only http://, https://, ws:// and wss:// URLs are supported"
                ))
            })?;
        if secure && cfg!(not(feature = "tls")) {
            return Err(Error::Url(format!(
                "{url}: this build has no TLS; build switchboard-client with the `tls` feature"
            )));
        }
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(Error::Url(format!("{url}: expected http://host:port")));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse()
                    .map_err(|_| Error::Url(format!("{url}: bad port {p:?}")))?;
                (h.to_owned(), port)
            }
            _ => (authority.to_owned(), if secure { 443 } else { 80 }),
        };
        Ok(Self { host, port, secure })
    }

    /// `host:port`, for `Host:` headers and connecting.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `http://host:port` or `https://host:port`.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }
}

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct HttpConn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConn {
    pub(crate) async fn connect(remote: &Remote) -> Result<Self, Error> {
        let stream = remote.open().await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        tokio::spawn(async move {
            // The connection ends when the peer closes or every sender is dropped.
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: remote.ep.authority(),
        })
    }

    /// Sends a request and returns the response head with its streaming body.
    pub(crate) async fn send(
        &mut self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<http::Response<Incoming>, Error> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| Error::Url(e.to_string()))?;
        self.sender.ready().await.map_err(Error::Http)?;
        self.sender.send_request(req).await.map_err(Error::Http)
    }

    /// Sends a request and reads the whole response body (bounded by `limit` bytes).
    pub(crate) async fn send_full(
        &mut self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        limit: usize,
    ) -> Result<(http::StatusCode, Bytes), Error> {
        let resp = self.send(method, path_and_query, headers, body).await?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| Error::Protocol(format!("reading response body: {e}")))?
            .to_bytes();
        Ok((status, body))
    }
}

/// Percent-encodes a query or path component (everything but unreserved characters).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(Endpoint::parse("http://example").unwrap().port, 80);
        assert!(!Endpoint::parse("ws://example").unwrap().secure);
        assert_eq!(
            Endpoint::parse("http://[::1]:81").unwrap().url(),
            "http://[::1]:81"
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
        assert!(Endpoint::parse("http://x:notaport").is_err());
        assert_eq!(encode_component("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn secure_endpoints() {
        let e = Endpoint::parse("https://example").unwrap();
        assert_eq!((e.port, e.secure), (443, true));
        let e = Endpoint::parse("wss://127.0.0.1:8443/").unwrap();
        assert_eq!(e.url(), "https://127.0.0.1:8443");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn secure_endpoints_need_the_tls_feature() {
        let e = Endpoint::parse("https://example").unwrap_err().to_string();
        assert!(e.contains("`tls` feature"), "{e}");
    }
}
