//! The client's one error type.

/// Why a client operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not one the client can use.
    Url(String),
    /// The server could not be reached at `url`: the TCP connection or the TLS handshake
    /// failed (`error` says which and why).
    Connect { url: String, error: std::io::Error },
    /// A TLS setting is unusable (a CA certificate that does not parse).
    Tls(String),
    /// Reading or writing a connection failed.
    Io(std::io::Error),
    /// HTTP-level failure (hyper).
    Http(hyper::Error),
    /// The server answered with an error status; the body explains.
    Status { status: u16, body: String },
    /// The server sent something this client cannot understand.
    Protocol(String),
    /// WebSocket failure.
    WebSocket(String),
    /// The subscription ended (the server closed it); `reconnect` is true when the server
    /// asked clients to come back (shutdown / restart).
    Closed { reconnect: bool },
    /// The client token expired and the server ended the subscription: subscribe again
    /// with a new token, from the last cursor.
    TokenExpired,
    /// No answer within this long (a publish is then retried with its idempotency key).
    Timeout(std::time::Duration),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(m) => write!(f, "bad URL: {m}"),
            Self::Connect { url, error } => write!(f, "cannot reach {url}: {error}"),
            Self::Tls(m) => write!(f, "TLS: {m}"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Http(e) => write!(f, "HTTP error: {e}"),
            Self::Status { status, body } => write!(f, "server answered {status}: {body}"),
            Self::Protocol(m) => write!(f, "protocol error: {m}"),
            Self::WebSocket(m) => write!(f, "WebSocket error: {m}"),
            Self::Closed { reconnect } => {
                write!(
                    f,
                    "subscription closed by the server (reconnect: {reconnect})"
                )
            }
            Self::Timeout(d) => write!(f, "no answer within {d:?}"),
            Self::TokenExpired => write!(
                f,
                "the client token expired; subscribe again with a new one from the last cursor"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}
