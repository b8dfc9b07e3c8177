//! Client tokens: which JWTs the server accepts, what their claims mean, and the
//! [`Identity`] a connection token gives. On when the server's configuration has an
//! `[auth]` section ([`Auth`]); without one the server reads no token. Pure: no sockets,
//! no server types, so a fuzz target (or another program) can check tokens with it alone.
//!
//! | file | what it owns |
//! |---|---|
//! | [`keys`](self) (`keys.rs`) | loading the secret, the PEM key and the JWKS file |
//! | [`Verifier`] (`verify.rs`) | checking a token: size, header, signature, claims |
//! | [`Grants`] (`grants.rs`) | channel patterns per [`Action`] |
//! | [`TokenError`] (`error.rs`) | which check failed |
//!
//! Below the server (`switchboard-server`): its connection front checks a request's token
//! once and puts the [`Identity`] in the request's extensions; the policy that reads it
//! (may this identity subscribe to, publish to, see the presence or history of this
//! channel) lives in the server's `channel` module, next to the namespace checks.
//!
//! **Where a token comes from.** `Authorization: Bearer TOKEN`, else the `token` query
//! parameter (`EventSource` and browsers' `WebSocket` cannot set headers), else, on
//! `/ws`, a `connect` command (the `/ws` protocol's `connect` op). `/api/…` is not
//! read for tokens: its bearer is the API key.
//!
//! **Connection token claims.**
//!
//! | claim | meaning |
//! |---|---|
//! | `sub` | the user id (presence, `POST /api/disconnect {"user"}`); 1 to 128 bytes. With tokens on, `?user=` is refused (400): the user comes from here only |
//! | `exp` | required; a live connection ends at it (a `/ws` session is asked to `refresh` first) |
//! | `nbf` | optional; not valid before |
//! | `iss`, `aud` | checked when `token_issuer` / `token_audience` are configured (then required) |
//! | `subscribe`, `publish`, `presence`, `history` | lists of channel patterns this token grants for that action: an exact name (`"chat:lobby"`), or a prefix ending in `*` (`"chat:*"`, `"*"` for every channel) |
//!
//! **Subscription token claims** (a private channel's, for one subscription): `channel`
//! (the channel it admits), `exp` (checked when subscribing; the subscription then lasts
//! as long as its connection, so it can be short), optional `sub` (must then be the
//! connection's user). A subscription token is not a connection token, nor the reverse.
//!
//! **Algorithms.** HS256 with `token_secret`; RS256 or ES256 (P-256) with a public key
//! of that type (`token_public_key`, or a key of `token_jwks`, chosen by the header's
//! `kid`). Any other `alg`, `none` included, is refused. No clock leeway.
//!
//! **Failures.** 401 `invalid_token` (the message says which check failed: malformed,
//! algorithm not allowed, unknown key, signature, issuer, audience, a missing claim, a
//! token of the wrong kind) or 401 `token_expired` (the server's `error` module maps
//! each [`TokenError`] to its status).

mod config;
mod error;
mod grants;
mod keys;
mod verify;

use std::time::SystemTime;

pub use config::{Auth, KeyError};
pub use error::TokenError;
pub use grants::{Action, Grants, Pattern};
pub use verify::{Verifier, MAX_TOKEN_BYTES};

/// Who a verified connection token says the client is, and what it may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub user: Option<Box<str>>,
    /// The channel patterns it grants, per action.
    pub grants: Grants,
    /// The token's `exp`.
    pub expires: Option<SystemTime>,
}
