//! Channel names and the namespace policy that applies to them.
//!
//! A channel name is 1 to 128 bytes of ASCII letters, digits and `_ - . : = + /`
//! (so it fits in a URL path segment, an SSE field and a log line unescaped). `@` and `,`
//! are excluded so that `channel=NAME@CURSOR` in `/sub` queries is unambiguous. The part
//! before the first `:` names the namespace (see [`crate::config`]).

use crate::config::{Config, Namespace};
use crate::error::ServerError;

/// Longest channel name in bytes.
pub const MAX_CHANNEL_LEN: usize = 128;

/// Checks the syntax of a channel name.
pub fn validate_name(name: &str) -> Result<(), ServerError> {
    if name.is_empty() {
        return Err(ServerError::InvalidChannel("the name is empty".into()));
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(ServerError::InvalidChannel(format!(
            "the name is {} bytes long, the limit is {MAX_CHANNEL_LEN}",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(ServerError::InvalidChannel(format!(
            "character {bad:?} is not allowed; use letters, digits and _ - . : = + /"
        )));
    }
    if name.starts_with(':') {
        return Err(ServerError::InvalidChannel(
            "the namespace before ':' is empty".into(),
        ));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '=' | '+' | '/')
}

/// Validates `name` and finds its namespace's policy.
pub fn resolve<'c>(config: &'c Config, name: &str) -> Result<&'c Namespace, ServerError> {
    validate_name(name)?;
    config
        .namespace_for(name)
        .ok_or_else(|| ServerError::UnknownNamespace(Config::namespace_of(name).to_owned()))
}

/// Like [`resolve`], and checks that clients may subscribe.
pub fn for_subscribe<'c>(config: &'c Config, name: &str) -> Result<&'c Namespace, ServerError> {
    let ns = resolve(config, name)?;
    if !ns.subscribe {
        return Err(ServerError::SubscribeNotAllowed(
            Config::namespace_of(name).to_owned(),
        ));
    }
    Ok(ns)
}

/// Like [`resolve`], and checks that clients may publish.
pub fn for_client_publish<'c>(
    config: &'c Config,
    name: &str,
) -> Result<&'c Namespace, ServerError> {
    let ns = resolve(config, name)?;
    if !ns.client_publish {
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
    fn names() {
        for ok in ["room", "chat:lobby", "a.b-c_d=e+f/g", "ticker:ACME:1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ":x", "a b", "a@b", "a,b", "é", &"x".repeat(129)] {
            let e = validate_name(bad).expect_err(bad);
            assert_eq!(e.status().0.as_u16(), 400);
        }
    }

    #[test]
    fn policy() {
        let c = Config::default();
        assert!(for_client_publish(&c, "room").is_ok());
        assert_eq!(
            for_client_publish(&c, "ticker:x")
                .expect_err("")
                .status()
                .0
                .as_u16(),
            403
        );
        assert_eq!(
            resolve(&c, "nope:x").expect_err("").status().0.as_u16(),
            404
        );
    }
}
