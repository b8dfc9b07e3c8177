//! How many connections, from where, and how fast new ones come: the front's connection
//! limits, checked when a connection is accepted, before any byte is read.
//!
//! - **Total** (`limits.max_connections`; default: the process's open-file limit minus a
//!   reserve of 64 for the listener, the broker and files): a connection over it is
//!   answered `503 server_full` with `Retry-After` and closed.
//! - **Per client address** (`limits.max_connections_per_ip`, default 1,000; IPv6 counted
//!   per /64, which one host typically owns): over it, `429 too_many_connections`.
//! - **New connections per second** (`limits.max_new_connections_per_second`, default
//!   0 = no limit; burst one second's worth): over it, a reconnect storm is turned away
//!   with `503 busy` and `Retry-After` for HTTP, or a WebSocket close 1013 whose reason
//!   says when to retry, so clients come back spread out instead of all at once (see
//!   [`super::exchange`]). Each refusal is promised its own later slot (the k-th client
//!   refused in a burst is told to wait about k / rate), because telling every refused
//!   client "the next slot" (a millisecond away) brings the whole storm back at once: a
//!   run of 10,000 clients whose retry honoured that hint needed 141,572 attempts and
//!   still had 6,023 out after 120 s (`docs/perf/REPORT.md`, the reconnect storm).
//!
//! The first two are answered at once, without reading the request (the answer is
//! written, the stream shut down, and what the client sent is read and dropped for up to
//! a second, so the answer is not lost to a reset). A connection counts from accept
//! until its stream is dropped, wherever it went (a WebSocket's own task, a stream, hyper):
//! the count rides on the stream itself ([`Counted`]), one pointer per connection. The
//! same count is what shutdown's drain waits on ([`Connections::wait_idle`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Limits;
use crate::error::ServerError;
use crate::io::Io;

/// Open files kept free for the listener, the broker's connections and files.
const FD_RESERVE: usize = 64;

/// The connection counts of one server. Shared by its accept loop and every stream.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    max_total: usize,
    max_per_ip: usize,
    per_ip: Mutex<HashMap<IpAddr, Arc<Address>>>,
    /// Woken when the last connection leaves (shutdown's drain waits on it).
    idle: Notify,
    new_rate: Option<NewRate>,
}

/// The new-connection rate, and the slots promised to the connections it refused.
#[derive(Debug)]
struct NewRate {
    limiter: RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>,
    /// What `promised` counts from.
    epoch: Instant,
    /// One slot: a second divided by the rate, in nanoseconds.
    slot_ns: u64,
    /// The end of the last slot promised, in nanoseconds since `epoch`.
    promised: AtomicU64,
}

/// The longest wait a refused connection is told (the queue of promises stops growing).
const MAX_PROMISE: Duration = Duration::from_secs(60);

impl NewRate {
    fn new(per_second: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
            epoch: Instant::now(),
            slot_ns: 1_000_000_000 / u64::from(per_second.get()),
            promised: AtomicU64::new(0),
        }
    }

    /// Whether a new connection fits now; if not, how long until the slot promised to
    /// it: after every slot already promised, and no sooner than the limiter allows.
    fn check(&self) -> Result<(), Duration> {
        let Err(not_until) = self.limiter.check() else {
            return Ok(());
        };
        let earliest = not_until.wait_time_from(DefaultClock::default().now());
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let earliest = now.saturating_add(u64::try_from(earliest.as_nanos()).unwrap_or(u64::MAX));
        let limit = now.saturating_add(u64::try_from(MAX_PROMISE.as_nanos()).unwrap_or(u64::MAX));
        let before = self
            .promised
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |end| {
                let start = end.max(earliest);
                (start < limit).then(|| start.saturating_add(self.slot_ns))
            });
        Err(match before {
            Ok(end) => Duration::from_nanos(end.max(earliest) - now),
            Err(_) => MAX_PROMISE,
        })
    }
}

/// One client address's count (it names its key, so the last connection to go can
/// remove it, and its server, so a connection keeps one pointer).
#[derive(Debug)]
struct Address {
    key: IpAddr,
    open: AtomicUsize,
    connections: Arc<Connections>,
}

