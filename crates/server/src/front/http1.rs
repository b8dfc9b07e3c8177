//! The connections hyper serves: from the first request the front does not answer
//! itself (a publish, the backend API, a demo page, anything with a body or pipelined)
//! on, hyper's HTTP/1.1 reads and answers every request of the connection. Each request
//! passes the front's checks ([`Front::check`]) before the router sees it; a WebSocket
//! upgrade the router accepts is handed to the WebSocket once hyper lets go of the
//! stream (the bare stream is taken back, with any bytes hyper read past the request).
//! Every later request head is checked before hyper reads it ([`super::later_heads`]),
//! so a head too long or not HTTP gets the front's JSON answer, as a first one does.
//! hyper's writes are given up after `limits.write_timeout_ms` without progress
//! ([`super::deadline`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use super::deadline::WriteDeadline;
use super::later_heads::{CountedBody, LaterHeads};
use super::rewind::Rewind;
use super::Front;
use crate::io::Io;
use crate::shutdown::ShutdownSignal;
use crate::transport::websocket;

/// Serves `io` with hyper until the connection ends, or closes it gracefully once
/// shutdown begins.
pub(super) async fn serve<S: Io>(
    io: Rewind<S>,
    peer: SocketAddr,
    front: Front,
    signal: ShutdownSignal,
) {
    let limits = front.head_limits();
    let state = front.state();
    let io = WriteDeadline::new(
        io,
        state.clients.wheel().clone(),
        state.config.limits.write_timeout(),
    );
    let io = LaterHeads::new(io, limits.max);
    let answered = io.answered();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let front = front.clone();
        let answered = Arc::clone(&answered);
        async move {
            let resp = respond::<S>(front, req, peer).await;
            Ok::<_, Infallible>(resp.map(|body| CountedBody::new(body, answered)))
        }
    });
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.timeout)
        // hyper's floor is 8 KiB; config validation keeps the limit at or above it.
        .max_buf_size(limits.max)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                crate::conn_log::note("close", "error");
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        }
        () = signal.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The answer to one request hyper read: the front's checks, then the router.
async fn respond<S: Io>(
    front: Front,
    mut req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> Response {
    let mut checked = match front
        .admit(req.method(), req.uri(), req.headers(), peer)
        .await
    {
        Ok(checked) => checked,
        Err(answer) => return answer,
    };
    checked.pass_identity(&mut req);
    // Handlers that key by client address (publish rate, API key failures).
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let upgrade = req
        .headers()
        .contains_key(http::header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let router = front.router().clone();
    let mut resp = match router.oneshot(req.map(axum::body::Body::new)).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    if let (Some(accepted), Some(upgrade)) = (websocket::claim(&mut resp), upgrade) {
        // In the connection's log, as the WebSocket's task it starts.
        crate::conn_log::spawn(take_back::<S>(upgrade, accepted));
    }
    checked.finish(&mut resp);
    resp
}

/// Waits for hyper to hand the upgraded connection over and gives the bare stream, with
/// the bytes already read past the request, to the accepted WebSocket.
async fn take_back<S: Io>(upgrade: OnUpgrade, accepted: websocket::Accepted) {
    let upgraded = match upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    // `serve` hands hyper nothing but this type.
    let Ok(raw) = upgraded.downcast::<TokioIo<LaterHeads<WriteDeadline<Rewind<S>>>>>() else {
        tracing::error!("upgraded connection is not the stream the front gave hyper");
        return;
    };
    let (held, io) = raw.io.into_inner().into_parts();
    let (unread, io) = io.into_inner().into_parts();
    // What hyper read past the request, what was read for it and not handed on yet, then
    // what nothing had read yet.
    let leftover = if unread.is_empty() && held.is_empty() {
        raw.read_buf
    } else {
        [raw.read_buf, held, unread].concat().into()
    };
    accepted.start(io, leftover);
}
