//! The wheel's behaviour through its public API: when a sleeper is woken, which
//! registrations a wheel holds, cancelling, and the background task's life.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use switchboard_timer::{Sleeper, Wheel, WheelTimer};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn wakes_after_the_deadline_within_one_resolution() {
    let wheel = Wheel::new(Duration::from_millis(500));
    let mut sleeper = Sleeper::new();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(1200);
    poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
    let woke = Instant::now();
    assert!(woke >= deadline);
    assert!(woke <= deadline + Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn a_later_deadline_keeps_the_registration_an_earlier_one_moves_it() {
    let wheel = Wheel::new(Duration::from_secs(1));
    let mut sleeper = Sleeper::new();
    let now = Instant::now();
    let waker = futures_waker();
    let mut cx = Context::from_waker(&waker);
    let at = |s| now + Duration::from_secs(s);
    assert!(sleeper.poll_until(&wheel, at(10), &mut cx).is_pending());
    assert_eq!(wheel.registered(), 1);
    assert!(sleeper.poll_until(&wheel, at(20), &mut cx).is_pending());
    assert_eq!(
        wheel.registered(),
        1,
        "a later deadline re-uses the earlier wake"
    );
    assert!(sleeper.poll_until(&wheel, at(5), &mut cx).is_pending());
    assert_eq!(
        wheel.registered(),
        1,
        "an earlier deadline moves the registration"
    );
    assert!(sleeper.poll_until(&wheel, now, &mut cx).is_ready());
    assert_eq!(
        wheel.registered(),
        0,
        "a deadline that passed keeps nothing"
    );
}

/// A waker that counts its wakes; the `Arc`'s count shows who still holds it.
struct Counter(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_registration_is_not_woken_and_holds_no_waker() {
    let wheel = Wheel::new(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_millis(250);
    let mut sleepers: Vec<(Arc<Counter>, Waker, Sleeper)> = (0..3)
        .map(|_| {
            let (count, waker) = counter();
            (count, waker, Sleeper::new())
        })
        .collect();
    for (_, waker, sleeper) in &mut sleepers {
        let mut cx = Context::from_waker(waker);
        assert!(sleeper.poll_until(&wheel, deadline, &mut cx).is_pending());
    }
    assert_eq!(wheel.registered(), 3);
    let (count, _, sleeper) = &mut sleepers[1];
    // Held by the test (twice) and the wheel's bucket: the sleeper keeps no clone.
    assert_eq!(Arc::strong_count(count), 3);
    sleeper.cancel(&wheel);
    assert_eq!(wheel.registered(), 2);
    assert_eq!(Arc::strong_count(count), 2, "only the test holds the waker");

    // A registration made after the cancel reuses the slot and is woken as usual.
    let (late, late_waker) = counter();
    let mut late_sleeper = Sleeper::new();
    let mut cx = Context::from_waker(&late_waker);
    assert!(late_sleeper
        .poll_until(&wheel, deadline, &mut cx)
        .is_pending());

    tokio::time::sleep(Duration::from_millis(400)).await;
    let woken: Vec<usize> = sleepers
        .iter()
        .map(|(c, ..)| c.0.load(Ordering::Relaxed))
        .collect();
    assert_eq!(woken, [1, 0, 1]);
    assert_eq!(late.0.load(Ordering::Relaxed), 1);
    assert_eq!(wheel.registered(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_timer_leaves_nothing_in_the_wheel() {
    let wheel = Wheel::new(Duration::from_millis(100));
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut timer = WheelTimer::new(wheel.clone());
    let at = Instant::now() + Duration::from_secs(30);
    assert!(timer.poll_until(at, &mut cx).is_pending());
    assert_eq!(wheel.registered(), 1);
    drop(timer);
    assert_eq!(wheel.registered(), 0);
    assert_eq!(
        Arc::strong_count(&count),
        2,
        "only the test holds the waker"
    );

    let mut timer = WheelTimer::new(wheel.clone());
    let at = Instant::now() + Duration::from_millis(150);
    poll_fn(|cx| timer.poll_until(at, cx)).await;
    assert_eq!(wheel.registered(), 0);
}

#[tokio::test(start_paused = true)]
async fn one_wheel_serves_many_sleepers() {
    let wheel = Wheel::new(Duration::from_millis(250));
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let wheel = wheel.clone();
        tasks.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_millis(100 * i + 1);
            let mut sleeper = Sleeper::new();
            poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
            Instant::now() >= deadline
        }));
    }
    for t in tasks {
        assert!(t.await.expect("sleeper task"));
    }
    assert_eq!(wheel.registered(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_task_ends_when_the_wheel_is_dropped() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let wheel = Wheel::new(Duration::from_millis(100));
    let mut sleeper = Sleeper::new();
    let deadline = Instant::now() + Duration::from_millis(150);
    poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 1,
        "the wheel runs one task"
    );
    drop(wheel);
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "the wheel's task ended");
}

#[test]
fn a_wheel_outlives_the_runtime_its_task_ran_on() {
    let wheel = Wheel::new(Duration::from_millis(10));
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    first.block_on(async {
        let mut sleeper = Sleeper::new();
        let deadline = Instant::now() + Duration::from_millis(20);
        poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
    });
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    second.block_on(async {
        let mut sleeper = Sleeper::new();
        let deadline = Instant::now() + Duration::from_millis(20);
        let woke = tokio::time::timeout(
            Duration::from_secs(10),
            poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)),
        )
        .await;
        assert!(woke.is_ok(), "the wheel fires on the second runtime");
    });
}

fn futures_waker() -> Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    Waker::from(Arc::new(Noop))
}
