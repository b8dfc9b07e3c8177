//! `Sec-WebSocket-Extensions`: the RFC 6455 §9.1 grammar and the RFC 7692
//! permessage-deflate negotiation, for both roles.
//!
//! Grammar: comma-separated extensions, each a token followed by `;`-separated parameters
//! `name[=value]`, the value a token or a quoted-string whose unescaped content is a token.
//! Whitespace around separators and empty list elements are tolerated; several header
//! lines are joined with `,` before parsing. Names compare ASCII case-insensitively.
//!
//! Server: [`negotiate_server`] walks the client's offers in order and accepts the FIRST
//! permessage-deflate offer it can honour; an offer with an unknown or duplicated parameter
//! or an invalid value is declined on its own, and a later acceptable offer still wins.
//! Our [`DeflateConfig`] shapes the response:
//! - `server_no_context_takeover` is sent when the client asked for it or our config wants
//!   it (a server may always promise this);
//! - `client_no_context_takeover` is sent when the client offered it or our config wants
//!   it (RFC 7692 §7.1.1.2 lets the server add it);
//! - `server_max_window_bits` = the smaller of the client's request and our config, sent
//!   when the client asked or our config is below 15; an offer asking for 8 is accepted,
//!   and since zlib cannot compress with an 8-bit window the server then sends every
//!   message uncompressed (RFC 7692 allows it; see `DeflateParams::compresses`);
//! - `client_max_window_bits` is sent only if the client offered the parameter (a server
//!   MUST NOT send it otherwise): the smaller of the client's value (15 if none) and our
//!   config, sent when either is below 15. If our config limits the client's window but
//!   the client did not offer the parameter, that offer is declined: we could not hold
//!   the client to our limit.
//!
//! Client: [`client_offer`] builds one offer from our config, and [`negotiate_client`]
//! checks the server's answer against it, strictly: anything we did not offer, any
//! unknown, duplicated or out-of-range parameter, a window larger than we asked for, or
//! a missing `server_no_context_takeover` we asked for fails the handshake. A server's
//! `client_max_window_bits=8` is accepted and makes the client send uncompressed, as zlib
//! cannot compress with an 8-bit window; for the same reason the window sizes of our own
//! config are clamped to 9..=15 (we never ask for 8).

use super::HandshakeError;
use crate::config::DeflateConfig;
use crate::deflate::DeflateParams;

/// The extension token of RFC 7692.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// One element of an extension list: an extension name and its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    /// `(name, value)`; a quoted value is unescaped.
    pub params: Vec<(String, Option<String>)>,
}

/// Parses a `Sec-WebSocket-Extensions` value (several lines joined with `,`).
/// An empty value gives an empty list.
pub fn parse(value: &str) -> Result<Vec<Extension>, HandshakeError> {
    let mut c = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    let bad = HandshakeError::MalformedExtensions;
    let mut out = Vec::new();
    loop {
        c.skip_ows();
        match c.peek() {
            None => return Ok(out),
            Some(b',') => {
                c.i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = c.token().ok_or(bad)?;
        let mut params = Vec::new();
        loop {
            c.skip_ows();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.i += 1;
                    break;
                }
                Some(b';') => {
                    c.i += 1;
                    c.skip_ows();
                    let pname = c.token().ok_or(bad)?;
                    c.skip_ows();
                    let pvalue = if c.peek() == Some(b'=') {
                        c.i += 1;
                        c.skip_ows();
                        let v = if c.peek() == Some(b'"') {
                            c.quoted().ok_or(bad)?
                        } else {
                            c.token().ok_or(bad)?.to_owned()
                        };
                        Some(v)
                    } else {
                        None
                    };
                    params.push((pname.to_owned(), pvalue));
                }
                Some(_) => return Err(bad),
            }
        }
        out.push(Extension {
            name: name.to_owned(),
            params,
        });
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(super::is_tchar) {
            self.i += 1;
        }
        // Token bytes are ASCII, so the slice is valid UTF-8 on char boundaries.
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .filter(|t| !t.is_empty())
    }

    /// A quoted-string whose unescaped content must be a token (RFC 6455 §9.1).
    fn quoted(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    out.push(self.peek()?);
                    self.i += 1;
                }
                _ => out.push(b),
            }
        }
        if super::is_token(&out) {
            String::from_utf8(out).ok()
        } else {
            None
        }
    }
}

