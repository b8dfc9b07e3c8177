//! Codec benchmarks: switchboard-ws against tungstenite and fastwebsockets, in one run.
//!
//! Groups (method and fairness notes in docs/bench-ws-codec.md):
//! - `mask/<len>`: unmasking a payload in place: our word-at-a-time `apply_mask`, our byte
//!   loop reference, and fastwebsockets' exported `unmask` (the u32-at-a-time routine that
//!   tungstenite also uses internally but does not export), on an aligned buffer and at
//!   offset 14 (where a payload sits behind a 14-byte header).
//! - `header/<len>`: parsing the header of a masked client frame (ours, tungstenite).
//! - `parse_unmask/<len>`: a server receiving one masked binary client frame.
//!   `switchboard-ws/primitive` is the pure step (header parse + unmask in place). The
//!   `*/stream` rows are what each library does when the frame comes off a socket: bytes
//!   copied from an in-memory "socket" into the library's (or, for us, the driver's) read
//!   buffer, header parsed, payload unmasked, message handed out as an owned value.
//!   `switchboard-ws/stream-owned` reads into a `BytesMut` passed to `handle_input_buf`
//!   (frames of 4 KiB or more are split off that buffer instead of copied). Only the
//!   `*/stream*` rows are compared with each other.
//! - `encode/<len>`: a server's unmasked binary frame, header and payload, appended to a
//!   reused buffer.
//! - `recv_100/<kind>`: a whole receive path: 100 masked frames in one read, parsed,
//!   unmasked, validated (UTF-8 for text) and handed out as messages.
//! - `connection/*`: our `Connection` only: sending (queue + transmit + advance) and
//!   receiving compressed messages.
//! - `fanout_1000/*`: one 1 KiB message queued on 1000 server connections.

