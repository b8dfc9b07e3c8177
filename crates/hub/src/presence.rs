//! Presence: who is subscribed to a channel.
//!
//! When a namespace enables `presence`, every subscription adds its [`ClientInfo`] to the
//! channel's presence set (keyed by client id) and removes it when it ends. With
//! `join_leave` as well, a `join`/`leave` event (data: `{"client":…,"user":…,"info":…}`)
//! goes to the channel's subscribers. Presence lives in the broker, so it spans nodes.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_proto::PresenceEntry;

/// Who a subscription belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// Unique per connection (the server assigns it).
    pub client_id: Arc<str>,
    /// The authenticated user, if any.
    pub user_id: Option<Arc<str>>,
    /// Extra connection info as valid JSON (shown in presence), if any.
    pub conn_info: Option<Bytes>,
}

impl ClientInfo {
    /// A client with no user and no extra info.
    pub fn new(client_id: impl Into<Arc<str>>) -> Self {
        ClientInfo {
            client_id: client_id.into(),
            user_id: None,
            conn_info: None,
        }
    }

    /// Sets the user id.
    pub fn with_user(mut self, user_id: impl Into<Arc<str>>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the connection info (must be valid JSON).
    pub fn with_conn_info(mut self, json: Bytes) -> Self {
        self.conn_info = Some(json);
        self
    }

    /// For the protocol encoders.
    pub fn as_presence_entry(&self) -> PresenceEntry<'_> {
        PresenceEntry {
            client: &self.client_id,
            user: self.user_id.as_deref(),
            info: self.conn_info.as_deref(),
        }
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
        let mut users: Vec<&str> = list.iter().filter_map(|c| c.user_id.as_deref()).collect();
        users.sort_unstable();
        users.dedup();
        PresenceStats {
            clients: list.len(),
            users: users.len(),
        }
    }
}
