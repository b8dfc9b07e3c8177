//! `switchboard bench reconnect`, small: a server with admission control on (a low
//! new-connection rate) killed and started again on the same port under a few hundred
//! WebSocket and SSE subscribers and a control group. Every client must be back, with
//! every message published after its cursor or an explicit `reset` (the in-memory broker
//! starts a new epoch): no duplicate, no gap nobody announced. Nothing here is timed; the
//! mode's own figures (how long, how many refusals) are for `scripts/bench-reconnect.sh`.
#![allow(clippy::unwrap_used)]

mod common;

use common::BenchServer;

#[test]
fn every_client_is_back_after_a_restart_with_every_message_or_a_reset() {
    // The restarted server must come back on the same port: `BenchServer` takes a free one.
    let server = BenchServer::new(
        "reconnect",
        "[limits]\nmax_connections_per_ip = 0\nmax_new_connections_per_second = 100\n",
    );
    let r = server.bench(
        "reconnect",
        &[
            "--clients",
            "200",
            "--control",
            "10",
            "--per-process",
            "100",
            "--before",
            "1",
            "--after",
            "1",
            "--max-time-wait",
            "0",
        ],
    );
    assert_eq!(r["mode"], "reconnect");
    assert_eq!(r["all_back"], true, "{r}");
    assert_eq!((r["ws"].as_u64(), r["sse"].as_u64()), (Some(140), Some(60)));
    assert_eq!(r["back"]["storm"], 200, "{r}");
    assert_eq!(r["back"]["control"], 10, "{r}");
    for group in ["storm", "control"] {
        let check = &r["check"][group];
        assert_eq!(check["clients_with_unannounced_gap"], 0, "{group}: {check}");
        assert_eq!(check["missing_unannounced"], 0, "{group}: {check}");
        assert_eq!(check["duplicates"], 0, "{group}: {check}");
        assert_eq!(check["cursor_breaks"], 0, "{group}: {check}");
        assert_eq!(r["behind_at_end"][group], 0, "{group}: {r}");
        // Something was delivered and checked, and the restart was announced to whoever
        // had a cursor of the old epoch.
        assert!(check["expected"].as_u64().unwrap() > 0, "{group}: {check}");
        assert!(check["resets"].as_u64().unwrap() > 0, "{group}: {check}");
    }
}
