//! Close codes and the payload of close frames (RFC 6455 §5.5.1, §7.4).
//!
//! A close frame's payload is empty, or a 2-byte big-endian code followed by a UTF-8 reason.
//! Received codes are checked against what may appear on the wire: 1000–1003, 1007–1014
//! (1012–1014 are registered with IANA) and 3000–4999 (registered and private use). 1004,
//! 1005, 1006 and 1015 are reserved for local use and never sent; anything else is a
//! protocol error (1002). A one-byte payload is a protocol error (1002), an invalid UTF-8
//! reason is 1007. [`ProtocolError::close_code`] maps every peer fault to the code its close
//! frame carries.

use std::fmt;

use crate::error::ProtocolError;

/// A close status code. Any `u16` can be represented; [`CloseCode::is_valid_on_wire`] tells
/// whether it may appear in a close frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation, idle timeout).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a message of a type this endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no code was present (never sent; reported locally).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed without a close frame (never sent; reported locally).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: message data inconsistent with its type (e.g. invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a frame or message is too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (e.g. overload).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response.
    pub const BAD_GATEWAY: Self = Self(1014);

    pub const fn new(code: u16) -> Self {
        Self(code)
    }

    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may be carried by a close frame (sent or received).
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Which close code answers each peer fault: the one place that mapping lives.
impl ProtocolError {
    /// The close code this fault is answered with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::ReservedOpCode(_)
            | Self::ReservedBits
            | Self::CompressedControlOrContinuation
            | Self::FragmentedControlFrame
            | Self::ControlFrameTooLarge
            | Self::InvalidPayloadLength
            | Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::InvalidClosePayload
            | Self::InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
        }
    }
}

/// The longest reason that fits a close frame (125 bytes of payload minus the code).
pub const MAX_REASON_LEN: usize = 123;

/// Parse and validate a received close frame's (unmasked) payload.
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, String), ProtocolError> {
    match payload {
        [] => Ok((None, String::new())),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok((Some(code), reason.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_table() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ];
        let valid_ranges = [3000, 3999, 4000, 4999];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in valid.into_iter().chain(valid_ranges) {
            assert!(CloseCode::new(c).is_valid_on_wire(), "{c}");
            let p = [(c >> 8) as u8, c as u8];
            assert_eq!(
                parse_close_payload(&p),
                Ok((Some(CloseCode::new(c)), String::new()))
            );
        }
        for c in invalid {
            assert!(!CloseCode::new(c).is_valid_on_wire(), "{c}");
            let p = [(c >> 8) as u8, c as u8];
            let err = parse_close_payload(&p).expect_err("invalid code");
            assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn payload_shapes() {
        assert_eq!(parse_close_payload(&[]), Ok((None, String::new())));
        let one = parse_close_payload(&[3]).expect_err("one byte");
        assert_eq!(one.close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok((Some(CloseCode::NORMAL), "bye".to_owned()))
        );
        let bad = parse_close_payload(b"\x03\xe8\xce\xba\xff").expect_err("bad utf8");
        assert_eq!(bad.close_code(), CloseCode::INVALID_PAYLOAD);
    }
}
