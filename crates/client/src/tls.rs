//! Which servers the client trusts over `https://` and `wss://` ([`TlsRoots`]), and the
//! TLS handshake over a TCP connection (rustls with the ring provider).

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::Error;

/// The certificate authorities a client trusts: the system's ([`TlsRoots::system`]), a
/// private CA's ([`TlsRoots::from_pem`]), or both ([`TlsRoots::with_pem`]). Cheap to
/// clone.
#[derive(Clone)]
pub struct TlsRoots {
    roots: Arc<RootCertStore>,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRoots")
            .field("authorities", &self.roots.len())
            .finish()
    }
}

impl TlsRoots {
    /// The system's trusted authorities (`/etc/ssl/certs` and the like; certificates that
    /// do not parse are skipped), read once per process.
    pub fn system() -> Self {
        static SYSTEM: OnceLock<TlsRoots> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                Self::of(roots)
            })
            .clone()
    }

    /// Only the authorities in `pem` (one or more `CERTIFICATE` blocks).
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        Self::of(RootCertStore::empty()).with_pem(pem)
    }

    /// These authorities and the ones in `pem`.
    pub fn with_pem(self, pem: &[u8]) -> Result<Self, Error> {
        let mut roots = Arc::unwrap_or_clone(self.roots);
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::Tls(format!("CA certificate PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls("no CERTIFICATE block in the CA PEM".into()));
        }
        Ok(Self::of(roots))
    }

    fn of(roots: RootCertStore) -> Self {
        // ring, as vetted for the project (rustls 0.23.48 deprecates it in favour of
        // aws-lc-rs, for post-quantum key exchange).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        // The server speaks HTTP/1.1 only, WebSocket upgrades included.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            roots: Arc::new(roots),
            config: Arc::new(config),
        }
    }

    /// The TLS handshake with `host` over `tcp`.
    pub(crate) async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host:?}: {e}"))
        })?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}
