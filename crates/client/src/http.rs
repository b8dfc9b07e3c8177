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
mod tests {
    use super::*;

    #[test]
    fn components() {
        assert_eq!(encode_component("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
    }
}
