//! The `switchboard` command line: a small dispatcher; each subcommand lives in its own
//! module under `cli/`.

mod cli;

/// jemalloc rather than the system allocator: an idle connection's two largest blocks
/// (tokio's task cell and socket state) are 128-byte-aligned, which jemalloc's size
/// classes hold without the split glibc makes, and it keeps one size class per small
/// block. Measured at 19,000 idle WebSocket connections: 1,036 B each against 1,210 B
/// with glibc (`docs/perf/REPORT.md`). Built with its background thread on (the
/// `background_threads` feature): pages freed by a burst of handshakes are returned ~10 s
/// later even when the server then sits idle, which no allocation would otherwise trigger
/// (the same 19,000 connections kept 414–456 B each after 40 s with it, 417–561 B without:
/// REPORT.md, "Issue 17 in one run of bench.sh"). `_RJEM_MALLOC_CONF=background_thread:false`
/// turns it off.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if !args.command.inits_tracing() {
        cli::init_tracing(switchboard_server::config::LogFormat::Text);
    }
    // `serve` runs on tokio's current-thread scheduler whatever its worker count: the
    // other event loops are threads of their own (`server::Builder::workers`). One thread
    // per loop lets the kernel skip a file's reference count on every socket call, and
    // the run queue is a plain list (the hub paces its wakes there, see its `pacing`
    // module): docs/perf/REPORT.md, "Paced wakes" and "Event loops". The other commands
    // (the load generators) run on one worker per CPU.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut builder = if matches!(args.command, cli::Command::Serve(_)) || workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(workers);
        multi
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            cli::Command::Echo(echo) => cli::echo::run(echo).await,
            cli::Command::Serve(args) => cli::serve::run(args).await,
            cli::Command::Publish(args) => cli::publish::run(args).await,
            cli::Command::Bench(args) => cli::bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}
