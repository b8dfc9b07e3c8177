//! Live connections that can be told to go: every WebSocket, SSE and streaming
//! subscriber registers here with a client id (random) and an optional user id, so the
//! backend API can disconnect a client or every connection of a user. A long-poll is
//! registered until it is answered; a poll is not registered.
//!
//! Two ways to be told: a connection registered with [`Clients::register`] gets a kick
//! notification ([`ClientHandle::kicked`]); one registered with
//! [`Clients::register_hub_kicked`] keeps none, because the backend's disconnect also
//! closes its hub subscriptions (`CloseReason::Disconnected`) and that is how it learns
//! (a native WebSocket: one subscription, which it polls anyway). Both are counted.
//!
//! An entry is kept small (idle connections are the many): the key is the id as a `u64`
//! (shown as 16 hex digits) and the value one pointer to what only some connections
//! have (a user id, a kick notification), shared with the handle. A connection with
//! neither (a native WebSocket or SSE subscriber without a user id) is not listed at
//! all, only counted: nothing but its hub subscriptions can reach it, and the backend's
//! disconnect by client id reaches those through the hub. Listed ids are odd, counted
//! ones even, so a registration knows which it is without a flag. The next three bits
//! of the id say the connection's transport ([`Transport`]), so a registration also counts it
//! open per transport (`switchboard_connections`) without a byte more.
//!
//! The registry also holds the coarse timer [`Wheel`] live connections share for their
//! keep-alive and timeout deadlines (a waker per deadline instead of a timer per
//! connection; deadlines fire up to [`WHEEL_RESOLUTION`] late), and the rate limits on
//! what clients do ([`crate::throttle`]), which a connection reaches through its
//! registration without holding anything more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use switchboard_hub::Disconnect;
use switchboard_timer::Wheel;
use tokio::sync::Notify;

use crate::observe::counters::{self, Transport};
use crate::throttle::Throttle;

/// Tick of the connections' shared timer wheel: how late a ping, idle timeout or
/// heartbeat may fire.
pub const WHEEL_RESOLUTION: std::time::Duration = std::time::Duration::from_millis(500);

/// The registry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    inner: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    /// Listed connections (odd keys): those with a user id or a kick notification.
    map: Mutex<HashMap<u64, Arc<Extra>>>,
    /// Listed connections per user id (for `limits.max_connections_per_user`).
    per_user: Mutex<HashMap<Box<str>, u32>>,
    /// Connections registered without a map entry (even keys).
    unlisted: AtomicUsize,
    wheel: Wheel,
    throttle: Throttle,
}

/// What only some connections have.
#[derive(Debug)]
struct Extra {
    user: Option<Box<str>>,
    /// `None` for connections the hub disconnects (see the module docs).
    kick: Option<Notify>,
    /// Set by [`Clients::disconnect_user`]: lets a connection that was still subscribing
    /// when its user was disconnected notice it ([`ClientHandle::kicked_while_opening`]).
    user_kicked: AtomicBool,
}

/// A registered connection; unregisters itself when dropped.
#[derive(Debug)]
pub struct ClientHandle {
    /// The id as 16 lowercase hex digits (ASCII), so [`ClientHandle::id`] borrows it.
    id: [u8; 16],
    extra: Option<Arc<Extra>>,
    registration: Registration,
}

/// What keeps a connection registered once its id and user were handed out (16 bytes,
/// for a connection that lives long and idle); unregisters it when dropped.
#[derive(Debug)]
pub struct Registration {
    key: u64,
    clients: Clients,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new(Throttle::new(&crate::config::Limits::default()))
    }
}

impl Clients {
    /// An empty registry whose connections are rate-limited by `throttle`.
    pub fn new(throttle: Throttle) -> Self {
        Self {
            inner: Arc::new(Registry {
                map: Mutex::default(),
                per_user: Mutex::default(),
                unlisted: AtomicUsize::new(0),
                wheel: Wheel::new(WHEEL_RESOLUTION),
                throttle,
            }),
        }
    }

    /// The rate limits on what clients do ([`crate::throttle`]).
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// Registers a new connection of `transport` that waits on [`ClientHandle::kicked`].
    pub fn register(&self, user: Option<String>, transport: Transport) -> ClientHandle {
        self.insert(user, Some(Notify::new()), transport)
    }

    /// Registers a new connection of `transport` that learns of a disconnect from its hub
    /// subscriptions closing; its [`ClientHandle::kicked`] never resolves.
    pub fn register_hub_kicked(&self, user: Option<String>, transport: Transport) -> ClientHandle {
        self.insert(user, None, transport)
    }

