//! [`Io`]: the byte streams the server serves — a TCP connection today; any other
//! stream (TLS, an in-memory pipe in a test) fits the same code paths, because nothing
//! above the accept loop names the stream's type.

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection's byte stream, as the connection front ([`crate::front`]) and the
/// WebSocket transport take it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}
