//! The driver's one error type: what failed is the socket, the codec, or the handshake.

use std::fmt;

use switchboard_ws::handshake::HandshakeError;

/// Everything a [`WebSocket`](crate::WebSocket) or a handshake function can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed, or the peer closed TCP without a close handshake
    /// (`ErrorKind::UnexpectedEof`).
    Io(std::io::Error),
    /// The codec refused a call (sending after close, text that is not UTF-8, a bad close
    /// code) or the peer broke
    /// the protocol (`switchboard_ws::Error::Protocol`; a close frame with the matching code
    /// has already been queued).
    Ws(switchboard_ws::Error),
    /// The opening handshake failed. On the server side the HTTP error response has
    /// already been written.
    Handshake(HandshakeError),
}

impl Error {
    /// The peer closed TCP in the middle of the connection.
    pub(crate) fn eof(what: &'static str) -> Self {
        Self::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Ws(e) => write!(f, "WebSocket error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Ws(e) => Some(e),
            Self::Handshake(e) => Some(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<switchboard_ws::Error> for Error {
    fn from(e: switchboard_ws::Error) -> Self {
        Self::Ws(e)
    }
}

impl From<switchboard_ws::ProtocolError> for Error {
    fn from(e: switchboard_ws::ProtocolError) -> Self {
        Self::Ws(switchboard_ws::Error::Protocol(e))
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

/// The driver's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
