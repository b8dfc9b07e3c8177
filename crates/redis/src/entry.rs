//! The bytes this broker keeps in Redis and sends through it, as pure functions: key
//! names, log entries, feed messages and presence entries.
//!
//! Keys of one channel share the hash tag `{NAME}`, so they sit in one Redis Cluster slot
//! and one Lua script may touch them all. Channel names never contain `{` or `}` (the hub
//! refuses them), so the tag is the whole name.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sb:{NAME}:m` | hash | `e` = epoch (hex), `h` = last offset, `b` = the log's bytes as `history_bytes` counts them |
//! | `sb:{NAME}:l` | list | retained entries, oldest first; index 0 is offset `h - LLEN + 1` |
//! | `sb:{NAME}:p` | hash | presence: client id → `<node id>:` and the presence entry JSON |
//! | `sb:{NAME}:f` | pub/sub channel | the live feed |
//! | `sb:{NAME}:i:KEY` | string, expires after the idempotency window | `<epoch hex>:<offset>` of the publish that gave KEY |
//! | `sb:{!nodes}:ID` | string, expires unless its node refreshes it | the heartbeat of node ID (see `presence`) |
//! | `sb:nodes` | sorted set | node id → its deadline (ms, Redis's clock), to find dead nodes to reap |
//! | `sb:{!control}:f` | pub/sub channel | cluster-wide commands (see `control`) |
//!
//! A log entry is `<publish time, ms>:<kind><payload>` (kind `j` JSON, `t` text, `b`
//! binary). A feed message is `m<epoch hex>:<offset>:` followed by the entry for a
//! published message, or `j`/`l` followed by the presence entry JSON for `join`/`leave`.
//! The scripts (see `scripts`) build entries and feed messages the same way.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_hub::{ClientInfo, Cursor, Epoch, Event, Message, Payload, PayloadKind};

/// Every key starts with this.
const PREFIX: &str = "sb:{";

/// The key of `channel`'s `part` (`m`, `l`, `p` or `f`).
pub(crate) fn key(channel: &str, part: char) -> String {
    let mut k = String::with_capacity(PREFIX.len() + channel.len() + 3);
    k.push_str(PREFIX);
    k.push_str(channel);
    k.push_str("}:");
    k.push(part);
    k
}

/// The key remembering idempotency key `idem` on `channel` (binary-safe: the key is
/// opaque; the hash tag is the channel's, so it sits in the channel's slot).
pub(crate) fn idempotency_key(channel: &str, idem: &str) -> String {
    let mut k = key(channel, 'i');
    k.push(':');
    k.push_str(idem);
    k
}

/// Every node's deadline: a node not heard of after it is reaped (see `presence`).
pub(crate) const NODES: &str = "sb:nodes";

/// The heartbeat key of node `id`. Every node's is in one slot (the tag `{!nodes}`,
/// which no channel name can take), so a presence read asks about all the nodes it
/// needs in one pipeline, on a cluster too; no script touches it with a channel's keys.
pub(crate) fn node_key(id: &str) -> String {
    format!("sb:{{!nodes}}:{id}")
}

/// The channel name of a key made by [`key`] with `part`.
pub(crate) fn channel_of(key: &[u8], part: char) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX.as_bytes())?;
    let name = rest.strip_suffix(&[b'}', b':', part as u8][..])?;
    std::str::from_utf8(name).ok()
}

/// The one-letter kind of a payload, as entries store it.
pub(crate) fn kind_letter(kind: PayloadKind) -> &'static str {
    match kind {
        PayloadKind::Json => "j",
        PayloadKind::Text => "t",
        PayloadKind::Binary => "b",
    }
}

/// Text form of an epoch in keys and scripts.
pub(crate) fn epoch_hex(epoch: Epoch) -> String {
    format!("{:x}", epoch.0)
}

pub(crate) fn parse_epoch(hex: &[u8]) -> Option<Epoch> {
    let s = std::str::from_utf8(hex).ok()?;
    u64::from_str_radix(s, 16).ok().map(Epoch)
}

fn payload(kind: u8, data: Bytes) -> Option<Payload> {
    match kind {
        // Validated before it was stored.
        b'j' => Some(Payload::json_prevalidated(data)),
        b't' => Payload::text(data).ok(),
        b'b' => Some(Payload::binary(data)),
        _ => None,
    }
}

/// Splits `<digits>:` off the front.
fn number(input: &[u8]) -> Option<(u64, &[u8])> {
    let colon = input.iter().position(|&b| b == b':')?;
    let n = std::str::from_utf8(&input[..colon]).ok()?.parse().ok()?;
    Some((n, &input[colon + 1..]))
}

/// The payload of a log entry (`<ms>:<kind><payload>`), sharing `entry`'s bytes.
pub(crate) fn entry_payload(entry: &Bytes) -> Option<Payload> {
    let (_, rest) = number(entry)?;
    let (&kind, data) = rest.split_first()?;
    let start = entry.len() - data.len();
    payload(kind, entry.slice(start..))
}

/// A message read from the feed of `channel`. Its payload is copied out of the feed
/// message (one copy per node, not per subscriber): subscriber queues hold the message,
/// and a view into the feed's buffer would keep its header and the buffer's spare room.
pub(crate) fn feed_message(channel: Arc<str>, feed: &Bytes) -> Option<Message> {
    let (&tag, rest) = feed.split_first()?;
    match tag {
        b'm' => {
            let colon = rest.iter().position(|&b| b == b':')?;
            let epoch = parse_epoch(&rest[..colon])?;
            let (offset, entry) = number(&rest[colon + 1..])?;
            // The entry: `<publish time>:<kind><payload>`.
            let (_, entry) = number(entry)?;
            let (&kind, data) = entry.split_first()?;
            let payload = payload(kind, Bytes::copy_from_slice(data))?;
            Some(Message::published(
                channel,
                Cursor::new(epoch, offset),
                payload,
            ))
        }
        b'j' | b'l' => {
            let event = if tag == b'j' {
                Event::Join
            } else {
                Event::Leave
            };
            // Already the presence entry JSON: checked, not rebuilt through a ClientInfo.
            let data = Payload::json(feed.slice(1..)).ok()?;
            Some(Message::new(channel, event, None, data))
        }
        _ => None,
    }
}

