//! Opening handshakes over a stream: [`accept`] (server) and [`connect`] (client).
//!
//! The HTTP bytes are parsed by the codec's sans-IO handshake functions; this module only
//! reads until a complete head has arrived (at most `MAX_HEADER_BYTES`), writes the answer,
//! and hands the bytes read past the head to the new connection. Neither function has a
//! timeout of its own: wrap it in `tokio::time::timeout` where a slow peer matters.

use switchboard_ws::handshake::{
    self as hs, AcceptOptions, ClientRequest, HandshakeError, Request, Response,
};
use switchboard_ws::{Config, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::websocket::{WebSocket, DEFAULT_HIGH_WATER_MARK};

/// Bytes reserved for each read of a handshake head.
const READ_CHUNK: usize = 4096;

/// What a server accepts and the limits of the connections it accepts.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Subprotocols and permessage-deflate policy for the handshake.
    pub accept: AcceptOptions,
    /// Limits and timers of each connection.
    pub connection: Config,
    /// See [`WebSocket::set_high_water_mark`]; 0 means the default.
    pub high_water_mark: usize,
}

/// What a client asks for and the limits of its connection.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Subprotocols to offer, in preference order.
    pub protocols: Vec<String>,
    /// permessage-deflate offer; `None` offers no compression.
    pub deflate: Option<switchboard_ws::DeflateConfig>,
    /// Limits and timers of the connection.
    pub connection: Config,
    /// See [`WebSocket::set_high_water_mark`]; 0 means the default.
    pub high_water_mark: usize,
}

/// Read a client's opening handshake from `stream` and answer it: 101 and a WebSocket,
/// or the HTTP error for the handshake fault (written, then `Err(Error::Handshake)`).
pub async fn accept<S>(mut stream: S, config: &ServerConfig) -> Result<(WebSocket<S>, Request)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let (request, consumed) = loop {
        let parsed = hs::parse_request(&buf);
        match parsed {
            Ok(Some(done)) => break done,
            Ok(None) => {}
            Err(e) => return Err(reject(&mut stream, e).await),
        }
        if buf.len() >= hs::MAX_HEADER_BYTES {
            return Err(reject(&mut stream, HandshakeError::HeadersTooLarge).await);
        }
        if read_some(&mut stream, &mut buf).await? == 0 {
            return Err(Error::Handshake(HandshakeError::Incomplete));
        }
    };
    let accepted = match hs::accept(&request, &config.accept) {
        Ok(a) => a,
        Err(e) => return Err(reject(&mut stream, e).await),
    };
    stream.write_all(&accepted.response).await?;
    stream.flush().await?;
    let mut ws = WebSocket::from_upgraded(
        stream,
        Role::Server,
        config.connection.clone(),
        accepted.deflate,
        &buf[consumed..],
    );
    if config.high_water_mark > 0 {
        ws.set_high_water_mark(config.high_water_mark);
    }
    Ok((ws, request))
}

/// Perform a client's opening handshake on `stream` for `ws://host/path` (`host` is the
/// Host header, with the port when it is not the default).
pub async fn connect<S>(
    mut stream: S,
    host: &str,
    path: &str,
    config: &ClientConfig,
) -> Result<(WebSocket<S>, Response)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = ClientRequest {
        host: host.to_owned(),
        path: path.to_owned(),
        protocols: config.protocols.clone(),
        deflate: config.deflate.clone(),
        ..ClientRequest::default()
    };
    let (bytes, handshake) = hs::build_request(&request)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(512);
    let (response, consumed) = loop {
        if let Some(done) = handshake.parse_response(&buf)? {
            break done;
        }
        if buf.len() >= hs::MAX_HEADER_BYTES {
            return Err(Error::Handshake(HandshakeError::MalformedResponse(
                "response head too large",
            )));
        }
        if read_some(&mut stream, &mut buf).await? == 0 {
            return Err(Error::eof(
                "the server closed the connection during the handshake",
            ));
        }
    };
    let mut ws = WebSocket::from_upgraded(
        stream,
        Role::Client,
        config.connection.clone(),
        response.deflate,
        &buf[consumed..],
    );
    ws.set_high_water_mark(if config.high_water_mark > 0 {
        config.high_water_mark
    } else {
        DEFAULT_HIGH_WATER_MARK
    });
    Ok((ws, response))
}

/// Append what one read returns (at most the 4 KiB reserved, or the spare capacity) to
/// `buf`. The bytes go straight into the `Vec`'s spare capacity: a stack array held
/// across this `.await` would be part of the handshake future, and so of every task that
/// awaits `accept` and then serves the connection for its whole life.
async fn read_some<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Result<usize> {
    buf.reserve(READ_CHUNK);
    Ok(stream.read_buf(buf).await?)
}

/// Write the HTTP error response for `err` (best effort) and turn it into our error.
async fn reject<S: AsyncWrite + Unpin>(stream: &mut S, err: HandshakeError) -> Error {
    let response = hs::reject_response(&err);
    // The peer may be gone already; the handshake error is what matters.
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
    Error::Handshake(err)
}
