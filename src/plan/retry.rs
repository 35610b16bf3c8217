//! When failed work is tried again: one backoff formula for everything that retries, and
//! what push settlement does with a rejected record.
//!
//! - a **record** Salesforce rejected with a transient error (UNABLE_TO_LOCK_ROW, a 5xx in a
//!   Bulk row...) waits `RECORD.after(attempts)`; after `sfsync.max_attempts` it is parked,
//!   and a permanent rejection is parked at once: both wait in sfsync.errors for the row to
//!   change, `sfsync.retry()` or `sfsync.discard()`;
//! - a **connection** whose request failed as a whole (transport error, expired session,
//!   request limit) waits `CONNECTION.after(failures)` — or what Salesforce asked for
//!   (Retry-After, the API budget) — before the worker calls it again; its records lose no
//!   attempt;
//! - a record whose **parent** is not in Salesforce yet is looked at again after
//!   `PARENT_WAIT`.

use std::time::Duration;

/// Exponential backoff: `base · 2^n`, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// A rejected record: 2 s after the first attempt, 4 s, ... at most an hour.
    pub const RECORD: Backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(3600) };
    /// A failing connection: 1 s after the first failure, 2 s, ... at most 30 s, so an
    /// outage is noticed soon after it ends.
    pub const CONNECTION: Backoff = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) };

    /// The wait after the `n`th failure (or attempt).
    pub fn after(&self, n: u32) -> Duration {
        // 2^20 · base is past any cap we use: no overflow, no need to go further.
        self.base.saturating_mul(1u32 << n.min(20)).min(self.cap)
    }
}

/// How long a record waits for its parent before it is looked at again.
pub const PARENT_WAIT: Duration = Duration::from_secs(5);

/// What settlement does with a record Salesforce rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Try again after this long (the entry stays pending).
    Retry { after: Duration },
    /// Stop: the entry is parked as failed until the row changes or a person acts. The
    /// message says why when it is not Salesforce's own (a transient error that never
    /// cleared).
    Park { message: Option<String> },
}

/// A rejection after `attempts` attempts (this one included), with `sfsync.max_attempts`.
pub fn rejected(transient: bool, attempts: i32, max_attempts: i32, message: &str) -> Rejection {
    if !transient {
        Rejection::Park { message: None }
    } else if attempts >= max_attempts {
        Rejection::Park { message: Some(format!("gave up after {attempts} attempts: {message}")) }
    } else {
        Rejection::Retry { after: Backoff::RECORD.after(attempts.max(0) as u32) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let secs = |n| Backoff::RECORD.after(n).as_secs();
        assert_eq!([secs(0), secs(1), secs(2), secs(5)], [1, 2, 4, 32]);
        assert_eq!(secs(12), 3600, "capped at an hour");
        assert_eq!(secs(u32::MAX), 3600, "no overflow for absurd counts");
        let ms = |n| Backoff::CONNECTION.after(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(5)], [1000, 2000, 16000]);
        assert_eq!(ms(6), 30_000, "a connection never waits more than 30 s");
    }

    #[test]
    fn a_permanent_rejection_is_parked_at_once_with_salesforces_message() {
        assert_eq!(rejected(false, 1, 5, "REQUIRED_FIELD_MISSING"), Rejection::Park { message: None });
    }

    #[test]
    fn a_transient_rejection_retries_with_backoff_until_max_attempts() {
        assert_eq!(rejected(true, 1, 5, "lock"), Rejection::Retry { after: Duration::from_secs(2) });
        assert_eq!(rejected(true, 4, 5, "lock"), Rejection::Retry { after: Duration::from_secs(16) });
        assert_eq!(
            rejected(true, 5, 5, "unable to lock row"),
            Rejection::Park { message: Some("gave up after 5 attempts: unable to lock row".into()) }
        );
    }
}
