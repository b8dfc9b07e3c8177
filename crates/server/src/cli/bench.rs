//! `switchboard bench MODE …`: the load generator of the `switchboard-bench` crate (modes
//! echo, fanout, idle, quantum; see that crate). It builds its own runtime, so it runs on
//! a plain thread of its own; `idle` re-invokes `switchboard bench` for its workers.

pub(crate) use switchboard_bench::BenchArgs;

pub(crate) async fn run(args: BenchArgs) -> std::io::Result<()> {
    let exe = std::env::current_exe()?.into_os_string();
    let generator =
        std::thread::spawn(move || switchboard_bench::run(args, vec![exe, "bench".into()]));
    tokio::task::spawn_blocking(move || generator.join())
        .await
        .map_err(std::io::Error::other)?
        .map_err(|_| std::io::Error::other("the load generator panicked"))?
}
