//! The chaos test: 1,000 subscribers spread evenly over the five transports (WebSocket,
//! SSE, HTTP streaming, long-poll, poll) and four channels, a publisher at a steady rate
//! (10 messages a second per channel), and 100 connection ends a second for 15 seconds,
//! from both sides ([`ends`]): resets, clean closes and cuts in the middle of a read by
//! the client side (a cutting relay, [`proxy`], sits between the subscribers and the
//! server), subscribers closing and sometimes staying away while 25 to 40 messages are
//! published, and the backend API disconnecting clients.
//!
//! Every subscriber resumes from its own last cursor after every end ([`subscriber`]).
//! When the time is up the publisher stops, every subscriber must catch up with the last
//! message of its channel, and every subscriber's received sequence is checked against
//! the publisher's record ([`ledger`]: its module docs say exactly what counts as a
//! duplicate and as lost, and why the server cannot talk the check out of a loss).
//!
//! Four variants: (a) those ends only, with history ample for every resume; (b) the
//! server restarted once at mid-time (a new server on the same port with a fresh broker:
//! a new epoch); (c) a 20-message history, so that subscribers away longer are reset
//! without a restart; (d) the publisher's own connections cut mid-request, retried with
//! the same `Idempotency-Key`. All must end with 0 duplicates and 0 lost.
//!
//! The counts are printed (`cargo test -p switchboard-server --test chaos -- --nocapture`)
//! and carried by the assertion message. The variants run one at a time: they share the
//! machine. A debug build serves this load (35,000 to 150,000 deliveries a variant in
//! 17 to 23 s, depending on how busy the machine is), so the test runs with `cargo test`.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod ends;
mod ledger;
mod proxy;
mod publisher;
mod subscriber;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_client::{ApiClient, Client, Transport};
use switchboard_server::server::start_on;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use ledger::{Channel, Tally};
use proxy::Proxy;
use publisher::Publisher;
use subscriber::Subscriber;

const SUBSCRIBERS: usize = 1000;
const CHANNELS: usize = 4;
/// Per channel: 10 messages a second.
const PERIOD: Duration = Duration::from_millis(100);
const CHAOS: Duration = Duration::from_secs(15);
/// The longest the chaos runs when publishing falls behind the planned rate (see the loop).
const CHAOS_MAX: Duration = Duration::from_secs(40);
/// Connection ends caused per second, all kinds together.
const ENDS_PER_SECOND: u64 = 100;
/// How long the subscribers may take to catch up once the publisher stopped.
const CATCH_UP: Duration = Duration::from_secs(30);

/// One variant.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    history_size: usize,
    /// Restart the server (a fresh broker, so a new epoch) at mid-time.
    restart: bool,
    /// Chance that a publish attempt cuts its own connection short.
    publisher_cut_chance: f64,
}

/// The variants share two cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Random ends only, history ample for every resume: nothing is ever reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ends_lose_and_repeat_nothing() {
    let t = run(
        "random ends",
        Scenario {
            history_size: 10_000,
            restart: false,
            publisher_cut_chance: 0.0,
        },
    )
    .await;
    assert!(t.clean() && t.resets == 0, "{t}");
}

/// The server restarted at mid-time with a fresh broker (a new epoch): every subscriber
/// is reset once, to just before the new log's first message, and loses only what the
/// new server never held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_only_what_the_new_server_never_held() {
    let t = run(
        "restart",
        Scenario {
            history_size: 10_000,
            restart: true,
            publisher_cut_chance: 0.0,
        },
    )
    .await;
    assert!(t.clean() && t.resets >= SUBSCRIBERS as u64, "{t}");
}

/// A 20-message history: subscribers away for more than 20 messages are reset, and the
/// messages still held follow the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_history_resets_keep_what_is_held() {
    let t = run(
        "history 20",
        Scenario {
            history_size: 20,
            restart: false,
            publisher_cut_chance: 0.0,
        },
    )
    .await;
    assert!(t.clean() && t.resets > 0, "{t}");
}

/// A third of the publisher's attempts cut short mid-request; it retries with the same
/// `Idempotency-Key`, and no message is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_retries_with_its_key_store_once() {
    let t = run(
        "publisher cuts",
        Scenario {
            history_size: 10_000,
            restart: false,
            publisher_cut_chance: 0.33,
        },
    )
    .await;
    assert!(t.clean() && t.resets == 0, "{t}");
}

