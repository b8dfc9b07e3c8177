//! The generator's TLS (feature `tls`): connections to a server that speaks TLS with a
//! certificate from a private CA (`--tls-ca FILE`), over rustls with the ring provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

/// Opens TLS sessions trusting one CA file's certificates. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Trusts the certificates in the PEM file `ca`.
    pub fn from_ca_file(ca: &Path) -> std::io::Result<Self> {
        let bad = |e: String| std::io::Error::other(format!("CA file {}: {e}", ca.display()));
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no CERTIFICATE block".into()));
        }
        // ring, as the server uses (rustls 0.23.48 deprecates it for aws-lc-rs).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The handshake with `host` (a name or an IP address the certificate names).
    pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        host: &str,
        stream: S,
    ) -> std::io::Result<TlsStream<S>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
        self.connector.connect(name, stream).await
    }
}
