//! Event loops for the tests of several loops: a thread running one, the test's own
//! thread running another, and a bounded wait for what the other loop does.

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::EventLoop;

/// Runs `body` on a new thread named `name`, as a registered event loop.
pub(crate) fn spawn_loop<F, Fut>(name: &str, body: F) -> JoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run_loop(body()))
        .expect("a thread")
}

/// Runs `body` on this thread, as a registered event loop.
pub(crate) fn run_loop(body: impl Future<Output = ()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let _registered = EventLoop::register().expect("registered");
        body.await;
    });
}

/// Waits (up to 10 s, polling) until `done`, letting this loop run meanwhile.
pub(crate) async fn until(done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
