//! The client token of a request, checked once by the front when tokens are on (an
//! `[auth]` section), for every request but the backend API's (whose bearer is the API
//! key): `Authorization: Bearer`, else `?token=` ([`Ask::token`]). A valid token's
//! [`Identity`] goes to the request's handler in its extensions (see
//! [`super::Checked::pass_identity`]); a request without a token goes on anonymous (the
//! channel policy decides, [`crate::channel`]); a refused token is the answer (401
//! `invalid_token` / `token_expired`). `?user=` is refused (400): with tokens on, the
//! user id is the token's `sub`, so presence cannot be forged.

use super::admission::Ask;
use crate::auth::Identity;
use crate::error::ServerError;
use crate::state::AppState;

/// The identity of the request `ask` (see the module docs); `Ok(None)` when tokens are
/// off, for the backend API, and for a request without a token.
pub(super) fn identify(state: &AppState, ask: &Ask<'_>) -> Result<Option<Identity>, ServerError> {
    let Some(verifier) = &state.auth else {
        return Ok(None);
    };
    let path = ask.path();
    if path == "/api" || path.starts_with("/api/") {
        return Ok(None);
    }
    let query = ask.query().unwrap_or("").as_bytes();
    if form_urlencoded::parse(query).any(|(k, _)| k == "user") {
        return Err(ServerError::BadRequest(
            "?user= is not accepted when client tokens are on: the user id is the token's sub"
                .into(),
        ));
    }
    match ask.token() {
        Some(token) => Ok(Some(verifier.connection(&token)?)),
        None => Ok(None),
    }
}
