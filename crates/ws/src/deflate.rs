//! permessage-deflate (RFC 7692): negotiated parameters, compressor, decompressor.

/// The permessage-deflate parameters both ends agreed on in the handshake.
/// Produced by `handshake` (server: from the client's offers and our `DeflateConfig`;
/// client: from the server's response), consumed by `Connection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// 8..=15. (A window of 8 is handled as 9, as zlib requires.)
    pub server_max_window_bits: u8,
    /// 8..=15.
    pub client_max_window_bits: u8,
}
