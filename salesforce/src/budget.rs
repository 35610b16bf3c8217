//! Pacing a connection to a share of the org's daily API allocation.
//!
//! Salesforce counts API requests over a rolling 24 hours and refuses all of them
//! (REQUEST_LIMIT_EXCEEDED) once the org's allocation is used up — for every integration
//! of the org, not just the one that used it. A [`Pacer`] keeps one client within
//! `share` of the allocation (read from `Sforce-Limit-Info`): a token bucket refilled at
//! `share × max / 24 h`, holding at most one hour's worth, so a backfill can burst but a
//! day never takes much more than its share. It also stops when the org as a whole is
//! nearly out, and after REQUEST_LIMIT_EXCEEDED.

use std::time::{Duration, Instant};

const DAY: f64 = 86_400.0;
/// The bucket holds this many seconds of refill.
const BURST_SECS: f64 = 3_600.0;
/// Leave the org this fraction of its allocation no matter what our share allows.
const ORG_RESERVE: f64 = 0.05;
/// How long to stay away after REQUEST_LIMIT_EXCEEDED without a Retry-After.
pub const LIMIT_PAUSE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Pacer {
    share: f64,
    tokens: f64,
    last: Option<Instant>,
    paused_until: Option<Instant>,
}

impl Pacer {
    /// `share` of the daily allocation, clamped to (0, 1].
    pub fn new(share: f64) -> Pacer {
        Pacer { share: share.clamp(1e-6, 1.0), tokens: f64::NAN, last: None, paused_until: None }
    }

    pub fn share(&self) -> f64 {
        self.share
    }

    /// Before a call: `Ok` if it may go now, else how long to wait and why. `used`/`max`
    /// are the org's usage from the last `Sforce-Limit-Info` (unknown before the first
    /// response: then calls are allowed).
    pub fn check(&mut self, now: Instant, used: Option<u64>, max: Option<u64>) -> Result<(), (Duration, String)> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err((until - now, "Salesforce refused requests (REQUEST_LIMIT_EXCEEDED)".into()));
            }
            self.paused_until = None;
        }
        let (Some(used), Some(max)) = (used, max) else { return Ok(()) };
        if max == 0 {
            return Ok(());
        }
        let max = max as f64;
        if used as f64 >= max * (1.0 - ORG_RESERVE) {
            // The org is nearly out: wait for the rolling window to free some.
            return Err((Duration::from_secs(60), format!("the org has used {used} of {max} daily API requests")));
        }
        let rate = self.share * max / DAY; // requests per second
        let capacity = (rate * BURST_SECS).max(1.0);
        if self.tokens.is_nan() {
            self.tokens = capacity;
        }
        if let Some(last) = self.last {
            self.tokens = (self.tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(capacity);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            Err((wait, format!("this connection's budget ({:.0}% of {max} daily requests) is spent", self.share * 100.0)))
        }
    }

    /// After REQUEST_LIMIT_EXCEEDED: no calls for `d`.
    pub fn pause(&mut self, now: Instant, d: Duration) {
        self.paused_until = Some(now + d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_allocation_allows_calls() {
        let mut p = Pacer::new(0.5);
        assert!(p.check(Instant::now(), None, None).is_ok());
    }

    #[test]
    fn bursts_one_hour_of_share_then_paces_at_the_daily_rate() {
        // 86 400 requests a day at 50%: 0.5 request/s, an hour's burst = 1800.
        let mut p = Pacer::new(0.5);
        let t0 = Instant::now();
        let allowed = (0..5000).take_while(|_| p.check(t0, Some(0), Some(86_400)).is_ok()).count();
        assert_eq!(allowed, 1800);
        let (wait, why) = p.check(t0, Some(0), Some(86_400)).unwrap_err();
        assert!(wait <= Duration::from_secs(2) && wait > Duration::ZERO, "{wait:?}");
        assert!(why.contains("50%"), "{why}");
        // Ten seconds later, five more calls (0.5/s).
        let later = t0 + Duration::from_secs(10);
        let more = (0..100).take_while(|_| p.check(later, Some(0), Some(86_400)).is_ok()).count();
        assert_eq!(more, 5);
    }

    #[test]
    fn a_day_never_takes_much_more_than_the_share() {
        let mut p = Pacer::new(0.25);
        let t0 = Instant::now();
        let max = 100_000u64;
        let mut calls = 0u64;
        // One attempt a second for a day.
        for s in 0..86_400u64 {
            if p.check(t0 + Duration::from_secs(s), Some(0), Some(max)).is_ok() {
                calls += 1;
            }
        }
        let share = 0.25 * max as f64;
        assert!(calls as f64 <= share * (1.0 + 1.0 / 24.0) + 1.0, "{calls} calls vs share {share}");
        assert!(calls as f64 >= share * 0.95, "{calls} calls vs share {share}");
    }

    #[test]
    fn stops_when_the_org_is_nearly_out_and_after_a_limit_error() {
        let mut p = Pacer::new(1.0);
        let now = Instant::now();
        assert!(p.check(now, Some(96_000), Some(100_000)).is_err());
        assert!(p.check(now, Some(10), Some(100_000)).is_ok());
        p.pause(now, LIMIT_PAUSE);
        let (wait, _) = p.check(now, Some(10), Some(100_000)).unwrap_err();
        assert_eq!(wait, LIMIT_PAUSE);
        assert!(p.check(now + LIMIT_PAUSE, Some(10), Some(100_000)).is_ok());
    }
}
