//! `quantum`: the same message stream to the same number of clients over every
//! transport, one fan-out run each; writes a markdown table and an SVG chart of bytes on
//! the wire, latency and server CPU per delivered message.

use crate::common::ServerArgs;

/// Options of `quantum`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantumArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `quantum`.
pub fn run(_args: QuantumArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("quantum: not implemented yet"))
}
