//! `switchboard-bench MODE …`: the load generator on its own (the same as
//! `switchboard bench MODE …`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", about = "Switchboard's load generator")]
struct Cli {
    #[command(flatten)]
    args: switchboard_bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let me = std::env::current_exe()
        .map(|p| p.into_os_string())
        .unwrap_or_else(|_| "switchboard-bench".into());
    match switchboard_bench::run(cli.args, vec![me]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
