//! Sources: every way records arrive from Salesforce. Each reads (HTTP, outside any
//! transaction in the worker) and hands batches to the sink, `sync::apply`, with the mark
//! they advance; none writes a table itself.
//!
//! | source | reads | when |
//! |---|---|---|
//! | `poll` | SOQL queryAll on SystemModstamp after the mark, paged; one Bulk job for a mass update | every `sfsync.pull_interval`, or when change events ask |
//! | `events` | Change Data Capture events (listeners in `sync::cdc`) | as they arrive |
//! | `backfill` | REST query or a Bulk API 2.0 query job, resumable | a new mapping, `sfsync.backfill()` |
//! | `bulk` | a Bulk query's CSV, streamed by a reader thread | for `poll` and `backfill` |
//! | `filter` | Ids that left the mapping's filter | after each poll |
//! | `reconcile` | getDeleted windows; every Id when one was missed | `sfsync.delete_check_interval`, `sfsync.reconcile()` |
//! | `formulas` | Id + calculated fields | `sfsync.formula_refresh_interval`, `sfsync.refresh_formulas()` |
//! | `retry` | records whose apply failed, by Id | when their backoff is over (`record_errors.next_retry_at`) |

pub mod backfill;
pub mod bulk;
pub mod events;
pub mod filter;
pub mod formulas;
pub mod poll;
pub mod reconcile;
pub mod retry;
