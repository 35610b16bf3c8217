//! The lock that keeps a write-through change from being applied back from its own echo.
//!
//! The write-through trigger takes a transaction-scoped advisory lock on (mapping, key)
//! before its call, for the old and the new key on a key change: while the user's
//! transaction is open, Salesforce may already announce the change (a change event, a poll
//! page) whose row is not committed yet. Every apply path asks [`LOCKED`] per record without
//! waiting and without keeping the lock (the worker must never block on, nor block, a user's
//! statement): a record whose key is locked is deferred — not applied now, re-read later —
//! and once the transaction ended it is recognised as our own (the row is there with the same
//! values, the IS DISTINCT FROM guards change nothing).
//!
//! The lock is `(mapping id, hashtext(key as text))` in the two-int advisory lock space; a
//! hash collision only defers another record for the length of a transaction.

/// Takes the lock for `$2` (a key as text) of mapping `$1`, until the transaction ends.
pub const TAKE: &str = "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))";

/// SQL expression: true when the key `{key}` (text) of mapping `{mapping}` is locked by a
/// write-through transaction. Takes the shared lock and gives it back at once: a free lock
/// is never kept, a held one never waited for.
pub fn locked(mapping: &str, key: &str) -> String {
    format!(
        "CASE WHEN pg_catalog.pg_try_advisory_lock_shared({mapping}, pg_catalog.hashtext({key}))
              THEN NOT pg_catalog.pg_advisory_unlock_shared({mapping}, pg_catalog.hashtext({key})) ELSE true END"
    )
}
