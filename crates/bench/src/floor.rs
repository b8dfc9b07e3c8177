//! `floor`: what the kernel alone charges for one small fan-out delivery on this machine.
//!
//! N loopback TCP connections are opened inside this process; then one thread writes one
//! S-byte buffer (default 66 B: a 64-byte payload plus 2 bytes of WebSocket framing) to
//! each of them, R rounds, with plain blocking calls and no runtime, no queue,
//! no encoding. The CPU it spends (from `/proc/self/stat`) divided by the writes is the
//! floor under any server's per-delivery cost here: the TCP transmit, plus, on loopback,
//! the receiving side's TCP work, which runs in the sender's softirq. Times N it is the
//! shortest burst one core can deliver one message to N subscribers in, which bounds the
//! fan-out latency percentiles from below.
//!
//! Each write is a `send` by default; `--vectored` makes it a `writev` and `--slices K`
//! splits it into K frames (gathered into one buffer first for `send`), the two ways a
//! server can write several queued frames.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use serde_json::json;

use crate::common::{self, r3};

/// Options of `floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// Connections (two sockets each in this process; the open-file cap is 20,000).
    #[arg(long, default_value_t = 9000)]
    pub sockets: usize,
    /// Rounds of one write per connection.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Bytes per write.
    #[arg(long, default_value_t = 66)]
    pub size: usize,
    /// Write with `writev` (one buffer) instead of `send`, the two calls a server may use.
    #[arg(long)]
    pub vectored: bool,
    /// Frames per write: the buffer goes as this many slices to `writev`, or is gathered
    /// from this many slices into one buffer before `send`.
    #[arg(long, default_value_t = 1)]
    pub slices: usize,
}

/// Runs `floor` and prints its JSON line.
pub fn run(args: FloorArgs) -> std::io::Result<()> {
    // Everything stays in the kernel's receive queues: keep it well under the defaults.
    if args
        .rounds
        .saturating_mul(args.size)
        .saturating_mul(args.slices.max(1))
        > 64 * 1024
    {
        return Err(std::io::Error::other(
            "--rounds × --size must stay under 64 KiB (nothing reads the receiving side)",
        ));
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut senders = Vec::with_capacity(args.sockets);
    let mut receivers = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let (r, _) = listener.accept()?;
        senders.push(s);
        receivers.push(r);
    }
    eprintln!("[floor] {} connections open", senders.len());
    let slices = args.slices.max(1);
    let frames: Vec<Vec<u8>> = (0..slices).map(|_| vec![b'x'; args.size]).collect();
    let total = args.size * slices;
    let io: Vec<std::io::IoSlice<'_>> = frames.iter().map(|f| std::io::IoSlice::new(f)).collect();
    let mut gathered = Vec::with_capacity(total);
    let pid = std::process::id();
    let cpu_before = crate::process::cpu_seconds(pid)?;
    let started = Instant::now();
    for _ in 0..args.rounds {
        for s in &mut senders {
            let n = if args.vectored {
                s.write_vectored(&io)?
            } else {
                gathered.clear();
                for f in &frames {
                    gathered.extend_from_slice(f);
                }
                s.write(&gathered)?
            };
            if n != total {
                return Err(std::io::Error::other("short write"));
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = crate::process::cpu_seconds(pid)? - cpu_before;
    let writes = (args.sockets * args.rounds) as f64;
    let us_per_write = cpu * 1e6 / writes;
    common::emit(&json!({
        "mode": "floor",
        "sockets": args.sockets,
        "rounds": args.rounds,
        "size": args.size,
        "syscall": if args.vectored { "writev" } else { "send" },
        "frames_per_write": slices,
        "writes": writes,
        "wall_seconds": r3(wall),
        "cpu_seconds": r3(cpu),
        "cpu_us_per_write": r3(us_per_write),
        "wall_us_per_write": r3(wall * 1e6 / writes),
        "burst_ms_for_10000_subscribers": r3(us_per_write * 10_000.0 / 1000.0),
    }));
    drop(receivers);
    Ok(())
}
