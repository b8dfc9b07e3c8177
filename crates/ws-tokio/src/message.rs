//! The messages an application sends and receives.

use bytes::Bytes;
use switchboard_ws::CloseCode;

/// One complete WebSocket message (fragments already joined, compression undone), or a
/// control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message. Received ones are valid UTF-8 (checked by the codec); ones to send
    /// are checked before framing (`Error::Ws(switchboard_ws::Error::InvalidUtf8)`).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping. Received pings are answered by the codec; the application only sees them.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame. Received: the peer's code and reason (`None` when the frame carried
    /// no code); the reply has been queued. Sent: starts the closing handshake.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message from anything string-like.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(Bytes::from(text.into()))
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The payload of a text, binary, ping or pong message.
    pub fn payload(&self) -> &[u8] {
        match self {
            Self::Text(b) | Self::Binary(b) | Self::Ping(b) | Self::Pong(b) => b,
            Self::Close(_) => &[],
        }
    }
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: CloseCode,
    pub reason: String,
}
