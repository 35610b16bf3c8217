//! Pacing an org's integration to a share of its daily API allocation.
//!
//! Salesforce counts API requests over a rolling 24 hours and refuses all of them
//! (REQUEST_LIMIT_EXCEEDED) once the org's allocation is used up — for every integration
//! of the org, not just the one that used it. A [`Pacer`] keeps its clients within `share`
//! of the allocation (read from `Sforce-Limit-Info`): a token bucket refilled at
//! `share × max / 24 h`, holding at most one hour's worth, so a backfill can burst but a
//! day never takes much more than its share. It also stops when the org as a whole is
//! nearly out, and after REQUEST_LIMIT_EXCEEDED.
//!
//! The bucket's whole state is a [`BudgetCell`] of five atomics, changed only by
//! compare-and-swap, so one cell can be shared by every thread and process that calls the
//! same org (sfsync keeps one per org in PostgreSQL's shared memory, through
//! [`BudgetShare`]) without a lock: a helper thread may use it as safely as a backend. The
//! bucket is kept as GCRA's "theoretical arrival time" (TAT): with one call every `T`
//! seconds and room for `capacity` calls, a call at `now` may go when
//! `max(TAT, now) - now <= (capacity - 1) × T`, and then moves TAT on by `T` — the same
//! decisions as a token bucket, in one word.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: f64 = 86_400.0;
/// The bucket holds this many seconds of refill.
const BURST_SECS: f64 = 3_600.0;
/// Leave the org this fraction of its allocation no matter what our share allows.
const ORG_RESERVE: f64 = 0.05;
/// The longest stay away after REQUEST_LIMIT_EXCEEDED without a Retry-After.
pub const LIMIT_PAUSE: Duration = Duration::from_secs(300);
/// The first pause after the org's daily allocation was refused ("TotalRequests Limit
/// exceeded"): it frees as the rolling 24 hours move on, so a probe soon is worth one call.
pub const TOTAL_LIMIT_FIRST_PAUSE: Duration = Duration::from_secs(30);
/// The first pause after a refusal for too many concurrent long requests
/// ("ConcurrentPerOrgLongTxn Limit exceeded"): it lifts as soon as one of them ends.
pub const CONCURRENT_LIMIT_FIRST_PAUSE: Duration = Duration::from_secs(5);
const MICROS: f64 = 1e6;

/// One org's pacing state: plain atomics (`#[repr(C)]`, all zero when new), so it may live
/// in shared memory and be used from any thread or process at once.
#[repr(C)]
#[derive(Default, Debug)]
pub struct BudgetCell {
    /// GCRA's theoretical arrival time, µs since the Unix epoch (0: a full bucket).
    tat_us: AtomicU64,
    /// No call before this (µs since the Unix epoch), after REQUEST_LIMIT_EXCEEDED.
    paused_until_us: AtomicU64,
    /// The org's usage and allocation from the newest `Sforce-Limit-Info` any client of the
    /// cell read (max 0: not known yet).
    used: AtomicU64,
    max: AtomicU64,
    /// REQUEST_LIMIT_EXCEEDED refusals since the last call that went through: each doubles
    /// the next pause, up to [`LIMIT_PAUSE`].
    refusals: AtomicU64,
}

impl BudgetCell {
    /// The org's usage as last reported (`None` before the first response).
    pub fn usage(&self) -> Option<(u64, u64)> {
        let max = self.max.load(Ordering::Relaxed);
        (max > 0).then(|| (self.used.load(Ordering::Relaxed), max))
    }

    /// Records the org's usage from a `Sforce-Limit-Info` header.
    pub fn record_usage(&self, used: u64, max: u64) {
        self.used.store(used, Ordering::Relaxed);
        self.max.store(max, Ordering::Relaxed);
    }

    /// Calls the bucket holds at `now_us` for a client at `share` (`None` while the
    /// allocation is unknown): what sfsync.status shows.
    pub fn available(&self, share: f64, now_us: u64) -> Option<f64> {
        let (_, max) = self.usage()?;
        let (interval, capacity) = rate(share, max);
        let tat = self.tat_us.load(Ordering::Acquire).max(now_us);
        Some((capacity - (tat - now_us) as f64 / interval).max(0.0))
    }

    /// Forgets everything (the slot is given to another org).
    pub fn clear(&self) {
        for a in [&self.tat_us, &self.paused_until_us, &self.used, &self.max, &self.refusals] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// µs between calls, and calls the bucket holds, at `share` of a daily allocation `max`.
fn rate(share: f64, max: u64) -> (f64, f64) {
    let per_sec = share * max as f64 / DAY;
    let capacity = (per_sec * BURST_SECS).max(1.0);
    (MICROS / per_sec, capacity)
}

/// Where the clients of one org find their common [`BudgetCell`]. Implementations must not
/// block and must be callable from any thread (sfsync's takes a slot of a fixed table in
/// shared memory by compare-and-swap). `key` is the org's Id, or the connection's identity
/// (login URL, client and user) when the login did not say which org it is.
pub trait BudgetShare: Send + Sync {
    /// The org's cell, or `None` (no room, no shared memory): the client paces alone.
    fn cell(&self, key: &str) -> Option<&'static BudgetCell>;
}

/// A [`BudgetShare`] in a [`crate::ClientOptions`].
#[derive(Clone)]
pub struct BudgetHandle(pub Arc<dyn BudgetShare>);

impl fmt::Debug for BudgetHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BudgetHandle")
    }
}

