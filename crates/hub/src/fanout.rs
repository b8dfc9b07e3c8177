//! Local fan-out: this node's subscribers per channel, fed by the broker.
//!
//! The broker calls [`FeedSink::deliver`] once per message; the fan-out looks the channel
//! up and pushes a pointer to the same [`Message`] into each subscriber's bounded queue
//! (see [`crate::subscription`] for what happens when one is full). No payload is copied
//! and nothing is encoded here. Subscribers are woken after the message is queued to all
//! of them, paced on a current-thread runtime ([`crate::pacing`]); with a batch window
//! (see [`crate::batch`]) at most once per window. Lock order: channel map, then a channel's subscriber
//! list, then its window, then one subscriber's queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use switchboard_proto::Event;
use tokio::time::{Duration, Instant};

use crate::batch::{Action, Window};
use crate::broker::{Disconnect, FeedSink};
use crate::config::{NamespaceConfig, SlowConsumerPolicy};
use crate::direct::DirectWrite;
use crate::error::CloseReason;
use crate::inbox::{Inbox, Pushed};
use crate::message::Message;
use crate::pacing::Wakes;
use crate::queue::Queue;
use crate::stats::HubStats;

/// A channel's local subscribers, with the queue bound, slow-consumer policy and batch
/// window of its namespace (the same for every subscriber, so kept once here).
pub(crate) struct LocalChannel {
    subs: RwLock<Vec<Arc<Inbox>>>,
    capacity: usize,
    policy: SlowConsumerPolicy,
    /// The namespace announces `join`/`leave`: when it does not, such events are not
    /// delivered (a broker may announce the entries of a node that died regardless).
    join_leave: bool,
    /// The namespace's batch window and its state; `None`: wake at every message.
    batch: Option<(Duration, Mutex<Window>)>,
}

impl LocalChannel {
    /// A batch window's wake: every subscriber sees to what was queued, the way a message
    /// without a window is seen to (paced, written directly where it can be), so a
    /// window's messages leave in one write per subscriber.
    fn wake_all(&self, write: Option<DirectWrite>) {
        let subs = self.subs.read().unwrap_or_else(|e| e.into_inner());
        let mut wakes = Wakes::new(subs.len());
        let direct = write.filter(|_| wakes.paced());
        for sub in subs.iter() {
            wakes.act(sub, sub.wake_queued(direct.is_some()), direct);
        }
        drop(subs);
        wakes.finish();
    }

    /// After a message was queued to every subscriber under a batch window: wake them now,
    /// or schedule the wake at the window's end. `write` is the fan-out's direct writer.
    fn after_quiet_push(
        self: &Arc<Self>,
        window: Duration,
        state: &Mutex<Window>,
        write: Option<DirectWrite>,
    ) {
        let now = Instant::now();
        let action = lock_window(state).on_message(now, window);
        match action {
            Action::Nothing => {}
            Action::WakeNow => self.wake_all(write),
            Action::WakeAt(at) => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let local = self.clone();
                    rt.spawn(async move {
                        tokio::time::sleep_until(at).await;
                        local.window_ends(at, write);
                    });
                }
                // No runtime to wait on (a publish from plain threads): deliver now.
                Err(_) => self.window_ends(now, write),
            },
        }
    }

    /// The scheduled wake of a batch window, happening for `at`: a new window starts and
    /// every subscriber is woken for what was queued meanwhile.
    fn window_ends(&self, at: Instant, write: Option<DirectWrite>) {
        if let Some((window, state)) = &self.batch {
            lock_window(state).on_scheduled_wake(at, *window);
        }
        self.wake_all(write);
    }
}