/// The permessage-deflate parameters of one offer or response, each seen at most once.
#[derive(Debug, Default)]
struct Pmd {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (only valid in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

/// Reads the parameters; `None` on an unknown or duplicated parameter or a bad value.
fn read_params(params: &[(String, Option<String>)], is_offer: bool) -> Option<Pmd> {
    let mut p = Pmd::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let index = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))?;
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        match (index, value) {
            (0, None) => p.server_no_context_takeover = true,
            (1, None) => p.client_no_context_takeover = true,
            (2, Some(v)) => p.server_max_window_bits = Some(window_bits(v)?),
            (3, Some(v)) => p.client_max_window_bits = Some(Some(window_bits(v)?)),
            (3, None) if is_offer => p.client_max_window_bits = Some(None),
            _ => return None,
        }
    }
    Some(p)
}

/// A window size: decimal 8..=15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => v.parse().ok(),
        _ => None,
    }
}

/// Our config's window sizes, forced into 9..=15: zlib cannot deflate with a 256-byte
/// (8-bit) window (it silently uses 9, whose output an 8-bit inflater may reject), so we
/// never promise nor ask for 8.
fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Server side: accepts the first acceptable permessage-deflate offer in `offers` and
/// returns the agreed parameters and the `Sec-WebSocket-Extensions` response value.
/// `None` when no offer is acceptable (the handshake goes on without compression).
pub fn negotiate_server(
    offers: &[Extension],
    config: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    offers
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .find_map(|offer| {
            let p = read_params(&offer.params, true)?;
            accept_offer(&p, config)
        })
}

fn accept_offer(offer: &Pmd, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let our_server_bits = clamp_bits(config.server_max_window_bits);
    let our_client_bits = clamp_bits(config.client_max_window_bits);

    let server_no_context_takeover =
        offer.server_no_context_takeover || config.server_no_context_takeover;
    let client_no_context_takeover =
        offer.client_no_context_takeover || config.client_no_context_takeover;
    let server_bits = match offer.server_max_window_bits {
        Some(asked) => Some(asked.min(our_server_bits)),
        None if our_server_bits < 15 => Some(our_server_bits),
        None => None,
    };
    let client_bits = match offer.client_max_window_bits {
        // The client cannot be told to use a smaller window.
        None if our_client_bits < 15 => return None,
        None => None,
        Some(theirs) => {
            let bits = theirs.unwrap_or(15).min(our_client_bits);
            (bits < 15 || theirs.is_some()).then_some(bits)
        }
    };

    let mut response = String::from(PERMESSAGE_DEFLATE);
    if server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = server_bits {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    if let Some(bits) = client_bits {
        response.push_str(&format!("; client_max_window_bits={bits}"));
    }
    let params = DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits: server_bits.unwrap_or(15),
        client_max_window_bits: client_bits.unwrap_or(15),
    };
    Some((params, response))
}