use std::future::Future;
use std::hint::black_box;
use std::io::{self, Cursor, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard_ws::frame::encode_frame;
use switchboard_ws::mask::{apply_mask, apply_mask_bytewise};
use switchboard_ws::{
    Config, Connection, DeflateConfig, DeflateParams, Event, FrameHeader, OpCode, PreparedMessage,
    Role,
};

const SIZES: [usize; 3] = [16, 1024, 64 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Deterministic, not very compressible bytes.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// ASCII text of `len` bytes, shaped like a small JSON message.
fn text_payload(len: usize) -> String {
    let unit = r#"{"ch":"room-1","seq":12345,"body":"hello world"},"#;
    unit.chars().cycle().take(len).collect()
}

/// A masked client frame (what a server receives).
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = FrameHeader {
        mask: Some(KEY),
        ..FrameHeader::new(opcode, 0)
    };
    encode_frame(&mut buf, header, payload);
    buf.to_vec()
}

fn label(len: usize) -> String {
    match len {
        n if n >= 1024 => format!("{}KiB", n / 1024),
        n => format!("{n}B"),
    }
}

/// An endless in-memory socket: each read returns (at most `buf.len()` of) the rest of the
/// current copy of `data`, then the next read starts a new copy; writes are discarded. Every
/// library reads from it the same way, so each pays the same "kernel copy".
struct Replay {
    data: Vec<u8>,
    pos: usize,
}

impl Replay {
    fn new(data: Vec<u8>) -> Self {
        Self { data, pos: 0 }
    }

    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let rest = &self.data[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos = (self.pos + n) % self.data.len();
        n
    }
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.fill(buf))
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = &this.data[this.pos..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos = (this.pos + n) % this.data.len();
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future whose I/O is always ready (the `Replay` socket) to completion.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Our receive path as a driver runs it: the socket read copies into the driver's buffer,
/// then `handle_input` + `poll_event`.
struct OurReader {
    conn: Connection,
    socket: Replay,
    read_buf: Vec<u8>,
    now: Instant,
}

impl OurReader {
    fn new(stream: Vec<u8>, config: Config, deflate: Option<DeflateParams>) -> Self {
        let now = Instant::now();
        Self {
            read_buf: vec![0; stream.len().max(128 * 1024)],
            socket: Replay::new(stream),
            conn: Connection::new(Role::Server, config, deflate, now),
            now,
        }
    }

    /// One socket read, all of it fed; returns the number of messages received.
    fn read_once(&mut self) -> usize {
        let n = self.socket.fill(&mut self.read_buf);
        self.conn.handle_input(&self.read_buf[..n], self.now);
        drain_messages(&mut self.conn)
    }
}

/// Takes every pending event off `conn`; returns how many were messages (anything else
/// is a bench bug).
fn drain_messages(conn: &mut Connection) -> usize {
    let mut messages = 0;
    while let Some(ev) = conn.poll_event() {
        match ev {
            Event::Text(b) | Event::Binary(b) => {
                black_box(b);
                messages += 1;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    messages
}

/// Our receive path with a driver that reads into a `BytesMut` and passes it to
/// `handle_input_buf`: a large frame's payload is handed out from that buffer, not copied.
struct OurOwnedReader {
    conn: Connection,
    socket: Replay,
    read_buf: BytesMut,
    now: Instant,
}

impl OurOwnedReader {
    fn new(stream: Vec<u8>, config: Config) -> Self {
        let now = Instant::now();
        Self {
            read_buf: BytesMut::with_capacity(stream.len().max(128 * 1024)),
            socket: Replay::new(stream),
            conn: Connection::new(Role::Server, config, None, now),
            now,
        }
    }

    /// One socket read appended to the buffer (the "kernel copy", into spare capacity as
    /// a `read_buf` does, without zeroing it first), then `handle_input_buf` + `poll_event`.
    fn read_once(&mut self) -> usize {
        let rest = &self.socket.data[self.socket.pos..];
        let n = rest.len().min(128 * 1024);
        self.read_buf.extend_from_slice(&rest[..n]);
        self.socket.pos = (self.socket.pos + n) % self.socket.data.len();
        self.conn.handle_input_buf(&mut self.read_buf, self.now);
        drain_messages(&mut self.conn)
    }
}

fn bench_mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for len in SIZES {
        let mut buf = payload(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(
            BenchmarkId::new("switchboard-ws/apply_mask", label(len)),
            |b| {
                b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0));
            },
        );
        g.bench_function(BenchmarkId::new("byte-loop", label(len)), |b| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), black_box(KEY), 0));
        });
        g.bench_function(BenchmarkId::new("fastwebsockets/unmask", label(len)), |b| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), black_box(KEY)));
        });
        // In place behind a 14-byte header, as in the parse_unmask primitive: the payload
        // does not start on an 8-byte boundary.
        let mut framed = payload(len + 14);
        g.bench_function(
            BenchmarkId::new("switchboard-ws/apply_mask@14", label(len)),
            |b| {
                b.iter(|| apply_mask(black_box(&mut framed[14..]), black_box(KEY), 0));
            },
        );
        g.bench_function(
            BenchmarkId::new("fastwebsockets/unmask@14", label(len)),
            |b| {
                b.iter(|| fastwebsockets::unmask(black_box(&mut framed[14..]), black_box(KEY)));
            },
        );
    }
    g.finish();
}

fn bench_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    for len in SIZES {
        let frame = client_frame(OpCode::Binary, &payload(len));
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("switchboard-ws", label(len)), |b| {
            b.iter(|| {
                let parsed = FrameHeader::parse(black_box(&frame));
                black_box(parsed.expect("valid").expect("complete"))
            });
        });
        g.bench_function(BenchmarkId::new("tungstenite", label(len)), |b| {
            b.iter(|| {
                let mut cur = Cursor::new(black_box(&frame[..]));
                let parsed = tungstenite::protocol::frame::FrameHeader::parse(&mut cur);
                black_box(parsed.expect("valid").expect("complete"))
            });
        });
    }
    g.finish();
}

