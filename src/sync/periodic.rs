//! Per-mapping work on a timer rather than on changes: the delete check (getDeleted windows,
//! full reconciliation when one was missed; `sfsync.delete_check_interval`), records whose
//! apply failed (read again when their backoff is over) and the refresh of formula and
//! roll-up fields (`sfsync.formula_refresh_interval`). How long ago each last ran
//! comes from sync_state with the mappings, so a restarted worker keeps the rhythm.

use super::clients::{self, Call, Step};
use super::source::{formulas, reconcile, retry};
use super::{Ctx, Mapping};
use crate::error::SyncError;
use crate::guc;
use crate::plan::formulas::{calculated, due};
use pgrx::prelude::*;

/// Runs what is due for the pulled mappings that are not backfilling.
pub fn run_due(mappings: &[Mapping], backfilling: &[i32]) {
    let deletes_every = guc::DELETE_CHECK_INTERVAL_S.get() as i64;
    let formulas_every = guc::FORMULA_REFRESH_INTERVAL_S.get() as i64;
    for m in mappings.iter().filter(|m| m.pulls() && !backfilling.contains(&m.id)) {
        if crate::worker::shutdown_requested() {
            break;
        }
        if due(m.deletes_age, deletes_every) {
            match clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "delete check"), || reconcile::check(Ctx::Worker, m)) {
                Call::Done(s) if s.deleted > 0 || s.reconciled.is_some() => {
                    log!("sfsync: delete check of {}: {}", m.table, serde_json::to_string(&s).unwrap_or_default());
                }
                Call::Failed { error, retry_in, .. } => failed(m, "delete check", error, retry_in),
                Call::Done(_) | Call::Waiting => {}
            }
        }
        // Records whose apply failed, read again by Id when their backoff is over.
        match clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "pull retry"), || retry::pass(Ctx::Worker, m, mappings)) {
            Call::Done(s) if s.fetched > 0 => {
                log!(
                    "sfsync: {} failed record(s) of {} read again: {} applied, {} still failing",
                    s.fetched,
                    m.table,
                    s.fetched - s.failed,
                    s.failed
                );
            }
            Call::Failed { error, retry_in, .. } => failed(m, "pull retry", error, retry_in),
            Call::Done(_) | Call::Waiting => {}
        }
        if !calculated(&m.columns).is_empty() && due(m.formulas_age, formulas_every) {
            match clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "formula refresh"), || formulas::refresh(Ctx::Worker, m)) {
                Call::Done(s) if s.updated > 0 => {
                    debug1!("sfsync: formula refresh of {}: {} of {} rows changed", m.table, s.updated, s.fetched);
                }
                Call::Failed { error, retry_in, .. } => failed(m, "formula refresh", error, retry_in),
                Call::Done(_) | Call::Waiting => {}
            }
        }
    }
}

fn failed(m: &Mapping, what: &str, e: SyncError, delay: std::time::Duration) {
    warning!("sfsync: {what} of {} failed, retrying in {delay:?}: {e}", m.table);
    let msg = format!("{what}: {e}");
    let _ = crate::worker::tx::run(|| {
        super::set_mapping_error(m.id, &msg)?;
        clients::flush_stats()
    });
}
