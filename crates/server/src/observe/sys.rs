//! The server's own namespace, `_sys`: where the status feed is published
//! ([`crate::observe::status`]). Nobody publishes there but the server; reading it
//! needs a status ticket when an API key is set (checked in [`crate::channel`]).

use std::time::Duration;

use switchboard_hub::{NamespaceConfig, SlowConsumerPolicy};

/// The server's own namespace.
pub const NAMESPACE: &str = "_sys";

/// The channel of the status feed.
pub const CHANNEL: &str = "_sys:stats";

/// Whether `channel` is in the server's own namespace.
pub fn is_internal(channel: &str) -> bool {
    channel
        .strip_prefix(NAMESPACE)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// The settings of `_sys`: subscribe only, the last 10 minutes of samples kept (a page
/// that opens draws its chart at once), a slow page drops old samples.
pub fn namespace() -> NamespaceConfig {
    NamespaceConfig {
        history_size: 600,
        history_ttl: Some(Duration::from_secs(600)),
        allow_publish: false,
        allow_subscribe: true,
        presence: false,
        join_leave: false,
        slow_consumer: SlowConsumerPolicy::DropOldest,
        queue_capacity: 64,
        batch_window: None,
        ..NamespaceConfig::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_sys_namespace_is_internal() {
        assert!(super::is_internal("_sys:stats"));
        assert!(!super::is_internal("_system:x"));
        assert!(!super::is_internal("_sys"));
        assert!(!super::is_internal("room"));
    }
}
