//! Fan-out cost: one publish delivered to N subscribers on this node. Throughput is in
//! deliveries.
//!
//! - `fanout/publish_to_<n>_subscribers`: each subscriber takes the shared JSON encoding
//!   (encoded once per publish, not once per subscriber).
//! - `fanout_ws/publish_to_<n>_connections`: the whole WebSocket data path: each
//!   subscription drained, the message's shared prepared frame queued on a server
//!   `switchboard_ws::Connection`, and written out as a socket that takes everything would.
//! - `encoded_lookup/<which>`: the per-delivery part of the encoding cache, one lookup of
//!   an encoding already made (1,000 per iteration; throughput is in lookups): the only
//!   one, the WebSocket frame (made first, the JSON it is built from after), the last of
//!   five made.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::IoSlice;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_hub::*;
use switchboard_proto::{EnvelopeJson, SseData, SseEnvelope, StreamLine};
use switchboard_ws::{Config, Connection, PreparedMessage, Role};

fn hub_with_subscribers(rt: &tokio::runtime::Runtime, n: usize) -> (Hub, Vec<Subscription>) {
    let ns = NamespaceConfig {
        history_size: 100,
        queue_capacity: 16,
        ..Default::default()
    };
    let hub = Hub::new(HubConfig::default().with_namespace("", ns));
    let subs = (0..n)
        .map(|i| {
            rt.block_on(hub.subscribe("bench", None, ClientInfo::new(format!("c{i}"))))
                .unwrap()
        })
        .collect();
    (hub, subs)
}

/// The WebSocket transport's encoding: the message's frame, prepared once.
struct WsFrame;

impl Encoding for WsFrame {
    type Output = PreparedMessage;
    fn encode(m: &Message) -> PreparedMessage {
        PreparedMessage::text(m.encoded::<EnvelopeJson>().clone())
    }
}

fn payload() -> Payload {
    Payload::json(Bytes::from_static(br#"{"price":101.25,"symbol":"ACME"}"#)).unwrap()
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("fanout");
    for n in [1usize, 100, 1000] {
        let (hub, mut subs) = hub_with_subscribers(&rt, n);
        let payload = payload();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("publish_to_{n}_subscribers"), |b| {
            b.iter(|| {
                rt.block_on(hub.publish("bench", payload.clone())).unwrap();
                let mut bytes = 0;
                for s in &mut subs {
                    let m = s.try_recv().unwrap().unwrap();
                    bytes += m.encoded::<EnvelopeJson>().len();
                }
                std::hint::black_box(bytes)
            });
        });
    }
    group.finish();
}

fn fanout_ws(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("fanout_ws");
    for n in [100usize, 1000] {
        let (hub, subs) = hub_with_subscribers(&rt, n);
        let now = Instant::now();
        let mut conns: Vec<(Subscription, Connection)> = subs
            .into_iter()
            .map(|s| {
                (
                    s,
                    Connection::new(Role::Server, Config::default(), None, now),
                )
            })
            .collect();
        let payload = payload();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("publish_to_{n}_connections"), |b| {
            b.iter(|| {
                rt.block_on(hub.publish("bench", payload.clone())).unwrap();
                let mut bytes = 0;
                for (s, conn) in &mut conns {
                    let m = s.try_recv().unwrap().unwrap();
                    conn.send_prepared(m.encoded::<WsFrame>()).unwrap();
                    let mut slices = [IoSlice::new(&[]); 8];
                    let written: usize = {
                        let k = conn.transmit_slices(&mut slices);
                        slices[..k].iter().map(|s| s.len()).sum()
                    };
                    conn.advance_transmit(written);
                    bytes += written;
                }
                std::hint::black_box(bytes)
            });
        });
    }
    group.finish();
}

fn encoded_lookup(c: &mut Criterion) {
    const LOOKUPS: u64 = 1000;
    fn lookups<E: Encoding>(b: &mut criterion::Bencher<'_>, m: &Message) {
        b.iter(|| {
            for _ in 0..LOOKUPS {
                std::hint::black_box(std::hint::black_box(m).encoded::<E>());
            }
        });
    }
    let message = || Message::published("bench".into(), Cursor::new(Epoch(1), 1), payload());
    let mut group = c.benchmark_group("encoded_lookup");
    group.throughput(Throughput::Elements(LOOKUPS));

    let only = message();
    only.encoded::<EnvelopeJson>();
    group.bench_function("only", |b| lookups::<EnvelopeJson>(b, &only));

    let ws = message();
    ws.encoded::<WsFrame>();
    group.bench_function("ws_frame", |b| lookups::<WsFrame>(b, &ws));

    let five = message();
    five.encoded::<WsFrame>();
    five.encoded::<SseEnvelope>();
    five.encoded::<SseData>();
    five.encoded::<StreamLine>();
    group.bench_function("last_of_five", |b| lookups::<StreamLine>(b, &five));
    group.finish();
}

criterion_group!(benches, fanout, fanout_ws, encoded_lookup);
criterion_main!(benches);
