//! Reaching the server: the TCP connection, with TLS over it for `https://` and `wss://`
//! URLs (feature `tls`), as every transport and the API client open it. A failure names
//! the URL that could not be reached.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::endpoint::Endpoint;
use crate::error::Error;

/// Where the server is and which certificate authorities vouch for it.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) ep: Endpoint,
    #[cfg(feature = "tls")]
    roots: Option<crate::tls::TlsRoots>,
}

impl Remote {
    pub(crate) fn new(ep: Endpoint) -> Self {
        Self {
            ep,
            #[cfg(feature = "tls")]
            roots: None,
        }
    }

    /// Trusts `roots` instead of the system's for `https://` and `wss://`.
    #[cfg(feature = "tls")]
    pub(crate) fn set_roots(&mut self, roots: crate::tls::TlsRoots) {
        self.roots = Some(roots);
    }

    /// A new connection to the server (TLS for a secure URL).
    pub(crate) async fn open(&self) -> Result<Stream, Error> {
        let host = self.ep.host.trim_matches(['[', ']']);
        let unreachable = |error| Error::Connect {
            url: self.ep.url(),
            error,
        };
        let tcp = TcpStream::connect((host, self.ep.port))
            .await
            .map_err(unreachable)?;
        let _ = tcp.set_nodelay(true);
        if !self.ep.secure {
            return Ok(Stream::Plain(tcp));
        }
        #[cfg(feature = "tls")]
        {
            let roots = match &self.roots {
                Some(r) => r.clone(),
                None => crate::tls::TlsRoots::system(),
            };
            let tls = roots.handshake(host, tcp).await.map_err(unreachable)?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        #[cfg(not(feature = "tls"))]
        Err(unreachable(io::Error::new(
            io::ErrorKind::Unsupported,
            "this build has no TLS (feature `tls`)",
        )))
    }
}

/// A connection to the server, plain or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
