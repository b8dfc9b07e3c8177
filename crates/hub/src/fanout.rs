//! Local fan-out: this node's subscribers per channel, fed by the broker.
//!
//! The broker calls [`FeedSink::deliver`] once per message; the fan-out looks the channel
//! up and pushes a pointer to the same [`Message`] into each subscriber's bounded queue
//! (see [`crate::subscription`] for what happens when one is full). No payload is copied
//! and nothing is encoded here. Lock order: channel map, then a channel's subscriber list,
//! then one subscriber's queue.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::broker::FeedSink;
use crate::config::SlowConsumerPolicy;
use crate::error::CloseReason;
use crate::message::Message;
use crate::queue::Queue;
use crate::subscription::SubShared;

/// A channel's local subscribers, with the queue bound and slow-consumer policy of its
/// namespace (the same for every subscriber, so kept once here).
pub(crate) struct LocalChannel {
    subs: RwLock<Vec<Arc<SubShared>>>,
    capacity: usize,
    policy: SlowConsumerPolicy,
}

#[derive(Default)]
pub(crate) struct Fanout {
    channels: RwLock<HashMap<Arc<str>, Arc<LocalChannel>>>,
}

impl Fanout {
    /// Adds a subscriber; `capacity` and `policy` (the namespace's) apply to the channel.
    /// Returns the channel's name as the fan-out holds it, so every subscription of a
    /// channel shares one allocation of it.
    pub(crate) fn add(
        &self,
        channel: &str,
        sub: Arc<SubShared>,
        capacity: usize,
        policy: SlowConsumerPolicy,
    ) -> Arc<str> {
        let mut map = self.channels.write().unwrap_or_else(|e| e.into_inner());
        let (name, local) = match map.get_key_value(channel) {
            Some((name, local)) => (name.clone(), local.clone()),
            None => {
                let name: Arc<str> = Arc::from(channel);
                let local = Arc::new(LocalChannel {
                    subs: RwLock::default(),
                    capacity: capacity.clamp(1, Queue::MAX),
                    policy,
                });
                map.insert(name.clone(), local.clone());
                (name, local)
            }
        };
        local
            .subs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sub);
        name
    }

    pub(crate) fn remove(&self, channel: &str, sub: &Arc<SubShared>) {
        let mut map = self.channels.write().unwrap_or_else(|e| e.into_inner());
        let Some(local) = map.get(channel) else {
            return;
        };
        let now_empty = {
            let mut subs = local.subs.write().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = subs.iter().position(|s| Arc::ptr_eq(s, sub)) {
                subs.swap_remove(i);
            }
            subs.is_empty()
        };
        if now_empty {
            map.remove(channel);
        }
    }

    /// Local subscribers of `channel`.
    pub(crate) fn count(&self, channel: &str) -> usize {
        let map = self.channels.read().unwrap_or_else(|e| e.into_inner());
        map.get(channel).map_or(0, |l| {
            l.subs.read().unwrap_or_else(|e| e.into_inner()).len()
        })
    }

    /// Channels with local subscribers and their counts.
    pub(crate) fn counts(&self) -> Vec<(Arc<str>, usize)> {
        let map = self.channels.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, l)| {
                (
                    k.clone(),
                    l.subs.read().unwrap_or_else(|e| e.into_inner()).len(),
                )
            })
            .collect()
    }

    /// Closes every local subscription matching `pred`; returns how many.
    pub(crate) fn close_matching(
        &self,
        reason: CloseReason,
        pred: impl Fn(&SubShared) -> bool,
    ) -> usize {
        let map = self.channels.read().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for local in map.values() {
            for sub in local.subs.read().unwrap_or_else(|e| e.into_inner()).iter() {
                if pred(sub) && sub.close(reason) {
                    n += 1;
                }
            }
        }
        n
    }
}

impl FeedSink for Fanout {
    fn deliver(&self, msg: &Message) {
        let local = {
            let map = self.channels.read().unwrap_or_else(|e| e.into_inner());
            match map.get(msg.channel()) {
                Some(l) => l.clone(),
                None => return,
            }
        };
        let subs = local.subs.read().unwrap_or_else(|e| e.into_inner());
        for sub in subs.iter() {
            sub.push(msg, local.capacity, local.policy);
        }
    }
}