async fn run(name: &str, s: Scenario) -> Tally {
    let _one = ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(Duration::from_secs(140), Box::pin(run_alone(name, s)))
        .await
        .expect("the chaos run took too long")
}

async fn run_alone(name: &str, s: Scenario) -> Tally {
    let began = Instant::now();
    let mut cfg = common::config();
    // Every subscriber and the relay share 127.0.0.1.
    cfg.limits.max_connections_per_ip = 0;
    cfg.limits.max_publishes_per_second = 0;
    for ns in cfg.namespaces.values_mut() {
        ns.history_size = s.history_size;
        ns.history_ttl_secs = 0;
    }
    let mut srv = Some(start_on(listen(cfg.listen), cfg.clone()).unwrap());
    let addr = srv.as_ref().unwrap().addr;
    let proxy = Proxy::start(addr);
    let api = ApiClient::new(&format!("http://{addr}"), Some(common::KEY.into())).unwrap();

    let channels: Vec<String> = (0..CHANNELS).map(|i| format!("chaos-{i}")).collect();
    let pub_counts = Arc::new(publisher::Counts::default());
    let publishers: Vec<Publisher> = channels
        .iter()
        .map(|c| Publisher {
            server: addr,
            channel: c.clone(),
            cut_chance: s.publisher_cut_chance,
            record: Arc::default(),
            progress: Arc::new(watch::channel(publisher::Progress::default()).0),
            counts: pub_counts.clone(),
        })
        .collect();
    // Each channel's first message, before any subscriber: where they all start.
    let mut starts = Vec::new();
    for p in &publishers {
        starts.push(p.publish(0, Duration::from_secs(10)).await.unwrap());
    }

    let (stop_subs, subs_stop) = watch::channel(false);
    let client = Client::new(&format!("http://{}", proxy.addr))
        .unwrap()
        .with_poll_interval(Duration::from_millis(500));
    let mut subs = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        let ch = i % CHANNELS;
        subs.push(Subscriber::spawn(
            client.clone(),
            Transport::ALL[i % Transport::ALL.len()],
            channels[ch].clone(),
            starts[ch],
            publishers[ch].progress.subscribe(),
            subs_stop.clone(),
        ));
        // Arrivals spread over about a second rather than one burst.
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (stop_pubs, pubs_stop) = watch::channel(false);
    let pub_tasks: Vec<_> = publishers
        .iter()
        .map(|p| tokio::spawn(p.clone().run(PERIOD, pubs_stop.clone())))
        .collect();

    // The chaos, and a probe of how late timers fire (how busy the runtime is).
    let lag = Arc::new(AtomicU64::new(0));
    let probe = tokio::spawn(probe_lag(lag.clone()));
    let end_counts = Arc::new(ends::Counts::default());
    let mut every = tokio::time::interval(Duration::from_millis(1000 / ENDS_PER_SECOND));
    let chaos_began = Instant::now();
    let mut restarted = None;
    // A short history needs subscribers to fall more than it behind: on a machine too busy
    // to publish at the planned rate, the chaos goes on (up to CHAOS_MAX) until every
    // channel has published three histories' worth.
    let planned = (CHAOS.as_millis() / PERIOD.as_millis()) as usize;
    let needed = if 3 * s.history_size <= planned {
        3 * s.history_size
    } else {
        0
    };
    let enough = |p: &Publisher| p.record.lock().unwrap().acks.len() >= needed;
    while chaos_began.elapsed() < CHAOS
        || (chaos_began.elapsed() < CHAOS_MAX && !publishers.iter().all(enough))
    {
        every.tick().await;
        if s.restart && restarted.is_none() && chaos_began.elapsed() >= CHAOS / 2 {
            let t = Instant::now();
            srv.take().unwrap().shutdown().await;
            srv = Some(start_on(listen(addr), cfg.clone()).unwrap());
            restarted = Some(t.elapsed());
        }
        ends::one(&proxy, &subs, &api, &channels, &end_counts);
    }
    let chaos_took = chaos_began.elapsed();
    probe.abort();

    // The end: the publisher finishes, every subscriber catches up with its channel.
    stop_pubs.send(true).unwrap();
    for t in pub_tasks {
        common::bounded(t).await.unwrap();
    }
    let last: Vec<_> = publishers
        .iter()
        .map(|p| p.record.lock().unwrap().acks.last().unwrap().cursor)
        .collect();
    let catch_up_began = Instant::now();
    let behind = loop {
        let behind = subs
            .iter()
            .enumerate()
            .filter(|(i, s)| s.log.lock().unwrap().position != last[i % CHANNELS])
            .count();
        if behind == 0 || catch_up_began.elapsed() > CATCH_UP {
            break behind;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let caught_up = catch_up_began.elapsed();
    stop_subs.send(true).unwrap();
    for s in &mut subs {
        common::bounded(&mut s.task).await.unwrap();
    }
    srv.take().unwrap().shutdown().await;

    // The check, per transport and in all.
    let records: Vec<_> = publishers
        .iter()
        .map(|p| p.record.lock().unwrap())
        .collect();
    let index: Vec<Channel<'_>> = records
        .iter()
        .map(|r| Channel::new(r, s.history_size))
        .collect();
    let mut tally = Tally {
        published: index.iter().map(Channel::published).sum(),
        unpublished: pub_counts.gave_up.load(Ordering::Relaxed),
        ..Tally::default()
    };
    let mut per_transport = String::new();
    for tr in Transport::ALL {
        let mut t = Tally::default();
        for (i, sub) in subs.iter().enumerate() {
            let log = sub.log.lock().unwrap();
            if log.transport == tr {
                ledger::check(&log, &index[i % CHANNELS], &mut t);
            }
        }
        per_transport.push_str(&format!(
            "\n  {tr:?}: {} deliveries, {} resets, {} duplicates, {} lost",
            t.deliveries, t.resets, t.duplicates, t.lost
        ));
        tally.merge(t);
    }
    let (subscribes, failed, ended) = subs.iter().fold((0, 0, 0), |acc, s| {
        let l = s.log.lock().unwrap();
        (
            acc.0 + l.subscribes,
            acc.1 + l.failed_subscribes,
            acc.2 + l.ended,
        )
    });

    let (pc, ec, ld) = (&proxy.counts, &end_counts, Ordering::Relaxed);
    println!(
        "chaos [{name}]: {tally}\n  \
         took {:.1} s (chaos {:.1} s, catch-up {:.1} s, {behind} subscribers behind{}; \
         timers up to {} ms late)\n  \
         subscribes {subscribes} ({failed} failed), connections that ended under a subscriber \
         {ended}\n  \
         client side: relay cuts {} RST, {} FIN, {} mid-read; {} closes by a subscriber; \
         {} connections relayed, {} found no server\n  \
         server side: {} disconnect calls ending {} connections\n  \
         publisher: {} acknowledged, {} retries; cut {} mid-body, {} before the answer, \
         {} mid-answer; {} given up; slowest answer {} ms{per_transport}",
        began.elapsed().as_secs_f64(),
        chaos_took.as_secs_f64(),
        caught_up.as_secs_f64(),
        restarted.map_or(String::new(), |d| format!(
            ", restart took {:.1} s",
            d.as_secs_f64()
        )),
        lag.load(ld) / 1000,
        pc.rst.load(ld),
        pc.fin.load(ld),
        pc.mid_read.load(ld),
        ec.leaves.load(ld),
        pc.accepted.load(ld),
        pc.refused.load(ld),
        ec.disconnect_calls.load(ld),
        ec.disconnected.load(ld),
        pub_counts.acked.load(ld),
        pub_counts.retries.load(ld),
        pub_counts.cut_half_body.load(ld),
        pub_counts.cut_before_answer.load(ld),
        pub_counts.cut_mid_answer.load(ld),
        pub_counts.gave_up.load(ld),
        pub_counts.slowest_us.load(ld) / 1000,
    );
    tally
}

/// A listener on `addr` with a long accept queue: the subscribers' reconnections come in
/// bursts, and on a busy machine a full queue of the default 1,024 delays connections by
/// a SYN-ACK retransmission (1 s, then 2 s).
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(4096).unwrap()
}

/// Records in `lag` (µs) the most a 10 ms timer fired late.
async fn probe_lag(lag: Arc<AtomicU64>) {
    loop {
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let late = t.elapsed().saturating_sub(Duration::from_millis(10));
        lag.fetch_max(
            u64::try_from(late.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}
