//! Errors of the codec, split by whose fault they are.
//!
//! [`ProtocolError`] is a fault of the peer: the connection answers it with a close frame
//! whose code comes from [`ProtocolError::close_code`], the one place that mapping lives
//! (in `close`, with the other close-code rules, so that this module, which every parser
//! uses, depends on none of them).
//! [`Error`] is what the caller's own calls return: misuse (sending after close, an invalid
//! close code, an oversized control payload), a failed opening handshake (wrapping
//! `handshake::HandshakeError`, which maps to an HTTP status) or an internal compression
//! failure.

use std::fmt;

use crate::handshake::HandshakeError;

/// Something the peer did wrong. Each variant maps to one close code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Opcode 3–7 or 0xB–0xF.
    ReservedOpCode(u8),
    /// RSV2/RSV3 set, or RSV1 set without permessage-deflate.
    ReservedBits,
    /// RSV1 on a control or continuation frame.
    CompressedControlOrContinuation,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLarge,
    /// A 64-bit payload length with its most significant bit set.
    InvalidPayloadLength,
    /// A client sent an unmasked frame to a server.
    UnmaskedFrame,
    /// A server sent a masked frame to a client.
    MaskedFrame,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    InvalidClosePayload,
    /// A close code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A frame payload larger than `Config::max_frame_size`.
    FrameTooBig { len: u64, max: usize },
    /// A message (compressed or inflated) larger than `Config::max_message_size`.
    MessageTooBig { max: usize },
    /// Compressed data that does not inflate.
    InvalidCompressedData,
}

impl ProtocolError {
    /// A short reason for the close frame (always well under 123 bytes).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ReservedOpCode(_) => "reserved opcode",
            Self::ReservedBits => "reserved bits set",
            Self::CompressedControlOrContinuation => "RSV1 on control or continuation frame",
            Self::FragmentedControlFrame => "fragmented control frame",
            Self::ControlFrameTooLarge => "control frame too large",
            Self::InvalidPayloadLength => "invalid payload length",
            Self::UnmaskedFrame => "unmasked frame",
            Self::MaskedFrame => "masked frame",
            Self::UnexpectedContinuation => "unexpected continuation frame",
            Self::ExpectedContinuation => "expected continuation frame",
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::InvalidClosePayload => "invalid close payload",
            Self::InvalidCloseCode(_) => "invalid close code",
            Self::FrameTooBig { .. } => "frame too big",
            Self::MessageTooBig { .. } => "message too big",
            Self::InvalidCompressedData => "invalid compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            Self::FrameTooBig { len, max } => write!(f, "frame of {len} bytes exceeds {max}"),
            Self::MessageTooBig { max } => write!(f, "message exceeds {max} bytes"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The error of a call on the codec.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol (also reported as `Event::Error`).
    Protocol(ProtocolError),
    /// The connection is closing or closed: a close frame was sent or received, or the
    /// connection failed. Nothing more can be sent.
    Closed,
    /// `close` was called with a code that may not be sent (1004–1006, 1015, …).
    InvalidCloseCode(u16),
    /// A ping/pong payload over 125 bytes or a close reason over 123 bytes.
    ControlPayloadTooLarge(usize),
    /// A text message to send is not UTF-8.
    InvalidUtf8,
    /// The compressor failed (an internal error of the deflate backend).
    Deflate(String),
    /// The opening handshake failed (its HTTP status: [`HandshakeError::status`]).
    Handshake(HandshakeError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Closed => f.write_str("connection is closing or closed"),
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::ControlPayloadTooLarge(n) => {
                write!(f, "control frame payload of {n} bytes is too large")
            }
            Self::InvalidUtf8 => f.write_str("text to send is not UTF-8"),
            Self::Deflate(e) => write!(f, "compression failed: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}
