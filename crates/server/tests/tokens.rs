//! Client tokens (JWT) through real sockets on 127.0.0.1: every refusal answers with its
//! exact status (or `/ws` error code, or close code) and JSON error code; grants,
//! subscription tokens and `sub` decide what a client may do and who it is; a live
//! connection ends when its token expires (a `/ws` session after being asked to refresh).
//! Tokens are made here with `jsonwebtoken`, from keys generated at test time (EC with
//! rcgen, RSA with the rsa crate); no key is committed or written to disk but public ones.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{bounded, close_of, json, raw, Ws, KEY};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use switchboard_server::config::{Auth, Config, ConfigError, Namespace};
use switchboard_server::server::{Builder, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "a test secret, at least 32 bytes long";

/// Keys made once per test process; only the public ones are written (to a temp dir).
struct Keys {
    ec_private: String,
    ec_public: PathBuf,
    rsa_private: String,
    jwks: PathBuf,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        use rsa::Generate;
        let dir = std::env::temp_dir().join(format!("sb-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = rcgen::KeyPair::generate().unwrap();
        let ec_public = dir.join("ec-public.pem");
        std::fs::write(&ec_public, ec.public_key_pem()).unwrap();
        let rsa_key = rsa::PrivateKey::generate();
        let rsa_private = rsa_key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let ec_private = ec.serialize_pem();
        let jwk = |pem: &str, alg, kid: &str| {
            let key = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
                _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            };
            let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
            jwk.common.key_id = Some(kid.into());
            jwk
        };
        let set = JwkSet {
            keys: vec![
                jwk(&rsa_private, Algorithm::RS256, "r1"),
                jwk(&ec_private, Algorithm::ES256, "e1"),
            ],
        };
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, serde_json::to_vec(&set).unwrap()).unwrap();
        Keys {
            ec_private,
            ec_public,
            rsa_private,
            jwks,
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `extra` with `sub` and an `exp` `secs` from now (negative: in the past).
fn claims(sub: Option<&str>, secs: i64, extra: Value) -> Value {
    let mut c = extra;
    c["exp"] = json!(now().checked_add_signed(secs).unwrap());
    if let Some(s) = sub {
        c["sub"] = json!(s);
    }
    c
}

fn signed(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    signed(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        claims,
    )
}

fn es(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(keys().ec_private.as_bytes()).unwrap();
    signed(Algorithm::ES256, kid, &key, claims)
}

fn rs(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(keys().rsa_private.as_bytes()).unwrap();
    signed(Algorithm::RS256, kid, &key, claims)
}

/// A token with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// Grants every action on `pattern`.
fn grants(pattern: &str) -> Value {
    json!({
        "subscribe": [pattern],
        "publish": [pattern],
        "presence": [pattern],
        "history": [pattern],
    })
}

fn alice() -> String {
    hs(&claims(Some("alice"), 600, grants("locked:a*")))
}

/// The test configuration with `auth` (grace 1 s), a locked namespace (`locked`: no
/// anonymous clients) and a private one (`secret`).
fn config_with(auth: Auth) -> Config {
    let mut c = common::config();
    c.auth = Some(Auth {
        refresh_grace_ms: 1000,
        ..auth
    });
    let locked = Namespace {
        anonymous: false,
        ..Namespace::default()
    };
    let private = Namespace {
        private: true,
        ..Namespace::default()
    };
    c.namespaces.insert("locked".into(), locked);
    c.namespaces.insert("secret".into(), private);
    c
}

/// HS256 and the EC public key (ES256).
fn secret_and_key() -> Auth {
    Auth {
        token_secret: Some(SECRET.into()),
        token_public_key: Some(keys().ec_public.clone()),
        ..Auth::default()
    }
}

async fn server(auth: Auth) -> Running {
    common::server_with(config_with(auth)).await
}

/// One request of a table and what must come back.
struct Row {
    what: &'static str,
    method: &'static str,
    target: String,
    bearer: Option<String>,
    accept_sse: bool,
    status: u16,
    /// The JSON `error` code (`None` for a success).
    code: Option<&'static str>,
    /// A word the message must hold.
    hint: Option<&'static str>,
}

fn row(what: &'static str, method: &'static str, target: &str, status: u16) -> Row {
    Row {
        what,
        method,
        target: target.to_owned(),
        bearer: None,
        accept_sse: false,
        status,
        code: None,
        hint: None,
    }
}

impl Row {
    fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }
    fn sse(mut self) -> Self {
        self.accept_sse = true;
        self
    }
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    fn hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }
}

async fn run_table(srv: &Running, rows: Vec<Row>) {
    for r in rows {
        let auth = r.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        if r.accept_sse {
            headers.push(("Accept", "text/event-stream"));
        }
        let body: &[u8] = if r.method == "POST" { b"hi" } else { b"" };
        let (status, head, body) = raw(srv, r.method, &r.target, &headers, body).await;
        assert_eq!(
            status,
            r.status,
            "{}: {}",
            r.what,
            String::from_utf8_lossy(&body)
        );
        match r.code {
            Some(code) => {
                let v = json(&body);
                assert_eq!(v["error"], code, "{}: {v}", r.what);
                let message = v["message"].as_str().unwrap();
                if let Some(hint) = r.hint {
                    assert!(message.contains(hint), "{}: {message}", r.what);
                }
                if let Some(t) = &r.bearer {
                    assert!(
                        !message.contains(t.as_str()),
                        "{}: echoes the token",
                        r.what
                    );
                }
                if status == 401 {
                    let head = head.to_ascii_lowercase();
                    assert!(
                        head.contains("www-authenticate: bearer"),
                        "{}: {head}",
                        r.what
                    );
                }
            }
            None => assert!(status < 300, "{}", r.what),
        }
    }
}

/// Runs `rows` on a server with `auth`.
async fn table_on(auth: Auth, rows: Vec<Row>) {
    let srv = server(auth).await;
    run_table(&srv, rows).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn requests_are_answered_by_what_their_tokens_grant() {
    let alice = alice();
    let expired = hs(&claims(Some("alice"), -3600, grants("*")));
    let forged = signed(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another secret, also 32 bytes long!!").unwrap(),
        &claims(Some("alice"), 600, grants("*")),
    );
    let none = unsigned(&claims(Some("alice"), 600, grants("*")));
    let pass_x = hs(&claims(None, 60, json!({"channel": "secret:x"})));
    let pass_y = hs(&claims(None, 60, json!({"channel": "secret:y"})));
    let pass_bob = hs(&claims(Some("bob"), 60, json!({"channel": "secret:x"})));
    let future = hs(&json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}));
    let no_exp = hs(&json!({"sub": "alice", "subscribe": ["*"]}));
    let bad_pattern = hs(&claims(Some("alice"), 600, json!({"subscribe": ["a*b"]})));
    let long_user = "u".repeat(129);
    let long_sub = hs(&claims(Some(&long_user), 600, json!({})));
    let es_alice = es(None, &claims(Some("alice"), 600, grants("locked:*")));
    let rows = vec![
        row(
            "no token, locked namespace, poll",
            "GET",
            "/ch/locked:a",
            401,
        )
        .code("token_required"),
        row(
            "no token, locked namespace, publish",
            "POST",
            "/ch/locked:a",
            401,
        )
        .code("token_required"),
        row(
            "no token, locked namespace, SSE",
            "GET",
            "/ch/locked:a",
            401,
        )
        .sse()
        .code("token_required"),
        row(
            "no token, locked namespace, /sub long-poll",
            "GET",
            "/sub?channel=room&channel=locked:a&transport=longpoll",
            401,
        )
        .code("token_required"),
        row(
            "no token, the default namespace stays open",
            "GET",
            "/ch/room",
            200,
        ),
        row(
            "no token, publish to the default namespace",
            "POST",
            "/ch/room",
            200,
        ),
        row("expired", "GET", "/ch/room", 401)
            .bearer(&expired)
            .code("token_expired"),
        row("forged signature", "GET", "/ch/room", 401)
            .bearer(&forged)
            .code("invalid_token")
            .hint("signature"),
        row("alg none", "GET", "/ch/room", 401)
            .bearer(&none)
            .code("invalid_token")
            .hint("algorithm"),
        row("not a JWT", "GET", "/ch/room", 401)
            .bearer("not-a-jwt")
            .code("invalid_token")
            .hint("malformed"),
        row("not valid before nbf", "GET", "/ch/room", 401)
            .bearer(&future)
            .code("invalid_token")
            .hint("nbf"),
        row("no exp", "GET", "/ch/room", 401)
            .bearer(&no_exp)
            .code("invalid_token")
            .hint("exp"),
        row("a grant pattern with * inside", "GET", "/ch/room", 401)
            .bearer(&bad_pattern)
            .code("invalid_token")
            .hint("pattern"),
        row("sub over 128 bytes", "GET", "/ch/room", 401)
            .bearer(&long_sub)
            .code("invalid_token")
            .hint("sub"),
        row("granted, token in the header", "GET", "/ch/locked:ab", 200).bearer(&alice),
        row(
            "granted, token in the query",
            "GET",
            &format!("/ch/locked:ab?token={alice}"),
            200,
        ),
        row("granted publish", "POST", "/ch/locked:ab", 200).bearer(&alice),
        row(
            "granted, ES256 with the configured key",
            "GET",
            "/ch/locked:b",
            200,
        )
        .bearer(&es_alice),
        row("subscribe outside the grants", "GET", "/ch/locked:b", 403)
            .bearer(&alice)
            .code("not_granted")
            .hint("subscribe"),
        row(
            "long-poll outside the grants",
            "GET",
            "/ch/locked:b?transport=longpoll",
            403,
        )
        .bearer(&alice)
        .code("not_granted"),
        row("publish outside the grants", "POST", "/ch/locked:b", 403)
            .bearer(&alice)
            .code("not_granted")
            .hint("publish"),
        row("forged ?user=", "GET", "/ch/room?user=mallory", 400).code("bad_request"),
        row(
            "forged ?user= beside a token",
            "GET",
            "/ch/room?user=mallory",
            400,
        )
        .bearer(&alice)
        .code("bad_request"),
        row("private channel, no token", "GET", "/ch/secret:x", 401).code("token_required"),
        row(
            "private channel, a token without a grant",
            "GET",
            "/ch/secret:x",
            403,
        )
        .bearer(&alice)
        .code("not_granted"),
        row(
            "private channel with its subscription token",
            "GET",
            &format!("/ch/secret:x?channel_token={pass_x}"),
            200,
        ),
        row(
            "/sub: a private channel with its subscription token",
            "GET",
            &format!("/sub?channel=secret:x&channel=room&channel_token={pass_x}&transport=poll"),
            200,
        ),
        row(
            "/sub: a subscription token for another channel",
            "GET",
            &format!("/sub?channel=secret:x&channel_token={pass_y}&transport=poll"),
            401,
        )
        .code("token_required"),
        row(
            "a subscription token of another user",
            "GET",
            &format!("/ch/secret:x?channel_token={pass_bob}"),
            401,
        )
        .bearer(&alice)
        .code("invalid_token")
        .hint("user"),
        row(
            "a subscription token as a connection token",
            "GET",
            "/ch/room",
            401,
        )
        .bearer(&pass_x)
        .code("invalid_token")
        .hint("subscription token"),
        row(
            "private namespace: publishing follows anonymous",
            "POST",
            "/ch/secret:x",
            200,
        ),
        row(
            "the backend API keeps its key",
            "GET",
            "/api/channels/room/presence",
            200,
        )
        .bearer(KEY),
    ];
    table_on(secret_and_key(), rows).await;
}

