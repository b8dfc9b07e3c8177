//! [`Epochs`]: the epochs the in-memory broker gives its channels, chosen so that the
//! cursor handed out for a channel nothing was published to stays valid for what is
//! published next, without keeping anything for channels that are only read.
//!
//! An epoch is a keyed hash (SipHash, keys random per broker) of the channel's name and
//! the current *era*, one [`ERA`] of the broker's life: `epoch(name, era)`. Anyone can
//! compute the epoch of an empty channel again, so a read of a channel with no log needs
//! no log, and forgetting an empty log loses nothing. Another broker (or this one after a
//! restart) has other keys, so its epochs differ. What `memory` builds on it:
//!
//! * a log created in era `e` takes `epoch(name, e)`; an empty log that has not been used
//!   since an earlier era and that nobody follows takes the current era's epoch when next
//!   used (and still answers its previous one as its offset 0);
//! * a cursor `epoch(name, e − 1):0` is offset 0 of a log of era `e`: a cursor handed out
//!   near an era's end stays valid in the next;
//! * the log of a channel that was published to is forgotten (once idle) no earlier than
//!   era `e + 2`, so no two logs a reader could confuse ever share an epoch: a log of
//!   `epoch(name, e − 1)` with messages would still be there when the log of era `e` was
//!   made, so whoever holds `epoch(name, e − 1):0` missed nothing.
//!
//! A cursor held longer than that by a client that never polled meanwhile gets a `reset`
//! (with every message held after it, so nothing is skipped).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchboard_proto::Epoch;
use tokio::time::Instant;

/// How long an era lasts: how long at least an empty channel's cursor stays valid with
/// nobody using the channel, and how long at most an idle log that was published to is
/// kept after its epoch's era ended.
pub(crate) const ERA: Duration = Duration::from_secs(3600);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Epochs {
    keys: RandomState,
    started: Instant,
    /// Bumped by [`Epochs::wipe`]: every epoch changes, as when a broker's storage is lost.
    wipes: AtomicU64,
}

impl Default for Epochs {
    fn default() -> Self {
        Epochs {
            keys: RandomState::new(),
            started: Instant::now(),
            wipes: AtomicU64::new(0),
        }
    }
}

impl Epochs {
    /// The era at `now`.
    pub(crate) fn era(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs() / ERA.as_secs()
    }

    /// The epoch of `name` in `era` (never 0).
    pub(crate) fn epoch(&self, name: &str, era: u64) -> Epoch {
        let wipes = self.wipes.load(Ordering::Relaxed);
        Epoch(self.keys.hash_one((name, era, wipes)).max(1))
    }

    /// Whether `epoch` is the one `name` had in the era before `era`.
    pub(crate) fn is_previous(&self, epoch: Epoch, name: &str, era: u64) -> bool {
        era.checked_sub(1)
            .is_some_and(|before| epoch == self.epoch(name, before))
    }

    /// Every epoch made from now on differs from those made so far.
    pub(crate) fn wipe(&self) {
        self.wipes.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_epoch_per_name_and_era_and_broker() {
        let (a, b) = (Epochs::default(), Epochs::default());
        let now = Instant::now();
        assert_eq!(a.era(now), 0);
        assert_eq!(a.epoch("x", 0), a.epoch("x", 0));
        assert_ne!(a.epoch("x", 0), a.epoch("y", 0));
        assert_ne!(a.epoch("x", 0), a.epoch("x", 1));
        assert_ne!(a.epoch("x", 0), b.epoch("x", 0), "keys differ per broker");
        assert!(a.is_previous(a.epoch("x", 4), "x", 5));
        assert!(!a.is_previous(a.epoch("x", 3), "x", 5));
        assert!(!a.is_previous(a.epoch("x", 0), "x", 0));
        tokio::time::advance(ERA).await;
        assert_eq!(a.era(Instant::now()), 1);
        let before = a.epoch("x", 1);
        a.wipe();
        assert_ne!(a.epoch("x", 1), before);
    }
}
