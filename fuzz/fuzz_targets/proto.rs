//! The application protocol on arbitrary bytes (`switchboard-proto`): what a client sends
//! (SDK commands, cursors) is parsed without panicking, and what the server writes for any
//! payload survives the trip through each transport's framing.
//!
//! - `parse_command`: whatever parses re-encodes (`encode_command`) to one line that parses
//!   back to the same command (a JSON payload with its CR/LF whitespace flattened).
//! - `Cursor::parse`: a parsed cursor's text form parses back to it.
//! - Envelopes: for JSON (when the input is valid JSON), text and binary payloads, the
//!   WebSocket/poll JSON and the HTTP-streaming line are one line and decode back to the
//!   payload; the SSE event, read by a parser that follows the WHATWG rules, is one event
//!   with the cursor as its id and the payload (line breaks as LF) as its data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{
    encode_command, encode_sse_data, encode_sse_envelope, encode_stream_line, encode_ws_text,
    parse_command, parse_envelope, validate_json, Command, CommandData, Cursor, Data, Envelope,
    Epoch, Op, ReceivedData,
};

fuzz_target!(|data: &[u8]| {
    command_round_trip(data);
    if let Ok(c) = Cursor::parse(data) {
        assert_eq!(Cursor::parse(c.to_str_buf().as_bytes()), Ok(c));
    }
    // The cursor comes from the input too, so ids of every width are framed.
    let cursor = Cursor::new(
        Epoch(u64::from_le_bytes(word(data, 0))),
        u64::from_le_bytes(word(data, 8)),
    );
    if validate_json(data).is_ok() {
        envelope_round_trip(Data::Json(data), cursor);
    }
    let text = String::from_utf8_lossy(data);
    envelope_round_trip(Data::Text(&text), cursor);
    envelope_round_trip(Data::Binary(data), cursor);
});

fn word(data: &[u8], at: usize) -> [u8; 8] {
    let mut w = [0; 8];
    if let Some(src) = data.get(at..at + 8) {
        w.copy_from_slice(src);
    }
    w
}

/// Raw CR/LF in JSON can only be whitespace; the encoders turn it into spaces.
fn flatten(json: &str) -> String {
    json.replace(['\r', '\n'], " ")
}

fn command_round_trip(data: &[u8]) {
    let Ok(cmd) = parse_command(data) else {
        return;
    };
    let wire = encode_command(&cmd);
    assert!(!wire.contains(&b'\n') && !wire.contains(&b'\r'), "{wire:?}");
    let again = parse_command(&wire).expect("an encoded command parses");
    let want = match cmd.op {
        Op::Publish {
            channel,
            data: CommandData::Json(j),
            idempotency_key,
        } => {
            let flat = flatten(j);
            assert_eq!(
                again.op,
                Op::Publish {
                    channel,
                    data: CommandData::Json(&flat),
                    idempotency_key,
                }
            );
            return;
        }
        op => Command { id: cmd.id, op },
    };
    assert_eq!(again, want);
}

fn envelope_round_trip(payload: Data<'_>, cursor: Cursor) {
    let env = Envelope::message("chan\"nel\n\u{2028}", cursor, payload);
    let want = match payload {
        // Whitespace around the value is not part of it once it sits inside the envelope.
        Data::Json(j) => ReceivedData::Json(
            flatten(std::str::from_utf8(j).expect("valid JSON"))
                .trim_matches([' ', '\t'])
                .to_owned(),
        ),
        Data::Text(t) => ReceivedData::Json(serde_json::to_string(t).expect("a string")),
        Data::Binary(b) => ReceivedData::Binary(b.to_vec()),
        Data::None => ReceivedData::None,
    };

    let ws = encode_ws_text(&env);
    assert!(!ws.contains(&b'\n') && !ws.contains(&b'\r'), "{ws:?}");
    let back = parse_envelope(&ws).expect("an encoded envelope parses");
    assert_eq!(back.channel, env.channel);
    assert_eq!(back.cursor, Some(cursor));
    match (&back.data, &want) {
        // The JSON text of a string may be escaped differently; compare the strings.
        (ReceivedData::Json(got), ReceivedData::Json(_)) if matches!(payload, Data::Text(_)) => {
            let s: String = serde_json::from_str(got).expect("data is a JSON string");
            assert_eq!(Data::Text(&s), payload);
        }
        (got, want) => assert_eq!(got, want),
    }

    let line = encode_stream_line(&env);
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(&line[..line.len() - 1], &ws[..]);

    let id = cursor.to_str_buf();
    let body = encode_sse_envelope(&env);
    let events = parse_sse(&body);
    assert_eq!(events.len(), 1, "one SSE event");
    assert_eq!(events[0].id, Some(id.as_bytes()));
    assert_eq!(events[0].event, Some(&b"message"[..]));
    assert_eq!(events[0].data, &ws[..]);

    let body = encode_sse_data(&env);
    let events = parse_sse(&body);
    assert_eq!(events.len(), 1, "one SSE event");
    assert_eq!(events[0].id, Some(id.as_bytes()));
    let mut text = bytes::BytesMut::new();
    env.write_payload_text(&mut text);
    assert_eq!(events[0].data, lf_lines(&text));
}

/// `text` with CRLF and lone CR turned into LF, as an SSE reader sees line breaks.
fn lf_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' => {
                out.push(b'\n');
                if text.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[derive(Debug, Default)]
struct SseEvent<'a> {
    id: Option<&'a [u8]>,
    event: Option<&'a [u8]>,
    data: Vec<u8>,
}

/// The event stream interpretation of the HTML standard (§9.2.6), on bytes: lines end at
/// CRLF, CR or LF; a blank line dispatches; `field: value` with one optional space after
/// the colon; `data` lines are joined with LF; an id containing NUL is ignored.
fn parse_sse(body: &[u8]) -> Vec<SseEvent<'_>> {
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut data: Option<Vec<u8>> = None;
    let mut rest = body;
    while let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        let line = &rest[..end];
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if let Some(mut d) = data.take() {
                d.pop(); // the LF after the last data line
                current.data = d;
                events.push(std::mem::take(&mut current));
            }
            current = SseEvent::default();
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                let d = data.get_or_insert_with(Vec::new);
                d.extend_from_slice(value);
                d.push(b'\n');
            }
            b"event" => current.event = Some(value),
            b"id" if !value.contains(&0) => current.id = Some(value),
            _ => {}
        }
    }
    assert!(rest.is_empty(), "the body ends with a line break");
    events
}
