//! The connection front's request-head classifier (`crates/server/src/front/head.rs`,
//! compiled in here: it needs only `http`, `httparse` and the ws crate) on arbitrary bytes
//! and limits. Never panics, and never takes over a request hyper would read differently
//! (request smuggling): a head the front answers itself is one complete HTTP/1.1 `GET`
//! ending exactly where the bytes end (nothing pipelined behind it), with no
//! `Content-Length`, `Transfer-Encoding` or `Expect`, no obs-fold, and the request it
//! builds carries exactly the head's headers. The first byte picks the head limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../crates/server/src/front/head.rs"]
mod head;

use head::Parsed;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let max = 64 + usize::from(pick) * 64;
    let parsed = head::parse(bytes, max);
    let req = match &parsed {
        Parsed::Partial => {
            assert!(bytes.len() < max, "Partial at {} of {max} bytes", bytes.len());
            let mut h = [httparse::EMPTY_HEADER; 64];
            let status = httparse::Request::new(&mut h).parse(bytes);
            assert!(matches!(status, Ok(httparse::Status::Partial)), "{status:?}");
            return;
        }
        Parsed::TooLarge => {
            assert!(bytes.len() >= max);
            return;
        }
        Parsed::Malformed | Parsed::Hyper => return,
        Parsed::Own(r) | Parsed::Exchange(r) | Parsed::Upgrade(r) => r,
    };
    // Taken over: check it against httparse's own reading of the same bytes.
    let mut h = [httparse::EMPTY_HEADER; 64];
    let mut theirs = httparse::Request::new(&mut h);
    let Ok(httparse::Status::Complete(len)) = theirs.parse(bytes) else {
        panic!("taken over, but not a complete head");
    };
    assert_eq!(len, bytes.len(), "bytes after the head were taken over");
    assert_eq!(theirs.method, Some("GET"));
    assert_eq!(theirs.version, Some(1));
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(req.version(), http::Version::HTTP_11);
    for forbidden in ["content-length", "transfer-encoding", "expect"] {
        assert!(
            !theirs.headers.iter().any(|h| h.name.eq_ignore_ascii_case(forbidden)),
            "{forbidden} taken over"
        );
        assert!(!req.headers().contains_key(forbidden));
    }
    let head_text = &bytes[..len];
    assert!(
        !head_text.windows(3).any(|w| w == b"\r\n " || w == b"\r\n\t")
            && !head_text.windows(2).any(|w| w == b"\n " || w == b"\n\t"),
        "obs-fold taken over"
    );
    // The request carries exactly the head's headers: every name with its values in
    // order (a header map groups a name's values, so the order across names may differ).
    assert_eq!(req.headers().len(), theirs.headers.len());
    for t in theirs.headers.iter() {
        let values: Vec<&[u8]> = theirs
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(t.name))
            .map(|h| h.value)
            .collect();
        let ours: Vec<&[u8]> = req
            .headers()
            .get_all(t.name.to_ascii_lowercase())
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(ours, values, "{}", t.name);
    }
    // An origin-form target is kept as sent, up to a fragment (which `http`'s `Uri`, as
    // hyper's, drops): the handlers read the path from it.
    if let Some(target) = theirs.path.filter(|p| p.starts_with('/')) {
        let sent = target.split('#').next().unwrap_or(target);
        assert_eq!(req.uri().path_and_query().map(|p| p.as_str()), Some(sent));
    }
    // Only subscribe endpoints stream or exchange without an upgrade.
    if let Parsed::Own(_) | Parsed::Exchange(_) = parsed {
        let path = req.uri().path();
        assert!(path == "/sub" || path.strip_prefix("/ch/").is_some_and(|n| !n.is_empty() && !n.contains('/')), "{path}");
        assert!(!req.headers().contains_key("upgrade"));
    }
});