fn bench_parse_unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_unmask");
    for len in SIZES {
        let frame = client_frame(OpCode::Binary, &payload(len));
        g.throughput(Throughput::Bytes(len as u64));

        let mut buf = frame.clone();
        g.bench_function(
            BenchmarkId::new("switchboard-ws/primitive", label(len)),
            |b| {
                b.iter(|| {
                    let (h, n) = FrameHeader::parse(black_box(&buf))
                        .expect("valid")
                        .expect("complete");
                    let end = n + h.payload_len as usize;
                    apply_mask(&mut buf[n..end], h.mask.expect("masked"), 0);
                    black_box(&buf[n..end]);
                });
            },
        );

        let mut ours = OurReader::new(frame.clone(), Config::default(), None);
        g.bench_function(BenchmarkId::new("switchboard-ws/stream", label(len)), |b| {
            b.iter(|| assert_eq!(ours.read_once(), 1));
        });

        let mut owned = OurOwnedReader::new(frame.clone(), Config::default());
        g.bench_function(
            BenchmarkId::new("switchboard-ws/stream-owned", label(len)),
            |b| {
                b.iter(|| assert_eq!(owned.read_once(), 1));
            },
        );

        let mut tung = tungstenite::WebSocket::from_raw_socket(
            Replay::new(frame.clone()),
            tungstenite::protocol::Role::Server,
            None,
        );
        g.bench_function(BenchmarkId::new("tungstenite/stream", label(len)), |b| {
            b.iter(|| match tung.read().expect("read") {
                tungstenite::Message::Binary(p) => black_box(p),
                other => panic!("unexpected {other:?}"),
            });
        });

        let mut fws = fastwebsockets::WebSocket::after_handshake(
            Replay::new(frame.clone()),
            fastwebsockets::Role::Server,
        );
        g.bench_function(BenchmarkId::new("fastwebsockets/stream", label(len)), |b| {
            b.iter(|| {
                let f = block_on(fws.read_frame()).expect("read");
                assert_eq!(f.opcode, fastwebsockets::OpCode::Binary);
                black_box(f.payload.len())
            });
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for len in SIZES {
        let data = Bytes::from(payload(len));
        g.throughput(Throughput::Bytes(len as u64));

        let mut out = BytesMut::new();
        g.bench_function(BenchmarkId::new("switchboard-ws", label(len)), |b| {
            b.iter(|| {
                out.clear();
                encode_frame(&mut out, FrameHeader::new(OpCode::Binary, 0), &data);
                black_box(&out);
            });
        });

        let mut out = Vec::new();
        g.bench_function(BenchmarkId::new("tungstenite", label(len)), |b| {
            use tungstenite::protocol::frame::coding::{Data, OpCode as TOp};
            b.iter(|| {
                out.clear();
                let f = tungstenite::protocol::frame::Frame::message(
                    data.clone(),
                    TOp::Data(Data::Binary),
                    true,
                );
                f.format(&mut out).expect("in memory");
                black_box(&out);
            });
        });

        let mut out = Vec::new();
        g.bench_function(BenchmarkId::new("fastwebsockets", label(len)), |b| {
            b.iter(|| {
                let mut f = fastwebsockets::Frame::binary(fastwebsockets::Payload::Borrowed(&data));
                black_box(f.write(&mut out).len())
            });
        });
    }
    g.finish();
}

fn bench_recv_100(c: &mut Criterion) {
    const N: usize = 100;
    let mut g = c.benchmark_group("recv_100");
    g.throughput(Throughput::Elements(N as u64));
    let cases = [
        ("text_16B", OpCode::Text, text_payload(16).into_bytes()),
        ("binary_1KiB", OpCode::Binary, payload(1024)),
    ];
    for (name, op, body) in cases {
        let one = client_frame(op, &body);
        let stream: Vec<u8> = one.iter().copied().cycle().take(one.len() * N).collect();

        let mut ours = OurReader::new(stream.clone(), Config::default(), None);
        g.bench_function(BenchmarkId::new("switchboard-ws", name), |b| {
            b.iter(|| assert_eq!(ours.read_once(), N));
        });

        let mut tung = tungstenite::WebSocket::from_raw_socket(
            Replay::new(stream.clone()),
            tungstenite::protocol::Role::Server,
            None,
        );
        g.bench_function(BenchmarkId::new("tungstenite", name), |b| {
            b.iter(|| {
                for _ in 0..N {
                    match tung.read().expect("read") {
                        tungstenite::Message::Text(t) => drop(black_box(t)),
                        tungstenite::Message::Binary(p) => drop(black_box(p)),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            });
        });

        let mut fws = fastwebsockets::WebSocket::after_handshake(
            Replay::new(stream.clone()),
            fastwebsockets::Role::Server,
        );
        g.bench_function(BenchmarkId::new("fastwebsockets", name), |b| {
            b.iter(|| {
                for _ in 0..N {
                    let f = block_on(fws.read_frame()).expect("read");
                    black_box(f.payload.len());
                }
            });
        });
    }
    g.finish();
}

fn bench_connection(c: &mut Criterion) {
    const N: usize = 100;
    let mut g = c.benchmark_group("connection");
    g.throughput(Throughput::Elements(N as u64));

    // Send 100 small binary messages, then write them out as a driver would.
    for len in [16, 1024] {
        let body = payload(len);
        let mut conn = Connection::new(Role::Server, Config::default(), None, Instant::now());
        g.bench_function(BenchmarkId::new("send_100_transmit", label(len)), |b| {
            b.iter(|| {
                for _ in 0..N {
                    conn.send_binary(&body).expect("open");
                }
                let mut slices = [IoSlice::new(&[]); 64];
                let written: usize = {
                    let n = conn.transmit_slices(&mut slices);
                    slices[..n].iter().map(|s| s.len()).sum()
                };
                conn.advance_transmit(written);
                assert_eq!(conn.pending_bytes(), 0);
            });
        });
    }

    // Receive 100 compressed 1 KiB text messages (client_no_context_takeover, so the same
    // bytes can be replayed forever).
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let deflate_cfg = Config {
        deflate: Some(DeflateConfig::default()),
        ..Config::default()
    };
    let mut client = Connection::new(
        Role::Client,
        deflate_cfg.clone(),
        Some(params),
        Instant::now(),
    );
    let text = text_payload(1024);
    for _ in 0..N {
        client.send_text(&text).expect("open");
    }
    let mut stream = Vec::new();
    let mut slices = [IoSlice::new(&[]); 256];
    let n = client.transmit_slices(&mut slices);
    for s in &slices[..n] {
        stream.extend_from_slice(s);
    }
    assert_eq!(
        stream.len(),
        client.pending_bytes(),
        "one transmit covers all"
    );
    let mut ours = OurReader::new(stream, deflate_cfg, Some(params));
    g.bench_function("recv_100_deflate_text_1KiB", |b| {
        b.iter(|| assert_eq!(ours.read_once(), N));
    });
    g.finish();
}

fn bench_fanout(c: &mut Criterion) {
    const CONNS: usize = 1000;
    let mut g = c.benchmark_group("fanout_1000");
    g.throughput(Throughput::Elements(CONNS as u64));
    let text = text_payload(1024);
    let now = Instant::now();
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let deflate_cfg = Config {
        deflate: Some(DeflateConfig::default()),
        ..Config::default()
    };
    let mut plain: Vec<Connection> = (0..CONNS)
        .map(|_| Connection::new(Role::Server, Config::default(), None, now))
        .collect();
    let mut deflate: Vec<Connection> = (0..CONNS)
        .map(|_| Connection::new(Role::Server, deflate_cfg.clone(), Some(params), now))
        .collect();

    // Only the queuing is timed; draining the queues (what the socket writes would do)
    // happens between timed sections so every round starts from empty queues.
    fn timed_rounds(
        iters: u64,
        conns: &mut [Connection],
        mut send: impl FnMut(&mut [Connection]),
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            send(conns);
            total += t.elapsed();
            for c in conns.iter_mut() {
                let n = c.pending_bytes();
                c.advance_transmit(n);
            }
        }
        total
    }

    g.bench_function("send_text_each_1KiB", |b| {
        b.iter_custom(|iters| {
            timed_rounds(iters, &mut plain, |conns| {
                for c in conns {
                    c.send_text(&text).expect("open");
                }
            })
        });
    });
    g.bench_function("prepared_plain_1KiB", |b| {
        b.iter_custom(|iters| {
            timed_rounds(iters, &mut plain, |conns| {
                let m = PreparedMessage::from_text(&text);
                for c in conns {
                    c.send_prepared(&m).expect("open");
                }
            })
        });
    });
    g.bench_function("prepared_deflate_1KiB", |b| {
        b.iter_custom(|iters| {
            timed_rounds(iters, &mut deflate, |conns| {
                // A new message each round: compressed once, shared by all.
                let m = PreparedMessage::from_text(&text);
                for c in conns {
                    c.send_prepared(&m).expect("open");
                }
            })
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_mask,
    bench_header,
    bench_parse_unmask,
    bench_encode,
    bench_recv_100,
    bench_connection,
    bench_fanout
);
criterion_main!(benches);
