//! The retry rules a `reconnect` client may follow, and the server hints they read.
//!
//! The generator's rule ([`Rule::Jitter`], the default): after the `k`-th failed attempt
//! in a row (`k` ≥ 1) a client waits
//!
//! ```text
//! hint + uniform(0, min(cap, base · 2^(k−1)))
//! ```
//!
//! where `hint` is what the server asked for: `Retry-After: S` on a `503` (S seconds), or
//! the reason `retry after N ms` of a WebSocket close 1013; without a hint (a refused TCP
//! connect, a reset, any other status) it is 0. So a client never comes back before the
//! server said it may, and the jitter window doubles with every failure until `cap`, so
//! clients turned away together spread out further each time instead of returning
//! together. A success starts the count again.
//!
//! The browser SDK's rule ([`Rule::Sdk`], `clients/js/src/backoff.ts` with `min = base`,
//! `max = cap`): its schedule is `base + uniform(0, min(cap, base · 2^(k−1)) − base)`;
//! with a hint it waits `max(schedule, hint + uniform(0, min(hint, base)))` (one random
//! number drawn for both here). It is here to be measured against: the SDK once waited
//! just `hint + uniform(0, min(hint, base))`, and with the server's hint then 1 ms in a
//! storm (its limiter's next free slot) a refused client came back within 2 ms, again
//! and again (`docs/perf/REPORT.md`, run 9). Why not `uniform(0, S · 2^k)` either: it may
//! come back before the hint.

use std::time::Duration;

/// Which rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rule {
    /// `hint + uniform(0, min(cap, base · 2^(k−1)))`.
    Jitter,
    /// The browser SDK's.
    Sdk,
}

/// The schedule: rule, base window and cap (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub rule: Rule,
    /// Jitter window after the first failure.
    pub base: Duration,
    /// Largest jitter window.
    pub cap: Duration,
}

