//! The one place where every failure a request can meet becomes an HTTP status and a
//! body a person can act on, and every reason the server ends a WebSocket becomes a
//! close code. Transports and handlers return [`ServerError`] or end with an [`Ending`];
//! nothing else in the crate picks a status or a close code.
//!
//! Body: `{"error": "<stable code>", "message": "<what happened and what to do>"}`.
//!
//! | error | status |
//! |---|---|
//! | invalid channel name, malformed cursor, bad query, bad JSON, bad WebSocket handshake, bytes that are not HTTP | 400 |
//! | missing or wrong API key | 401 |
//! | a client token needed (`anonymous = false`, a private channel) but none given | 401 `token_required` |
//! | a client token refused (which check failed) / expired | 401 `invalid_token` / `token_expired` |
//! | the client's tokens do not grant the action on the channel | 403 `not_granted` |
//! | publish / subscribe not allowed, API without a configured key | 403 |
//! | unknown namespace, unknown route | 404 |
//! | a route asked with a method it does not take | 405 |
//! | publish body over the limit | 413 |
//! | request body not in within `limits.body_read_timeout_ms` | 408 (connection closed) |
//! | wrong WebSocket version | 426 |
//! | request head over `limits.max_header_bytes` (the WebSocket handshake's too) | 431 |
//! | shutting down | 503 |
//! | too many new connections (`limits.max_new_connections_per_second`) | 503 with `Retry-After` |
//! | the server full (`limits.max_connections`) | 503 with `Retry-After` |
//! | too many connections from one address (`limits.max_connections_per_ip`) | 429 with `Retry-After` |
//! | too many connections of one authenticated user (`limits.max_connections_per_user`) | 429 |
//! | publishing faster than `limits.max_publishes_per_second` | 429 with `Retry-After` (native WebSocket: close 1008) |
//! | too many wrong API keys from one address | 429 with `Retry-After` |
//! | the application's backend refused the request (`[backend]`) | 403 |
//! | the application's backend did not answer and `backend.on_error = "deny"` | 503 |
//! | broker failure | 503 |
//! | refused by an admission check ([`crate::front::Admission`]) | the check's own |
//!
//! Close codes ([`Ending`]); the codec's own (1002, 1007, 1009 for a frame over its
//! limit, …) come from `switchboard_ws` for protocol errors:
//!
//! | why the server ends a WebSocket | close code |
//! |---|---|
//! | shutdown | 1012 service restart |
//! | the backend API disconnected the client | 1008 policy violation |
//! | a client publishes where it may not, or faster than its rate | 1008 policy violation |
//! | a client's message over `limits.max_publish_bytes` | 1009 message too big |
//! | the hub closed a subscription (slow consumer, broker trouble): resume | 1013 try again later |
//! | the connection's token expired (not refreshed in time, on `/ws`) | 3000 unauthorized ("token expired") |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_proto::ErrorCode;
use switchboard_ws::CloseCode;

use switchboard_hub::{BrokerError, HubError};

use crate::auth::{Action, TokenError};

/// Close code 3000 (IANA-registered "Unauthorized"): the connection's token expired.
pub const TOKEN_EXPIRED_CLOSE: CloseCode = CloseCode::new(3000);

