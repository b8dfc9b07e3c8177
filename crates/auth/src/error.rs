//! Why a token was not accepted: which check failed. Mapped to 401 `invalid_token` (or
//! `token_expired`) by [`crate::error`].

use std::fmt;

/// Why a client token was refused (the message says which check failed; it never
/// repeats the token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT this server can read: not three base64url parts, a header or claims that
    /// are not JSON of the expected shape, over the size limit.
    Malformed(String),
    /// The header's `alg` is not one the server accepts, or no key for it is configured.
    Algorithm(String),
    /// The header's `kid` names no configured key.
    UnknownKey,
    /// The signature does not verify with any configured key.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` does not hold the configured audience.
    Audience,
    /// A claim the server needs is missing (`exp`, or `iss` / `aud` when configured).
    MissingClaim(String),
    /// The token is of the other kind (a subscription token where a connection token is
    /// wanted, or the reverse), or for another channel or user.
    Misused(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed token: {why}"),
            Self::Algorithm(why) => write!(f, "algorithm not allowed: {why}"),
            Self::UnknownKey => write!(f, "the token's key id (kid) names no configured key"),
            Self::Signature => write!(f, "the signature does not verify"),
            Self::Expired => write!(f, "the token has expired (exp); get a new one"),
            Self::NotYetValid => write!(f, "the token is not valid yet (nbf)"),
            Self::Issuer => write!(f, "the token's issuer (iss) is not accepted"),
            Self::Audience => write!(f, "the token's audience (aud) is not this server"),
            Self::MissingClaim(claim) => write!(f, "the token has no {claim} claim"),
            Self::Misused(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for TokenError {}
