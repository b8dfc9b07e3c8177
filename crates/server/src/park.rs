//! Parked connections: an idle connection without a task of its own.
//!
//! Every event loop (`crate::loops`, and the first loop in `server`) keeps a [`Lot`]. A
//! connection that waits with nothing to do (a native WebSocket whose messages the
//! fan-out's pacer writes itself, `transport::websocket::native`) moves its state out of
//! its tokio task into the lot's table, reduced to what an idle connection needs, and
//! its socket out of tokio's poller into the lot's own (`mio`, edge-triggered, for
//! reading: input, a closed peer, an error), and its task ends. What it waited on (its
//! subscription, its timer) now holds a waker that names its slot in the lot. When that
//! waker fires, or its socket has input, the lot polls the connection where it lies: a
//! ping due, a pong, a message the pacer could not write take no task. Only a connection
//! with more to do than that (output waiting for room in its socket, a closing
//! handshake, a client's publish) leaves the lot for a task of its own
//! ([`Parked::poll_parked`]), which carries on where it stopped.
//!
//! Why: a tokio task costs a 384-byte cell and a socket registered with tokio a 256-byte
//! readiness block, both aligned to 128 bytes, for as long as the connection lives; a
//! parked connection costs its own reduced state (a box of at most 192 bytes) and a
//! 16-byte slot, and the kernel's epoll entry (`docs/perf/REPORT.md`, "Parked
//! connections").
//!
//! A parked connection is polled with the lot's waker, so that everything it waits on
//! registers that waker; its socket's reads and writes answer "not now" ([`ParkedTcp`])
//! and the lot's poller stands in for tokio's. A parked connection has nothing to write
//! (it would not be idle), so only input wakes it through the poller; its reads go on
//! until the socket has no more (as the edge-triggered poller needs), or it leaves.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// A connection that can wait in a [`Lot`].
pub(crate) trait Parked: Send {
    /// Polls the connection where it lies, with the lot's waker. When it has more to do
    /// than wait (or is over), it leaves: it calls `leave` with its socket (which takes
    /// the socket out of the lot's poller), then ends or carries on in a task of its own,
    /// and answers [`Woken::Gone`].
    fn poll_parked(&mut self, cx: &mut Context<'_>, leave: &dyn Fn(RawFd)) -> Woken;
    /// Its socket.
    fn fd(&self) -> RawFd;
    /// Gives the connection a task of its own again, on the running loop (when it cannot
    /// park after all).
    fn resume(self: Box<Self>);
}

/// What a parked connection's poll left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// It waits with nothing to do: it stays.
    Stay,
    /// It left (see [`Parked::poll_parked`]): its slot is free.
    Gone,
}

/// Connections parked now, in every lot of the process (the `/metrics` gauge).
static PARKED: AtomicU64 = AtomicU64::new(0);

/// Connections parked now.
pub(crate) fn parked() -> u64 {
    PARKED.load(Ordering::Relaxed)
}

/// Every live lot, by the index its wakers carry.
static LOTS: RwLock<Vec<Weak<Shared>>> = RwLock::new(Vec::new());

thread_local! {
    /// The lots of the event loop this thread runs, one per server it runs (tests run
    /// several on one thread), by the server's hub ([`switchboard_hub::Hub::id`]).
    static HERE: RefCell<Vec<(usize, Arc<Shared>)>> = const { RefCell::new(Vec::new()) };
}

/// What the lot's task and the connections parking into it share.
struct Shared {
    /// Its index in [`LOTS`].
    index: u32,
    entries: Mutex<Slab<Box<dyn Parked>>>,
    /// Slots whose waker fired, for the lot's task to resume.
    woken: Mutex<Vec<u32>>,
    notify: Notify,
    /// The lot's poller, where parked sockets register.
    registry: mio::Registry,
}

