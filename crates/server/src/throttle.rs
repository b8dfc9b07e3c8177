//! Rate limits on what clients do, each a GCRA limiter (`governor`) keyed by who does it:
//!
//! - **Client publishes** (`limits.max_publishes_per_second`, default 1,000, burst one
//!   second's worth): per connection for WebSocket publishes (native frames and the `/ws`
//!   publish command); for `POST /ch/NAME`, per user when a client token names one (so
//!   a user cannot multiply the rate by spreading over addresses, nor take the rate of
//!   others behind the same address), else per client address. Over it: 429
//!   `publish_rate` with `Retry-After`, the `/ws` error `too_many_requests`, or (native
//!   WebSocket, which has no way to answer) close 1008.
//! - **Failed API key attempts** ([`MAX_FAILURES`] per client address per minute): once
//!   over, every `/api` request from that address is answered 429 `too_many_failures`
//!   until the minute is over, before its key is looked at, so a key cannot be guessed at
//!   speed (a right guess is not told apart either).
//!
//! Memory: one entry per key seen recently (about 100 B); [`Throttle::sweep`] (every
//! minute, with the hub's housekeeping) drops the entries that are back to full, and a
//! map that passes [`MAX_KEYS`] between sweeps is swept at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::Limits;
use crate::error::ServerError;

/// Most keys a limiter keeps between sweeps (about 100 B each).
pub const MAX_KEYS: usize = 100_000;

/// Failed API key attempts an address may make per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;

/// The window failed attempts are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Who publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Publisher {
    /// A WebSocket connection, by its client key.
    Connection(u64),
    /// An HTTP client, by its address.
    Address(IpAddr),
    /// An authenticated user (a token's `sub`), by a keyed hash of its name
    /// ([`Throttle::user`]).
    User(u64),
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// The server's rate limiters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    publishes: Option<Keyed<Publisher>>,
    /// Hashes user names into [`Publisher::User`] keys (random per process).
    users: std::collections::hash_map::RandomState,
    /// Per address: failures in the window that began at the instant.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// The limiters for `limits`.
    pub fn new(limits: &Limits) -> Self {
        let publishes = NonZeroU32::new(limits.max_publishes_per_second)
            .map(|n| RateLimiter::hashmap(Quota::per_second(n)));
        Self {
            inner: Arc::new(Inner {
                publishes,
                users: std::collections::hash_map::RandomState::new(),
                failures: Mutex::default(),
            }),
        }
    }

    /// The publisher key of the user named `user`.
    pub fn user(&self, user: &str) -> Publisher {
        use std::hash::BuildHasher;
        Publisher::User(self.inner.users.hash_one(user))
    }

    /// Counts one publish by `who`; over the rate, the error says when to retry.
    pub fn publish(&self, who: Publisher) -> Result<(), ServerError> {
        let Some(limiter) = &self.inner.publishes else {
            return Ok(());
        };
        bound(limiter);
        limiter
            .check_key(&who)
            .map_err(|not_until| ServerError::PublishRate {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Whether `ip` may try an API key now (its failures are under the budget).
    pub fn may_try_key(&self, ip: IpAddr) -> Result<(), ServerError> {
        let map = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get(&ip) {
            Some(&(n, since)) if n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err(ServerError::TooManyFailures {
                    retry_after: FAILURE_WINDOW.saturating_sub(since.elapsed()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed API key attempt from `ip`.
    pub fn key_failed(&self, ip: IpAddr) {
        let mut map = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let now = Instant::now();
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Drops the entries that are back to full (periodic housekeeping).
    pub fn sweep(&self) {
        if let Some(p) = &self.inner.publishes {
            p.retain_recent();
        }
        self.inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
    }
}

/// Sweeps a limiter's map once it passes [`MAX_KEYS`]: what stays are the publishers of
/// the last second, which the connection limits bound.
fn bound<K: std::hash::Hash + Eq + Clone>(limiter: &Keyed<K>) {
    if limiter.len() > MAX_KEYS {
        limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn publishes_over_the_rate_are_refused_per_publisher() {
        let t = Throttle::new(&Limits {
            max_publishes_per_second: 3,
            ..Limits::default()
        });
        let a = Publisher::Connection(1);
        let b = Publisher::Address("10.0.0.1".parse().unwrap());
        assert!((0..3).all(|_| t.publish(a).is_ok()));
        let e = t.publish(a).unwrap_err();
        assert_eq!(e.status().1, "publish_rate");
        assert!(t.publish(b).is_ok(), "another publisher has its own budget");
        assert_eq!(t.user("alice"), t.user("alice"), "one user, one budget");
        assert_ne!(t.user("alice"), t.user("bob"));
        let off = Throttle::new(&Limits {
            max_publishes_per_second: 0,
            ..Limits::default()
        });
        assert!((0..10_000).all(|_| off.publish(a).is_ok()));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_keys_lock_an_address_out_for_the_rest_of_the_minute() {
        let t = Throttle::new(&Limits::default());
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(t.may_try_key(ip).is_ok());
            t.key_failed(ip);
        }
        let e = t.may_try_key(ip).unwrap_err();
        assert_eq!(
            e.status(),
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures"
            )
        );
        assert!(t.may_try_key(other).is_ok());
        tokio::time::advance(FAILURE_WINDOW).await;
        assert!(t.may_try_key(ip).is_ok(), "a new minute");
        t.sweep();
        assert!(t.inner.failures.lock().unwrap().is_empty());
    }
}
