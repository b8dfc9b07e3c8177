//! Checking one token: its size and header (`alg`, `kid`) first, then its signature with
//! the key they select, then its claims — the registered ones (`exp`, `nbf`, `iss`,
//! `aud`, by `jsonwebtoken`) and the server's own (`sub`, the grants, `channel`) — into
//! an [`Identity`] (a connection token) or the channel a subscription token admits.
//!
//! Accepted algorithms: HS256 (with `token_secret`), RS256 and ES256 (with a public key
//! of that type, from `token_public_key` or `token_jwks`); anything else, `none`
//! included, is refused before any key is tried. No clock leeway: an issuer's clock
//! should be synchronised (a token is live until its `exp` second, and a live connection
//! ends then too).

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::error::TokenError;
use super::grants::{Grants, Pattern};
use super::keys::Keys;
use super::Identity;
use crate::config::{Auth, KeyError};

/// Longest token accepted, in bytes (checked before anything is decoded).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest `sub` (the user id), as for `?user=` without tokens.
const MAX_USER_BYTES: usize = 128;

/// Checks tokens against the configured keys and claims. Built once per server.
#[derive(Debug)]
pub struct Verifier {
    keys: Keys,
    hs256: Validation,
    rs256: Validation,
    es256: Validation,
}

/// The claims the server reads (others are ignored).
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    /// Required; checked by `jsonwebtoken` (optional here so that a missing one is named).
    #[serde(default)]
    exp: Option<u64>,
    /// Set in subscription tokens only: the channel it admits.
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    presence: Vec<String>,
    #[serde(default)]
    history: Vec<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl Verifier {
    /// The verifier for `auth` (reads its key files).
    pub fn new(auth: &Auth) -> Result<Self, KeyError> {
        Ok(Self::with_keys(Keys::load(auth)?, auth))
    }

    /// A verifier with an HS256 `secret` and an EC P-256 public key in PEM, no issuer
    /// or audience: what the fuzz target checks tokens against.
    #[doc(hidden)]
    pub fn for_fuzzing(secret: &str, ec_public_pem: &[u8]) -> Result<Self, KeyError> {
        let auth = Auth {
            token_secret: Some(secret.to_owned()),
            ..Auth::default()
        };
        let keys = Keys::in_memory(&auth, ec_public_pem)?;
        Ok(Self::with_keys(keys, &auth))
    }

    fn with_keys(keys: Keys, auth: &Auth) -> Self {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = 0;
            v.validate_nbf = true;
            let mut required = vec!["exp"];
            if let Some(iss) = &auth.token_issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            match &auth.token_audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                // Without a configured audience, a token's `aud` is not checked.
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            v
        };
        Self {
            keys,
            hs256: validation(Algorithm::HS256),
            rs256: validation(Algorithm::RS256),
            es256: validation(Algorithm::ES256),
        }
    }

    /// Checks a connection token: the identity it gives.
    pub fn connection(&self, token: &str) -> Result<Identity, TokenError> {
        let claims = self.claims(token)?;
        if claims.channel.is_some() {
            return Err(TokenError::Misused(
                "this is a subscription token (it names a channel); connect with a \
                 connection token"
                    .into(),
            ));
        }
        identity(claims)
    }

    /// Checks a refresh of a connection whose identity is `current`: the new identity,
    /// whose `sub` must be the same.
    pub fn refresh(&self, token: &str, current: &Identity) -> Result<Identity, TokenError> {
        let next = self.connection(token)?;
        if next.user != current.user {
            return Err(TokenError::Misused(
                "the new token's sub is not the connection's user; reconnect to change users"
                    .into(),
            ));
        }
        Ok(next)
    }

    /// Checks a subscription token for `channel`, presented by a connection of `user`:
    /// its `channel` claim must name that channel, and its `sub`, if any, be that user.
    pub fn subscription(
        &self,
        token: &str,
        channel: &str,
        user: Option<&str>,
    ) -> Result<(), TokenError> {
        if self.subscription_channel(token, user)? != channel {
            return Err(TokenError::Misused(format!(
                "the subscription token is for another channel than {channel}"
            )));
        }
        Ok(())
    }

    /// The channel a subscription token presented by a connection of `user` admits (its
    /// `sub`, if any, must be that user): for `/sub`'s `channel_token` values, which do
    /// not say their channel.
    pub fn subscription_channel(
        &self,
        token: &str,
        user: Option<&str>,
    ) -> Result<String, TokenError> {
        let claims = self.claims(token)?;
        let Some(channel) = claims.channel else {
            return Err(TokenError::Misused(
                "not a subscription token (no channel claim)".into(),
            ));
        };
        if claims.sub.as_deref().is_some_and(|sub| Some(sub) != user) {
            return Err(TokenError::Misused(
                "the subscription token's sub is not the connection's user".into(),
            ));
        }
        Ok(channel)
    }

    /// Checks `token`'s form, signature and registered claims; its claims.
    fn claims(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = header(token)?;
        let (alg, validation) = match header.alg.as_str() {
            "HS256" => (Algorithm::HS256, &self.hs256),
            "RS256" => (Algorithm::RS256, &self.rs256),
            "ES256" => (Algorithm::ES256, &self.es256),
            other => {
                return Err(TokenError::Algorithm(format!(
                    "{other:.16} is not accepted (HS256, RS256 and ES256 are)"
                )))
            }
        };
        let keys = self.keys_for(alg, header.kid.as_deref())?;
        let mut last = TokenError::Signature;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => return Ok(data.claims),
                // Another key may verify it (a JWKS with several keys and no `kid`).
                Err(e) if is_signature(e.kind()) => last = TokenError::Signature,
                Err(e) => return Err(mapped(e.kind())),
            }
        }
        Err(last)
    }

    /// The keys that may verify a token signed with `alg` and `kid`.
    fn keys_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<Vec<&DecodingKey>, TokenError> {
        if alg == Algorithm::HS256 {
            return match &self.keys.secret {
                Some(secret) => Ok(vec![secret]),
                None => Err(TokenError::Algorithm(
                    "HS256 tokens are not accepted here (no token_secret)".into(),
                )),
            };
        }
        let of_alg: Vec<_> = self.keys.public.iter().filter(|k| k.alg == alg).collect();
        if of_alg.is_empty() {
            return Err(TokenError::Algorithm(format!(
                "{alg:?} tokens are not accepted here (no {alg:?} key)"
            )));
        }
        let keys: Vec<&DecodingKey> = of_alg
            .into_iter()
            .filter(|k| match (kid, k.kid.as_deref()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .map(|k| &k.key)
            .collect();
        if keys.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        Ok(keys)
    }
}

/// The header of `token`, read before any key is chosen (`jsonwebtoken` reads it again).
fn header(token: &str) -> Result<RawHeader, TokenError> {
    let mut parts = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "not a JWT (three base64url parts separated by dots)".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("the header is not a JSON object with alg".into()))
}