/// An event loop's lot, running; dropping it stops its task and closes what is parked.
pub(crate) struct Lot {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Lot {
    /// Starts this loop's lot for the server of the hub `hub` ([`switchboard_hub::Hub::id`])
    /// on the running runtime: the one its connections on this thread park into.
    pub(crate) fn start(hub: usize) -> io::Result<Self> {
        if usize::BITS < 64 {
            // A waker's data word holds the lot's index and the slot, 32 bits each.
            return Err(io::Error::other("parking needs a 64-bit target"));
        }
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // SAFETY: the `mio::Poll` owns its epoll descriptor and closes it only when it is
        // dropped, which the `AsyncFd` that owns it does after deregistering it.
        #[allow(unsafe_code)]
        let poll = unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }?;
        let mut lots = LOTS.write().unwrap_or_else(PoisonError::into_inner);
        let index = lots
            .iter()
            .position(|w| w.strong_count() == 0)
            .unwrap_or(lots.len());
        let shared = Arc::new(Shared {
            index: u32::try_from(index).map_err(|_| io::Error::other("too many lots"))?,
            entries: Mutex::new(Slab::new()),
            woken: Mutex::new(Vec::new()),
            notify: Notify::new(),
            registry,
        });
        if index == lots.len() {
            lots.push(Arc::downgrade(&shared));
        } else {
            lots[index] = Arc::downgrade(&shared);
        }
        drop(lots);
        HERE.with(|h| h.borrow_mut().push((hub, Arc::clone(&shared))));
        let task = tokio::spawn(run(Arc::clone(&shared), poll));
        Ok(Self { shared, task })
    }

    /// This event loop's lot for the server of `hub`; without one (the poller cannot be
    /// made) the loop's connections keep their tasks.
    pub(crate) fn start_for(hub: &switchboard_hub::Hub) -> Option<Self> {
        Self::start(hub.id())
            .map_err(|e| tracing::warn!(error = %e, "idle connections cannot park on this loop"))
            .ok()
    }
}

