//! Which pages may use the server: the `Origin` check (with CORS derived from the same
//! list) and the `Host` check, both applied by the front to every request on both paths
//! (see [`super::admission`]).
//!
//! **Origin.** A browser names the page behind every WebSocket handshake and every
//! cross-origin `fetch`, `EventSource` or form POST in `Origin`. A request without one
//! (a non-browser client, a top-level navigation) goes on. One with an `Origin` goes on
//! when it is the server's own (its host and port are the request's `Host`: the demo
//! pages) or when it matches `security.allowed_origins`: exact origins
//! (`https://app.example.com`, port included if not the scheme's default), subdomain
//! patterns (`https://*.example.com`: any name under it, not `example.com` itself), or
//! `*` (any page; for a public feed). Anything else, `Origin: null` (sandboxed frames,
//! `file:` pages) included unless `null` is listed, is refused with 403
//! `origin_not_allowed`. An allowed cross-origin request's answer carries
//! `Access-Control-Allow-Origin` (that origin), `Access-Control-Allow-Credentials`,
//! `Access-Control-Expose-Headers: x-switchboard-client` and `Vary: Origin`; a preflight
//! (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is answered
//! 204 with the methods (`GET, POST`), the headers asked for and a 10-minute max age.
//!
//! **Host.** Without a check, a page on `http://evil.example` whose name the attacker
//! re-points at 127.0.0.1 (DNS rebinding) is "same-origin" with a server on loopback.
//! So when the server listens on a loopback address, a request whose `Host` is not a
//! loopback name (`localhost`, `127.x.x.x`, `[::1]`) nor listed in
//! `security.allowed_hosts` is refused with 403 `host_not_allowed`. On any other address
//! every `Host` goes on unless `allowed_hosts` lists names (exact, or `*.example.com`).

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::admission::Ask;
use crate::error::ServerError;

/// The origins and hosts allowed, parsed once from the configuration.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any_origin: bool,
    origins: Vec<Pattern>,
    hosts: Vec<HostPattern>,
    /// Only loopback names (and `hosts`) are accepted as `Host`.
    loopback_only: bool,
}

/// One allowed origin: scheme, host (or a `*.` suffix) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(Origin),
    Subdomains {
        scheme: String,
        suffix: String,
        port: u16,
    },
    Null,
}

/// An allowed `Host` name: exact, or any name under a suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Subdomains(String),
}

/// A parsed origin (`scheme://host[:port]`), lower-cased, with the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = split_port(rest)?;
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(default),
        })
    }
}

/// `host[:port]` (IPv6 in brackets) into its parts; `None` if the port is not a number.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    match port {
        Some(p) => Some((host, Some(p.parse().ok()?))),
        None => Some((host, None)),
    }
}

/// Why a configured entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry(pub String);

impl OriginPolicy {
    /// The policy for a server listening on `listen` with these allow-lists; an entry that
    /// is not an origin (or a host name) is an error naming it.
    pub fn new(
        listen: SocketAddr,
        allowed_origins: &[String],
        allowed_hosts: &[String],
    ) -> Result<Self, BadEntry> {
        let mut policy = Self {
            any_origin: false,
            origins: Vec::new(),
            hosts: Vec::new(),
            loopback_only: listen.ip().is_loopback(),
        };
        for entry in allowed_origins {
            let e = entry.trim();
            if e == "*" {
                policy.any_origin = true;
                continue;
            }
            if e == "null" {
                policy.origins.push(Pattern::Null);
                continue;
            }
            let bad = || {
                BadEntry(format!("security.allowed_origins: {entry:?} is not an origin (scheme://host[:port], https://*.example.com, null or *)"))
            };
            let o = Origin::parse(e).ok_or_else(bad)?;
            policy.origins.push(match o.host.strip_prefix("*.") {
                Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => {
                    Pattern::Subdomains {
                        scheme: o.scheme,
                        suffix: format!(".{suffix}"),
                        port: o.port,
                    }
                }
                _ if o.host.contains('*') => return Err(bad()),
                _ => Pattern::Exact(o),
            });
        }
        for entry in allowed_hosts {
            let h = entry.trim().to_ascii_lowercase();
            let bad = || {
                BadEntry(format!(
                    "security.allowed_hosts: {entry:?} is not a host name"
                ))
            };
            if h.is_empty() || h.contains(['/', ':', '@']) {
                return Err(bad());
            }
            policy.hosts.push(match h.strip_prefix("*.") {
                Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => {
                    HostPattern::Subdomains(format!(".{suffix}"))
                }
                _ if h.contains('*') => return Err(bad()),
                _ => HostPattern::Exact(h),
            });
        }
        Ok(policy)
    }

