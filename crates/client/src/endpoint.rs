//! Where the server is: the URL a client was given, parsed once ([`Endpoint`]).

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
