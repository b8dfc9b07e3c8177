//! The browser client (`clients/js`, built into `clients/js/dist/switchboard.js` and
//! committed, so building the server needs no Node) served at `/switchboard.js`, so a
//! page can `import { Client } from '/switchboard.js'` with no build step of its own.
//!
//! The bytes are in the binary (`include_bytes!`). The answer carries a strong `ETag`
//! (the first 16 hex digits of the bytes' SHA-1, computed once), `Cache-Control: public,
//! max-age=300` (a new server version reaches pages within five minutes, and then costs
//! a 304), and answers `If-None-Match` with `304 Not Modified`. Served whether or not
//! the demos are on; like every request it passes the front's checks first.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Where the bundle is served.
pub const PATH: &str = "/switchboard.js";

/// The built bundle.
pub const BUNDLE: &[u8] = include_bytes!("../../../clients/js/dist/switchboard.js");

/// `Cache-Control` of the bundle.
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The bundle's strong entity tag, `"<16 hex digits of its SHA-1>"`.
pub fn etag() -> &'static str {
    static ETAG: LazyLock<String> = LazyLock::new(|| {
        let hex = sha1_smol::Sha1::from(BUNDLE).digest().to_string();
        format!("\"{}\"", &hex[..16])
    });
    &ETAG
}

/// Whether `If-None-Match` names `tag` (or is `*`).
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

/// `GET /switchboard.js`.
pub async fn serve(headers: HeaderMap) -> Response {
    let tag = etag();
    let common = [
        (header::ETAG, HeaderValue::from_static(tag)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if not_modified(&headers, tag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        BUNDLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_a_strong_content_hash() {
        let tag = etag();
        assert_eq!(tag.len(), 18);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert!(tag[1..17].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            &tag[1..17],
            &sha1_smol::Sha1::from(BUNDLE).digest().to_string()[..16]
        );
    }

    #[test]
    fn if_none_match_forms() {
        let tag = etag();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).expect("ascii"),
            );
            not_modified(&h, tag)
        };
        assert!(with(tag));
        assert!(with(&format!("\"other\", {tag}")));
        assert!(with(&format!("W/{tag}")));
        assert!(with("*"));
        assert!(!with("\"other\""));
        assert!(!not_modified(&HeaderMap::new(), tag));
    }
}
