//! Joining with history: where a new subscription starts when it asks for the channel's
//! recent messages (`since=oldest`, `since=last:N`, `?last=N`; see
//! [`switchboard_proto::since`]) rather than a cursor. Every transport subscribes through
//! [`start`], so the same request gives the same messages over each of them.
//!
//! `last:N` starts N messages before the channel's head, `oldest` before the oldest
//! message held; either is moved up to the oldest held when the channel holds fewer, so
//! a join never reports a `reset` for messages that were never asked for. It costs two
//! history reads of no messages (the head, then whether the start is still held); a
//! message trimmed between those reads and the subscription is reported as usual.

use switchboard_hub::{Cursor, HistoryAnswer, Hub};
use switchboard_proto::Since;

use crate::error::ServerError;

/// The cursor to subscribe from for `since` on `channel` (`None`: from now).
pub async fn start(
    hub: &Hub,
    channel: &str,
    since: Option<Since>,
) -> Result<Option<Cursor>, ServerError> {
    let back = match since {
        None => return Ok(None),
        Some(Since::After(c)) => return Ok(Some(c)),
        Some(Since::Last(n)) => u64::from(n),
        Some(Since::Oldest) => u64::MAX,
    };
    let head = match hub.history(channel, None, Some(0)).await? {
        HistoryAnswer::Gap { head, .. } | HistoryAnswer::Reset { head, .. } => head,
    };
    if back == 0 {
        return Ok(Some(head));
    }
    let wanted = Cursor::new(head.epoch, head.offset.saturating_sub(back));
    Ok(Some(
        match hub.history(channel, Some(wanted), Some(0)).await? {
            HistoryAnswer::Gap { .. } => wanted,
            // Fewer held than asked for: all of them.
            HistoryAnswer::Reset { earliest, .. } => earliest,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_hub::{HubConfig, NamespaceConfig, Payload};

    fn hub(history_size: usize) -> Hub {
        Hub::new(HubConfig::default().with_namespace(
            "",
            NamespaceConfig {
                history_size,
                ..NamespaceConfig::default()
            },
        ))
    }

    async fn publish(hub: &Hub, n: usize) -> Vec<Cursor> {
        let mut out = Vec::new();
        for i in 0..n {
            let c = hub
                .publish("c", Payload::text(i.to_string().into()).expect("utf-8"))
                .await
                .expect("publish");
            out.push(c);
        }
        out
    }

    #[tokio::test]
    async fn starts_by_count_or_at_the_oldest_held() {
        let h = hub(5);
        // An empty channel: every form starts at its (empty) head.
        let empty = start(&h, "c", Some(Since::Oldest)).await.expect("oldest");
        assert_eq!(empty.map(|c| c.offset), Some(0));
        let cs = publish(&h, 8).await;
        let at = |since| {
            let h = h.clone();
            async move { start(&h, "c", since).await.expect("start") }
        };
        let e = cs[0].epoch;
        assert_eq!(at(None).await, None);
        assert_eq!(at(Some(Since::After(cs[2]))).await, Some(cs[2]));
        assert_eq!(at(Some(Since::Last(0))).await, Some(cs[7]));
        assert_eq!(at(Some(Since::Last(2))).await, Some(Cursor::new(e, 6)));
        // Offsets 4..=8 are held (five): more than five asked for starts before 4.
        assert_eq!(at(Some(Since::Last(5))).await, Some(Cursor::new(e, 3)));
        assert_eq!(at(Some(Since::Last(50))).await, Some(Cursor::new(e, 3)));
        assert_eq!(at(Some(Since::Oldest)).await, Some(Cursor::new(e, 3)));
        // A subscription from there gets exactly the messages held, and no reset.
        let mut sub = h
            .subscribe(
                "c",
                at(Some(Since::Oldest)).await,
                switchboard_hub::ClientInfo::new("t"),
            )
            .await
            .expect("subscribe");
        for want in 4..=8 {
            let m = sub.recv().await.expect("message");
            assert_eq!(m.event(), switchboard_hub::Event::Message);
            assert_eq!(m.cursor().map(|c| c.offset), Some(want));
        }
        assert!(sub.try_recv().expect("open").is_none());
    }
}