fn is_signature(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
    )
}

fn mapped(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
        ErrorKind::InvalidClaimFormat(c) => {
            TokenError::Malformed(format!("the {c} claim has the wrong type"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::Algorithm("the header's alg does not match the key".into())
        }
        k if is_signature(k) => TokenError::Signature,
        ErrorKind::Base64(_) => TokenError::Malformed("a part is not base64url".into()),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            TokenError::Malformed("the claims are not JSON of the expected shape".into())
        }
        _ => TokenError::Malformed("not a JWT this server accepts".into()),
    }
}

/// The identity a connection token's claims give.
fn identity(claims: Claims) -> Result<Identity, TokenError> {
    let user = match claims.sub {
        Some(s) if s.is_empty() || s.len() > MAX_USER_BYTES => {
            return Err(TokenError::Malformed(format!(
                "sub must be 1 to {MAX_USER_BYTES} bytes"
            )))
        }
        other => other.map(String::into_boxed_str),
    };
    let patterns = |claim: &str, list: Vec<String>| {
        list.iter()
            .map(|p| Pattern::parse(p))
            .collect::<Option<Box<[Pattern]>>>()
            .ok_or_else(|| {
                TokenError::Malformed(format!(
                    "the {claim} claim holds a pattern that is empty or has a * before its end"
                ))
            })
    };
    let grants = Grants {
        subscribe: patterns("subscribe", claims.subscribe)?,
        publish: patterns("publish", claims.publish)?,
        presence: patterns("presence", claims.presence)?,
        history: patterns("history", claims.history)?,
    };
    let expires = claims
        .exp
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)));
    Ok(Identity {
        user,
        grants,
        expires,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn verifier() -> Verifier {
        let auth = Auth {
            token_secret: Some("k".repeat(32)),
            ..Auth::default()
        };
        Verifier::new(&auth).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn what_is_not_a_token_is_said_so_before_any_key_is_tried() {
        let v = verifier();
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"exp":1}"#));
        let hs512 = format!("{}.{}.c2ln", b64(r#"{"alg":"HS512"}"#), b64("{}"));
        let rs256 = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        let table: Vec<(&str, &str)> = vec![
            ("", "malformed"),
            ("..", "malformed"),
            ("a.b", "malformed"),
            ("a.b.c.d", "malformed"),
            ("!!.b.c", "malformed"),
            (&long, "longer than"),
            (&none, "algorithm"),
            (&hs512, "algorithm"),
            (&rs256, "no RS256 key"),
        ];
        for (token, want) in table {
            let e = v.connection(token).unwrap_err().to_string();
            assert!(e.contains(want), "{token:.40}: {e}");
        }
        let shown = format!("{v:?}");
        assert!(!shown.contains("kkkk"), "Debug hides the secret: {shown}");
    }
}