/// Every request-level failure of the server.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The channel name is not acceptable (reason given).
    InvalidChannel(String),
    /// The channel's namespace is not configured on this server.
    UnknownNamespace(String),
    /// The namespace does not let clients publish.
    PublishNotAllowed(String),
    /// The namespace does not let clients subscribe.
    SubscribeNotAllowed(String),
    /// The namespace does not let clients see presence / history.
    NotAllowed(String),
    /// A publish body was larger than the limit.
    PayloadTooLarge { limit: usize },
    /// A request body did not arrive within the body read timeout.
    BodyTimeout { timeout: std::time::Duration },
    /// A cursor could not be parsed (why, without "malformed cursor": the message says it).
    MalformedCursor(String),
    /// A query parameter or body is malformed.
    BadRequest(String),
    /// The bytes received are not an HTTP/1.x request.
    MalformedRequest,
    /// The request head is longer than `limits.max_header_bytes`.
    HeadTooLarge { limit: usize },
    /// Too many channels in one request.
    TooManyChannels { limit: usize },
    /// Backend API: key missing or wrong.
    Unauthorized,
    /// Backend API: no key is configured, so the API is off.
    ApiDisabled,
    /// No such route or resource.
    NotFound(String),
    /// The route exists, but not for this method.
    MethodNotAllowed(String),
    /// The WebSocket upgrade request is malformed (status from the codec's mapping).
    Handshake(switchboard_ws::handshake::HandshakeError),
    /// The server is shutting down; retry on another node or later.
    ShuttingDown,
    /// A client publishes faster than `limits.max_publishes_per_second`.
    PublishRate { retry_after: std::time::Duration },
    /// Too many failed API key attempts from this address lately.
    TooManyFailures { retry_after: std::time::Duration },
    /// The application's backend refused the request (its reason).
    DeniedByBackend(String),
    /// The application's backend did not decide (why), and `backend.on_error` is `deny`.
    BackendUnavailable(String),
    /// The user holds `limits.max_connections_per_user` already.
    TooManyUserConnections { limit: u32 },
    /// The server holds `limits.max_connections` already.
    ServerFull,
    /// The client's address holds `limits.max_connections_per_ip` already.
    TooManyConnections,
    /// Too many new connections right now (`limits.max_new_connections_per_second`).
    Busy { retry_after: std::time::Duration },
    /// The broker could not take or give the data (its error says so: "broker
    /// unavailable: …", "broker error: …").
    Broker(BrokerError),
    /// A client token is needed for `action` on `channel`, and none was given.
    TokenRequired { action: Action, channel: String },
    /// A client token was refused (not an expiry: see [`ServerError::TokenExpired`]).
    InvalidToken(TokenError),
    /// A client token has expired.
    TokenExpired,
    /// The client's tokens do not grant `action` on `channel`.
    NotGranted { action: Action, channel: String },
    /// Refused by an admission check ([`crate::front::Admission`]), which chose the
    /// status, the stable code and the message ([`ServerError::refused`]).
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ServerError {
    /// The HTTP status and stable error code.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidChannel(_) => (StatusCode::BAD_REQUEST, "invalid_channel"),
            Self::UnknownNamespace(_) => (StatusCode::NOT_FOUND, "unknown_namespace"),
            Self::PublishNotAllowed(_) => (StatusCode::FORBIDDEN, "publish_not_allowed"),
            Self::SubscribeNotAllowed(_) => (StatusCode::FORBIDDEN, "subscribe_not_allowed"),
            Self::NotAllowed(_) => (StatusCode::FORBIDDEN, "not_allowed"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            Self::MalformedCursor(_) => (StatusCode::BAD_REQUEST, "malformed_cursor"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::MalformedRequest => (StatusCode::BAD_REQUEST, "malformed_request"),
            Self::HeadTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
            ),
            Self::TooManyChannels { .. } => (StatusCode::BAD_REQUEST, "too_many_channels"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::ApiDisabled => (StatusCode::FORBIDDEN, "api_disabled"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Handshake(e) => (
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                "bad_handshake",
            ),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::ServerFull => (StatusCode::SERVICE_UNAVAILABLE, "server_full"),
            Self::TooManyUserConnections { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_user_connections")
            }
            Self::DeniedByBackend(_) => (StatusCode::FORBIDDEN, "denied_by_backend"),
            Self::BackendUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable"),
            Self::PublishRate { .. } => (StatusCode::TOO_MANY_REQUESTS, "publish_rate"),
            Self::TooManyFailures { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_failures"),
            Self::TooManyConnections => (StatusCode::TOO_MANY_REQUESTS, "too_many_connections"),
            Self::Broker(_) => (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
            Self::TokenRequired { .. } => (StatusCode::UNAUTHORIZED, "token_required"),
            Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::NotGranted { .. } => (StatusCode::FORBIDDEN, "not_granted"),
            Self::Refused { status, code, .. } => (*status, code),
        }
    }

    /// A refusal by an admission check: `status` (a 4xx or 5xx; anything else is
    /// answered 403), a stable `code` for programs and a `message` for people.
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let status = if status.is_client_error() || status.is_server_error() {
            status
        } else {
            StatusCode::FORBIDDEN
        };
        Self::Refused {
            status,
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidChannel(why) => write!(f, "invalid channel name: {why}"),
            Self::UnknownNamespace(ns) => write!(
                f,
                "namespace {ns:?} is not configured on this server; use a configured \
                 namespace or add [namespaces.{ns}] to the config file"
            ),
            Self::PublishNotAllowed(ns) => write!(
                f,
                "clients may not publish to namespace {ns:?}; publish through the backend \
                 API (/api/publish) or set client_publish = true for it"
            ),
            Self::SubscribeNotAllowed(ns) => {
                write!(f, "clients may not subscribe to namespace {ns:?}")
            }
            Self::NotAllowed(what) => write!(f, "not allowed: {what}"),
            Self::PayloadTooLarge { limit } => write!(
                f,
                "publish body is larger than the limit of {limit} bytes \
                 (limits.max_publish_bytes)"
            ),
            Self::BodyTimeout { timeout } => write!(
                f,
                "the request body did not arrive within {} s (limits.body_read_timeout_ms); \
                 send it at once",
                timeout.as_secs_f64()
            ),
            Self::MalformedCursor(why) => write!(
                f,
                "malformed cursor: {why}; use the cursor exactly as the server sent it \
                 (EPOCH:OFFSET), or omit it to start from now"
            ),
            Self::BadRequest(why) => write!(f, "{why}"),
            Self::MalformedRequest => write!(f, "the bytes received are not an HTTP/1.1 request"),
            Self::HeadTooLarge { limit } => write!(
                f,
                "the request head is longer than {limit} bytes (limits.max_header_bytes)"
            ),
            Self::TooManyChannels { limit } => {
                write!(f, "too many channels in one request (limit {limit})")
            }
            Self::Unauthorized => write!(
                f,
                "missing or wrong API key; send it as 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'"
            ),
            Self::ApiDisabled => write!(
                f,
                "the backend API is disabled because no API key is configured; set api_key in \
                 the config file or the SWITCHBOARD_API_KEY environment variable and restart"
            ),
            Self::NotFound(what) => write!(f, "not found: {what}"),
            Self::MethodNotAllowed(what) => write!(f, "method not allowed: {what}"),
            Self::Handshake(e) => write!(f, "bad WebSocket handshake: {e}"),
            Self::PublishRate { retry_after } => write!(
                f,
                "publishing faster than limits.max_publishes_per_second; retry in {} ms",
                retry_after.as_millis().max(1)
            ),
            Self::TooManyFailures { retry_after } => write!(
                f,
                "too many wrong API keys from this address; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::DeniedByBackend(why) => write!(f, "the application refused this request: {why}"),
            Self::BackendUnavailable(why) => write!(
                f,
                "the application's backend could not be asked ({why}); retry shortly"
            ),
            Self::TooManyUserConnections { limit } => write!(
                f,
                "this user holds {limit} connections already (limits.max_connections_per_user); \
                 close one first"
            ),
            Self::ServerFull => write!(
                f,
                "the server has no room for more connections (limits.max_connections); retry \
                 shortly or on another node"
            ),
            Self::TooManyConnections => write!(
                f,
                "this address holds too many connections (limits.max_connections_per_ip); \
                 close some first"
            ),
            Self::Busy { retry_after } => write!(
                f,
                "too many new connections right now; retry in {} ms (Retry-After)",
                retry_after.as_millis()
            ),
            Self::ShuttingDown => {
                write!(f, "the server is shutting down; reconnect (another node or shortly)")
            }
            Self::Broker(e) => write!(f, "{e}; retry later"),
            Self::TokenRequired { action, channel } => write!(
                f,
                "a client token is needed to {} {channel}; send it as 'Authorization: Bearer \
                 TOKEN', a token query parameter or the /ws connect command",
                doing(*action)
            ),
            Self::InvalidToken(why) => write!(f, "invalid token: {why}"),
            Self::TokenExpired => write!(
                f,
                "the client token has expired; get a new one and connect (or refresh) with it"
            ),
            Self::NotGranted { action, channel } => write!(
                f,
                "your token does not grant {} {channel} (claim {:?}{})",
                doing(*action),
                action.claim(),
                if *action == Action::Subscribe {
                    ", or a subscription token for the channel"
                } else {
                    ""
                }
            ),
            Self::Refused { message, .. } => write!(f, "{message}"),
        }
    }
}

/// How a message names an action: "to {subscribe to} CHANNEL".
fn doing(action: Action) -> &'static str {
    match action {
        Action::Subscribe => "subscribe to",
        Action::Publish => "publish to",
        Action::Presence => "see the presence of",
        Action::History => "read the history of",
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// The error code of the `/ws` command protocol for the same failure.
    pub fn command_code(&self) -> ErrorCode {
        match self {
            Self::InvalidChannel(_) => ErrorCode::InvalidChannel,
            Self::UnknownNamespace(_) => ErrorCode::UnknownNamespace,
            Self::PublishNotAllowed(_)
            | Self::SubscribeNotAllowed(_)
            | Self::NotAllowed(_)
            | Self::Unauthorized
            | Self::ApiDisabled => ErrorCode::NotAllowed,
            Self::PayloadTooLarge { .. } => ErrorCode::MessageTooLarge,
            Self::MalformedCursor(_) => ErrorCode::InvalidCursor,
            Self::BadRequest(_)
            | Self::Handshake(_)
            | Self::NotFound(_)
            | Self::MethodNotAllowed(_)
            | Self::BodyTimeout { .. }
            | Self::MalformedRequest
            | Self::HeadTooLarge { .. } => ErrorCode::BadRequest,
            Self::TooManyChannels { .. } => ErrorCode::TooManyRequests,
            Self::ShuttingDown
            | Self::Broker(_)
            | Self::Busy { .. }
            | Self::ServerFull
            | Self::BackendUnavailable(_) => ErrorCode::Unavailable,
            Self::DeniedByBackend(_) => ErrorCode::NotAllowed,
            Self::TooManyConnections
            | Self::TooManyUserConnections { .. }
            | Self::PublishRate { .. }
            | Self::TooManyFailures { .. } => ErrorCode::TooManyRequests,
            Self::TokenRequired { .. } => ErrorCode::TokenRequired,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::TokenExpired => ErrorCode::TokenExpired,
            Self::NotGranted { .. } => ErrorCode::NotGranted,
            Self::Refused { status, .. } => match *status {
                StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
                s if s.is_server_error() => ErrorCode::Unavailable,
                _ => ErrorCode::NotAllowed,
            },
        }
    }
}

impl From<switchboard_ws::handshake::HandshakeError> for ServerError {
    fn from(e: switchboard_ws::handshake::HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<HubError> for ServerError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::InvalidChannel(why) => Self::InvalidChannel(why.to_string()),
            HubError::UnknownNamespace(ns) if ns.is_empty() => {
                Self::UnknownNamespace(crate::config::DEFAULT_NAMESPACE.to_owned())
            }
            HubError::UnknownNamespace(ns) => Self::UnknownNamespace(ns),
            HubError::PublishNotAllowed => Self::NotAllowed("publishing to this channel".into()),
            HubError::SubscribeNotAllowed => Self::NotAllowed("subscribing to this channel".into()),
            HubError::PresenceDisabled => {
                Self::NotAllowed("presence is not enabled for this namespace".into())
            }
            HubError::MessageTooLarge { max, .. } => Self::PayloadTooLarge { limit: max },
            HubError::InvalidPayload(why) => Self::BadRequest(format!("invalid payload: {why}")),
            HubError::Broker(b) => Self::Broker(b),
            HubError::Shutdown => Self::ShuttingDown,
            // A variant added later: refuse rather than guess.
            other => Self::Broker(BrokerError::Internal(other.to_string())),
        }
    }
}

impl From<TokenError> for ServerError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => Self::TokenExpired,
            other => Self::InvalidToken(other),
        }
    }
}

