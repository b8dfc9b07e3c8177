//! Channel names and the namespace policy that applies to them, checked before a
//! request does anything (so the answer names the channel and namespace). Names follow
//! `switchboard_hub::parse_channel`: 1 to 255 bytes of `A-Z a-z 0-9 _ - . : @ = ~`; the
//! part before the first `:` names the namespace (none: `default`, see
//! [`crate::config`]).

use switchboard_hub::{Hub, NamespaceConfig};

use crate::config::Config;
use crate::error::ServerError;

/// Validates `name` and finds its namespace's settings.
pub fn resolve<'h>(hub: &'h Hub, name: &str) -> Result<&'h NamespaceConfig, ServerError> {
    hub.namespace(name).map_err(ServerError::from)
}

/// Like [`resolve`], and checks that clients may subscribe.
pub fn for_subscribe<'h>(hub: &'h Hub, name: &str) -> Result<&'h NamespaceConfig, ServerError> {
    let ns = resolve(hub, name)?;
    if !ns.allow_subscribe {
        return Err(ServerError::SubscribeNotAllowed(
            Config::namespace_of(name).to_owned(),
        ));
    }
    Ok(ns)
}

/// Like [`resolve`], and checks that clients may publish.
pub fn for_client_publish<'h>(
    hub: &'h Hub,
    name: &str,
) -> Result<&'h NamespaceConfig, ServerError> {
    let ns = resolve(hub, name)?;
    if !ns.allow_publish {
        return Err(ServerError::PublishNotAllowed(
            Config::namespace_of(name).to_owned(),
        ));
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_policy() {
        let hub = Hub::new(Config::default().hub_config());
        for ok in [
            "room",
            "chat:lobby",
            "a.b-c_d=e~f",
            "user:alice@example.com",
        ] {
            assert!(resolve(&hub, ok).is_ok() || ok.contains(':'), "{ok}");
        }
        for bad in ["", ":x", "a b", "a/b", "a,b", "é", &"x".repeat(256)] {
            let e = resolve(&hub, bad).expect_err(bad);
            assert_eq!(e.status().0.as_u16(), 400, "{bad}");
        }
        assert!(for_client_publish(&hub, "room").is_ok());
        assert_eq!(
            for_client_publish(&hub, "ticker:x")
                .expect_err("")
                .status()
                .0
                .as_u16(),
            403
        );
        assert_eq!(
            resolve(&hub, "nope:x").expect_err("").status().0.as_u16(),
            404
        );
    }
}
