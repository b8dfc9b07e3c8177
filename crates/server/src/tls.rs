//! TLS certificates (feature `tls`): reading `tls_cert`/`tls_key` (PEM files), the
//! rustls server configuration every TLS connection is accepted with (ring provider,
//! TLS 1.2 and 1.3, rustls's default cipher suites, ALPN `http/1.1`), and the reload that
//! swaps the certificate for new handshakes while established connections keep theirs.
//!
//! A file that cannot be used gives an error naming it and what is wrong: not found,
//! not PEM, no certificate or key in it, a key that does not match the certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::ConfigError;

/// The server's TLS setup: where its certificate comes from and the configuration
/// handshakes use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
    resolver: Arc<Resolver>,
    files: Arc<(PathBuf, PathBuf)>,
}

impl Tls {
    /// Reads the certificate chain at `cert` and the private key at `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ConfigError> {
        // ring, as vetted for the project (rustls 0.23.48 deprecates it in favour of
        // aws-lc-rs, for post-quantum key exchange).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = certified_key(cert, key, &provider)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(certified)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Invalid(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // HTTP/1.1 only (WebSocket upgrades included): no h2 is offered.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            resolver,
            files: Arc::new((cert.to_owned(), key.to_owned())),
        })
    }

    /// Reads the files again; new handshakes use the new certificate, connections
    /// already established are not touched. On an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let (cert, key) = &*self.files;
        let certified = certified_key(cert, key, self.config.crypto_provider())?;
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        Ok(())
    }

    /// The configuration a handshake is accepted with.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

/// Hands every handshake the certificate in use (one read lock per handshake).
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The certificate chain at `cert` with the key at `key`, checked to belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ConfigError> {
    let chain = read(cert, "certificate", |pem| {
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()
    })?;
    if chain.is_empty() {
        return Err(file_error(
            cert,
            "certificate",
            "no CERTIFICATE block: not a PEM certificate",
        ));
    }
    let private = read(key, "key", PrivateKeyDer::from_pem_slice)?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => file_error(
            key,
            "key",
            format!("does not match the certificate {}", cert.display()),
        ),
        other => file_error(key, "key", format!("unusable: {other}")),
    })
}

/// Reads `path` and parses its PEM with `parse`; errors name the file.
fn read<T>(
    path: &Path,
    what: &'static str,
    parse: impl FnOnce(&[u8]) -> Result<T, pem::Error>,
) -> Result<T, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "not found".to_owned(),
            _ => e.to_string(),
        };
        file_error(path, what, why)
    })?;
    parse(&bytes).map_err(|e| {
        let why = match e {
            pem::Error::NoItemsFound => match what {
                "key" => "no PRIVATE KEY block: not a PEM private key".to_owned(),
                _ => "no CERTIFICATE block: not a PEM certificate".to_owned(),
            },
            other => format!("not PEM: {other}"),
        };
        file_error(path, what, why)
    })
}

fn file_error(path: &Path, what: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Tls {
        what,
        path: path.display().to_string(),
        problem: problem.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let k = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (k.cert.pem(), k.signing_key.serialize_pem())
    }

    fn served_name(tls: &Tls) -> Vec<u8> {
        let current = tls.resolver.current.read().unwrap().clone();
        current.cert[0].to_vec()
    }

    #[test]
    fn errors_name_the_file_and_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("sb-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_a, key_a) = pair("a.test");
        let (_, key_b) = pair("b.test");
        let put = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let (ca, ka, kb) = (
            put("a.pem", &cert_a),
            put("a.key", &key_a),
            put("b.key", &key_b),
        );
        let junk = put("junk.pem", "hello\n");
        let missing = dir.join("missing.pem");
        let tls = Tls::load(&ca, &ka).unwrap();
        let first = served_name(&tls);
        for (cert, key, named, want) in [
            (&missing, &ka, &missing, "not found"),
            (&junk, &ka, &junk, "no CERTIFICATE block"),
            (&ca, &junk, &junk, "no PRIVATE KEY block"),
            (&ca, &kb, &kb, "does not match the certificate"),
        ] {
            let e = Tls::load(cert, key).unwrap_err().to_string();
            let path = named.display().to_string();
            assert!(e.contains(&path) && e.contains(want), "{e}");
        }

        // A reload with a broken file keeps the certificate; a good one replaces it.
        std::fs::write(&ca, "broken").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(served_name(&tls), first);
        let (cert_c, key_c) = pair("c.test");
        std::fs::write(&ca, cert_c).unwrap();
        std::fs::write(&ka, key_c).unwrap();
        tls.reload().unwrap();
        assert_ne!(served_name(&tls), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