enum CellRef {
    Shared(&'static BudgetCell),
    Own(Box<BudgetCell>),
}

/// A client's view of its org's budget: its share and the cell it spends from.
pub struct Pacer {
    share: f64,
    cell: CellRef,
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer").field("share", &self.share).field("shared", &self.is_shared()).finish()
    }
}

/// Now, in µs since the Unix epoch: a clock every process reads the same.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Pacer {
    /// `share` of the daily allocation, clamped to (0, 1], paced by this client alone.
    pub fn new(share: f64) -> Pacer {
        Pacer { share: share.clamp(1e-6, 1.0), cell: CellRef::Own(Box::default()) }
    }

    /// `share` of the daily allocation, spent from `cell` with every other client using it.
    pub fn shared(share: f64, cell: &'static BudgetCell) -> Pacer {
        Pacer { share: share.clamp(1e-6, 1.0), cell: CellRef::Shared(cell) }
    }

    pub fn share(&self) -> f64 {
        self.share
    }

    /// Whether the state is shared with other clients (else this client paces alone).
    pub fn is_shared(&self) -> bool {
        matches!(self.cell, CellRef::Shared(_))
    }

    pub fn cell(&self) -> &BudgetCell {
        match &self.cell {
            CellRef::Shared(c) => c,
            CellRef::Own(c) => c,
        }
    }

    /// Before a call at `now_us`: `Ok` if it may go now, else how long to wait and why.
    /// The org's usage is the newest any client of the cell read (unknown before the first
    /// response: then calls are allowed).
    pub fn check(&self, now_us: u64) -> Result<(), (Duration, String)> {
        let cell = self.cell();
        let until = cell.paused_until_us.load(Ordering::Acquire);
        if now_us < until {
            return Err((Duration::from_micros(until - now_us), "Salesforce refused requests (REQUEST_LIMIT_EXCEEDED)".into()));
        }
        let Some((used, max)) = cell.usage() else { return Ok(()) };
        if used as f64 >= max as f64 * (1.0 - ORG_RESERVE) {
            // The org is nearly out: wait for the rolling window to free some.
            return Err((Duration::from_secs(60), format!("the org has used {used} of {max} daily API requests")));
        }
        let (interval, capacity) = rate(self.share, max);
        let tolerance = (capacity - 1.0) * interval;
        let mut tat = cell.tat_us.load(Ordering::Acquire);
        loop {
            let base = tat.max(now_us);
            let ahead = (base - now_us) as f64;
            if ahead > tolerance {
                let wait = Duration::from_micros((ahead - tolerance).ceil() as u64);
                return Err((wait, format!("this org's API budget ({:.1}% of {max} daily requests) is spent", self.share * 100.0)));
            }
            let next = base + interval.round().max(1.0) as u64;
            match cell.tat_us.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }

    /// After REQUEST_LIMIT_EXCEEDED at `now_us`: no calls for `d` (by any client of the cell).
    pub fn pause(&self, now_us: u64, d: Duration) {
        self.cell().paused_until_us.fetch_max(now_us + d.as_micros() as u64, Ordering::AcqRel);
    }

    /// After REQUEST_LIMIT_EXCEEDED at `now_us` with Salesforce's `message`: pauses every
    /// client of the cell for the server's `retry_after`, else for a pause that starts short
    /// and doubles with each refusal in a row, up to [`LIMIT_PAUSE`]. One refusal (a burst
    /// of concurrent long requests, or an allocation that frees a minute later) costs
    /// seconds, not minutes; an org that stays out is probed ever more rarely. Returns the pause.
    pub fn pause_after_refusal(&self, now_us: u64, message: &str, retry_after: Option<Duration>) -> Duration {
        let refusals = self.cell().refusals.fetch_add(1, Ordering::AcqRel);
        let d = retry_after.unwrap_or_else(|| {
            let first = if message.contains("Concurrent") { CONCURRENT_LIMIT_FIRST_PAUSE } else { TOTAL_LIMIT_FIRST_PAUSE };
            first.saturating_mul(1 << refusals.min(16) as u32).min(LIMIT_PAUSE)
        });
        self.pause(now_us, d);
        d
    }

    /// A call went through: the next refusal starts the pauses short again.
    pub fn went_through(&self) {
        let refusals = &self.cell().refusals;
        if refusals.load(Ordering::Relaxed) != 0 {
            refusals.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000 * S;

    fn paced(share: f64, used: u64, max: u64) -> Pacer {
        let p = Pacer::new(share);
        p.cell().record_usage(used, max);
        p
    }

    #[test]
    fn unknown_allocation_allows_calls() {
        let p = Pacer::new(0.5);
        assert!(p.check(T0).is_ok());
    }

    #[test]
    fn bursts_one_hour_of_share_then_paces_at_the_daily_rate() {
        // 86 400 requests a day at 50%: 0.5 request/s, an hour's burst = 1800.
        let p = paced(0.5, 0, 86_400);
        let allowed = (0..5000).take_while(|_| p.check(T0).is_ok()).count();
        assert_eq!(allowed, 1800);
        let (wait, why) = p.check(T0).unwrap_err();
        assert!(wait <= Duration::from_secs(2) && wait > Duration::ZERO, "{wait:?}");
        assert!(why.contains("50.0%"), "{why}");
        // Ten seconds later, five more calls (0.5/s).
        let more = (0..100).take_while(|_| p.check(T0 + 10 * S).is_ok()).count();
        assert_eq!(more, 5);
        assert!(p.cell().available(0.5, T0 + 10 * S).is_some_and(|a| a < 1.0));
    }

    #[test]
    fn a_day_never_takes_much_more_than_the_share() {
        let max = 100_000u64;
        let p = paced(0.25, 0, max);
        // One attempt a second for a day.
        let calls = (0..86_400u64).filter(|s| p.check(T0 + s * S).is_ok()).count();
        let share = 0.25 * max as f64;
        assert!(calls as f64 <= share * (1.0 + 1.0 / 24.0) + 1.0, "{calls} calls vs share {share}");
        assert!(calls as f64 >= share * 0.95, "{calls} calls vs share {share}");
    }

    #[test]
    fn stops_when_the_org_is_nearly_out_and_after_a_limit_error() {
        let p = paced(1.0, 96_000, 100_000);
        assert!(p.check(T0).is_err());
        p.cell().record_usage(10, 100_000);
        assert!(p.check(T0).is_ok());
        p.pause(T0, LIMIT_PAUSE);
        let (wait, _) = p.check(T0).unwrap_err();
        assert_eq!(wait, LIMIT_PAUSE);
        assert!(p.check(T0 + LIMIT_PAUSE.as_micros() as u64).is_ok());
    }

    #[test]
    fn refusals_in_a_row_pause_longer_each_time_and_a_call_that_goes_through_resets() {
        let p = paced(1.0, 10, 100_000);
        let total = "TotalRequests Limit exceeded.";
        let pauses: Vec<u64> = (0..6).map(|i| p.pause_after_refusal(T0 + i * 1_000 * S, total, None).as_secs()).collect();
        assert_eq!(pauses, [30, 60, 120, 240, 300, 300]);
        p.went_through();
        assert_eq!(p.pause_after_refusal(T0 + 9_000 * S, total, None), TOTAL_LIMIT_FIRST_PAUSE);
        // Too many concurrent long requests lifts sooner; the server's Retry-After wins.
        p.went_through();
        assert_eq!(p.pause_after_refusal(T0 + 10_000 * S, "ConcurrentPerOrgLongTxn Limit exceeded.", None).as_secs(), 5);
        assert_eq!(p.pause_after_refusal(T0 + 11_000 * S, total, Some(Duration::from_secs(7))).as_secs(), 7);
        // Every client of the cell waits out the pause.
        assert!(p.check(T0 + 11_000 * S + 6 * S).is_err());
        assert!(p.check(T0 + 11_000 * S + 7 * S).is_ok());
    }

    #[test]
    fn clients_of_one_cell_share_one_bucket_and_one_pause() {
        static CELL: BudgetCell = BudgetCell {
            tat_us: AtomicU64::new(0),
            paused_until_us: AtomicU64::new(0),
            used: AtomicU64::new(0),
            max: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        };
        // 2 400 a day at 50%: 50 an hour.
        let a = Pacer::shared(0.5, &CELL);
        let b = Pacer::shared(0.5, &CELL);
        assert!(a.is_shared());
        b.cell().record_usage(0, 2_400); // one client's response tells the other the allocation
        let from_a = (0..40).filter(|_| a.check(T0).is_ok()).count();
        let from_b = (0..40).filter(|_| b.check(T0).is_ok()).count();
        assert_eq!((from_a, from_b), (40, 10), "one bucket of 50, not 50 each");
        a.pause(T0 + 3_600 * S, LIMIT_PAUSE);
        assert!(b.check(T0 + 3_601 * S).unwrap_err().1.contains("REQUEST_LIMIT_EXCEEDED"));
    }

    #[test]
    fn threads_racing_on_one_cell_never_take_more_than_it_holds() {
        let cell: &'static BudgetCell = Box::leak(Box::default());
        cell.record_usage(0, 24_000); // 50% → 500 an hour
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let p = Pacer::shared(0.5, cell);
                        (0..200).filter(|_| p.check(T0).is_ok()).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(allowed, 500);
    }
}