    fn insert(
        &self,
        user: Option<String>,
        kick: Option<Notify>,
        transport: Transport,
    ) -> ClientHandle {
        let extra = (user.is_some() || kick.is_some()).then(|| {
            Arc::new(Extra {
                user: user.map(String::into_boxed_str),
                kick,
                user_kicked: AtomicBool::new(false),
            })
        });
        let key = match &extra {
            Some(extra) => {
                if let Some(user) = &extra.user {
                    *self.users().entry(user.clone()).or_default() += 1;
                }
                let mut map = self.lock();
                let key = loop {
                    let key = with_transport(rand::random::<u64>(), transport) | 1;
                    if !map.contains_key(&key) {
                        break key;
                    }
                };
                map.insert(key, Arc::clone(extra));
                key
            }
            None => {
                // Not listed, so not checked for uniqueness: two of 2^60 random ids.
                self.inner.unlisted.fetch_add(1, Ordering::Relaxed);
                with_transport(rand::random::<u64>(), transport) & !1
            }
        };
        counters::opened_as(transport);
        ClientHandle {
            id: hex_id(key),
            extra,
            registration: Registration {
                key,
                clients: self.clone(),
            },
        }
    }

    /// Tells the listed connection `id` to go; returns how many were told (0 or 1). An
    /// unlisted connection (see the module docs) is reached through the hub's
    /// `disconnect`, which also says whether it found it.
    pub fn disconnect_client(&self, id: &str) -> usize {
        let Some(key) = parse_id(id) else {
            return 0;
        };
        self.lock().get(&key).map_or(0, |extra| {
            // notify_one keeps a permit if the connection is not waiting right now.
            if let Some(kick) = &extra.kick {
                kick.notify_one();
            }
            1
        })
    }

    /// Tells every connection of `user` to go; returns how many. Call it before the hub's
    /// `disconnect_user`, so a connection subscribing meanwhile is caught by one or the
    /// other (see [`ClientHandle::kicked_while_opening`]).
    pub fn disconnect_user(&self, user: &str) -> usize {
        let map = self.lock();
        let mut n = 0;
        for e in map.values() {
            if e.user.as_deref() != Some(user) {
                continue;
            }
            e.user_kicked.store(true, Ordering::SeqCst);
            if let Some(kick) = &e.kick {
                kick.notify_one();
            }
            n += 1;
        }
        n
    }

    /// [`Clients::disconnect_client`] or [`Clients::disconnect_user`], as `target` says.
    pub fn disconnect(&self, target: &Disconnect) -> usize {
        match target {
            Disconnect::Client(id) => self.disconnect_client(id),
            Disconnect::User(user) => self.disconnect_user(user),
        }
    }

    /// The timer wheel live connections share (its task runs on the runtime that first
    /// uses it).
    pub fn wheel(&self) -> &Wheel {
        &self.inner.wheel
    }

