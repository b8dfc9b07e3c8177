//! Presence: who is subscribed to a channel.
//!
//! When a namespace enables `presence`, every subscription adds its [`ClientInfo`] to the
//! channel's presence set (keyed by client id) and removes it when it ends. With
//! `join_leave` as well, a `join`/`leave` event (data: `{"client":…,"user":…,"info":…}`)
//! goes to the channel's subscribers. Presence lives in the broker, so it spans nodes.
//!
//! A [`ClientInfo`] is held once per subscription (and once more per presence entry), so
//! it is kept small: 32 bytes, a short client id (the server's are 16 bytes) stored in
//! place without an allocation, the rarely set user and connection info behind one
//! shared pointer.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use switchboard_proto::PresenceEntry;

/// Longest client id kept in place; longer ones are shared (`Arc<str>`).
const INLINE: usize = 22;

/// A client id: in place when short, else shared.
#[derive(Clone)]
enum ClientId {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl ClientId {
    fn new(id: &str) -> Self {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                ClientId::Inline { len, bytes }
            }
            _ => ClientId::Shared(Arc::from(id)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            ClientId::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("an inline id is copied whole from a str"),
            ClientId::Shared(s) => s,
        }
    }
}

/// What few clients carry; shared between a subscription's copies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Extra {
    user_id: Option<Arc<str>>,
    conn_info: Option<Bytes>,
}

/// Who a subscription belongs to: client id, user id (if any), connection info (if any).
#[derive(Clone)]
pub struct ClientInfo {
    id: ClientId,
    extra: Option<Arc<Extra>>,
}

impl ClientInfo {
    /// A client with no user and no extra info. The id is unique per connection (the
    /// server assigns it).
    pub fn new(client_id: impl AsRef<str>) -> Self {
        ClientInfo {
            id: ClientId::new(client_id.as_ref()),
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        let extra = self.extra.get_or_insert_with(|| {
            Arc::new(Extra {
                user_id: None,
                conn_info: None,
            })
        });
        Arc::make_mut(extra)
    }

    /// Sets the user id.
    pub fn with_user(mut self, user_id: impl Into<Arc<str>>) -> Self {
        self.extra_mut().user_id = Some(user_id.into());
        self
    }

    /// Sets the connection info (must be valid JSON).
    pub fn with_conn_info(mut self, json: Bytes) -> Self {
        self.extra_mut().conn_info = Some(json);
        self
    }

    /// The client id, unique per connection.
    pub fn client_id(&self) -> &str {
        self.id.as_str()
    }

    /// The authenticated user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.extra.as_ref()?.user_id.as_deref()
    }

    /// Extra connection info as valid JSON (shown in presence), if any.
    pub fn conn_info(&self) -> Option<&Bytes> {
        self.extra.as_ref()?.conn_info.as_ref()
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
        assert!(std::mem::size_of::<ClientInfo>() <= 32);
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
            ClientId::new(&"x".repeat(22)),
            ClientId::Inline { .. }
        ));
        assert!(matches!(
            ClientId::new(&"x".repeat(23)),
            ClientId::Shared(_)
        ));
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
