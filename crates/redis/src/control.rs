//! Cluster-wide commands: a reserved feed, [`CHANNEL`], that every node subscribes to
//! as it subscribes a channel's feed, and whose messages the feed's push handler hands
//! here. Today one command: close a client's or a user's connections wherever they are.
//!
//! A command is `d<origin node id>:c<client id>` or `d<origin node id>:u<user id>`. The
//! node that sends it closes its own connections itself and skips its own message; every
//! other node hands it to the hub ([`FeedSinks::disconnect`]). Redis answers a publish
//! with how many subscribed connections it reached, one per node: the sender reports
//! that count less itself. Like the feed, a command sent while a node is cut off from
//! Redis does not reach it.

use switchboard_hub::{Disconnect, FeedSinks};

/// The control feed's name in the channels' key space: not a valid channel name (`!`),
/// so no channel's feed can be it.
pub(crate) const CHANNEL: &str = "!control";

/// The command asking every node to close `target`'s connections.
pub(crate) fn encode(origin: &str, target: &Disconnect) -> Vec<u8> {
    let (kind, id) = match target {
        Disconnect::Client(id) => ('c', id),
        Disconnect::User(id) => ('u', id),
    };
    format!("d{origin}:{kind}{id}").into_bytes()
}

/// The origin and target of a command; `None` when it is not one.
pub(crate) fn decode(data: &[u8]) -> Option<(&str, Disconnect)> {
    let rest = std::str::from_utf8(data).ok()?.strip_prefix('d')?;
    let (origin, target) = rest.split_once(':')?;
    let target = if let Some(id) = target.strip_prefix('c') {
        Disconnect::Client(id.to_owned())
    } else {
        Disconnect::User(target.strip_prefix('u')?.to_owned())
    };
    Some((origin, target))
}

/// A message of the control feed, as node `me` receives it.
pub(crate) fn on_message(sinks: &FeedSinks, me: &str, data: &[u8]) {
    match decode(data) {
        Some((origin, _)) if origin == me => {}
        Some((origin, target)) => {
            tracing::info!(from = origin, ?target, "disconnect asked by another node");
            sinks.disconnect(&target);
        }
        None => tracing::warn!("undecodable message on the Redis control feed; skipped"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn commands_round_trip() {
        for target in [
            Disconnect::Client("0a1b".into()),
            Disconnect::User("alice:with:colons".into()),
            Disconnect::User(String::new()),
        ] {
            let wire = encode("9f", &target);
            assert_eq!(decode(&wire), Some(("9f", target)));
        }
        for bad in [
            &b""[..],
            b"d",
            b"dx",
            b"d9f:",
            b"d9f:x1",
            b"x9f:c1",
            b"d9f:c\xff",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