#[tokio::test]
async fn only_the_configured_algorithms_and_keys_are_accepted() {
    // A public key only: HS256 tokens are refused, whatever their secret.
    let auth = Auth {
        token_public_key: Some(keys().ec_public.clone()),
        ..Auth::default()
    };
    let c = claims(Some("alice"), 600, grants("*"));
    let rows = vec![
        row(
            "HS256 when only a public key is configured",
            "GET",
            "/ch/room",
            401,
        )
        .bearer(&hs(&c))
        .code("invalid_token")
        .hint("algorithm"),
        row("RS256 when the key is EC", "GET", "/ch/room", 401)
            .bearer(&rs(None, &c))
            .code("invalid_token")
            .hint("algorithm"),
        row("ES256 with the key", "GET", "/ch/locked:a", 200).bearer(&es(None, &c)),
    ];
    table_on(auth, rows).await;

    // A JWKS file: keys chosen by kid, or tried in turn without one.
    let auth = Auth {
        token_jwks: Some(keys().jwks.clone()),
        ..Auth::default()
    };
    let rows = vec![
        row("RS256, kid r1", "GET", "/ch/locked:a", 200).bearer(&rs(Some("r1"), &c)),
        row("ES256, kid e1", "GET", "/ch/locked:a", 200).bearer(&es(Some("e1"), &c)),
        row("RS256 without kid", "GET", "/ch/locked:a", 200).bearer(&rs(None, &c)),
        row("an unknown kid", "GET", "/ch/room", 401)
            .bearer(&rs(Some("nope"), &c))
            .code("invalid_token")
            .hint("kid"),
        row("RS256 naming the EC key's kid", "GET", "/ch/room", 401)
            .bearer(&rs(Some("e1"), &c))
            .code("invalid_token"),
        row("HS256 with no secret configured", "GET", "/ch/room", 401)
            .bearer(&hs(&c))
            .code("invalid_token")
            .hint("algorithm"),
    ];
    table_on(auth, rows).await;

    // Issuer and audience, when configured, must be there and match.
    let auth = Auth {
        token_secret: Some(SECRET.into()),
        token_issuer: Some("https://issuer.test".into()),
        token_audience: Some("switchboard".into()),
        ..Auth::default()
    };
    let with = |iss: &str, aud: &str| {
        hs(&claims(
            Some("alice"),
            600,
            json!({"iss": iss, "aud": [aud, "other"], "subscribe": ["*"]}),
        ))
    };
    let rows = vec![
        row("issuer and audience match", "GET", "/ch/locked:a", 200)
            .bearer(&with("https://issuer.test", "switchboard")),
        row("another issuer", "GET", "/ch/room", 401)
            .bearer(&with("https://evil.test", "switchboard"))
            .code("invalid_token")
            .hint("iss"),
        row("another audience", "GET", "/ch/room", 401)
            .bearer(&with("https://issuer.test", "elsewhere"))
            .code("invalid_token")
            .hint("aud"),
        row("no issuer", "GET", "/ch/room", 401)
            .bearer(&hs(&claims(
                Some("alice"),
                600,
                json!({"aud": "switchboard"}),
            )))
            .code("invalid_token")
            .hint("iss"),
    ];
    table_on(auth, rows).await;
}

