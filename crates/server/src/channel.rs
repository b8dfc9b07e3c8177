//! Channel names and the policy that applies to them, checked before a request does
//! anything (so the answer names the channel and namespace): the namespace's settings
//! ([`crate::config::Namespace`]), then, with client tokens on, what the caller's tokens
//! grant ([`crate::auth`]). Names follow `switchboard_hub::parse_channel`: 1 to 255 bytes
//! of `A-Z a-z 0-9 _ - . : @ = ~`; the part before the first `:` names the namespace
//! (none: `default`, see [`crate::config`]).
//!
//! With tokens on, an action on a channel is allowed when the caller's connection token
//! grants it (a pattern of the action's claim matches the channel), when a subscription
//! token admits the channel (subscribing only), or when the namespace admits anonymous
//! clients (`anonymous = true`) and the action does not read a private namespace
//! (`private = true`: subscribe, presence, history). Otherwise: 401 `token_required`
//! for a caller without a connection token, 403 `not_granted` for one with a token.
//! Every transport and the `/ws` command executor call the `for_*` checks here.

use switchboard_hub::{Hub, NamespaceConfig};

use crate::auth::{Action, Identity};
use crate::config::Config;
use crate::error::ServerError;
use crate::state::AppState;

/// Who asks, as the policy sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The identity its connection token gave; `None`: no token (or tokens off).
    pub identity: Option<&'a Identity>,
    /// Channels the request's verified subscription tokens admit.
    pub admitted: &'a [String],
}

impl<'a> Caller<'a> {
    /// A caller with this identity and no subscription token.
    pub fn new(identity: Option<&'a Identity>) -> Self {
        Self {
            identity,
            admitted: &[],
        }
    }
}

/// Validates `name` and finds its namespace's settings.
pub fn resolve<'h>(hub: &'h Hub, name: &str) -> Result<&'h NamespaceConfig, ServerError> {
    hub.namespace(name).map_err(ServerError::from)
}

/// Like [`resolve`], and checks that `caller` may subscribe.
pub fn for_subscribe<'s>(
    state: &'s AppState,
    caller: Caller<'_>,
    name: &str,
) -> Result<&'s NamespaceConfig, ServerError> {
    check(state, caller, Action::Subscribe, name)
}

/// Like [`resolve`], and checks that `caller` may publish (clients publish only where
/// the namespace lets them; the backend API always may).
pub fn for_client_publish<'s>(
    state: &'s AppState,
    caller: Caller<'_>,
    name: &str,
) -> Result<&'s NamespaceConfig, ServerError> {
    check(state, caller, Action::Publish, name)
}

/// Like [`resolve`], and checks that `caller` may see who is subscribed (where
/// clients may subscribe).
pub fn for_presence<'s>(
    state: &'s AppState,
    caller: Caller<'_>,
    name: &str,
) -> Result<&'s NamespaceConfig, ServerError> {
    check(state, caller, Action::Presence, name)
}

/// Like [`resolve`], and checks that `caller` may read the history (where clients may
/// subscribe).
pub fn for_history<'s>(
    state: &'s AppState,
    caller: Caller<'_>,
    name: &str,
) -> Result<&'s NamespaceConfig, ServerError> {
    check(state, caller, Action::History, name)
}

/// The namespace's settings for `action` (publishing needs `client_publish`, the rest
/// `subscribe`), then what the caller's tokens grant.
fn check<'s>(
    state: &'s AppState,
    caller: Caller<'_>,
    action: Action,
    name: &str,
) -> Result<&'s NamespaceConfig, ServerError> {
    let ns = resolve(&state.hub, name)?;
    if crate::observe::sys::is_internal(name) {
        internal(state, caller, action, name)?;
        return Ok(ns);
    }
    let namespace = || Config::namespace_of(name).to_owned();
    if action == Action::Publish && !ns.allow_publish {
        return Err(ServerError::PublishNotAllowed(namespace()));
    }
    if action != Action::Publish && !ns.allow_subscribe {
        return Err(ServerError::SubscribeNotAllowed(namespace()));
    }
    granted(state, caller, action, name)?;
    Ok(ns)
}

/// The policy of the server's own namespace (`_sys`, the status feed): reading with a
/// status ticket (its channel admitted, see `crate::observe::status`), or by anyone
/// when no API key is set; nothing else.
fn internal(
    state: &AppState,
    caller: Caller<'_>,
    action: Action,
    name: &str,
) -> Result<(), ServerError> {
    if !matches!(action, Action::Subscribe | Action::History) {
        return Err(ServerError::NotAllowed(
            crate::observe::sys::NAMESPACE.into(),
        ));
    }
    if state.config.api_key.is_none() || caller.admitted.iter().any(|c| c == name) {
        return Ok(());
    }
    Err(ServerError::Unauthorized)
}

