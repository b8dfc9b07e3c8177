//! Switchboard's load generator (`switchboard bench …` or `switchboard-bench …`) and the
//! minimal baseline servers it is compared against (binaries `baseline-tungstenite`,
//! `baseline-fastws`; and a uWebSockets peer, `peers/uws-peer.cpp`, that
//! `scripts/build-uws.sh` builds on demand outside cargo).
//!
//! Modes, each bounded in time and count, loopback only, progress on stderr and one JSON
//! line on stdout per run:
//! - [`echo`]: C connections × W messages in flight of S bytes; msgs/s, RTT percentiles;
//! - [`fanout`]: N subscribers over one transport, one publisher at R msgs/s; deliveries,
//!   latency, missing / out-of-order counts;
//! - [`idle`]: N idle connections over several processes and source addresses; server
//!   memory per connection and CPU while idle;
//! - [`quantum`]: the same message stream over every transport, written as a markdown
//!   table and an SVG chart;
//! - [`curve`]: fan-out as subscribers grow and as messages grow, several servers side by
//!   side, as JSON lines and an SVG chart drawn from them;
//! - [`floor`]: the kernel's own cost of one small write to each of N loopback sockets
//!   (no server): the floor under every per-delivery figure;
//! - [`storm`]: N subscribers connecting within a window (a reconnect storm); how long
//!   each waits for its TCP handshake and its answer, and how many had a SYN dropped;
//! - [`retained`]: server memory per stored message, by the path that published it (a
//!   fresh server per path and payload size).
//! - [`reconnect`]: the server restarted under N subscribers and a control group, every
//!   one coming back within a window from its cursor, honouring the server's retry hints;
//!   time until all are back, refusals, every client's messages checked, the server's
//!   RSS, the control group's latency before, during and after.
//!
//! Every mode can start the server itself (`--server-cmd`, pinned with `--server-cpu`) or
//! take its PID (`--server-pid`); server CPU seconds come from `/proc/PID/stat`, so
//! figures are given per server-CPU-second. Bytes on the wire are counted at the
//! generator's sockets ([`counting`]), headers and handshakes included.
//!
//! Module map: [`stats`] (histogram, sequence tracking), [`payload`] (sequence number and
//! send time inside each message), [`net`] (connections, HTTP client), [`process`] (the
//! server process), [`common`] (options shared by modes), [`svg`] (the charts' drawing).

pub mod common;
pub mod counting;
pub mod crowd;
pub mod curve;
pub mod echo;
pub mod fanout;
pub mod floor;
pub mod idle;
pub mod net;
pub mod payload;
pub mod process;
pub mod quantum;
pub mod reconnect;
pub mod retained;
pub mod stats;
pub mod storm;
pub mod subscriber;
pub mod svg;
#[cfg(feature = "tls")]
pub mod tls;

use std::ffi::OsString;

/// The generator's command line (a subcommand per mode).
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Mode,
}

/// One mode per subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Mode {
    /// Echo round trips: C connections, S-byte messages, window W.
    Echo(echo::EchoArgs),
    /// Fan-out: N subscribers over one transport, one publisher at R msgs/s.
    Fanout(fanout::FanoutArgs),
    /// Idle connections: server memory per connection and CPU while idle.
    Idle(idle::IdleArgs),
    /// Every transport side by side: bytes, latency and CPU per delivered message.
    Quantum(quantum::QuantumArgs),
    /// The cost curve: fan-out by subscribers and by size, servers side by side, charted.
    Curve(curve::CurveArgs),
    /// The kernel's cost of one small write per socket, with no server in the way.
    Floor(floor::FloorArgs),
    /// A reconnect storm: N subscribers within a window; handshake waits, dropped SYNs.
    Storm(storm::StormArgs),
    /// Server memory per stored message, by publish path (a fresh server for each).
    Retained(retained::RetainedArgs),
    /// A restart under N subscribers: all back, nothing lost unannounced, RSS, latency.
    Reconnect(reconnect::ReconnectArgs),
    /// (internal) one process of a `fanout --processes N` run.
    #[command(hide = true)]
    FanoutWorker(crowd::WorkerArgs),
    /// (internal) one process of an `idle` run.
    #[command(hide = true)]
    IdleWorker(idle::WorkerArgs),
    /// (internal) one process of a `reconnect` run.
    #[command(hide = true)]
    ReconnectWorker(reconnect::WorkerArgs),
}

/// Runs one mode on the calling thread (it builds its own runtime: call it from a plain
/// thread, not from inside a tokio runtime). `self_cmd` is how to invoke this generator
/// again (program and leading arguments, e.g. `["switchboard", "bench"]`), used to spread
/// `fanout`, `idle` and `reconnect` connections over child processes.
pub fn run(args: BenchArgs, self_cmd: Vec<OsString>) -> std::io::Result<()> {
    match args.mode {
        Mode::Echo(a) => echo::run(a),
        Mode::Fanout(a) => fanout::run(a, &self_cmd),
        Mode::Idle(a) => idle::run(a, &self_cmd),
        Mode::Quantum(a) => quantum::run(a, &self_cmd),
        Mode::Curve(a) => curve::run(a, &self_cmd),
        Mode::Floor(a) => floor::run(a),
        Mode::Storm(a) => storm::run(a),
        Mode::Retained(a) => retained::run(a),
        Mode::Reconnect(a) => reconnect::run(a, &self_cmd),
        Mode::FanoutWorker(a) => crowd::worker(a),
        Mode::IdleWorker(a) => idle::worker(a),
        Mode::ReconnectWorker(a) => reconnect::worker(a),
    }
}