#[tokio::test]
async fn without_an_auth_section_tokens_are_not_read() {
    let srv = common::server().await;
    let rows = vec![
        row("a bearer that is no JWT is ignored", "GET", "/ch/room", 200).bearer("garbage"),
        row("?user= names the user", "GET", "/ch/room?user=carol", 200),
        row("?token= is ignored", "GET", "/ch/room?token=x.y.z", 200),
    ];
    run_table(&srv, rows).await;
    // And /ws's connect command says tokens are off.
    let mut ws = ws_connect(&srv, "/ws").await;
    let r = cmd(&mut ws, json!({"id": 1, "op": "connect", "token": alice()})).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_refused_websocket_handshake_says_why() {
    let srv = server(secret_and_key()).await;
    let expired = hs(&claims(Some("alice"), -10, grants("*")));
    let table: Vec<(&str, String, u16, &str)> = vec![
        (
            "native, locked, no token",
            "/ch/locked:a".into(),
            401,
            "token_required",
        ),
        (
            "native, outside the grants",
            format!("/ch/locked:b?token={}", alice()),
            403,
            "not_granted",
        ),
        (
            "/ws, expired",
            format!("/ws?token={expired}"),
            401,
            "token_expired",
        ),
        (
            "/ws, forged ?user=",
            "/ws?user=mallory".into(),
            400,
            "bad_request",
        ),
    ];
    for (what, target, status, code) in table {
        let (got, body) = handshake(&srv, &target).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(json(body.as_bytes())["error"], code, "{what}: {body}");
    }
    srv.shutdown().await;
}

/// A WebSocket handshake for `target`; the status and body of the answer.
async fn handshake(srv: &Running, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        srv.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    bounded(async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            let Some(end) = text.find("\r\n\r\n") else {
                assert!(n > 0, "EOF in the head");
                continue;
            };
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if n == 0 || buf.len() >= end + 4 + len {
                return;
            }
        }
    })
    .await;
    let (status, _, body) = common::parse_response(&buf);
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn ws_connect(srv: &Running, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", srv.addr))
        .await
        .unwrap();
    ws
}

