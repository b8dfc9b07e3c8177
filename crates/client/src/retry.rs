//! Publishing safely when the answer may not come: every publish carries an idempotency
//! key of its own ([`new_key`], 128 random bits), and an attempt that ends without an
//! answer (a connection error, no answer within [`Retry::timeout`], or a 503 from a
//! server or broker that may or may not have stored it) is sent again with the same
//! key, so the server stores the message once however many attempts reached it (within
//! its idempotency window, 5 minutes by default).
//!
//! Any other answer (a 4xx, another 5xx) is final: the server said what happened.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// How a publish is retried. Default: 3 attempts of at most 10 s each, 200 ms before the
/// second and 400 ms before the third.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// How long one attempt may take before it counts as lost.
    pub timeout: Duration,
    /// The wait before the second attempt; it doubles for each later one.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(200),
        }
    }
}

/// A fresh idempotency key: 128 random bits as 32 hex digits.
pub fn new_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether an attempt that failed this way may have gone unanswered (and so is sent
/// again with its key).
fn worth_retrying(e: &Error) -> bool {
    matches!(
        e,
        Error::Io(_) | Error::Http(_) | Error::Timeout(_) | Error::Status { status: 503, .. }
    )
}

impl Retry {
    /// Runs `attempt` until it succeeds, fails for good, or the attempts are used up.
    pub(crate) async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut wait = self.backoff;
        let mut left = self.attempts.max(1);
        loop {
            left -= 1;
            let outcome = match tokio::time::timeout(self.timeout, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(self.timeout)),
            };
            match outcome {
                Err(e) if left > 0 && worth_retrying(&e) => {
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn keys_are_fresh_and_fit_the_server_limit() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_answers_are_retried_final_ones_are_not() {
        let retry = Retry::default();
        let calls = AtomicU32::new(0);
        let r = retry
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(Error::Io(std::io::ErrorKind::ConnectionReset.into())),
                    1 => std::future::pending().await,
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Status {
                    status: 400,
                    body: String::new(),
                })
            })
            .await;
        assert!(matches!(r, Err(Error::Status { status: 400, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 400 is final");

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Status {
                    status: 503,
                    body: String::new(),
                })
            })
            .await;
        assert!(matches!(r, Err(Error::Status { status: 503, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "every attempt used");
    }
}
