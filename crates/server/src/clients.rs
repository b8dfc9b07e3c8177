//! Live connections that can be told to go: every WebSocket, SSE and streaming
//! subscriber registers here with a client id (random) and an optional user id, so the
//! backend API can disconnect a client or every connection of a user. Long-poll and
//! poll requests are stateless and not registered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The registry. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

#[derive(Debug)]
struct Entry {
    user: Option<String>,
    kick: Arc<Notify>,
}

/// A registered connection; unregisters itself when dropped.
#[derive(Debug)]
pub struct ClientHandle {
    id: String,
    user: Option<String>,
    kick: Arc<Notify>,
    clients: Clients,
}

impl Clients {
    /// Registers a new connection.
    pub fn register(&self, user: Option<String>) -> ClientHandle {
        let id = format!("{:016x}", rand::random::<u64>());
        let kick = Arc::new(Notify::new());
        self.lock().insert(
            id.clone(),
            Entry {
                user: user.clone(),
                kick: kick.clone(),
            },
        );
        ClientHandle {
            id,
            user,
            kick,
            clients: self.clone(),
        }
    }

    /// Tells the connection `id` to go; returns how many were told (0 or 1).
    pub fn disconnect_client(&self, id: &str) -> usize {
        self.lock().get(id).map_or(0, |e| {
            // notify_one keeps a permit if the connection is not waiting right now.
            e.kick.notify_one();
            1
        })
    }

    /// Tells every connection of `user` to go; returns how many.
    pub fn disconnect_user(&self, user: &str) -> usize {
        let map = self.lock();
        let mut n = 0;
        for e in map.values().filter(|e| e.user.as_deref() == Some(user)) {
            e.kick.notify_one();
            n += 1;
        }
        n
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientHandle {
    /// This connection's client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The user id given when connecting, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Resolves when the backend API asked this connection to go.
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disconnect_by_client_and_user() {
        let c = Clients::default();
        let a = c.register(Some("u".into()));
        let b = c.register(Some("u".into()));
        let other = c.register(None);
        assert_eq!(c.disconnect_user("u"), 2);
        a.kicked().await;
        b.kicked().await;
        assert_eq!(c.disconnect_client(other.id()), 1);
        other.kicked().await;
        drop((a, b, other));
        assert!(c.is_empty());
        assert_eq!(c.disconnect_client("nope"), 0);
    }
}