impl Drop for Lot {
    fn drop(&mut self) {
        self.task.abort();
        let _ = HERE.try_with(|h| {
            h.borrow_mut()
                .retain(|(_, s)| !Arc::ptr_eq(s, &self.shared));
        });
        // Dropped outside the lock: a connection's drop may wake others.
        let entries = std::mem::take(&mut *lock(&self.shared.entries));
        PARKED.fetch_sub(entries.len() as u64, Ordering::Relaxed);
        drop(entries);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's lot for the server of the hub `hub` ([`switchboard_hub::Hub::id`]),
/// when it has one: where that server's connections on this thread may park.
pub(crate) fn lot_for(hub: usize) -> Option<Parking> {
    HERE.with(|h| {
        h.borrow()
            .iter()
            .find(|(id, _)| *id == hub)
            .map(|(_, s)| Parking(Arc::clone(s)))
    })
}

/// A lot found for a connection ([`lot_for`]).
pub(crate) struct Parking(Arc<Shared>);

impl Parking {
    /// Parks `conn`: it is then parked, or over, or (when its socket cannot join the
    /// lot's poller) given its task back.
    pub(crate) fn park(&self, conn: Box<dyn Parked>) {
        self.0.admit(conn);
    }
}

impl Shared {
    fn admit(&self, mut conn: Box<dyn Parked>) {
        let mut entries = lock(&self.entries);
        let entry = entries.vacant_entry();
        let token = Token(entry.key());
        let registered = u32::try_from(token.0)
            .map_err(|_| io::Error::other("too many parked connections"))
            .and_then(|slot| {
                let fd = conn.fd();
                self.registry
                    .register(&mut SourceFd(&fd), token, Interest::READABLE)
                    .map(|()| slot)
            });
        let slot = match registered {
            Ok(slot) => slot,
            Err(e) => {
                drop(entries);
                tracing::debug!(error = %e, "cannot park a connection");
                conn.resume();
                return;
            }
        };
        if self.poll_one(slot, &mut conn) == Woken::Stay {
            entry.insert(conn);
            PARKED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls `conn`, parked (or parking) in `slot`, with the waker of that slot.
    fn poll_one(&self, slot: u32, conn: &mut Box<dyn Parked>) -> Woken {
        let leave = |fd: RawFd| {
            let _ = self.registry.deregister(&mut SourceFd(&fd));
        };
        conn.poll_parked(&mut Context::from_waker(&waker(self.index, slot)), &leave)
    }

    /// Polls the connection in `slot`, if one is parked there, where it is: what an idle
    /// connection is woken for (a ping due, a pong, a message the pacer could not write)
    /// takes no task. One that is over, or has more to do than that (output waiting for
    /// room, a closing handshake, a client's publish), leaves.
    fn poll(&self, slot: usize) {
        let Ok(key) = u32::try_from(slot) else {
            return;
        };
        let mut entries = lock(&self.entries);
        let Some(conn) = entries.get_mut(slot) else {
            return;
        };
        if self.poll_one(key, conn) == Woken::Stay {
            return;
        }
        let gone = entries.remove(slot);
        drop(entries);
        PARKED.fetch_sub(1, Ordering::Relaxed);
        drop(gone);
    }
}

/// The lot's task: resumes connections whose waker fired or whose socket is ready.
async fn run(shared: Arc<Shared>, mut poll: AsyncFd<mio::Poll>) {
    let mut events = Events::with_capacity(256);
    let mut woken = Vec::new();
    loop {
        tokio::select! {
            ready = poll.readable_mut() => {
                let Ok(mut ready) = ready else { return };
                events.clear();
                if ready.get_inner_mut().poll(&mut events, Some(std::time::Duration::ZERO)).is_err()
                    || events.is_empty()
                {
                    ready.clear_ready();
                    continue;
                }
                // Input, a closed peer or an error (sockets register for reading only:
                // a parked connection has nothing to write).
                for event in &events {
                    shared.poll(event.token().0);
                }
            }
            () = shared.notify.notified() => {}
        }
        std::mem::swap(&mut woken, &mut *lock(&shared.woken));
        for slot in woken.drain(..) {
            shared.poll(slot as usize);
        }
    }
}

/// The waker of `slot` in lot `lot`: both in its data word, which is never dereferenced.
fn waker(lot: u32, slot: u32) -> Waker {
    let data = (u64::from(lot) << 32 | u64::from(slot)) as usize as *const ();
    // SAFETY: the vtable's functions treat the data word as a number only (they never
    // dereference it), it has no owner to release, and all four are thread-safe (they
    // reach the lot through `LOTS`), as `RawWaker` requires.
    #[allow(unsafe_code)]
    unsafe {
        Waker::from_raw(RawWaker::new(data, &VTABLE))
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake, drop_waker);

fn clone_waker(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

fn drop_waker(_: *const ()) {}

fn wake(data: *const ()) {
    let data = data as usize as u64;
    let (lot, slot) = ((data >> 32) as usize, data as u32);
    let shared = LOTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(lot)
        .and_then(Weak::upgrade);
    if let Some(shared) = shared {
        lock(&shared.woken).push(slot);
        shared.notify.notify_one();
    }
}

/// A parked connection's TCP socket, out of tokio's poller: reads and writes what the
/// socket takes now and answers `Pending` otherwise, without registering a waker (the
/// lot's poller watches the socket instead).
#[derive(Debug)]
pub(crate) struct ParkedTcp(std::net::TcpStream);

impl ParkedTcp {
    /// `stream` taken out of tokio's poller.
    pub(crate) fn park(stream: tokio::net::TcpStream) -> io::Result<Self> {
        stream.into_std().map(Self)
    }

    /// Back into tokio's poller, on the running runtime.
    pub(crate) fn resume(self) -> io::Result<tokio::net::TcpStream> {
        tokio::net::TcpStream::from_std(self.0)
    }
}

impl AsRawFd for ParkedTcp {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn not_now<T>(r: io::Result<T>) -> Poll<io::Result<T>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

impl AsyncRead for ParkedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(not_now((&self.0).read(buf.initialize_unfilled())))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ParkedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        not_now((&self.0).write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        not_now((&self.0).write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A parked connection that reports what happens to it: it stays on the poll that
    /// parks it and leaves for a task on the next.
    struct Probe {
        socket: std::net::TcpStream,
        polls: u32,
        /// The waker it was parked with.
        waker: Arc<Mutex<Option<Waker>>>,
        resumed: mpsc::UnboundedSender<&'static str>,
    }

    impl Parked for Probe {
        fn poll_parked(&mut self, cx: &mut Context<'_>, leave: &dyn Fn(RawFd)) -> Woken {
            *lock(&self.waker) = Some(cx.waker().clone());
            self.polls += 1;
            if self.polls == 1 {
                return Woken::Stay;
            }
            leave(self.fd());
            let _ = self.resumed.send("resumed");
            Woken::Gone
        }
        fn fd(&self) -> RawFd {
            self.socket.as_raw_fd()
        }
        fn resume(self: Box<Self>) {
            let _ = self.resumed.send("resumed");
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = self.resumed.send("dropped");
        }
    }

    /// A connected pair: the probe's socket, and its peer.
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        (socket, peer)
    }

    struct Parking {
        _lot: Lot,
        peer: std::net::TcpStream,
        waker: Arc<Mutex<Option<Waker>>>,
        events: mpsc::UnboundedReceiver<&'static str>,
    }

    /// A lot for the hub `hub`, and a probe parked in it.
    fn parked_probe(hub: usize) -> Parking {
        let lot = Lot::start(hub).unwrap();
        let (socket, peer) = pair();
        let (tx, events) = mpsc::unbounded_channel();
        let waker = Arc::new(Mutex::new(None));
        let probe = Probe {
            socket,
            polls: 0,
            waker: Arc::clone(&waker),
            resumed: tx,
        };
        lot_for(hub).unwrap().park(Box::new(probe));
        assert!(
            lock(&waker).is_some(),
            "polled with the lot's waker as it parked"
        );
        Parking {
            _lot: lot,
            peer,
            waker,
            events,
        }
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("nothing happened to the parked connection")
            .unwrap()
    }

    /// Nothing happens to it for a while (its socket is writable: that is no reason to
    /// poll it).
    async fn stays(events: &mut mpsc::UnboundedReceiver<&'static str>) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(events.try_recv().is_err(), "resumed without a cause");
    }

    #[tokio::test]
    async fn its_waker_resumes_it_from_any_thread() {
        let mut p = parked_probe(1);
        stays(&mut p.events).await;
        let waker = lock(&p.waker).clone().unwrap();
        std::thread::spawn(move || waker.wake()).join().unwrap();
        assert_eq!(next(&mut p.events).await, "resumed");
        assert_eq!(next(&mut p.events).await, "dropped");
        // Out of the lot: a second wake finds nobody.
        lock(&p.waker).clone().unwrap().wake();
        stays(&mut p.events).await;
    }

    #[tokio::test]
    async fn input_or_a_closed_peer_resumes_it() {
        let mut p = parked_probe(2);
        stays(&mut p.events).await;
        p.peer.write_all(b"x").unwrap();
        assert_eq!(next(&mut p.events).await, "resumed");

        let mut p = parked_probe(3);
        drop(p.peer);
        assert_eq!(next(&mut p.events).await, "resumed");
    }

    #[tokio::test]
    async fn dropping_the_lot_closes_what_is_parked() {
        let mut p = parked_probe(5);
        drop(p._lot);
        assert_eq!(next(&mut p.events).await, "dropped");
        let mut buf = [0u8; 1];
        assert_eq!(p.peer.read(&mut buf).unwrap(), 0, "the socket was closed");
    }

    #[tokio::test]
    async fn a_connection_parks_only_in_its_own_servers_lot() {
        let lot = Lot::start(6).unwrap();
        assert!(lot_for(6).is_some() && lot_for(7).is_none());
        drop(lot);
        assert!(lot_for(6).is_none(), "gone with its lot");
    }
}
