//! TLS (feature `tls`): every transport over `https://` / `wss://` with a certificate
//! made at test time (a private CA, trusted by the client through its roots), the
//! certificate reloaded on SIGHUP while a connection stays open, and a certificate path
//! that cannot be used naming the file.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::{bounded, KEY};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use switchboard_client::{ApiClient, Client, Error, ReceivedData, TlsRoots, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A private CA and a certificate it signed for `127.0.0.1` and `localhost`.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    fn roots(&self) -> TlsRoots {
        TlsRoots::from_pem(self.ca_pem.as_bytes()).unwrap()
    }

    /// Writes the certificate and key to `dir` (`cert.pem`, `key.pem`).
    fn install(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every transport subscribes over TLS and gets a message published over TLS; the
/// WebSocket, SSE, stream and long-poll connections are the front's own path.
#[tokio::test]
async fn every_transport_gets_a_message_over_tls() {
    let dir = temp_dir("transports");
    let pki = Pki::new("transports");
    let (cert, key) = pki.install(&dir);
    let mut config = common::config();
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    let srv = common::server_with(config).await;
    let base = srv.url();
    assert!(base.starts_with("https://"), "{base}");

    let api = ApiClient::new(&base, Some(KEY.into()))
        .unwrap()
        .with_tls_roots(pki.roots());
    let client = Client::new(&base).unwrap().with_tls_roots(pki.roots());
    for transport in [
        Transport::WebSocket,
        Transport::Sse,
        Transport::Stream,
        Transport::LongPoll,
        Transport::Poll,
    ] {
        let channel = format!("tls-{}", transport.as_str());
        // A first message (published by the client, over TLS too) to resume after.
        let start = client.publish(&channel, "start", None).await.unwrap();
        let mut sub = bounded(client.subscribe(transport, &[(channel.as_str(), Some(start))]))
            .await
            .unwrap();
        api.publish(&channel, serde_json::json!({"over": "tls"}))
            .await
            .unwrap();
        let got = bounded(sub.next()).await.unwrap();
        assert_eq!(
            got.data,
            ReceivedData::Json(r#"{"over":"tls"}"#.into()),
            "{transport:?}"
        );
        sub.close().await;
    }

    // A client that does not trust the CA is refused at the handshake, and says where.
    let stranger = Client::new(&base)
        .unwrap()
        .with_tls_roots(Pki::new("x").roots());
    match stranger.publish("room", "x", None).await {
        Err(Error::Connect { url, error }) => {
            assert_eq!(url, base);
            assert!(error.to_string().contains("certificate"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // Plain HTTP on the TLS port gets no answer in plain text.
    let plain = Client::new(&format!("http://{}", srv.addr)).unwrap();
    assert!(plain.publish("room", "x", None).await.is_err());
    assert!(srv.shutdown().await);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `serve --tls-cert --tls-key` on 127.0.0.1:0; returns the child and its URL.
fn serve(cert: &Path, key: &Path) -> (Child, String) {
    let (cert, key) = (cert.as_os_str(), key.as_os_str());
    common::serve_process([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--api-key".as_ref(),
        KEY.as_ref(),
        "--tls-cert".as_ref(),
        cert,
        "--tls-key".as_ref(),
        key,
    ])
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([name, &pid])
        .status()
        .unwrap()
        .success());
}

/// SIGHUP swaps the certificate for new connections; a WebSocket opened before keeps
/// working with the old one (and `switchboard publish` speaks https with `--ca-file`).
#[tokio::test]
async fn sighup_reloads_the_certificate_and_open_connections_stay() {
    let dir = temp_dir("reload");
    let (old, new) = (Pki::new("old"), Pki::new("new"));
    let (cert, key) = old.install(&dir);
    let (mut child, base) = serve(&cert, &key);
    assert!(base.starts_with("https://"), "{base}");

    let before = Client::new(&base).unwrap().with_tls_roots(old.roots());
    let mut open = bounded(before.subscribe(Transport::WebSocket, &[("reload", None)]))
        .await
        .unwrap();

    new.install(&dir);
    signal(&child, "-HUP");
    // New connections get the new certificate once the signal is handled.
    let after = ApiClient::new(&base, Some(KEY.into()))
        .unwrap()
        .with_tls_roots(new.roots());
    bounded(async {
        while after.publish("probe", serde_json::json!(0)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let refused = ApiClient::new(&base, Some(KEY.into()))
        .unwrap()
        .with_tls_roots(old.roots())
        .publish("probe", serde_json::json!(0))
        .await;
    assert!(
        matches!(refused, Err(Error::Connect { .. })),
        "the old certificate is no longer served: {refused:?}"
    );

    // The connection opened before the reload still gets messages, here published by
    // the CLI over https.
    let ca_file = dir.join("new-ca.pem");
    std::fs::write(&ca_file, &new.ca_pem).unwrap();
    let out = tokio::task::spawn_blocking({
        let (base, ca_file) = (base.clone(), ca_file.clone());
        move || {
            Command::new(BIN)
                .args(["publish", "reload", r#"{"after":"reload"}"#, "--url", &base])
                .args(["--api-key", KEY])
                .arg("--ca-file")
                .arg(&ca_file)
                .output()
                .unwrap()
        }
    });
    let out = bounded(out).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = bounded(open.next()).await.unwrap();
    assert_eq!(got.data, ReceivedData::Json(r#"{"after":"reload"}"#.into()));

    signal(&child, "-TERM");
    let status = bounded(tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A certificate or key that cannot be used stops `serve` with an error naming the file
/// and what is wrong with it.
#[tokio::test]
async fn an_unusable_certificate_names_the_file() {
    let dir = temp_dir("bad");
    let pki = Pki::new("bad");
    let (cert, key) = pki.install(&dir);
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, Pki::new("other").key_pem).unwrap();
    let missing = dir.join("missing-cert.pem");
    for (cert, key, named, why) in [
        (&missing, &key, &missing, "not found"),
        (&key, &key, &key, "not a PEM certificate"),
        (&cert, &other_key, &other_key, "does not match"),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(named.to_str().unwrap()) && err.contains(why),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