/// Why a new connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `limits.max_connections` already.
    Full,
    /// This address holds `limits.max_connections_per_ip` already.
    PerIp,
}

impl Connections {
    /// The counts for `limits` (see the module docs for the defaults).
    pub fn new(limits: &Limits) -> Arc<Self> {
        let max_total = match limits.max_connections {
            0 => open_file_limit().map_or(10_000, |n| n.saturating_sub(FD_RESERVE).max(1)),
            n => n,
        };
        let new_rate = NonZeroU32::new(limits.max_new_connections_per_second).map(NewRate::new);
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max_total,
            max_per_ip: limits.max_connections_per_ip,
            per_ip: Mutex::default(),
            idle: Notify::new(),
            new_rate,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The total limit in force.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Counts a new connection from `ip`: the stream wrapped so that it counts until
    /// dropped, or why it is refused (and the stream back, to answer on).
    pub fn admit<S>(self: &Arc<Self>, io: S, ip: IpAddr) -> Result<Counted<S>, (S, Refusal)> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err((io, Refusal::Full));
        }
        let key = key_of(ip);
        let address = {
            let mut map = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let address = map.entry(key).or_insert_with(|| {
                Arc::new(Address {
                    key,
                    open: AtomicUsize::new(0),
                    connections: Arc::clone(self),
                })
            });
            if self.max_per_ip > 0 && address.open.load(Ordering::Relaxed) >= self.max_per_ip {
                drop(map);
                self.open.fetch_sub(1, Ordering::Relaxed);
                return Err((io, Refusal::PerIp));
            }
            // Under the lock: a release that saw zero re-checks under it too.
            address.open.fetch_add(1, Ordering::Relaxed);
            Arc::clone(address)
        };
        crate::observe::counters::accepted();
        Ok(Counted {
            io,
            _slot: Slot(address),
        })
    }

    /// Whether one more new connection fits the rate now; `Err` with how long to wait
    /// (the slot promised to it; see the module docs).
    pub fn new_connection_allowed(&self) -> Result<(), Duration> {
        self.new_rate.as_ref().map_or(Ok(()), NewRate::check)
    }

    fn release(&self, address: &Address) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
        if address.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The last connection of this address: forget it, unless one arrived since.
            let mut map = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            if address.open.load(Ordering::Relaxed) == 0 {
                map.remove(&address.key);
            }
        }
    }

    /// Waits until no connection is open or `deadline` passes; returns whether all left.
    pub async fn wait_idle(&self, deadline: Duration) -> bool {
        let all_left = async {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                // Registered before the check, so a release in between is not missed.
                notified.as_mut().enable();
                if self.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, all_left).await.is_ok()
    }

    /// Addresses with a connection open (for tests and stats).
    pub fn addresses(&self) -> usize {
        self.per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// IPv4 addresses as they are; IPv6 by their /64 (one host's usual allocation).
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The soft open-file limit of this process (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What keeps a connection counted (one pointer); uncounts it when dropped.
#[derive(Debug)]
struct Slot(Arc<Address>);

impl Drop for Slot {
    fn drop(&mut self) {
        crate::observe::counters::closed();
        self.0.connections.release(&self.0);
    }
}

/// A stream counted in its server's connections until dropped; reads and writes go
/// straight through.
#[derive(Debug)]
pub struct Counted<S> {
    io: S,
    _slot: Slot,
}

/// The descriptor of the plain TCP socket `stream` is, when it is one as the front hands
/// it over (counted, not TLS): what direct delivery may write to
/// (`transport::websocket::direct`).
/// A parked connection's socket ([`crate::park`]) is one too.
pub fn tcp_fd<S: 'static>(stream: &S) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let any: &dyn std::any::Any = stream;
    if let Some(c) = any.downcast_ref::<Counted<tokio::net::TcpStream>>() {
        return Some(c.io.as_raw_fd());
    }
    any.downcast_ref::<Counted<crate::park::ParkedTcp>>()
        .map(|c| c.io.as_raw_fd())
}

impl<S> Counted<S> {
    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The same counted connection over another stream (`f` turns the one into the
    /// other); when `f` fails the connection is uncounted and its error returned.
    pub fn try_map<T, E>(self, f: impl FnOnce(S) -> Result<T, E>) -> Result<Counted<T>, E> {
        let Self { io, _slot } = self;
        Ok(Counted { io: f(io)?, _slot })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.get_mut().io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            crate::observe::counters::bytes_in(buf.filled().len() - before);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.get_mut().io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            crate::observe::counters::bytes_out(n);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            crate::observe::counters::bytes_out(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Answers a connection turned away at accept (see the module docs) and closes it.
pub async fn turn_away<S: Io>(io: S, why: Refusal) {
    let error = match why {
        Refusal::Full => ServerError::ServerFull,
        Refusal::PerIp => ServerError::TooManyConnections,
    };
    super::exchange::refuse(io, error).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(total: usize, per_ip: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..Limits::default()
        }
    }

    #[test]
    fn counts_per_address_and_in_total_until_dropped() {
        let c = Connections::new(&limits(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = c.admit((), a).unwrap();
        let a2 = c.admit((), a).unwrap();
        assert_eq!(c.admit((), a).unwrap_err().1, Refusal::PerIp);
        let b1 = c.admit((), b).unwrap();
        assert_eq!(c.admit((), b).unwrap_err().1, Refusal::Full);
        assert_eq!((c.open(), c.addresses()), (3, 2));
        drop(a1);
        let a3 = c.admit((), a).unwrap();
        drop((a2, a3, b1));
        assert_eq!((c.open(), c.addresses()), (0, 0), "forgotten once gone");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let c = Connections::new(&limits(100, 1));
        let one = c.admit((), "2001:db8::1".parse().unwrap()).unwrap();
        let same_64 = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(c.admit((), same_64).unwrap_err().1, Refusal::PerIp);
        let other_64 = c.admit((), "2001:db8:0:1::1".parse().unwrap()).unwrap();
        let v4 = c.admit((), "10.0.0.9".parse().unwrap()).unwrap();
        let mapped = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(c.admit((), mapped).unwrap_err().1, Refusal::PerIp);
        drop((one, other_64, v4));
    }

    #[test]
    fn unlimited_per_address_with_zero_and_a_total_from_the_file_limit() {
        let c = Connections::new(&limits(0, 0));
        assert!(c.max_total() >= 1);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let many: Vec<_> = (0..50).map(|_| c.admit((), ip).unwrap()).collect();
        assert_eq!(c.open(), 50);
        drop(many);
    }

    #[tokio::test]
    async fn the_drain_waits_for_every_connection_and_honours_its_deadline() {
        let c = Connections::new(&limits(10, 10));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(c.wait_idle(Duration::from_millis(10)).await, "none open");
        let one = c.admit((), ip).unwrap();
        let two = c.admit((), ip).unwrap();
        let leaving = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(one);
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(two);
        });
        assert!(c.wait_idle(Duration::from_secs(5)).await);
        leaving.await.unwrap();
        let _stuck = c.admit((), ip).unwrap();
        assert!(!c.wait_idle(Duration::from_millis(20)).await);
    }

    #[test]
    fn the_new_connection_rate_says_how_long_to_wait() {
        let c = Connections::new(&Limits {
            max_new_connections_per_second: 2,
            ..Limits::default()
        });
        assert!(c.new_connection_allowed().is_ok());
        let waits: Vec<_> = (0..5)
            .filter_map(|_| c.new_connection_allowed().err())
            .collect();
        assert_eq!(waits.len(), 4, "a burst of two, then over the rate");
        // Each refused connection is promised its own slot, half a second after the last
        // (less the time between the calls).
        assert!(waits[0] <= Duration::from_millis(500), "{waits:?}");
        for pair in waits.windows(2) {
            let gap = pair[1].saturating_sub(pair[0]);
            assert!(
                gap >= Duration::from_millis(400) && gap <= Duration::from_millis(500),
                "{waits:?}"
            );
        }
        let free = Connections::new(&Limits::default());
        assert!((0..1000).all(|_| free.new_connection_allowed().is_ok()));
    }
}
