//! Bulk API 2.0 query work: snapshots the IDs of the matching records; pages are rendered from
//! that snapshot when they are fetched (see `format::render_rows`).

use super::{JobState, Org};
use crate::soql::eval::{execute, Plan};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Runs a query job: snapshot the matching IDs (on a blocking thread), then JobComplete.
pub fn run_query(org: &Org, id: &str, plan: &Plan, include_deleted: bool) {
    let started = Instant::now();
    let now = org.clock.now_ms();
    let mut cancel = None;
    org.update_job(id, |j| {
        if j.state != JobState::UploadComplete {
            return;
        }
        j.state = JobState::InProgress;
        j.modstamp_ms = now;
        cancel = Some(j.cancel.clone());
    });
    let Some(cancel) = cancel else { return };
    if cancel.load(Ordering::Relaxed) {
        return;
    }
    let seqs = {
        let store = org.store.read();
        execute(plan, org.schema, &store, include_deleted)
    };
    let ms = started.elapsed().as_millis() as u64;
    org.update_job(id, |j| {
        if j.state != JobState::InProgress {
            return; // aborted meanwhile
        }
        j.processed = seqs.len() as u64;
        j.seqs = Some(Arc::new(seqs));
        j.state = JobState::JobComplete;
        j.total_ms = ms;
        j.active_ms = ms;
        j.modstamp_ms = org.clock.now_ms();
    });
}
