//! The envelope's JSON (`encode_ws_text`, the WebSocket text frame and poll element)
//! written by the crate's own writer (`src/json.rs`) against `serde_json::to_writer` of a
//! `#[derive(Serialize)]` struct, for 64 B and 1 KiB payloads of each kind. Both sides
//! allocate their output with the same reserve (`Envelope::json_size_hint`) and end in
//! `Bytes`.
//!
//! The serde side:
//! - JSON payload: `&RawValue` embedded verbatim, then one pass over the output turning
//!   raw CR/LF into spaces (the envelope must stay one line; outside the payload serde
//!   writes no raw CR/LF). `serde_prepared`: the `&RawValue` exists already (as if the
//!   message kept a `Box<RawValue>` from publish). `serde_parsed`: made from the payload
//!   bytes per encode (`from_slice::<&RawValue>`, a full parse), which is what
//!   `Data::Json(&[u8])` would need.
//! - text: `&str`.
//! - binary: `data_b64` through `collect_str(&Base64Display)` (no temporary string).
//!
//! (An `escape_str` group compared the crate's hand-written string escaping with
//! serde_json's; serde_json won and the crate now uses it, `docs/perf/handwritten.md`.)
//!
//! Before measuring, every case checks that both sides write the same bytes, and a table
//! of edge cases prints where they differ.
//!
//! Instruction counts (repeatable on a busy machine): with `ENVELOPE_JSON_COUNT=<case>:<n>`
//! the binary runs one case `n` times inside `measured` and exits, e.g.
//! `valgrind --tool=callgrind --toggle-collect='*measured*' <bench binary>`, then the
//! total Ir / n is the cost of one encode.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use switchboard_proto::{encode_ws_text, Cursor, Data, Envelope, Epoch};

/// The crate's JSON writer, compiled into this bench (it is private to the crate). Its
/// unit tests come along without their `#[test]` functions, hence `unused_imports`.
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../src/json.rs"]
mod json;

#[derive(Serialize)]
struct SerdeEnvelope<'a> {
    channel: &'a str,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<SerdeData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_b64: Option<B64<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SerdeData<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

struct B64<'a>(&'a [u8]);

impl Serialize for B64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

/// The serde version of `encode_ws_text`. `raw` is the JSON payload as a `RawValue`
/// (required when `env.data` is `Data::Json`).
fn serde_encode(env: &Envelope<'_>, raw: Option<&RawValue>) -> Bytes {
    let cursor = env.cursor.map(|c| c.to_str_buf());
    let (data, data_b64) = match env.data {
        Data::None => (None, None),
        Data::Json(_) => (raw.map(SerdeData::Json), None),
        Data::Text(t) => (Some(SerdeData::Text(t)), None),
        Data::Binary(b) => (None, Some(B64(b))),
    };
    let value = SerdeEnvelope {
        channel: env.channel,
        event: env.event.as_str(),
        offset: env.cursor.map(|c| c.offset),
        cursor: cursor.as_ref().map(|c| c.as_str()),
        data,
        data_b64,
    };
    let mut out = Vec::with_capacity(env.json_size_hint());
    serde_json::to_writer(&mut out, &value).unwrap();
    if raw.is_some() {
        for b in &mut out {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }
    Bytes::from(out)
}

fn serde_parsed(env: &Envelope<'_>) -> Bytes {
    let raw = match env.data {
        Data::Json(j) => Some(serde_json::from_slice::<&RawValue>(j).unwrap()),
        _ => None,
    };
    serde_encode(env, raw)
}

const CHANNEL: &str = "chat:lobby";
const CURSOR: Cursor = Cursor::new(Epoch(0x1a2b_3c4d), 123_456);

/// A JSON object of exactly `len` bytes (len ≥ 50): a few typical fields, then a text
/// field padded to the length.
fn json_payload(len: usize) -> Vec<u8> {
    let head = r#"{"user":"u-1842","price":101.25,"ok":true,"text":""#;
    let tail = r#""}"#;
    let pad = len - head.len() - tail.len();
    let mut s = String::with_capacity(len);
    s.push_str(head);
    s.extend((0..pad).map(|i| (b'a' + (i % 26) as u8) as char));
    s.push_str(tail);
    assert_eq!(s.len(), len);
    s.into_bytes()
}

/// Chat-like text of exactly `len` bytes: words, a quote pair and a newline every ~60 B
/// (both need escaping), and some non-ASCII.
fn text_payload(len: usize) -> String {
    let words = [
        "hello",
        "world",
        "\"quoted\"",
        "café",
        "line\n",
        "ok",
        "déjà",
        "vu",
    ];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        let w = words[i % words.len()];
        i += 1;
        if s.len() + w.len() + 1 > len {
            break;
        }
        s.push_str(w);
        s.push(' ');
    }
    while s.len() < len {
        s.push('x');
    }
    s
}

/// Bytes of every value (base64's cost does not depend on them).
fn binary_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(151)).collect()
}

struct Payloads {
    json: Vec<u8>,
    text: String,
    binary: Vec<u8>,
}

