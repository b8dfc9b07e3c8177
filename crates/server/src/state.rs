//! What every handler shares: configuration, the hub, the connection registry, the
//! shutdown signal and the client-token verifier.

use std::sync::Arc;

use switchboard_hub::Hub;

use crate::auth::Verifier;
use crate::clients::Clients;
use crate::config::Config;
use crate::shutdown::ShutdownSignal;

/// Shared state of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// The WebSocket codec's limits, one copy shared by every connection.
    pub ws_config: Arc<switchboard_ws::Config>,
    /// Channels, history, presence and fan-out.
    pub hub: Hub,
    /// Connections the backend API can disconnect, their shared timer and rate limits.
    pub clients: Clients,
    /// Fires when the server begins to shut down.
    pub shutdown: ShutdownSignal,
    /// Checks client tokens; `None` when tokens are off (no `[auth]`).
    pub auth: Option<Arc<Verifier>>,
    /// Asks the application's backend; `None` when it is not configured.
    pub backend: Option<crate::backend::Backend>,
}
