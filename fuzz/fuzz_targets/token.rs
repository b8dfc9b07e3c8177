//! Client tokens on arbitrary bytes (`switchboard_auth::Verifier`, HS256 with a
//! fixed secret and ES256 with a fixed P-256 public key, the private half of which was
//! thrown away): whatever comes in, checking it returns an error or an identity, never a
//! panic. Three ways in, so that more than the signature check is reached:
//!
//! - the input as a token, as a client would send it (refused: a signature cannot be
//!   guessed);
//! - the input as the claims of an HS256 token signed with the secret, so the claims are
//!   read (`exp`, `sub`, the grants' patterns, `channel`);
//! - the input as header and claims (split at the first newline), signed the same way, so
//!   the header's `alg` and `kid` choose the key (an ES256 header meets the EC key with
//!   an HMAC for a signature).
//!
//! A token that is accepted must keep the server's own rules: a `sub` of 1 to 128 bytes,
//! and an `exp`.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use switchboard_auth::Verifier;

const SECRET: &str = "the fuzz target's fixed HS256 secret";

const EC_PUBLIC: &[u8] = b"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+yJa5u47mX3vF9OOdCEJ+HsqXBO6
F59cyuR+Gtb2gJS/bNyOOx4j9VqE/6hBf4EMu3lNv+7t9xurn7mV3aE8Pw==
-----END PUBLIC KEY-----
";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::for_fuzzing(SECRET, EC_PUBLIC).expect("the fixed keys load"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims` (both base64url) with a valid HS256 signature.
fn signed(header: &[u8], claims: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("a secret");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .expect("HMAC signs anything");
    format!("{message}.{signature}")
}

fn check(token: &str) {
    let v = verifier();
    if let Ok(identity) = v.connection(token) {
        if let Some(user) = &identity.user {
            assert!((1..=128).contains(&user.len()), "sub of {} bytes", user.len());
        }
        assert!(identity.expires.is_some(), "accepted without exp");
        let _ = v.refresh(token, &identity);
    }
    let _ = v.subscription_channel(token, Some("user"));
    let _ = v.subscription(token, "secret:x", None);
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));
    check(&signed(br#"{"alg":"HS256","typ":"JWT"}"#, data));
    let (header, claims) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    check(&signed(header, claims));
});