/// The next text frame, as JSON.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match bounded(ws.next()).await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends a command and returns its reply (pushes before it are skipped).
async fn cmd(ws: &mut Ws, c: Value) -> Value {
    let id = c["id"].clone();
    ws.send(Message::Text(c.to_string().into())).await.unwrap();
    loop {
        let v = next_json(ws).await;
        if v["id"] == id {
            return v;
        }
    }
}

#[tokio::test]
async fn ws_commands_are_checked_with_the_session_token() {
    let srv = server(secret_and_key()).await;
    let pass_x = hs(&claims(None, 60, json!({"channel": "secret:x"})));
    let pass_x_bob = hs(&claims(Some("bob"), 60, json!({"channel": "secret:x"})));
    let bob = hs(&claims(Some("bob"), 600, grants("*")));
    let mut ws = ws_connect(&srv, &format!("/ws?token={}", alice())).await;
    // (command, the error code; `None`: a result)
    let table: Vec<(Value, Option<&str>)> = vec![
        (json!({"op": "subscribe", "channel": "locked:ab"}), None),
        (
            json!({"op": "subscribe", "channel": "locked:b"}),
            Some("not_granted"),
        ),
        (
            json!({"op": "publish", "channel": "locked:ab", "data": 1}),
            None,
        ),
        (
            json!({"op": "publish", "channel": "locked:b", "data": 1}),
            Some("not_granted"),
        ),
        (json!({"op": "presence", "channel": "locked:ab"}), None),
        (
            json!({"op": "presence", "channel": "locked:b"}),
            Some("not_granted"),
        ),
        (json!({"op": "history", "channel": "locked:ab"}), None),
        (
            json!({"op": "history", "channel": "locked:b"}),
            Some("not_granted"),
        ),
        (
            json!({"op": "subscribe", "channel": "secret:x"}),
            Some("not_granted"),
        ),
        (
            json!({"op": "subscribe", "channel": "secret:y", "token": pass_x}),
            Some("invalid_token"),
        ),
        (
            json!({"op": "subscribe", "channel": "secret:x", "token": pass_x_bob}),
            Some("invalid_token"),
        ),
        (
            json!({"op": "subscribe", "channel": "secret:x", "token": pass_x}),
            None,
        ),
        (
            json!({"op": "history", "channel": "secret:x"}),
            Some("not_granted"),
        ),
        (
            json!({"op": "refresh", "token": bob}),
            Some("invalid_token"),
        ),
        (
            json!({"op": "connect", "token": alice()}),
            Some("bad_request"),
        ),
        (json!({"op": "refresh", "token": alice()}), None),
    ];
    for (i, (mut c, want)) in table.into_iter().enumerate() {
        c["id"] = json!(i);
        let r = cmd(&mut ws, c.clone()).await;
        match want {
            Some(code) => assert_eq!(r["error"]["code"], code, "{c}: {r}"),
            None => assert!(r.get("result").is_some(), "{c}: {r}"),
        }
    }

    // An anonymous session: the connect command gives it a token.
    let mut anon = ws_connect(&srv, "/ws").await;
    let expired = hs(&claims(Some("carol"), -10, grants("*")));
    let forged = hs(&claims(Some("carol"), 600, grants("*"))).replace('.', ".x");
    let carol = hs(&claims(Some("carol"), 600, grants("locked:*")));
    let table: Vec<(Value, Option<&str>)> = vec![
        (
            json!({"op": "subscribe", "channel": "locked:a"}),
            Some("token_required"),
        ),
        (
            json!({"op": "refresh", "token": carol}),
            Some("bad_request"),
        ),
        (
            json!({"op": "connect", "token": expired}),
            Some("token_expired"),
        ),
        (
            json!({"op": "connect", "token": forged}),
            Some("invalid_token"),
        ),
        (json!({"op": "connect"}), Some("bad_request")),
        (json!({"op": "connect", "token": carol}), None),
        (json!({"op": "subscribe", "channel": "locked:a"}), None),
    ];
    for (i, (mut c, want)) in table.into_iter().enumerate() {
        c["id"] = json!(i);
        let r = cmd(&mut anon, c.clone()).await;
        match want {
            Some(code) => assert_eq!(r["error"]["code"], code, "{c}: {r}"),
            None => assert!(r.get("result").is_some(), "{c}: {r}"),
        }
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn presence_shows_the_user_the_token_names() {
    let srv = server(secret_and_key()).await;
    let alice_ws = hs(&claims(Some("alice"), 600, json!({})));
    // A /ws session with the token in the URL, one that connects with a command, and a
    // native WebSocket with the token in the URL.
    let mut a = ws_connect(&srv, &format!("/ws?token={alice_ws}")).await;
    let r = cmd(
        &mut a,
        json!({"id": 1, "op": "subscribe", "channel": "room"}),
    )
    .await;
    assert!(r.get("result").is_some(), "{r}");
    let mut c = ws_connect(&srv, "/ws").await;
    let carol = hs(&claims(Some("carol"), 600, json!({})));
    let r = cmd(&mut c, json!({"id": 1, "op": "connect", "token": carol})).await;
    let carol_id = r["result"]["client"].as_str().unwrap().to_owned();
    cmd(
        &mut c,
        json!({"id": 2, "op": "subscribe", "channel": "room"}),
    )
    .await;
    let dave = hs(&claims(Some("dave"), 600, json!({})));
    let _native = ws_connect(&srv, &format!("/ch/room?token={dave}")).await;
    common::subscribers_become(&srv, "room", 3).await;

    let r = cmd(
        &mut a,
        json!({"id": 2, "op": "presence", "channel": "room"}),
    )
    .await;
    let mut users: Vec<&str> = r["result"]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "carol", "dave"], "{r}");
    let listed = r["result"]["clients"].as_array().unwrap();
    assert!(
        listed.iter().any(|c| c["client"] == carol_id.as_str()),
        "{r}"
    );

    // The backend API's disconnect by user reaches a session that connected by command.
    let api = switchboard_client::ApiClient::new(&common::url(&srv), Some(KEY.into())).unwrap();
    let n = api
        .call(
            http::Method::POST,
            "/api/disconnect",
            Some(&json!({"user": "carol"})),
        )
        .await
        .unwrap();
    assert_eq!(n["disconnected"], 1, "{n}");
    assert_eq!(u16::from(close_of(&mut c).await.code), 1008);
    srv.shutdown().await;
}