/// The feed message of a `join`/`leave` event, `None` for other events.
pub(crate) fn feed_presence_event(msg: &Message) -> Option<Vec<u8>> {
    let tag = match msg.event() {
        Event::Join => b'j',
        Event::Leave => b'l',
        _ => return None,
    };
    let mut out = Vec::with_capacity(1 + msg.data().len());
    out.push(tag);
    out.extend_from_slice(msg.data());
    Some(out)
}

/// How presence stores a client: the id of the node that holds its connection, `:`,
/// then its presence entry JSON.
pub(crate) fn presence_value(node: &str, client: &ClientInfo) -> Vec<u8> {
    let json = client.as_presence_entry().to_json();
    let mut out = Vec::with_capacity(node.len() + 1 + json.len());
    out.extend_from_slice(node.as_bytes());
    out.push(b':');
    out.extend_from_slice(&json);
    out
}

/// A stored presence value split into its node id and its presence entry JSON. A value
/// that starts with the JSON (written before entries named their node) has no node.
pub(crate) fn presence_parts(value: &[u8]) -> Option<(Option<&str>, &[u8])> {
    if value.first() == Some(&b'{') {
        return Some((None, value));
    }
    let colon = value.iter().position(|&b| b == b':')?;
    let node = std::str::from_utf8(&value[..colon]).ok()?;
    Some((Some(node), &value[colon + 1..]))
}

#[derive(serde::Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    client: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    user: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    info: Option<&'a serde_json::value::RawValue>,
}

/// A client read back from its presence entry JSON.
pub(crate) fn presence_client(json: &[u8]) -> Option<ClientInfo> {
    let e: Entry<'_> = serde_json::from_slice(json).ok()?;
    let mut client = ClientInfo::new(&*e.client);
    if let Some(u) = e.user {
        client = client.with_user(&*u);
    }
    if let Some(i) = e.info {
        client = client.with_conn_info(Bytes::copy_from_slice(i.get().as_bytes()));
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_carry_the_channel_as_their_hash_tag() {
        assert_eq!(key("chat:lobby", 'm'), "sb:{chat:lobby}:m");
        assert_eq!(channel_of(b"sb:{chat:lobby}:m", 'm'), Some("chat:lobby"));
        assert_eq!(channel_of(b"sb:{chat:lobby}:m", 'f'), None);
        assert_eq!(channel_of(b"other:{x}:m", 'm'), None);
    }

    #[test]
    fn feed_messages_decode_to_what_was_published() {
        let ch: Arc<str> = Arc::from("c");
        let m = feed_message(
            ch.clone(),
            &Bytes::from_static(b"mabc:7:1700000000000:j{\"a\":1}"),
        )
        .unwrap();
        assert_eq!(m.event(), Event::Message);
        assert_eq!(m.cursor(), Some(Cursor::new(Epoch(0xabc), 7)));
        assert_eq!(m.payload().kind(), PayloadKind::Json);
        assert_eq!(&m.data()[..], b"{\"a\":1}");

        // The payload is a copy, not a view that would keep the feed message's buffer.
        let feed = Bytes::from_static(b"mabc:7:1700000000000:j{\"a\":1}");
        let m = feed_message(ch.clone(), &feed).unwrap();
        let inside = feed.as_ptr_range();
        assert!(!inside.contains(&m.data().as_ptr()));

        // Binary payloads keep every byte, colons included.
        let m = feed_message(ch.clone(), &Bytes::from_static(b"m1:2:5:b\x00:\xff")).unwrap();
        assert_eq!(m.payload().kind(), PayloadKind::Binary);
        assert_eq!(&m.data()[..], b"\x00:\xff");

        let join = Message::presence_event(
            ch.clone(),
            Event::Join,
            &ClientInfo::new("c1").with_user("u1"),
        );
        let wire = Bytes::from(feed_presence_event(&join).unwrap());
        let back = feed_message(ch.clone(), &wire).unwrap();
        assert_eq!(back.event(), Event::Join);
        assert_eq!(back.data(), join.data());

        for bad in [
            &b""[..],
            b"x",
            b"mzz:1:0:j1",
            b"m1:x:0:j1",
            b"m1:2:0:q1",
            b"m1:2:0:t\xff",
        ] {
            assert!(
                feed_message(ch.clone(), &Bytes::copy_from_slice(bad)).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn presence_entries_round_trip() {
        for c in [
            ClientInfo::new("a"),
            ClientInfo::new("b").with_user("user \"q\""),
            ClientInfo::new("c")
                .with_user("u")
                .with_conn_info(Bytes::from_static(b"{\"x\":[1,2]}")),
        ] {
            let value = presence_value("9f", &c);
            let (node, json) = presence_parts(&value).unwrap();
            assert_eq!(node, Some("9f"));
            let back = presence_client(json).unwrap();
            assert_eq!(back.client_id(), c.client_id());
            assert_eq!(back.user_id(), c.user_id());
            assert_eq!(back.conn_info(), c.conn_info());
            // An entry stored before entries named their node: the JSON alone.
            let json = c.as_presence_entry().to_json();
            assert_eq!(presence_parts(&json), Some((None, &json[..])));
        }
        assert_eq!(presence_parts(b"no colon"), None);
    }
}