fn lock_window(state: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the server does first with another node's disconnect.
pub(crate) type DisconnectHook = Box<dyn Fn(&Disconnect) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Fanout {
    channels: RwLock<HashMap<Arc<str>, Arc<LocalChannel>>>,
    /// The hub's counters: one add per message delivered (its subscriber count).
    pub(crate) stats: Arc<HubStats>,
    /// Told first when another node's disconnect arrives (the server's own list of
    /// connections; see [`crate::Hub::on_remote_disconnect`]).
    pub(crate) on_disconnect: OnceLock<DisconnectHook>,
    /// The transport's writer for direct delivery ([`crate::direct`]); none until set.
    pub(crate) direct_write: OnceLock<crate::direct::DirectWrite>,
}

impl Fanout {
    /// Adds a subscriber; the queue bound, policy and batch window of `ns` (the channel's
    /// namespace) apply to the channel. Returns the channel's name as the fan-out holds
    /// it, so every subscription of a channel shares one allocation of it; or `None` when
    /// the channel is new and `max_channels` are held already.
    pub(crate) fn add(
        &self,
        channel: &str,
        sub: Arc<Inbox>,
        ns: &NamespaceConfig,
        max_channels: usize,
    ) -> Option<Arc<str>> {
        let mut map = self.channels.write().unwrap_or_else(|e| e.into_inner());
        let (name, local) = match map.get_key_value(channel) {
            Some((name, local)) => (name.clone(), local.clone()),
            None if map.len() >= max_channels => return None,
            None => {
                let name: Arc<str> = Arc::from(channel);
                let local = Arc::new(LocalChannel {
                    subs: RwLock::default(),
                    capacity: ns.queue_capacity.clamp(1, Queue::MAX),
                    policy: ns.slow_consumer,
                    join_leave: ns.join_leave,
                    batch: ns
                        .batch_window
                        .filter(|w| !w.is_zero())
                        .map(|w| (w, Mutex::default())),
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
        Some(name)
    }

    pub(crate) fn remove(&self, channel: &str, sub: &Arc<Inbox>) {
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
        pred: impl Fn(&Inbox) -> bool,
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
        if !local.join_leave && matches!(msg.event(), Event::Join | Event::Leave) {
            return;
        }
        let wake = local.batch.is_none();
        let (mut queued, mut closed, mut dropped) = (0, 0, 0);
        let subs = local.subs.read().unwrap_or_else(|e| e.into_inner());
        let mut wakes = Wakes::new(if wake { subs.len() } else { 0 });
        let write = self.direct_write.get().copied();
        let direct = write.filter(|_| wakes.paced());
        for sub in subs.iter() {
            let (pushed, waker) =
                sub.push(msg, local.capacity, local.policy, wake, direct.is_some());
            match pushed {
                Pushed::Queued => queued += 1,
                Pushed::DroppedOldest => {
                    queued += 1;
                    dropped += 1;
                }
                Pushed::Closed => closed += 1,
                Pushed::Gone => {}
            }
            wakes.act(sub, waker, direct);
        }
        drop(subs);
        // Paced on a current-thread runtime (see the module), outside the list's lock.
        wakes.finish();
        self.stats.count_delivered(queued);
        self.stats.count_slow(closed, dropped);
        if let Some((window, state)) = &local.batch {
            local.after_quiet_push(*window, state, write);
        }
    }

    fn resync_all(&self) {
        let map = self.channels.read().unwrap_or_else(|e| e.into_inner());
        for local in map.values() {
            for sub in local.subs.read().unwrap_or_else(|e| e.into_inner()).iter() {
                sub.resync();
            }
        }
    }

    /// The hook first, then the subscriptions: a connection subscribing meanwhile is
    /// caught by one or the other (the order the backend API's local disconnect keeps).
    fn disconnect(&self, target: &Disconnect) {
        if let Some(hook) = self.on_disconnect.get() {
            hook(target);
        }
        self.close_matching(CloseReason::Disconnected, |s| match target {
            Disconnect::Client(id) => s.client.client_id() == id,
            Disconnect::User(user) => s.client.user_id() == Some(user.as_str()),
        });
    }
}