/// Waits until the wall clock passes `exp` (seconds) by `extra`.
async fn until(exp: u64, extra: Duration) {
    let at = UNIX_EPOCH + Duration::from_secs(exp) + extra;
    if let Ok(left) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

#[tokio::test]
async fn a_ws_session_refreshed_in_time_stays() {
    let srv = server(secret_and_key()).await;
    let exp = now() + 3;
    let first = hs(&json!({"sub": "alice", "exp": exp, "subscribe": ["*"]}));
    let mut ws = ws_connect(&srv, &format!("/ws?token={first}")).await;
    // Asked to refresh before exp.
    assert_eq!(next_json(&mut ws).await, json!({"event": "refresh"}));
    assert!(now() < exp, "the refresh request came after exp");
    let next = hs(&claims(Some("alice"), 600, grants("*")));
    let r = cmd(&mut ws, json!({"id": 1, "op": "refresh", "token": next})).await;
    assert_eq!(r, json!({"id": 1, "result": {}}));
    // Well past the first token's exp and grace, the session is still there.
    until(exp, Duration::from_millis(2500)).await;
    let r = cmd(
        &mut ws,
        json!({"id": 2, "op": "subscribe", "channel": "room"}),
    )
    .await;
    assert!(r.get("result").is_some(), "{r}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_ws_session_not_refreshed_is_closed_with_3000() {
    let srv = server(secret_and_key()).await;
    let exp = now() + 2;
    let token = hs(&json!({"sub": "alice", "exp": exp, "subscribe": ["*"]}));
    let mut ws = ws_connect(&srv, &format!("/ws?token={token}")).await;
    assert_eq!(next_json(&mut ws).await, json!({"event": "refresh"}));
    // Past exp, within the grace: commands on channels are refused, the session stays.
    until(exp, Duration::from_millis(100)).await;
    let r = cmd(
        &mut ws,
        json!({"id": 1, "op": "subscribe", "channel": "room"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "token_expired", "{r}");
    let r = cmd(&mut ws, json!({"id": 2, "op": "ping"})).await;
    assert!(r.get("result").is_some(), "{r}");
    let close = close_of(&mut ws).await;
    assert_eq!(u16::from(close.code), 3000);
    assert_eq!(close.reason.as_str(), "token expired");
    // Not before exp + grace (1 s).
    assert!(SystemTime::now() >= UNIX_EPOCH + Duration::from_secs(exp + 1));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_native_websocket_is_closed_with_3000_at_exp() {
    let srv = server(secret_and_key()).await;
    let exp = now() + 2;
    let token = hs(&json!({"sub": "alice", "exp": exp}));
    let mut ws = ws_connect(&srv, &format!("/ch/room?token={token}")).await;
    let close = close_of(&mut ws).await;
    assert_eq!(u16::from(close.code), 3000);
    assert!(SystemTime::now() >= UNIX_EPOCH + Duration::from_secs(exp));
    // A connection without a token is not closed: it still gets messages.
    let mut anon = ws_connect(&srv, "/ch/room").await;
    common::subscribers_become(&srv, "room", 1).await;
    let (status, _, _) = raw(&srv, "POST", "/ch/room", &[], b"still here").await;
    assert_eq!(status, 200);
    assert!(matches!(
        next_json(&mut anon).await["data"].as_str(),
        Some("still here")
    ));
    srv.shutdown().await;
}

#[tokio::test]
async fn sse_and_streams_end_with_a_refresh_event_at_exp() {
    let srv = server(secret_and_key()).await;
    let exp = now() + 2;
    let token = hs(&json!({"sub": "alice", "exp": exp}));
    let bearer = format!("Bearer {token}");
    let sse_headers = [("Accept", "text/event-stream"), ("Authorization", &*bearer)];
    let sse = raw(&srv, "GET", "/ch/room", &sse_headers, b"");
    let stream_target = format!("/ch/room?transport=stream&token={token}");
    let stream = raw(&srv, "GET", &stream_target, &[], b"");
    let ((s1, _, sse), (s2, _, stream)) = tokio::join!(sse, stream);
    assert_eq!((s1, s2), (200, 200));
    let sse = String::from_utf8(sse).unwrap();
    assert!(
        sse.ends_with("event: refresh\ndata: token expired\n\n"),
        "{sse:?}"
    );
    let stream = String::from_utf8(stream).unwrap();
    assert!(
        stream.ends_with("{\"event\":\"refresh\",\"reason\":\"token expired\"}\n"),
        "{:?}",
        &stream[stream.len().saturating_sub(200)..]
    );
    assert!(SystemTime::now() >= UNIX_EPOCH + Duration::from_secs(exp));
    srv.shutdown().await;
}

#[tokio::test]
async fn the_client_sends_its_token_and_reports_the_expiry() {
    use switchboard_client::{Client, Error, Transport};
    let srv = server(secret_and_key()).await;
    let exp = now() + 2;
    let token = hs(
        &json!({"sub": "alice", "exp": exp, "subscribe": ["locked:*"], "publish": ["locked:*"]}),
    );
    let client = Client::new(&common::url(&srv)).unwrap().with_token(&token);
    assert!(
        !format!("{client:?}").contains(&token),
        "Debug hides the token"
    );
    let before = client.publish("locked:a", "before", None).await.unwrap();
    let mut subs = Vec::new();
    for t in [Transport::WebSocket, Transport::Sse, Transport::Stream] {
        subs.push(client.subscribe(t, &[("locked:a", None)]).await.unwrap());
    }
    let mut poll = client
        .subscribe(Transport::Poll, &[("locked:a", Some(before))])
        .await
        .unwrap();
    common::subscribers_become(&srv, "locked:a", 3).await;
    client.publish("locked:a", "hello", None).await.unwrap();
    for s in &mut subs {
        let env = bounded(s.next()).await.unwrap();
        assert_eq!(env.channel, "locked:a", "{:?}", s.transport());
    }
    let polled = bounded(poll.next()).await.unwrap();
    assert_eq!(polled.cursor.map(|c| c.offset), Some(before.offset + 1));
    for s in &mut subs {
        match bounded(s.next()).await {
            Err(Error::TokenExpired) => {}
            other => panic!("{:?}: {other:?}", s.transport()),
        }
    }
    // Without a token, the locked namespace answers 401.
    let anonymous = Client::new(&common::url(&srv)).unwrap();
    match anonymous
        .subscribe(Transport::Sse, &[("locked:a", None)])
        .await
    {
        Err(Error::Status { status: 401, body }) => assert!(body.contains("token_required")),
        other => panic!("{other:?}"),
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn key_files_that_cannot_be_used_are_named() {
    let dir = std::env::temp_dir().join(format!("sb-tokens-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("private.pem");
    std::fs::write(&private, &keys().ec_private).unwrap();
    let junk = dir.join("junk.json");
    std::fs::write(&junk, br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
    let missing = dir.join("missing.pem");
    let build = |auth: Auth| Builder::new(config_with(auth)).build().map(|_| ());
    let with_key = |p: &PathBuf| Auth {
        token_public_key: Some(p.clone()),
        ..Auth::default()
    };
    match build(with_key(&missing)) {
        Err(ConfigError::Read { path, .. }) => assert!(path.contains("missing.pem"), "{path}"),
        other => panic!("{other:?}"),
    }
    let e = build(with_key(&private)).unwrap_err().to_string();
    assert!(
        e.contains("private.pem") && e.contains("private key"),
        "{e}"
    );
    let e = build(Auth {
        token_jwks: Some(junk.clone()),
        ..Auth::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("junk.json") && e.contains("no RS256 or ES256"),
        "{e}"
    );
    let e = build(Auth {
        token_public_key: Some(junk),
        ..Auth::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a PEM"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn post_ws_commands_are_checked_with_the_request_token() {
    let srv = server(secret_and_key()).await;
    let post = |bearer: Option<String>, c: Value| {
        let srv = &srv;
        async move {
            let auth = bearer.map(|b| format!("Bearer {b}"));
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            let (status, _, body) =
                common::raw(srv, "POST", "/ws", &headers, c.to_string().as_bytes()).await;
            (status, common::json(&body))
        }
    };
    let presence = |ch: &str| json!({"id": 1, "op": "presence", "channel": ch});
    // (token, command, the error code; `None`: a result)
    let table: Vec<(Option<String>, Value, Option<&str>)> = vec![
        (Some(alice()), presence("locked:ab"), None),
        (Some(alice()), presence("locked:b"), Some("not_granted")),
        (None, presence("locked:ab"), Some("token_required")),
        (
            Some(alice()),
            json!({"id": 1, "op": "history", "channel": "locked:ab"}),
            None,
        ),
        (None, presence("open"), None),
    ];
    for (token, c, code) in table {
        let (status, r) = post(token, c.clone()).await;
        assert_eq!(status, 200, "{c}: {r}");
        assert_eq!(r["error"]["code"].as_str(), code, "{c}: {r}");
    }
    // An expired token is refused before any command (the front's check).
    let expired = hs(&claims(Some("alice"), -5, grants("*")));
    let (status, r) = post(Some(expired), presence("open")).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (401, Some("token_expired")),
        "{r}"
    );
    assert!(srv.shutdown().await);
}

/// `POST /ch/NAME` by a user a token names is rate-limited per user, not per address: two
/// users behind one address each have their own budget, and anonymous publishes from
/// that address have theirs.
#[tokio::test]
async fn publishes_are_rate_limited_per_user_when_a_token_names_one() {
    let mut config = config_with(secret_and_key());
    config.limits.max_publishes_per_second = 3;
    let srv = common::server_with(config).await;
    let bearer = |sub: &str| format!("Bearer {}", hs(&claims(Some(sub), 600, grants("room*"))));
    let post = |auth: Option<String>| {
        let srv = &srv;
        async move {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            raw(srv, "POST", "/ch/room", &headers, b"hi").await
        }
    };
    // Alice spends her budget (a burst of one second's worth), then is refused.
    for _ in 0..3 {
        assert_eq!(post(Some(bearer("alice"))).await.0, 200);
    }
    let (status, _, body) = post(Some(bearer("alice"))).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["error"], "publish_rate");
    // Bob, from the same address, and an anonymous client there, still may.
    assert_eq!(post(Some(bearer("bob"))).await.0, 200);
    assert_eq!(post(None).await.0, 200);
    srv.shutdown().await;
}
