//! The WebSocket upgrade: checks the handshake, subscribes (a native connection), and
//! answers `101 Switching Protocols` carrying the [`Accepted`] connection; whoever
//! writes the `101` claims it ([`claim`]) and starts it on the connection's stream.
//!
//! Subscribing happens before the answer, so a native subscription starts at the
//! handshake and a bad channel is an HTTP error (its status and JSON body), not a close
//! code.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use bytes::BytesMut;
use switchboard_ws::frame::{encode_frame, FrameHeader, OpCode};
use switchboard_ws::handshake::{self, AcceptOptions};
use switchboard_ws::{CloseCode, DeflateConfig};

use super::endpoint::{self, Endpoint};
use super::{native, session, socket};
use crate::auth::Identity;
use crate::backend::Asker;
use crate::channel;
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::io::Io;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::transport::expiry::Expiry;
use crate::transport::handoff::Handoff;
use crate::transport::{client_info, Principal, Target};

/// What the upgraded connection will do.
#[derive(Clone)]
pub enum Mode {
    /// One channel (`/ch/NAME`).
    Native(Target),
    /// The command protocol (`/ws`).
    Mux,
    /// An endpoint a program embedding the server added.
    Custom(Arc<dyn Endpoint>),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Native(t) => f.debug_tuple("Native").field(t).finish(),
            Self::Mux => f.write_str("Mux"),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// A WebSocket connection accepted by a `101` answer, waiting for its stream.
#[derive(Debug)]
pub struct Accepted {
    state: AppState,
    deflate: Option<switchboard_ws::DeflateParams>,
    run: Run,
}

/// What runs on the stream.
#[derive(Debug)]
enum Run {
    /// A native connection, and whether it speaks the compact format.
    Native(native::Parts, bool),
    /// The session's client, what its token says (if one came with the upgrade), and
    /// whether it speaks the compact format.
    Mux(ClientHandle, Option<Identity>, Option<Asker>, bool),
    Custom(endpoint::Opened),
}

impl Accepted {
    /// Starts the connection's task on `io`; `leftover` is what was read past the
    /// request (the codec reads it first).
    pub fn start<S: Io>(self, io: S, leftover: Bytes) {
        let Self {
            state,
            deflate,
            run,
        } = self;
        match run {
            Run::Native(parts, compact) => {
                native::spawn(socket(io, &leftover, &state, deflate), parts, compact);
            }
            Run::Mux(mut client, identity, asker, compact) => {
                crate::conn_log::spawn(async move {
                    // Boxed: the codec's state is most of a connection's memory, and a box
                    // keeps it out of every future that holds the socket across an await.
                    let mut ws = Box::new(socket(io, &leftover, &state, deflate));
                    session::run(&state, &mut ws, &mut client, identity, asker, compact).await;
                });
            }
            Run::Custom(opened) => {
                let ws = Box::new(socket(io, &leftover, &state, deflate));
                crate::conn_log::spawn(endpoint::run(ws, opened, state.shutdown.clone()));
            }
        }
    }
}

/// Takes the accepted connection out of a `101` built by [`upgrade`]; `None` for any
/// other response.
pub fn claim(resp: &mut Response) -> Option<Accepted> {
    Handoff::claim(resp)
}

/// Checks the upgrade request, subscribes a native connection, and answers `101` with
/// the [`Accepted`] connection attached (see the module docs). The connection is
/// `principal`'s: its user id, and its token's grants and expiry.
pub async fn upgrade(
    state: &AppState,
    req: Request,
    mode: Mode,
    principal: Principal,
) -> Result<Response, ServerError> {
    if state.shutdown.is_triggered() {
        return Err(ServerError::ShuttingDown);
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let request = handshake::validate_headers(req.method().as_str(), &target, headers)?;
    // A `/ws` session asks the backend about its subscribes with the handshake's
    // credentials (the front put the peer's address in the extensions).
    let asker = match (&mode, &state.backend) {
        (Mode::Mux, Some(backend)) if backend.asks(crate::backend::Kind::Subscribe) => {
            let peer = req
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
            Some(Asker::new(req.headers(), peer))
        }
        _ => None,
    };
    // Not held across an await: its body is not `Sync`.
    drop(req);
    // A native connection hears of shutdown and of the backend's disconnect through its
    // subscription closing (the hub closes them all), so it keeps no kick notification
    // and watches no shutdown signal.
    let expires = principal.expires();
    let client = match mode {
        Mode::Native(_) => state
            .clients
            .register_hub_kicked(principal.user.clone(), Transport::Websocket),
        Mode::Mux => state
            .clients
            .register(principal.user.clone(), Transport::Ws),
        Mode::Custom(_) => state
            .clients
            .register(principal.user.clone(), Transport::Custom),
    };
    // The compact format is offered on the server's own endpoints, not on added ones
    // (they choose their own frames).
    let protocols = match mode {
        Mode::Native(_) | Mode::Mux => vec![switchboard_proto::COMPACT_PROTOCOL.to_owned()],
        Mode::Custom(_) => Vec::new(),
    };
    let options = AcceptOptions {
        protocols,
        deflate: Some(DeflateConfig::default()),
        extra_headers: vec![(
            crate::transport::CLIENT_ID_HEADER.to_owned(),
            client.id().to_owned(),
        )],
    };
    let accepted = handshake::accept(&request, &options)?;
    let compact = accepted.protocol.is_some();
    let run = match mode {
        Mode::Native(target) => {
            let caller = principal.caller();
            channel::for_subscribe(state, caller, &target.channel)?;
            let may_publish = channel::for_client_publish(state, caller, &target.channel).is_ok();
            let since =
                crate::transport::join::start(&state.hub, &target.channel, target.since).await?;
            let sub = state
                .hub
                .subscribe(&target.channel, since, client_info(&client))
                .await?;
            crate::transport::end_if_kicked_while_opening(state, &client);
            // A subscription registered while the hub was closing them all could be
            // missed by it; shutdown began before the hub's sweep, so this sees it.
            if state.shutdown.is_triggered() {
                return Err(ServerError::ShuttingDown);
            }
            Run::Native(
                native::Parts::new(state, sub, client, may_publish, expires),
                compact,
            )
        }
        Mode::Mux => Run::Mux(client, principal.identity, asker, compact),
        Mode::Custom(endpoint) => Run::Custom(endpoint::Opened::new(
            endpoint,
            client,
            state.hub.clone(),
            target,
            Expiry::new(state.clients.wheel(), expires),
        )),
    };
    let mut response = switching_response(&accepted.headers);
    Handoff::new(Accepted {
        state: state.clone(),
        deflate: accepted.deflate,
        run,
    })
    .attach(&mut response);
    Ok(response)
}

/// The bytes that accept `req`'s WebSocket handshake and close at once with 1013 (try
/// again later) and a reason that says when: a new connection turned away by the
/// new-connection rate ([`crate::front::connections`]), which a client reads (a browser
/// cannot read a refused handshake's status). A malformed handshake is its error.
pub fn busy_close(req: &http::Request<()>, retry_after: Duration) -> Result<Vec<u8>, ServerError> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let request = handshake::validate_headers(req.method().as_str(), target, headers)?;
    let accepted = handshake::accept(&request, &AcceptOptions::default())?;
    let reason = format!("retry after {} ms", retry_after.as_millis().max(1));
    let mut payload = CloseCode::TRY_AGAIN_LATER.as_u16().to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    let mut frame = BytesMut::new();
    encode_frame(&mut frame, FrameHeader::new(OpCode::Close, 0), &payload);
    let mut out = accepted.response;
    out.extend_from_slice(&frame);
    Ok(out)
}

/// The `101` with the handshake's headers (the client id among them).
fn switching_response(headers: &[(String, String)]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        // The codec wrote them as tokens and visible text; nothing is skipped.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}
