//! The keys tokens are checked with, loaded once from the `[auth]` section: the HS256
//! secret, a PEM public key (RS256 or ES256, by the key's type) and the keys of a JWKS
//! file. A file that cannot be read is a [`KeyError::Read`] naming it; one that does
//! not hold a usable key, a [`KeyError::Invalid`] naming it.

use std::fmt;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::config::{Auth, KeyError};

/// Length of a P-256 public key as jsonwebtoken keeps it (uncompressed point).
const P256_POINT: usize = 65;

/// Every key a token may be signed with.
pub(super) struct Keys {
    /// HS256.
    pub(super) secret: Option<DecodingKey>,
    /// RS256 and ES256 keys: the PEM key first, then the JWKS file's.
    pub(super) public: Vec<PublicKey>,
}

/// One public key and the algorithm it verifies.
pub(super) struct PublicKey {
    /// `kid` (JWKS keys that have one).
    pub(super) kid: Option<String>,
    pub(super) alg: Algorithm,
    pub(super) key: DecodingKey,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Which keys, never their bytes.
        let public: Vec<(Option<&str>, Algorithm)> = self
            .public
            .iter()
            .map(|k| (k.kid.as_deref(), k.alg))
            .collect();
        f.debug_struct("Keys")
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("public", &public)
            .finish()
    }
}

impl Keys {
    /// Loads the keys `auth` names.
    pub(super) fn load(auth: &Auth) -> Result<Self, KeyError> {
        let mut keys = Self::secret_only(auth)?;
        if let Some(path) = &auth.token_public_key {
            keys.public.push(pem_key(path, &read(path)?)?);
        }
        if let Some(path) = &auth.token_jwks {
            keys.public.extend(jwks_keys(path, &read(path)?)?);
        }
        Ok(keys)
    }

    /// `auth`'s secret and the public key `pem` (no file is read).
    pub(super) fn in_memory(auth: &Auth, pem: &[u8]) -> Result<Self, KeyError> {
        let mut keys = Self::secret_only(auth)?;
        keys.public.push(pem_key(Path::new("(in memory)"), pem)?);
        Ok(keys)
    }

    fn secret_only(auth: &Auth) -> Result<Self, KeyError> {
        let secret = match &auth.token_secret {
            Some(s) => Some(
                DecodingKey::from_secret(s.as_bytes())
                    .map_err(|_| KeyError::Invalid("auth.token_secret must not be empty".into()))?,
            ),
            None => None,
        };
        Ok(Self {
            secret,
            public: Vec::new(),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|error| KeyError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// A PEM public key: EC P-256 (ES256) or RSA (RS256).
fn pem_key(path: &Path, pem: &[u8]) -> Result<PublicKey, KeyError> {
    let bad =
        |why: &str| KeyError::Invalid(format!("auth.token_public_key {}: {why}", path.display()));
    // A private key here would verify nothing and should not sit in a server's config.
    if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(bad("this is a private key; give the public key"));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        if key.try_get_as_bytes().map(<[u8]>::len) != Ok(P256_POINT) {
            return Err(bad("only P-256 EC keys (ES256) are accepted"));
        }
        return Ok(PublicKey {
            kid: None,
            alg: Algorithm::ES256,
            key,
        });
    }
    match DecodingKey::from_rsa_pem(pem) {
        Ok(key) => Ok(PublicKey {
            kid: None,
            alg: Algorithm::RS256,
            key,
        }),
        Err(_) => Err(bad("not a PEM RSA or EC P-256 public key")),
    }
}

/// The RS256 and ES256 signing keys of a JWKS file (others are skipped; none at all is an
/// error).
fn jwks_keys(path: &Path, json: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
    let bad = |why: String| KeyError::Invalid(format!("auth.token_jwks {}: {why}", path.display()));
    let set: JwkSet =
        serde_json::from_slice(json).map_err(|e| bad(format!("not a JWKS document: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_))
            | (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(p))
            | (None, AlgorithmParameters::EllipticCurve(p))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            bad(format!(
                "key {:?} cannot be used: {e}",
                jwk.common.key_id.as_deref().unwrap_or("(no kid)")
            ))
        })?;
        keys.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(bad("no RS256 or ES256 signing key in it".into()));
    }
    Ok(keys)
}