impl Backoff {
    /// The jitter window after `failures` failed attempts in a row (0 and 1 both give
    /// `base`).
    pub fn window(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The wait after `failures` failed attempts in a row, the last one hinted `hint`;
    /// `unit` is a uniform random number in `[0, 1)` (clamped), passed in so the rule is
    /// testable.
    pub fn delay(&self, failures: u32, hint: Option<Duration>, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        match (self.rule, hint) {
            (Rule::Jitter, hint) => hint.unwrap_or_default() + self.window(failures).mul_f64(unit),
            (Rule::Sdk, hint) => {
                let scheduled = self.base
                    + self
                        .window(failures)
                        .saturating_sub(self.base)
                        .mul_f64(unit);
                match hint {
                    Some(hint) => scheduled.max(hint + hint.min(self.base).mul_f64(unit)),
                    None => scheduled,
                }
            }
        }
    }
}

/// The retry options of `reconnect` and its workers (the parent passes them on).
#[derive(Debug, Clone, clap::Args)]
pub struct RetryArgs {
    /// Retry rule: the generator's, or the browser SDK's to compare.
    #[arg(long, value_enum, default_value_t = Rule::Jitter)]
    pub retry_rule: Rule,
    /// Retry rule: the jitter window after the first failure, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub backoff_base_ms: u64,
    /// Retry rule: the largest jitter window, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub backoff_cap_ms: u64,
    /// Seconds one attempt may take before it counts as failed.
    #[arg(long, default_value_t = 10.0)]
    pub attempt_timeout: f64,
}

impl RetryArgs {
    /// The schedule these options name.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            rule: self.retry_rule,
            base: Duration::from_millis(self.backoff_base_ms),
            cap: Duration::from_millis(self.backoff_cap_ms),
        }
    }

    /// The same options as command-line arguments (for a worker process).
    pub fn to_args(&self) -> Vec<String> {
        let rule = match self.retry_rule {
            Rule::Jitter => "jitter",
            Rule::Sdk => "sdk",
        };
        [
            ("--retry-rule", rule.to_owned()),
            ("--backoff-base-ms", self.backoff_base_ms.to_string()),
            ("--backoff-cap-ms", self.backoff_cap_ms.to_string()),
            ("--attempt-timeout", self.attempt_timeout.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }
}

/// The wait a WebSocket close reason asks for: `retry after N ms` (what the server's
/// close 1013 says when it turns a new connection away).
pub fn ws_hint(reason: &str) -> Option<Duration> {
    let ms = reason
        .trim()
        .strip_prefix("retry after ")?
        .strip_suffix("ms")?
        .trim();
    ms.parse().ok().map(Duration::from_millis)
}

/// The wait a `Retry-After` header value asks for, in its delay-seconds form (the server
/// never sends the HTTP-date form; an unreadable value is no hint).
pub fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Backoff = Backoff {
        rule: Rule::Jitter,
        base: Duration::from_millis(250),
        cap: Duration::from_millis(2000),
    };

    #[test]
    fn the_window_doubles_from_base_up_to_the_cap() {
        let windows: Vec<u128> = (0..7).map(|k| RULE.window(k).as_millis()).collect();
        assert_eq!(windows, [250, 250, 500, 1000, 2000, 2000, 2000]);
        // Far past any sensible count: no overflow, still the cap.
        assert_eq!(RULE.window(u32::MAX), RULE.cap);
        let huge = Backoff {
            rule: Rule::Jitter,
            base: Duration::from_secs(u64::MAX / 4),
            cap: Duration::from_secs(9),
        };
        assert_eq!(huge.window(40), Duration::from_secs(9));
    }

    #[test]
    fn a_delay_is_never_before_the_hint_nor_past_hint_plus_window() {
        let hint = Some(Duration::from_secs(1));
        for k in 1..8 {
            for unit in [0.0, 0.25, 0.999, 1.0, -3.0, 7.0] {
                let d = RULE.delay(k, hint, unit);
                assert!(d >= Duration::from_secs(1), "{k} {unit}: {d:?}");
                assert!(
                    d <= Duration::from_secs(1) + RULE.window(k),
                    "{k} {unit}: {d:?}"
                );
            }
        }
        assert_eq!(RULE.delay(1, None, 0.5), Duration::from_millis(125));
        assert_eq!(
            RULE.delay(3, Some(Duration::from_millis(1)), 0.5),
            Duration::from_millis(501)
        );
    }

    #[test]
    fn the_sdk_rule_keeps_its_schedule_under_a_hint_and_starts_at_base() {
        let sdk = Backoff {
            rule: Rule::Sdk,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        // A 1 ms hint does not cut the schedule short: it still doubles.
        let one_ms = Some(Duration::from_millis(1));
        assert_eq!(sdk.delay(1, one_ms, 1.0), Duration::from_millis(500));
        assert_eq!(sdk.delay(3, one_ms, 1.0), Duration::from_millis(2000));
        assert_eq!(sdk.delay(20, one_ms, 1.0), Duration::from_secs(30));
        // A hint longer than the schedule wins, with its own jitter.
        assert_eq!(
            sdk.delay(3, Some(Duration::from_secs(5)), 1.0),
            Duration::from_millis(5500)
        );
        // No hint: exactly base after the first failure, then up to the doubled window.
        assert_eq!(sdk.delay(1, None, 0.7), Duration::from_millis(500));
        assert_eq!(sdk.delay(3, None, 1.0), Duration::from_millis(2000));
        assert_eq!(sdk.delay(30, None, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn hints_are_read_from_the_close_reason_and_the_header() {
        assert_eq!(ws_hint("retry after 1 ms"), Some(Duration::from_millis(1)));
        assert_eq!(
            ws_hint("retry after 250ms"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(ws_hint("service restart"), None);
        assert_eq!(ws_hint("retry after soon ms"), None);
        assert_eq!(retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