impl Payloads {
    fn new(len: usize) -> Self {
        Payloads {
            json: json_payload(len),
            text: text_payload(len),
            binary: binary_payload(len),
        }
    }
}

const SIZES: [(usize, &str); 2] = [(64, "64B"), (1024, "1KiB")];

/// Checks that both writers agree on the benchmark inputs, and prints where they differ
/// on edge cases.
fn check_outputs() {
    for (len, _) in SIZES {
        let p = Payloads::new(len);
        let raw = serde_json::from_slice::<&RawValue>(&p.json).unwrap();
        let json = Envelope::message(CHANNEL, CURSOR, Data::Json(&p.json));
        assert_eq!(encode_ws_text(&json), serde_encode(&json, Some(raw)));
        assert_eq!(encode_ws_text(&json), serde_parsed(&json));
        for data in [Data::Text(&p.text), Data::Binary(&p.binary)] {
            let env = Envelope::message(CHANNEL, CURSOR, data);
            assert_eq!(encode_ws_text(&env), serde_parsed(&env), "{len} B {data:?}");
        }
    }
    let edge: &[(&str, Data<'_>)] = &[
        (
            "json, pretty-printed",
            Data::Json(b"{\r\n  \"a\": [1, 2]\n}"),
        ),
        (
            "json, escapes inside",
            Data::Json(br#"{"a":"\u00e9\n\"/"}"#),
        ),
        ("text, \\n \\r \\t \" \\", Data::Text("a\nb\rc\td\"e\\f")),
        ("text, U+0008 U+000C", Data::Text("\u{8}\u{c}")),
        (
            "text, U+0001 U+001F U+007F",
            Data::Text("\u{1}\u{1f}\u{7f}"),
        ),
        ("text, non-ASCII, </script>", Data::Text("é 😀 </script>")),
        ("binary, empty", Data::Binary(b"")),
        ("no payload", Data::None),
    ];
    eprintln!("edge cases, own writer against serde_json:");
    for (name, data) in edge {
        let env = Envelope::message("c", CURSOR, *data);
        let (ours, theirs) = (encode_ws_text(&env), serde_parsed(&env));
        if ours == theirs {
            eprintln!("  {name}: identical");
        } else {
            eprintln!(
                "  {name}: DIFFERENT\n    ours:  {}\n    serde: {}",
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs)
            );
        }
    }
}

/// One bench case: a name and the encode it runs.
type Case<'a> = (String, Box<dyn Fn() -> Bytes + 'a>);

fn cases<'a>(p: &'a Payloads, raw: &'a RawValue, size: &str) -> Vec<Case<'a>> {
    let json = Envelope::message(CHANNEL, CURSOR, Data::Json(&p.json));
    let text = Envelope::message(CHANNEL, CURSOR, Data::Text(&p.text));
    let binary = Envelope::message(CHANNEL, CURSOR, Data::Binary(&p.binary));
    vec![
        (
            format!("json_{size}/hand"),
            Box::new(move || encode_ws_text(&json)),
        ),
        (
            format!("json_{size}/serde_prepared"),
            Box::new(move || serde_encode(&json, Some(raw))),
        ),
        (
            format!("json_{size}/serde_parsed"),
            Box::new(move || serde_parsed(&json)),
        ),
        (
            format!("text_{size}/hand"),
            Box::new(move || encode_ws_text(&text)),
        ),
        (
            format!("text_{size}/serde"),
            Box::new(move || serde_encode(&text, None)),
        ),
        (
            format!("binary_{size}/hand"),
            Box::new(move || encode_ws_text(&binary)),
        ),
        (
            format!("binary_{size}/serde"),
            Box::new(move || serde_encode(&binary, None)),
        ),
    ]
}

fn envelope_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope_json");
    for (len, size) in SIZES {
        let p = Payloads::new(len);
        let raw = serde_json::from_slice::<&RawValue>(&p.json).unwrap();
        group.throughput(Throughput::Bytes(len as u64));
        for (name, f) in cases(&p, raw, size) {
            group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(&f));
        }
    }
    group.finish();
}

/// Runs `f` `n` times; the only function callgrind counts in count mode.
#[inline(never)]
fn measured(f: &dyn Fn() -> Bytes, n: u64) -> usize {
    let mut total = 0;
    for _ in 0..n {
        total += black_box(f()).len();
    }
    total
}

fn count(spec: &str) {
    let (case, n) = spec
        .rsplit_once(':')
        .expect("ENVELOPE_JSON_COUNT=<case>:<n>");
    let n: u64 = n.parse().unwrap();
    for (len, size) in SIZES {
        let p = Payloads::new(len);
        let raw = serde_json::from_slice::<&RawValue>(&p.json).unwrap();
        for (name, f) in cases(&p, raw, size) {
            if name == case {
                let bytes = measured(&*f, n);
                println!("{name}: {n} encodes, {} B each", bytes as u64 / n.max(1));
                return;
            }
        }
    }
    panic!("no case {case}");
}

criterion_group!(benches, envelope_json);

fn main() {
    if let Ok(spec) = std::env::var("ENVELOPE_JSON_COUNT") {
        count(&spec);
        return;
    }
    check_outputs();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
