//! Fan-out cost: one publish delivered to N subscribers on this node, each taking the
//! shared JSON encoding (what a WebSocket transport would write). Throughput is in
//! deliveries; the payload is encoded once per publish, not once per subscriber.
#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_hub::*;

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("fanout");
    for n in [1usize, 100, 1000] {
        let ns = NamespaceConfig {
            history_size: 100,
            queue_capacity: 16,
            ..Default::default()
        };
        let hub = Hub::new(HubConfig::default().with_namespace("", ns));
        let mut subs: Vec<Subscription> = (0..n)
            .map(|i| {
                rt.block_on(hub.subscribe("bench", None, ClientInfo::new(format!("c{i}"))))
                    .unwrap()
            })
            .collect();
        let payload =
            Payload::json(Bytes::from_static(br#"{"price":101.25,"symbol":"ACME"}"#)).unwrap();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("publish_to_{n}_subscribers"), |b| {
            b.iter(|| {
                rt.block_on(hub.publish("bench", payload.clone())).unwrap();
                let mut bytes = 0;
                for s in &mut subs {
                    let m = s.try_recv().unwrap().unwrap();
                    bytes += m.encoded(WireFormat::Json).len();
                }
                std::hint::black_box(bytes)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
