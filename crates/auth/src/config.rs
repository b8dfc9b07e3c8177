//! The `[auth]` section: where the keys are and what the claims must say.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Why the keys of an `[auth]` section cannot be used.
#[derive(Debug)]
pub enum KeyError {
    /// A key file could not be read.
    Read { path: String, error: std::io::Error },
    /// A value or a key file's content is not usable (the message names it).
    Invalid(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "cannot read {path}: {error}"),
            Self::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for KeyError {}

/// Client tokens (JWT): where the keys are and what the claims must say (the `[auth]`
/// section of the server's configuration). `Debug` hides the secret.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// HS256 secret (at least 32 bytes; the server also reads `SWITCHBOARD_TOKEN_SECRET`).
    pub token_secret: Option<String>,
    /// PEM file of a public key: RSA (RS256) or EC P-256 (ES256).
    pub token_public_key: Option<PathBuf>,
    /// JWKS file (RFC 7517) of RS256 / ES256 public keys, chosen by a token's `kid`.
    pub token_jwks: Option<PathBuf>,
    /// When set, a token's `iss` must equal it.
    pub token_issuer: Option<String>,
    /// When set, a token's `aud` must contain it.
    pub token_audience: Option<String>,
    /// How long past its token's `exp` a `/ws` session may stay while it is asked to
    /// refresh, in milliseconds.
    pub refresh_grace_ms: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            token_secret: None,
            token_public_key: None,
            token_jwks: None,
            token_issuer: None,
            token_audience: None,
            refresh_grace_ms: 10_000,
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("token_public_key", &self.token_public_key)
            .field("token_jwks", &self.token_jwks)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("refresh_grace_ms", &self.refresh_grace_ms)
            .finish()
    }
}

impl Auth {
    /// Checks the section on its own: a key is given, an HS256 secret is long enough.
    pub fn validate(&self) -> Result<(), KeyError> {
        if self.token_secret.is_none()
            && self.token_public_key.is_none()
            && self.token_jwks.is_none()
        {
            return Err(KeyError::Invalid(
                "[auth] needs a key: token_secret (or SWITCHBOARD_TOKEN_SECRET), \
                 token_public_key or token_jwks"
                    .into(),
            ));
        }
        // RFC 7518 3.2: an HS256 key must be at least as long as the hash (256 bits).
        if self.token_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(KeyError::Invalid(
                "auth.token_secret must be at least 32 bytes (RFC 7518, HS256)".into(),
            ));
        }
        Ok(())
    }

    /// How long past `exp` a `/ws` session may stay while asked to refresh.
    pub fn refresh_grace(&self) -> Duration {
        Duration::from_millis(self.refresh_grace_ms)
    }
}
