//! `switchboard bench fanout`, small, with its subscribers in this generator's process and
//! split over worker processes (`--processes`): both runs count every delivery of every
//! published message exactly once, and the split one reports its processes. Nothing here
//! is timed; the mode's figures are for `scripts/bench.sh` and `scripts/bench-pair.sh`.
#![allow(clippy::unwrap_used)]

mod common;

use common::BenchServer;

fn fanout(processes: usize, transport: &str) -> serde_json::Value {
    let server = BenchServer::new(
        &format!("bench-fanout-{processes}-{transport}"),
        "[limits]\nmax_connections_per_ip = 0\nmax_publishes_per_second = 0\n",
    );
    let processes = processes.to_string();
    server.bench(
        "fanout",
        &[
            "--subscribers",
            "90",
            "--rate",
            "40",
            "--duration",
            "1",
            "--drain",
            "10",
            "--publisher",
            "http",
            "--sources",
            "2",
            "--transport",
            transport,
            "--poll-interval-ms",
            "100",
            "--processes",
            &processes,
        ],
    )
}

#[test]
fn subscribers_split_over_processes_count_every_delivery_once() {
    for (processes, transport) in [(1, "ws"), (3, "ws"), (2, "sse"), (2, "poll-compact")] {
        let r = fanout(processes, transport);
        let what = format!("{processes} processes, {transport}: {r}");
        assert_eq!(r["mode"], "fanout", "{what}");
        assert_eq!(r["generator_processes"], processes, "{what}");
        assert_eq!(r["failed_subscribers"], 0, "{what}");
        let published = r["published"].as_u64().unwrap();
        assert_eq!(published, 40, "{what}");
        assert_eq!(r["expected"], published * 90, "{what}");
        assert_eq!(r["delivered"], published * 90, "{what}");
        assert_eq!(r["missing"], 0, "{what}");
        assert_eq!(r["out_of_order"], 0, "{what}");
        // Every delivery's latency was recorded, wherever its subscriber ran.
        assert_eq!(r["latency_us"]["count"], published * 90, "{what}");
        // The workers' bytes count: a 64-byte payload cannot arrive in fewer.
        let read = r["wire_bytes_per_delivery"]["read"].as_f64().unwrap();
        assert!(read >= 64.0, "{what}");
    }
}