    /// Checks `ask`'s `Host` and `Origin`: `Ok(Some(origin))` for an allowed cross-origin
    /// request (its answer gets CORS headers), `Ok(None)` for a same-origin request or one
    /// without `Origin`.
    pub fn check(&self, ask: &Ask<'_>) -> Result<Option<HeaderValue>, ServerError> {
        let host = ask
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if let Some(host) = host {
            if !self.host_allowed(host) {
                return Err(ServerError::refused(
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    format!(
                        "requests for host {host:?} are not served here; list it in \
                         security.allowed_hosts"
                    ),
                ));
            }
        }
        let Some(value) = ask.headers().get(header::ORIGIN) else {
            return Ok(None);
        };
        let text = value.to_str().unwrap_or("");
        if text == "null" {
            return if self.any_origin || self.origins.contains(&Pattern::Null) {
                Ok(Some(value.clone()))
            } else {
                Err(refused(text))
            };
        }
        let Some(origin) = Origin::parse(text) else {
            return Err(refused(text));
        };
        if host.is_some_and(|h| same_authority(&origin, h)) {
            return Ok(None);
        }
        if self.any_origin || self.origins.iter().any(|p| p.matches(&origin)) {
            return Ok(Some(value.clone()));
        }
        Err(refused(text))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let Some((name, _)) = split_port(host) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        let listed = self.hosts.iter().any(|p| match p {
            HostPattern::Exact(h) => *h == name,
            HostPattern::Subdomains(suffix) => name.ends_with(suffix.as_str()),
        });
        if listed {
            return true;
        }
        if self.loopback_only {
            return is_loopback_name(&name);
        }
        self.hosts.is_empty()
    }
}

impl Pattern {
    fn matches(&self, o: &Origin) -> bool {
        match self {
            Pattern::Exact(p) => p == o,
            Pattern::Subdomains {
                scheme,
                suffix,
                port,
            } => *scheme == o.scheme && *port == o.port && o.host.ends_with(suffix.as_str()),
            Pattern::Null => false,
        }
    }
}

fn refused(origin: &str) -> ServerError {
    ServerError::refused(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        format!(
            "pages from origin {origin:?} may not use this server; list it in \
             security.allowed_origins"
        ),
    )
}

/// Whether `origin` names the same host and port as the request's `Host`.
fn same_authority(origin: &Origin, host: &str) -> bool {
    let Some((name, port)) = split_port(host) else {
        return false;
    };
    let port = port.unwrap_or(if origin.scheme == "https" { 443 } else { 80 });
    name.eq_ignore_ascii_case(&origin.host) && port == origin.port
}

fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the request is a CORS preflight.
pub fn is_preflight(ask: &Ask<'_>) -> bool {
    ask.method() == Method::OPTIONS
        && ask.headers().contains_key(header::ORIGIN)
        && ask
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from an allowed origin (`cors`: `None` when same-origin).
pub fn preflight(cors: Option<HeaderValue>, request: &HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    decorate(cors, &mut resp);
    resp
}

/// Adds the CORS headers of an allowed cross-origin request to its answer.
pub fn decorate(cors: Option<HeaderValue>, resp: &mut Response) {
    let Some(origin) = cors else {
        return;
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(crate::transport::CLIENT_ID_HEADER),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::Uri;

    use super::*;

    fn policy(listen: &str, origins: &[&str], hosts: &[&str]) -> OriginPolicy {
        let o: Vec<String> = origins.iter().map(|s| (*s).to_owned()).collect();
        let h: Vec<String> = hosts.iter().map(|s| (*s).to_owned()).collect();
        OriginPolicy::new(listen.parse().unwrap(), &o, &h).unwrap()
    }

    /// The check's verdict: Ok(true) cross-origin allowed, Ok(false) same/none, Err(code).
    fn verdict(
        p: &OriginPolicy,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> Result<bool, &'static str> {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, v.parse().unwrap());
        }
        if let Some(v) = origin {
            h.insert(header::ORIGIN, v.parse().unwrap());
        }
        let uri = Uri::from_static("/ch/a");
        let ask = Ask::new(&Method::GET, &uri, &h, "127.0.0.1:1".parse().unwrap());
        p.check(&ask).map(|c| c.is_some()).map_err(|e| e.status().1)
    }

    #[test]
    fn same_origin_and_no_origin_go_on_by_default_others_are_refused() {
        let p = policy("127.0.0.1:8080", &[], &[]);
        let host = Some("127.0.0.1:8080");
        assert_eq!(verdict(&p, host, None), Ok(false));
        assert_eq!(verdict(&p, host, Some("http://127.0.0.1:8080")), Ok(false));
        assert_eq!(
            verdict(&p, Some("localhost:8080"), Some("http://LOCALHOST:8080")),
            Ok(false)
        );
        let refused = Err("origin_not_allowed");
        assert_eq!(verdict(&p, host, Some("http://127.0.0.1:8081")), refused);
        assert_eq!(verdict(&p, host, Some("http://evil.example")), refused);
        assert_eq!(verdict(&p, host, Some("null")), refused);
        assert_eq!(verdict(&p, host, Some("not an origin")), refused);
        // An https page on the default port of the same name.
        let p = policy("0.0.0.0:443", &[], &[]);
        assert_eq!(
            verdict(&p, Some("app.example"), Some("https://app.example")),
            Ok(false)
        );
        assert_eq!(
            verdict(&p, Some("app.example"), Some("http://app.example:81")),
            refused
        );
    }

    #[test]
    fn listed_origins_and_patterns() {
        let p = policy(
            "0.0.0.0:80",
            &[
                "https://app.example.com",
                "https://*.example.org",
                "http://localhost:3000",
                "null",
            ],
            &[],
        );
        let host = Some("rt.example.net");
        for (origin, ok) in [
            ("https://app.example.com", true),
            ("https://app.example.com:443", true),
            ("https://APP.example.com", true),
            ("http://app.example.com", false),
            ("https://app.example.com:8443", false),
            ("https://a.example.org", true),
            ("https://a.b.example.org", true),
            ("https://example.org", false),
            ("https://evilexample.org", false),
            ("http://localhost:3000", true),
            ("null", true),
            ("https://other.example", false),
        ] {
            let want = if ok {
                Ok(true)
            } else {
                Err("origin_not_allowed")
            };
            assert_eq!(verdict(&p, host, Some(origin)), want, "{origin}");
        }
        let any = policy("0.0.0.0:80", &["*"], &[]);
        assert_eq!(
            verdict(&any, host, Some("https://whoever.example")),
            Ok(true)
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://a/b",
            "https://*.*.x",
            "https://a*.x",
        ] {
            assert!(
                OriginPolicy::new("0.0.0.0:1".parse().unwrap(), &[bad.to_owned()], &[]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_only_unless_listed() {
        let p = policy("127.0.0.1:8080", &[], &[]);
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("localhost", true),
            ("[::1]:8080", true),
            ("127.1.2.3", true),
            ("evil.example:8080", false),
            ("10.0.0.1:8080", false),
        ] {
            let want = if ok {
                Ok(false)
            } else {
                Err("host_not_allowed")
            };
            assert_eq!(verdict(&p, Some(host), None), want, "{host}");
        }
        // The rebinding page itself: same-origin by name, refused by host.
        assert_eq!(
            verdict(
                &p,
                Some("evil.example:8080"),
                Some("http://evil.example:8080")
            ),
            Err("host_not_allowed")
        );
        let listed = policy("127.0.0.1:8080", &[], &["dev.example", "*.test"]);
        assert_eq!(verdict(&listed, Some("dev.example:8080"), None), Ok(false));
        assert_eq!(verdict(&listed, Some("a.test"), None), Ok(false));
        assert_eq!(
            verdict(&listed, Some("other.example"), None),
            Err("host_not_allowed")
        );
        // On a public address every name goes on, unless names are listed.
        let public = policy("0.0.0.0:80", &[], &[]);
        assert_eq!(verdict(&public, Some("anything.example"), None), Ok(false));
        let pinned = policy("0.0.0.0:80", &[], &["rt.example"]);
        assert_eq!(verdict(&pinned, Some("rt.example"), None), Ok(false));
        assert_eq!(
            verdict(&pinned, Some("other.example"), None),
            Err("host_not_allowed")
        );
    }
}
