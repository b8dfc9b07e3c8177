//! `/health`, `/ready` and `/healthz`: liveness stays 200 while readiness follows the
//! server's ability to serve (shutting down; the broker, with Redis, killed and back).
#![allow(clippy::unwrap_used)]

mod common;

use common::{json, raw, server};

#[tokio::test]
async fn health_and_ready_answer_200_while_serving_and_need_no_key() {
    let srv = server().await;
    let (status, _, body) = raw(&srv, "GET", "/health", &[], b"").await;
    assert_eq!((status, json(&body)["status"].as_str()), (200, Some("ok")));
    let (status, _, body) = raw(&srv, "GET", "/ready", &[], b"").await;
    assert_eq!(
        (status, json(&body)["status"].as_str()),
        (200, Some("ready"))
    );
    let (status, _, body) = raw(&srv, "GET", "/healthz", &[], b"").await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn ready_is_503_with_the_reason_once_shutdown_begins_and_health_stays_200() {
    let srv = server().await;
    // New connections are refused once shutdown begins, so ask the router over the
    // server's state with a shutdown that has begun.
    use tower::ServiceExt;
    let mut state = srv.state.clone();
    let shutdown = switchboard_server::shutdown::Shutdown::new();
    state.shutdown = shutdown.signal();
    shutdown.trigger();
    let router = switchboard_server::app::router(state, &[], axum::Router::new());
    let ask = |path: &'static str| {
        let router = router.clone();
        async move {
            let req = http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap();
            (status, body.to_bytes())
        }
    };
    let (status, body) = ask("/ready").await;
    let body = json(&body);
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["error"], "shutting_down");
    assert!(
        body["reason"].as_str().unwrap().contains("shutting down"),
        "{body}"
    );
    assert_eq!(ask("/healthz").await.0, 503);
    assert_eq!(ask("/health").await.0, 200);
    assert!(srv.shutdown().await);
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::Arc;
    use std::time::Duration;

    use super::common::{bounded, config, json, raw};
    use switchboard_redis::test_server::RedisServer;
    use switchboard_redis::{RedisBroker, RedisOptions};
    use switchboard_server::server::start_with;
    use tokio::net::TcpListener;

    /// Redis killed: `/ready` answers 503 naming the broker (and `/health` stays 200);
    /// Redis back: `/ready` is 200 again.
    #[tokio::test]
    async fn ready_follows_the_broker_when_redis_is_killed_and_restarted() {
        let mut redis = RedisServer::start();
        let options = RedisOptions {
            max_reconnect_delay: Duration::from_millis(100),
            ..RedisOptions::default()
        };
        let broker = RedisBroker::connect(&redis.url(), options).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let srv = start_with(listener, config(), Arc::new(broker)).unwrap();
        assert_eq!(raw(&srv, "GET", "/ready", &[], b"").await.0, 200);

        redis.stop();
        let (status, _, body) = raw(&srv, "GET", "/ready", &[], b"").await;
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        let body = json(&body);
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["error"], "broker_unavailable");
        assert!(!body["reason"].as_str().unwrap().is_empty());
        assert_eq!(raw(&srv, "GET", "/health", &[], b"").await.0, 200);

        redis.restart_empty();
        bounded(async {
            while raw(&srv, "GET", "/ready", &[], b"").await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(srv.shutdown().await);
    }
}