impl From<switchboard_proto::CursorError> for ServerError {
    fn from(e: switchboard_proto::CursorError) -> Self {
        Self::MalformedCursor(e.reason().to_owned())
    }
}

impl From<switchboard_proto::ProtoError> for ServerError {
    fn from(e: switchboard_proto::ProtoError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let message = self.to_string();
        // In the connection's span when it is logged (`crate::conn_log`).
        tracing::debug!(status = status.as_u16(), error = code, detail = %message, "request failed");
        let body = serde_json::json!({ "error": code, "message": message });
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            resp.headers_mut()
                .insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        let challenge = match &self {
            Self::Unauthorized | Self::TokenRequired { .. } => Some("Bearer"),
            // RFC 6750 3.1.
            Self::InvalidToken(_) | Self::TokenExpired => Some("Bearer error=\"invalid_token\""),
            _ => None,
        };
        if let Some(challenge) = challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        let retry_after = match &self {
            Self::Busy { retry_after }
            | Self::PublishRate { retry_after }
            | Self::TooManyFailures { retry_after } => Some(*retry_after),
            Self::ServerFull | Self::TooManyConnections => Some(std::time::Duration::from_secs(1)),
            _ => None,
        };
        if let Some(wait) = retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        // The connection is not kept: a slow body's rest is not waited for, and a
        // connection turned away must not stay.
        if matches!(
            self,
            Self::BodyTimeout { .. }
                | Self::Busy { .. }
                | Self::ServerFull
                | Self::TooManyConnections
        ) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Why the server ends a WebSocket connection (see the close-code table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server is shutting down: reconnect (another node, or shortly).
    Shutdown,
    /// The backend API disconnected the client.
    Kicked,
    /// The client did what it may not (the reason says what).
    Policy(&'static str),
    /// A client's message was over the publish size limit.
    TooBig,
    /// The hub closed a subscription (slow consumer, broker trouble): resume from the
    /// last cursor.
    Resume,
    /// The connection's token expired (on `/ws`: and was not refreshed in time).
    TokenExpired,
}

impl Ending {
    /// The close frame for it.
    pub fn close_frame(self) -> (CloseCode, &'static str) {
        match self {
            Ending::Shutdown => (CloseCode::SERVICE_RESTART, "service restart"),
            Ending::Kicked => (CloseCode::POLICY_VIOLATION, "disconnected by the server"),
            Ending::Policy(why) => (CloseCode::POLICY_VIOLATION, why),
            Ending::TooBig => (
                CloseCode::MESSAGE_TOO_BIG,
                "message over the publish size limit",
            ),
            Ending::Resume => (CloseCode::TRY_AGAIN_LATER, "resume from your last cursor"),
            Ending::TokenExpired => (TOKEN_EXPIRED_CLOSE, "token expired"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_one_status_and_an_actionable_message() {
        let table: Vec<(ServerError, u16)> = vec![
            (ServerError::InvalidChannel("empty".into()), 400),
            (ServerError::UnknownNamespace("x".into()), 404),
            (ServerError::PublishNotAllowed("ticker".into()), 403),
            (ServerError::SubscribeNotAllowed("x".into()), 403),
            (ServerError::PayloadTooLarge { limit: 10 }, 413),
            (ServerError::MalformedCursor("x".into()), 400),
            (ServerError::Unauthorized, 401),
            (ServerError::ApiDisabled, 403),
            (ServerError::ShuttingDown, 503),
            (
                ServerError::TokenRequired {
                    action: Action::Subscribe,
                    channel: "s:x".into(),
                },
                401,
            ),
            (ServerError::InvalidToken(TokenError::Signature), 401),
            (ServerError::TokenExpired, 401),
            (
                ServerError::NotGranted {
                    action: Action::History,
                    channel: "s:x".into(),
                },
                403,
            ),
        ];
        for (err, status) in table {
            assert_eq!(err.status().0.as_u16(), status, "{err}");
            assert!(err.to_string().len() > 10);
        }
        assert!(ServerError::ApiDisabled
            .to_string()
            .contains("SWITCHBOARD_API_KEY"));
    }

    #[test]
    fn a_refusal_keeps_its_status_and_code_unless_it_is_no_error() {
        let r = ServerError::refused(StatusCode::TOO_MANY_REQUESTS, "slow_down", "too fast");
        assert_eq!(r.status(), (StatusCode::TOO_MANY_REQUESTS, "slow_down"));
        assert_eq!(r.command_code(), ErrorCode::TooManyRequests);
        assert_eq!(r.to_string(), "too fast");
        let ok = ServerError::refused(StatusCode::OK, "odd", "not an error");
        assert_eq!(ok.status().0, StatusCode::FORBIDDEN);
        assert_eq!(ok.command_code(), ErrorCode::NotAllowed);
    }

    /// A message wrapping its source's says each thing once (it read "malformed cursor:
    /// malformed cursor: …" and "broker unavailable: broker unavailable: …").
    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_wrapped_error_does_not_repeat_its_source() {
        use switchboard_proto::CursorError;
        let once = |message: &str, phrase: &str| {
            assert_eq!(message.matches(phrase).count(), 1, "{message}");
        };
        let cursor = ServerError::from(CursorError::MissingSeparator);
        once(&cursor.to_string(), "malformed cursor");
        assert!(cursor.to_string().contains("epoch:offset"), "{cursor}");
        for bad in ["", "x", "zz:1"] {
            let e = crate::transport::parse_cursor(bad).unwrap_err();
            once(&e.to_string(), "malformed cursor");
            let e = crate::transport::parse_since(bad).unwrap_err();
            once(&e.to_string(), "malformed cursor");
        }
        let down = BrokerError::Unavailable("redis://127.0.0.1:6390: connection refused".into());
        let e = ServerError::from(HubError::Broker(down));
        once(&e.to_string(), "broker unavailable");
        assert!(e.to_string().contains("connection refused"), "{e}");
        assert_eq!(e.status().1, "broker_unavailable");
        let odd = ServerError::from(HubError::Broker(BrokerError::Internal("WRONGTYPE".into())));
        once(&odd.to_string(), "broker");
    }

    #[test]
    fn every_ending_has_its_close_code() {
        let table = [
            (Ending::Shutdown, 1012),
            (Ending::Kicked, 1008),
            (Ending::Policy("no"), 1008),
            (Ending::TooBig, 1009),
            (Ending::Resume, 1013),
            (Ending::TokenExpired, 3000),
        ];
        for (ending, code) in table {
            assert_eq!(u16::from(ending.close_frame().0), code, "{ending:?}");
        }
    }
}
