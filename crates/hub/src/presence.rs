//! Presence: who is subscribed to a channel.
//!
//! When a namespace enables `presence`, every subscription adds its [`ClientInfo`] to the
//! channel's presence set (keyed by client id) and removes it when it ends. With
//! `join_leave` as well, a `join`/`leave` event (data: `{"client":…,"user":…,"info":…}`)
//! goes to the channel's subscribers. Presence lives in the broker, so it spans nodes.
//!
//! A [`ClientInfo`] is held once per subscription (and once more per presence entry), so
//! it is kept small: 24 bytes, a short client id alone (the server's are 16 bytes) stored
//! in place without an allocation; a longer id, a user or connection info go together
//! into one shared allocation.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use switchboard_proto::PresenceEntry;

/// Longest client id kept in place.
const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    /// A short id and nothing else.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// Anything else, shared by the copies.
    Full(Arc<Full>),
}

#[derive(Clone)]
struct Full {
    client_id: Box<str>,
    user_id: Option<Arc<str>>,
    conn_info: Option<Bytes>,
}

/// Who a subscription belongs to: client id, user id (if any), connection info (if any).
#[derive(Clone)]
pub struct ClientInfo(Repr);

impl ClientInfo {
    /// A client with no user and no extra info. The id is unique per connection (the
    /// server assigns it).
    pub fn new(client_id: impl AsRef<str>) -> Self {
        let id = client_id.as_ref();
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                ClientInfo(Repr::Inline { len, bytes })
            }
            _ => ClientInfo(Repr::Full(Arc::new(Full {
                client_id: Box::from(id),
                user_id: None,
                conn_info: None,
            }))),
        }
    }

    fn into_full(self) -> Full {
        match self.0 {
            Repr::Full(full) => Arc::unwrap_or_clone(full),
            inline @ Repr::Inline { .. } => Full {
                client_id: Box::from(ClientInfo(inline).client_id()),
                user_id: None,
                conn_info: None,
            },
        }
    }

    /// Sets the user id.
    pub fn with_user(self, user_id: impl Into<Arc<str>>) -> Self {
        let mut full = self.into_full();
        full.user_id = Some(user_id.into());
        ClientInfo(Repr::Full(Arc::new(full)))
    }

    /// Sets the connection info (must be valid JSON).
    pub fn with_conn_info(self, json: Bytes) -> Self {
        let mut full = self.into_full();
        full.conn_info = Some(json);
        ClientInfo(Repr::Full(Arc::new(full)))
    }

    /// The client id, unique per connection.
    pub fn client_id(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("an inline id is copied whole from a str"),
            Repr::Full(full) => &full.client_id,
        }
    }

    fn full(&self) -> Option<&Full> {
        match &self.0 {
            Repr::Inline { .. } => None,
            Repr::Full(full) => Some(full),
        }
    }

    /// The authenticated user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.full()?.user_id.as_deref()
    }

    /// Extra connection info as valid JSON (shown in presence), if any.
    pub fn conn_info(&self) -> Option<&Bytes> {
        self.full()?.conn_info.as_ref()
    }

    /// For the protocol encoders.
    pub fn as_presence_entry(&self) -> PresenceEntry<'_> {
        PresenceEntry {
            client: self.client_id(),
            user: self.user_id(),
            info: self.conn_info().map(|b| &b[..]),
        }
    }
}

impl std::fmt::Debug for ClientInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInfo")
            .field("client_id", &self.client_id())
            .field("user_id", &self.user_id())
            .field("conn_info", &self.conn_info())
            .finish()
    }
}

impl PartialEq for ClientInfo {
    fn eq(&self, other: &Self) -> bool {
        self.client_id() == other.client_id()
            && self.user_id() == other.user_id()
            && self.conn_info() == other.conn_info()
    }
}

impl Eq for ClientInfo {}

impl Hash for ClientInfo {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.client_id().hash(state);
        self.user_id().hash(state);
        self.conn_info().hash(state);
    }
}

/// A presence set entry: a [`ClientInfo`] compared and hashed by client id only, so a set
/// of them is keyed by id (look-up by `&str`).
#[derive(Clone, Debug)]
pub(crate) struct ById(pub(crate) ClientInfo);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id() == other.0.client_id()
    }
}

impl Eq for ById {}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.client_id().hash(state);
    }
}

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.client_id()
    }
}

/// Presence counts of a channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Distinct client ids.
    pub clients: usize,
    /// Distinct user ids (clients without a user are not counted).
    pub users: usize,
}

impl PresenceStats {
    /// Counts a presence list.
    pub fn of(list: &[ClientInfo]) -> Self {
        let mut users: Vec<&str> = list.iter().filter_map(ClientInfo::user_id).collect();
        users.sort_unstable();
        users.dedup();
        PresenceStats {
            clients: list.len(),
            users: users.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn client_info_is_small() {
        assert!(std::mem::size_of::<ClientInfo>() <= 24);
    }

    #[test]
    fn ids_short_and_long_round_trip() {
        for id in [
            "",
            "a",
            "0123456789abcdef",
            &"x".repeat(22),
            &"y".repeat(23),
            "é",
        ] {
            let c = ClientInfo::new(id);
            assert_eq!(c.client_id(), id);
            assert_eq!(c.clone(), c);
        }
        assert!(matches!(
            ClientInfo::new("x".repeat(22)).0,
            Repr::Inline { .. }
        ));
        assert!(matches!(ClientInfo::new("x".repeat(23)).0, Repr::Full(_)));
    }

    #[test]
    fn user_and_info_are_kept_and_compared() {
        let c = ClientInfo::new("c")
            .with_user("u")
            .with_conn_info(Bytes::from_static(b"{}"));
        assert_eq!(c.user_id(), Some("u"));
        assert_eq!(c.conn_info().map(|b| &b[..]), Some(&b"{}"[..]));
        assert_ne!(c, ClientInfo::new("c"));
        assert_ne!(c, ClientInfo::new("c").with_user("v"));
        assert_eq!(c, c.clone().with_user("u"));
        assert_eq!(ById(c), ById(ClientInfo::new("c")));
    }
}