/// What the caller's tokens allow (see the module docs); always `Ok` with tokens off.
fn granted(
    state: &AppState,
    caller: Caller<'_>,
    action: Action,
    name: &str,
) -> Result<(), ServerError> {
    if state.auth.is_none() {
        return Ok(());
    }
    if caller
        .identity
        .is_some_and(|i| i.grants.allow(action, name))
    {
        return Ok(());
    }
    if action == Action::Subscribe && caller.admitted.iter().any(|c| c == name) {
        return Ok(());
    }
    let reads = action != Action::Publish;
    let open = state
        .config
        .namespace_for(name)
        .is_some_and(|ns| ns.anonymous && !(ns.private && reads));
    if open {
        return Ok(());
    }
    let channel = name.to_owned();
    Err(match caller.identity {
        None => ServerError::TokenRequired { action, channel },
        Some(_) => ServerError::NotGranted { action, channel },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::auth::{Grants, Pattern};
    use crate::config::{Auth, Namespace};
    use crate::server::Builder;

    fn state(config: Config) -> AppState {
        Builder::new(config).build().unwrap().state().clone()
    }

    #[tokio::test]
    async fn names_and_policy() {
        let st = state(Config::default());
        let anyone = Caller::default();
        for ok in [
            "room",
            "chat:lobby",
            "a.b-c_d=e~f",
            "user:alice@example.com",
        ] {
            assert!(resolve(&st.hub, ok).is_ok() || ok.contains(':'), "{ok}");
        }
        for bad in ["", ":x", "a b", "a/b", "a,b", "é", &"x".repeat(256)] {
            let e = resolve(&st.hub, bad).expect_err(bad);
            assert_eq!(e.status().0.as_u16(), 400, "{bad}");
        }
        assert!(for_client_publish(&st, anyone, "room").is_ok());
        assert_eq!(
            for_client_publish(&st, anyone, "ticker:x")
                .expect_err("")
                .status()
                .0
                .as_u16(),
            403
        );
        assert_eq!(
            resolve(&st.hub, "nope:x")
                .expect_err("")
                .status()
                .0
                .as_u16(),
            404
        );
    }

    #[tokio::test]
    async fn tokens_grant_within_the_namespace_settings() {
        let mut config = Config {
            auth: Some(Auth {
                token_secret: Some("s".repeat(32)),
                ..Auth::default()
            }),
            ..Config::default()
        };
        let locked = Namespace {
            anonymous: false,
            ..Namespace::default()
        };
        let private = Namespace {
            private: true,
            ..Namespace::default()
        };
        config.namespaces.insert("locked".into(), locked);
        config.namespaces.insert("secret".into(), private);
        let st = state(config);
        let alice = Identity {
            user: Some("alice".into()),
            grants: Grants {
                subscribe: vec![Pattern::parse("locked:a*").unwrap()].into(),
                publish: vec![Pattern::parse("ticker:*").unwrap()].into(),
                ..Grants::default()
            },
            expires: None,
        };
        let admitted = ["secret:x".to_owned()];
        let none = Caller::default();
        let with = Caller::new(Some(&alice));
        let pass = Caller {
            identity: None,
            admitted: &admitted,
        };
        type Check =
            for<'s> fn(&'s AppState, Caller<'_>, &str) -> Result<&'s NamespaceConfig, ServerError>;
        let (sub, publish, presence, history): (Check, Check, Check, Check) =
            (for_subscribe, for_client_publish, for_presence, for_history);
        let table: &[(&str, Check, Caller<'_>, &str, Option<&str>)] = &[
            // The default namespace stays open; a locked one needs a grant.
            ("open", sub, none, "room", None),
            (
                "locked, no token",
                sub,
                none,
                "locked:ab",
                Some("token_required"),
            ),
            ("locked, granted", sub, with, "locked:ab", None),
            (
                "locked, not granted",
                sub,
                with,
                "locked:b",
                Some("not_granted"),
            ),
            (
                "history, not granted",
                history,
                with,
                "locked:ab",
                Some("not_granted"),
            ),
            // A grant does not override the namespace's own settings.
            (
                "ticker",
                publish,
                with,
                "ticker:x",
                Some("publish_not_allowed"),
            ),
            // Private: reading needs a grant or a subscription token; publishing does not.
            (
                "private, no token",
                sub,
                none,
                "secret:x",
                Some("token_required"),
            ),
            ("private, its pass", sub, pass, "secret:x", None),
            (
                "private, another pass",
                sub,
                pass,
                "secret:y",
                Some("token_required"),
            ),
            (
                "private presence",
                presence,
                pass,
                "secret:x",
                Some("token_required"),
            ),
            ("private publish", publish, none, "secret:x", None),
        ];
        for &(what, check, caller, channel, want) in table {
            let got = check(&st, caller, channel).err().map(|e| e.status().1);
            assert_eq!(got, want, "{what}");
        }
    }
}