    /// Number of registered connections, listed or not.
    pub fn len(&self) -> usize {
        self.lock().len() + self.inner.unlisted.load(Ordering::Relaxed)
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many connections `user` holds now.
    pub fn connections_of(&self, user: &str) -> u32 {
        self.users().get(user).copied().unwrap_or(0)
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, u32>> {
        self.inner
            .per_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Extra>>> {
        self.inner
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientHandle {
    /// This connection's client id (16 lowercase hex digits).
    pub fn id(&self) -> &str {
        // Always ASCII hex (written by `hex_id`).
        std::str::from_utf8(&self.id).unwrap_or_default()
    }

    /// The user id given when connecting, if any.
    pub fn user(&self) -> Option<&str> {
        self.extra.as_ref()?.user.as_deref()
    }

    /// Resolves when the backend API asked this connection to go (never for a connection
    /// registered with [`Clients::register_hub_kicked`]).
    pub async fn kicked(&self) {
        match self.extra.as_ref().and_then(|e| e.kick.as_ref()) {
            Some(kick) => kick.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Whether the backend disconnected this connection's user since it registered.
    /// Checked once its hub subscriptions exist: a disconnect that came before they did
    /// closed none of them (the hub did not know them yet), and the connection must end
    /// itself; one that comes after finds them in the hub.
    pub fn kicked_while_opening(&self) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|e| e.user_kicked.load(Ordering::SeqCst))
    }

    /// Keeps only the registration (no id, user or kick notification).
    pub fn into_registration(self) -> Registration {
        self.registration
    }

    /// The transport it was registered as.
    pub fn transport(&self) -> Option<Transport> {
        transport_of(self.registration.key)
    }

    /// This connection's key (its id as a number), for per-connection rate limits.
    pub fn key(&self) -> u64 {
        self.registration.key
    }
}

impl Registration {
    /// The connection's key (see [`ClientHandle::key`]).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Counts one publish by this connection ([`Throttle::publish`]).
    pub fn publish(&self) -> Result<(), crate::error::ServerError> {
        self.clients
            .throttle()
            .publish(crate::throttle::Publisher::Connection(self.key))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.key & 1 == 1 {
            let removed = self.clients.lock().remove(&self.key);
            if let Some(user) = removed.as_ref().and_then(|extra| extra.user.as_ref()) {
                let mut users = self.clients.users();
                if let Some(n) = users.get_mut(user) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(user);
                    }
                }
            }
        } else {
            self.clients.inner.unlisted.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(transport) = transport_of(self.key) {
            counters::ended_as(transport);
        }
    }
}

/// Where a key keeps its connection's transport ([`Transport::number`]): bits 1 to 3 (bit 0 says
/// whether it is listed).
const TRANSPORT_SHIFT: u32 = 1;
const TRANSPORT_MASK: u64 = 0b111 << TRANSPORT_SHIFT;

/// `random` with `transport`'s number in its transport bits.
fn with_transport(random: u64, transport: Transport) -> u64 {
    (random & !TRANSPORT_MASK) | (u64::from(transport.number()) << TRANSPORT_SHIFT)
}

/// The transport a key was made with (always `Some` for a key [`with_transport`] made).
fn transport_of(key: u64) -> Option<Transport> {
    Transport::from_number(u8::try_from((key & TRANSPORT_MASK) >> TRANSPORT_SHIFT).ok()?)
}

fn hex_id(key: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((key >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// The key of a client id; `None` for anything `hex_id` does not write.
fn parse_id(id: &str) -> Option<u64> {
    let valid = id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !valid {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disconnect_by_client_and_user() {
        let c = Clients::default();
        let a = c.register(Some("u".into()), Transport::Ws);
        let b = c.register(Some("u".into()), Transport::Ws);
        let other = c.register(None, Transport::Ws);
        assert_eq!(c.disconnect_user("u"), 2);
        a.kicked().await;
        b.kicked().await;
        assert_eq!(c.disconnect_client(other.id()), 1);
        other.kicked().await;
        drop((a, b, other));
        assert!(c.is_empty());
        assert_eq!(c.disconnect_client("nope"), 0);
    }

    #[test]
    fn hub_kicked_connections_are_counted() {
        let c = Clients::default();
        let a = c.register_hub_kicked(Some("u".into()), Transport::Sse);
        let b = c.register_hub_kicked(None, Transport::Websocket);
        assert_eq!(c.len(), 2);
        assert!(!a.kicked_while_opening());
        assert_eq!(c.disconnect_user("u"), 1);
        assert!(
            a.kicked_while_opening(),
            "a disconnect by user marks the entry"
        );
        assert!(!b.kicked_while_opening());
        // Without a user, b is counted but not listed: the hub's disconnect reaches it.
        assert_eq!(c.disconnect_client(b.id()), 0);
        assert_eq!(c.disconnect_client(a.id()), 1);
        drop(a);
        assert_eq!(c.len(), 1);
        let r = b.into_registration();
        assert_eq!(c.len(), 1, "the registration keeps it registered");
        drop(r);
        assert!(c.is_empty());
    }

    #[test]
    fn keys_say_their_transport_and_whether_listed() {
        let c = Clients::default();
        for t in Transport::ALL {
            let listed = c.register(None, t);
            let unlisted = c.register_hub_kicked(None, t);
            assert_eq!(listed.key() & 1, 1, "{t:?}");
            assert_eq!(unlisted.key() & 1, 0, "{t:?}");
            assert_eq!(transport_of(listed.key()), Some(t));
            assert_eq!(transport_of(unlisted.key()), Some(t));
            assert_eq!(parse_id(listed.id()), Some(listed.key()));
        }
        assert_eq!(
            with_transport(u64::MAX, Transport::Websocket),
            !TRANSPORT_MASK
        );
        assert_eq!(
            transport_of(with_transport(0, Transport::Custom)),
            Some(Transport::Custom)
        );
    }

    #[test]
    fn ids_are_16_hex_digits_and_only_those_match() {
        assert_eq!(&hex_id(0xab), b"00000000000000ab");
        assert_eq!(parse_id("00000000000000ab"), Some(0xab));
        assert_eq!(parse_id("ab"), None);
        assert_eq!(parse_id("00000000000000AB"), None);
        assert_eq!(parse_id("+0000000000000ab"), None);
        let c = Clients::default();
        let a = c.register(None, Transport::Ws);
        assert_eq!(a.id().len(), 16);
        assert_eq!(parse_id(a.id()).map(hex_id), Some(a.id.to_owned()));
    }
}
