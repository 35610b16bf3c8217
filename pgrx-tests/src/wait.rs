//! Polling helpers: sync is asynchronous, so tests wait for a condition with a deadline.

use std::time::{Duration, Instant};

/// Polls `cond` every `interval` until it returns true; panics after `timeout`.
pub fn wait_until(timeout: Duration, interval: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("condition not met within {timeout:?}");
        }
        std::thread::sleep(interval);
    }
}

/// Polls `f` (every 100 ms, backing off to 500 ms) until it returns `Ok`, and returns the value.
/// Panics after `timeout` with the last error message.
///
/// ```no_run
/// # use std::time::Duration;
/// # use sfsync_e2e::eventually;
/// let n: i64 = eventually(Duration::from_secs(10), || {
///     let n = 3; // query something
///     if n == 3 { Ok(n) } else { Err(format!("only {n} rows")) }
/// });
/// ```
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match f() {
            Ok(v) => return v,
            Err(msg) => {
                if Instant::now() >= deadline {
                    panic!("eventually: still failing after {:?} ({attempts} attempts): {msg}", start.elapsed());
                }
            }
        }
        std::thread::sleep(interval.min(deadline.saturating_duration_since(Instant::now())));
        interval = (interval * 3 / 2).min(Duration::from_millis(500));
    }
}