/// Client side: the permessage-deflate offer for `config`. `server_max_window_bits` is
/// asked for only below 15; `client_max_window_bits` is always offered (without a value
/// at 15), telling the server we can honour a smaller window it picks.
pub fn client_offer(config: &DeflateConfig) -> String {
    let server_bits = clamp_bits(config.server_max_window_bits);
    let client_bits = clamp_bits(config.client_max_window_bits);
    let mut offer = String::from(PERMESSAGE_DEFLATE);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if server_bits < 15 {
        offer.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    offer.push_str("; client_max_window_bits");
    if client_bits < 15 {
        offer.push_str(&format!("={client_bits}"));
    }
    offer
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` (already parsed) against
/// the offer made from `offered` (`None`: we offered nothing) and returns the agreed
/// parameters, `None` if the server declined.
pub fn negotiate_client(
    response: &[Extension],
    offered: Option<&DeflateConfig>,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let bad = HandshakeError::BadExtensionParams;
    let Some(ext) = response.first() else {
        return Ok(None);
    };
    let Some(config) = offered else {
        return Err(HandshakeError::UnrequestedExtension);
    };
    if response
        .iter()
        .any(|e| !e.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
    {
        return Err(HandshakeError::UnrequestedExtension);
    }
    if response.len() > 1 {
        return Err(bad);
    }
    let p = read_params(&ext.params, false).ok_or(bad)?;
    if config.server_no_context_takeover && !p.server_no_context_takeover {
        return Err(bad);
    }
    let asked_server_bits = clamp_bits(config.server_max_window_bits);
    let server_bits = match p.server_max_window_bits {
        Some(bits) if bits <= asked_server_bits => bits,
        Some(_) => return Err(bad),
        None if asked_server_bits < 15 => return Err(bad),
        None => 15,
    };
    let our_client_bits = clamp_bits(config.client_max_window_bits);
    let client_bits = match p.client_max_window_bits {
        // 8 makes us send uncompressed (`DeflateParams::compresses`).
        Some(Some(bits)) if (8..=our_client_bits).contains(&bits) => bits,
        Some(_) => return Err(bad),
        None => our_client_bits,
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn grammar_accepts() {
        let pmd = PERMESSAGE_DEFLATE;
        let cases: Vec<(&str, Vec<Extension>)> = vec![
            ("", vec![]),
            ("  ", vec![]),
            (" , ,", vec![]),
            ("permessage-deflate", vec![ext(pmd, &[])]),
            (
                "permessage-deflate; client_max_window_bits",
                vec![ext(pmd, &[("client_max_window_bits", None)])],
            ),
            (
                "permessage-deflate;client_max_window_bits=10;server_no_context_takeover",
                vec![ext(
                    pmd,
                    &[
                        ("client_max_window_bits", Some("10")),
                        ("server_no_context_takeover", None),
                    ],
                )],
            ),
            (
                "permessage-deflate ; server_max_window_bits = \"10\" , x-foo",
                vec![
                    ext(pmd, &[("server_max_window_bits", Some("10"))]),
                    ext("x-foo", &[]),
                ],
            ),
            (
                "a; b=\"c\\d\", e;f\t;g=h,,",
                vec![
                    ext("a", &[("b", Some("cd"))]),
                    ext("e", &[("f", None), ("g", Some("h"))]),
                ],
            ),
            // Several header lines joined.
            (
                "foo, bar; baz=2",
                vec![ext("foo", &[]), ext("bar", &[("baz", Some("2"))])],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn grammar_rejects() {
        for text in [
            ";",
            "permessage-deflate;",
            "permessage-deflate; ;x",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"\"",
            "permessage-deflate; a=\"b c\"",
            "permessage-deflate; a=\"unterminated",
            "permessage-deflate; a=\"esc\\",
            "permessage-deflate; a=b c",
            "permessage-deflate x",
            "perm=essage",
            "a; b=c=d",
            "a; b=\"c\"d",
            "ä",
            "a; b=(c)",
        ] {
            assert_eq!(
                parse(text),
                Err(HandshakeError::MalformedExtensions),
                "{text:?}"
            );
        }
    }

    /// Offer header, our config, expected params and response header.
    type ServerCase<'a> = (&'a str, &'a DeflateConfig, Option<(DeflateParams, &'a str)>);
    /// Response header, what we offered, expected outcome.
    type ClientCase<'a> = (
        &'a str,
        Option<&'a DeflateConfig>,
        Result<Option<DeflateParams>, HandshakeError>,
    );

    fn server(header: &str, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
        negotiate_server(&parse(header).unwrap(), config)
    }

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    #[test]
    fn server_negotiation_table() {
        let plain = DeflateConfig {
            server_no_context_takeover: false,
            ..DeflateConfig::default()
        };
        let fanout = DeflateConfig::default(); // server_no_context_takeover
        let small = DeflateConfig {
            server_no_context_takeover: false,
            server_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let small_client = DeflateConfig {
            server_no_context_takeover: false,
            client_max_window_bits: 9,
            ..DeflateConfig::default()
        };
        let cnct = DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let pmd = "permessage-deflate";
        #[rustfmt::skip]
        let cases: Vec<ServerCase<'_>> = vec![
            ("", &plain, None),
            ("x-webkit-deflate-frame", &plain, None),
            (pmd, &plain, Some((params(false, false, 15, 15), pmd))),
            ("PerMessage-Deflate", &plain, Some((params(false, false, 15, 15), pmd))),
            (pmd, &fanout, Some((params(true, false, 15, 15),
                "permessage-deflate; server_no_context_takeover"))),
            ("permessage-deflate; client_max_window_bits", &plain,
                Some((params(false, false, 15, 15), pmd))),
            ("permessage-deflate; client_max_window_bits", &small_client,
                Some((params(false, false, 15, 9), "permessage-deflate; client_max_window_bits=9"))),
            // The client did not offer client_max_window_bits: we cannot limit it.
            (pmd, &small_client, None),
            ("permessage-deflate; client_max_window_bits=12", &plain,
                Some((params(false, false, 15, 12), "permessage-deflate; client_max_window_bits=12"))),
            ("permessage-deflate; client_max_window_bits=12", &small_client,
                Some((params(false, false, 15, 9), "permessage-deflate; client_max_window_bits=9"))),
            ("permessage-deflate; server_max_window_bits=9", &plain,
                Some((params(false, false, 9, 15), "permessage-deflate; server_max_window_bits=9"))),
            // An 8-bit server window is accepted; the server then sends uncompressed.
            ("permessage-deflate; server_max_window_bits=8", &plain,
                Some((params(false, false, 8, 15), "permessage-deflate; server_max_window_bits=8"))),
            ("permessage-deflate; client_max_window_bits=8", &plain,
                Some((params(false, false, 15, 8), "permessage-deflate; client_max_window_bits=8"))),
            ("permessage-deflate; server_max_window_bits=12", &small,
                Some((params(false, false, 10, 15), "permessage-deflate; server_max_window_bits=10"))),
            ("permessage-deflate; server_max_window_bits=9", &small,
                Some((params(false, false, 9, 15), "permessage-deflate; server_max_window_bits=9"))),
            (pmd, &small, Some((params(false, false, 10, 15),
                "permessage-deflate; server_max_window_bits=10"))),
            ("permessage-deflate; server_no_context_takeover", &plain,
                Some((params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover"))),
            ("permessage-deflate; client_no_context_takeover", &plain,
                Some((params(false, true, 15, 15), "permessage-deflate; client_no_context_takeover"))),
            (pmd, &cnct, Some((params(false, true, 15, 15),
                "permessage-deflate; client_no_context_takeover"))),
            ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
              server_max_window_bits=11; client_max_window_bits=13", &plain,
                Some((params(true, true, 11, 13), "permessage-deflate; server_no_context_takeover; \
                    client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13"))),
            // Quoted values are values like any other.
            ("permessage-deflate; server_max_window_bits=\"10\"", &plain,
                Some((params(false, false, 10, 15), "permessage-deflate; server_max_window_bits=10"))),
            // Declined offers: bad values, missing values, duplicates, unknown parameters.
            ("permessage-deflate; server_max_window_bits", &plain, None),
            ("permessage-deflate; server_max_window_bits=7", &plain, None),
            ("permessage-deflate; server_max_window_bits=16", &plain, None),
            ("permessage-deflate; server_max_window_bits=010", &plain, None),
            ("permessage-deflate; client_max_window_bits=0", &plain, None),
            ("permessage-deflate; server_no_context_takeover=1", &plain, None),
            ("permessage-deflate; client_no_context_takeover=\"x\"", &plain, None),
            ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", &plain, None),
            ("permessage-deflate; client_max_window_bits; client_max_window_bits=10", &plain, None),
            ("permessage-deflate; mystery", &plain, None),
            // The first acceptable offer wins; unacceptable ones before it are skipped
            // (Autobahn 13.7.x sends several offers).
            ("permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits=10, permessage-deflate",
                &plain, Some((params(false, false, 15, 10), "permessage-deflate; client_max_window_bits=10"))),
            ("permessage-deflate; a, permessage-deflate; b, permessage-deflate; client_no_context_takeover",
                &plain, Some((params(false, true, 15, 15), "permessage-deflate; client_no_context_takeover"))),
            ("x-foo, permessage-deflate; server_max_window_bits=10, permessage-deflate", &plain,
                Some((params(false, false, 10, 15), "permessage-deflate; server_max_window_bits=10"))),
            ("permessage-deflate; mystery, permessage-deflate; server_max_window_bits=16", &plain, None),
        ];
        for (header, config, expected) in cases {
            let got = server(header, config);
            let expected = expected.map(|(p, s)| (p, s.to_owned()));
            assert_eq!(got, expected, "{header:?} with {config:?}");
        }
    }

    #[test]
    fn server_responses_parse_back() {
        // Whatever we answer must be valid for a strict client of the same offer.
        let configs = [
            DeflateConfig::default(),
            DeflateConfig {
                server_no_context_takeover: false,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 11,
                compression_threshold: 0,
            },
        ];
        for server_cfg in &configs {
            for client_cfg in &configs {
                let offer = client_offer(client_cfg);
                let (sp, response) = server(&offer, server_cfg).unwrap();
                let cp = negotiate_client(&parse(&response).unwrap(), Some(client_cfg))
                    .unwrap()
                    .unwrap();
                assert_eq!(sp, cp, "{offer:?} -> {response:?}");
            }
        }
    }

    #[test]
    fn client_offers() {
        assert_eq!(
            client_offer(&DeflateConfig::default()),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits"
        );
        assert_eq!(
            client_offer(&DeflateConfig {
                server_no_context_takeover: false,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 12,
                compression_threshold: 0,
            }),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits=12"
        );
        // Out-of-range config values are clamped instead of written as invalid offers.
        assert_eq!(
            client_offer(&DeflateConfig {
                server_no_context_takeover: false,
                server_max_window_bits: 3,
                client_max_window_bits: 99,
                ..DeflateConfig::default()
            }),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits"
        );
    }

    #[test]
    fn client_validation_table() {
        let plain = DeflateConfig {
            server_no_context_takeover: false,
            ..DeflateConfig::default()
        };
        let fanout = DeflateConfig::default();
        let small = DeflateConfig {
            server_no_context_takeover: false,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let bad = Err(HandshakeError::BadExtensionParams);
        let unrequested = Err(HandshakeError::UnrequestedExtension);
        #[rustfmt::skip]
        let cases: Vec<ClientCase<'_>> = vec![
            ("", None, Ok(None)),
            ("", Some(&plain), Ok(None)),
            ("permessage-deflate", None, unrequested),
            ("x-foo", Some(&plain), unrequested),
            ("permessage-deflate, x-foo", Some(&plain), unrequested),
            ("permessage-deflate, permessage-deflate", Some(&plain), bad),
            ("permessage-deflate", Some(&plain), Ok(Some(params(false, false, 15, 15)))),
            ("permessage-deflate; server_no_context_takeover", Some(&plain),
                Ok(Some(params(true, false, 15, 15)))),
            ("permessage-deflate; client_no_context_takeover", Some(&plain),
                Ok(Some(params(false, true, 15, 15)))),
            ("permessage-deflate; server_max_window_bits=9", Some(&plain),
                Ok(Some(params(false, false, 9, 15)))),
            // The server may use 8 for itself; imposing 8 on us makes us send uncompressed.
            ("permessage-deflate; server_max_window_bits=8", Some(&plain),
                Ok(Some(params(false, false, 8, 15)))),
            ("permessage-deflate; client_max_window_bits=8", Some(&plain),
                Ok(Some(params(false, false, 15, 8)))),
            ("permessage-deflate; client_max_window_bits=9", Some(&plain),
                Ok(Some(params(false, false, 15, 9)))),
            // We asked for server_no_context_takeover; the server must grant it.
            ("permessage-deflate", Some(&fanout), bad),
            ("permessage-deflate; server_no_context_takeover", Some(&fanout),
                Ok(Some(params(true, false, 15, 15)))),
            // We asked for a server window of at most 10.
            ("permessage-deflate", Some(&small), bad),
            ("permessage-deflate; server_max_window_bits=11", Some(&small), bad),
            ("permessage-deflate; server_max_window_bits=10", Some(&small),
                Ok(Some(params(false, false, 10, 12)))),
            ("permessage-deflate; server_max_window_bits=10; client_max_window_bits=13", Some(&small), bad),
            ("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", Some(&small),
                Ok(Some(params(false, false, 10, 9)))),
            // Malformed, unknown, duplicated, valueless or out of range.
            ("permessage-deflate; client_max_window_bits", Some(&plain), bad),
            ("permessage-deflate; server_max_window_bits", Some(&plain), bad),
            ("permessage-deflate; server_max_window_bits=16", Some(&plain), bad),
            ("permessage-deflate; server_max_window_bits=7", Some(&plain), bad),
            ("permessage-deflate; server_no_context_takeover=yes", Some(&plain), bad),
            ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", Some(&plain), bad),
            ("permessage-deflate; foo", Some(&plain), bad),
        ];
        for (header, offered, expected) in cases {
            let got = negotiate_client(&parse(header).unwrap(), offered);
            assert_eq!(got, expected, "{header:?} after offering {offered:?}");
        }
    }
}
