//! For the tests of direct delivery and of several event loops: a thread running a loop,
//! the test's own thread running another, a bounded wait for what the other loop does,
//! and publishing from a task.

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use crate::{EventLoop, Hub, Payload};

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

/// Publishes `n` messages (`0`, `1`, …) to channel `c` from a task, as a server publishes
/// (only there are the wakes paced), then lets this loop run a little.
pub(crate) async fn publish(hub: &Hub, n: usize) {
    let hub = hub.clone();
    tokio::spawn(async move {
        for i in 0..n {
            let p = Payload::json(Bytes::from(i.to_string())).expect("JSON");
            hub.publish("c", p).await.expect("published");
        }
    })
    .await
    .expect("the publishing task");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
