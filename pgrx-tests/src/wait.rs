//! Waiting for asynchronous sync: a test states what it waits for, the harness polls.
//!
//! [`until`] is the one polling loop of the harness; the domain helpers
//! ([`DbExt`](crate::DbExt), [`SfRest::until_record`](crate::SfRest::until_record),
//! [`Cluster::wait_for_log`](crate::Cluster::wait_for_log), ...) are built on it.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How long the domain helpers wait: long enough for a loaded machine, short enough that a
/// sync that never happens fails the test in reasonable time.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a probe of [`until`] returns: done (with a value) or not yet (with what it saw).
///
/// * `bool`: `true` is done; the last value seen is `false`.
/// * `Option<T>`: `Some(v)` is done with `v`.
/// * `Result<T, E>`: `Ok(v)` is done with `v`; `Err(e)` says what was seen instead (a
///   message such as `"12 of 30 rows"`, or the error of a connection attempt).
pub trait Probe {
    type Value;
    /// `Ok(value)` when the condition holds, else `Err(what was seen)`.
    fn check(self) -> Result<Self::Value, String>;
}

impl Probe for bool {
    type Value = ();
    fn check(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".into())
        }
    }
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".into())
    }
}

impl<T, E: Display> Probe for Result<T, E> {
    type Value = T;
    fn check(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Polls `probe` (every 100 ms, backing off to 500 ms) until it reports done, and returns its
/// value. After `timeout` it panics with `what` and the last thing the probe saw.
///
/// ```no_run
/// # use sfsync_e2e::{until, WAIT};
/// let n: i64 = until("3 rows", WAIT, || {
///     let n = 3; // query something
///     if n == 3 { Ok(n) } else { Err(format!("{n} rows")) }
/// });
/// ```
pub fn until<P: Probe>(what: &str, timeout: Duration, mut probe: impl FnMut() -> P) -> P::Value {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match probe().check() {
            Ok(v) => return v,
            Err(seen) => {
                if Instant::now() >= deadline {
                    panic!("waited {:?} ({attempts} attempts) for {what}; last seen: {seen}", start.elapsed());
                }
            }
        }
        std::thread::sleep(interval.min(deadline.saturating_duration_since(Instant::now())));
        interval = (interval * 3 / 2).min(Duration::from_millis(500));
    }
}
