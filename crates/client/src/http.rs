//! A minimal HTTP/1.1 client over hyper's connection API: one TCP connection per
//! [`HttpConn`], requests sent one after the other on it. No pooling, no TLS: the
//! client talks to `http://HOST:PORT` servers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// Where the server is: `http://host:port` (path prefixes are not supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP, as written in the URL (used for `Host:` and for connecting).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `http://host[:port][/]` (also `ws://`); the port defaults to 80.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| {
                Error::Url(format!("{url}: only http:// and ws:// URLs are supported"))
            })?;
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
            _ => (authority.to_owned(), 80),
        };
        Ok(Self { host, port })
    }

    /// `host:port`, for `Host:` headers and connecting.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct HttpConn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConn {
    pub(crate) async fn connect(ep: &Endpoint) -> Result<Self, Error> {
        let tcp = TcpStream::connect((ep.host.trim_matches(['[', ']']), ep.port)).await?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(Error::Http)?;
        tokio::spawn(async move {
            // The connection ends when the peer closes or every sender is dropped.
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: ep.authority(),
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
        assert!(Endpoint::parse("https://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
        assert!(Endpoint::parse("http://x:notaport").is_err());
        assert_eq!(encode_component("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
    }
}
