//! Push: claimed outbox entries -> Salesforce -> recorded results.
//!
//! 1. claim (one transaction): lock a batch with FOR UPDATE SKIP LOCKED, stamp a
//!    visibility timeout, read the rows' current values and sfid;
//! 2. send (no transaction): coalesce per record, then sObject Collections calls:
//!    update by Id when the Salesforce Id is known, otherwise upsert on the external id
//!    holding the Postgres key (so a replay after a crash never duplicates);
//! 3. settle (one transaction): delete settled entries, write new Ids back to `sfid`
//!    without capturing them, park permanent failures in sfsync.errors, back off
//!    transient ones, release what wasn't attempted (`plan::retry` decides when).
//!
//! `claim`, `send` and `settle` hold the three steps; `pass` plans between them (coalesce,
//! parents first, lookups filled from the parent's Salesforce Id).

pub mod bulk_write;
mod claim;
mod link;
pub mod rollback;
mod send;
mod settle;
pub mod write_through;

use crate::error::Result;
use crate::plan::coalesce::{coalesce, Change, Write};
use crate::plan::relations::{parents_first, resolve, Parent, Resolution};
use crate::sync::clients::{self, Call, Step};
use crate::sync::{Ctx, Mapping};
use serde::Serialize;
use std::collections::HashMap;

pub use settle::release_stale_claims;

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PushSummary {
    pub claimed: usize,
    pub records: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub retrying: usize,
    pub deferred: usize,
}

/// What became of one record's change.
#[derive(Debug)]
enum Outcome {
    Done {
        sfid: Option<String>,
    },
    Rejected {
        code: String,
        message: String,
        fields: Vec<String>,
        transient: bool,
    },
    /// Not attempted (the connection failed as a whole, or a parent is still on its way):
    /// released without counting an attempt.
    Deferred,
    /// Not attempted because of its parent; retried soon, with the reason in sfsync.errors.
    Blocked {
        code: &'static str,
        message: String,
    },
}

struct Result_ {
    change: Change,
    operation: &'static str,
    outcome: Outcome,
}

/// One push pass over at most `sfsync.batch_size` entries of these mappings (which must
/// include the parents of any mapping pushed), optionally of one of them only.
pub fn pass(ctx: Ctx, mappings: &[Mapping], only: Option<i32>) -> Result<PushSummary> {
    let mappings: HashMap<i32, Mapping> = mappings.iter().map(|m| (m.id, m.clone())).collect();
    let claimed = ctx.tx(|| claim::claim(only, &mappings))?;
    let mut summary = PushSummary { claimed: claimed.entries.len(), ..Default::default() };
    if claimed.entries.is_empty() {
        return Ok(summary);
    }
    let changes = coalesce(claimed.entries);
    summary.records = changes.len();
    let mut by_mapping: HashMap<i32, Vec<Change>> = HashMap::new();
    for mut c in changes {
        if let Some(sfid) = claimed.sfids.get(&(c.mapping_id, c.pk.clone())) {
            c.sfid = Some(sfid.clone());
        }
        by_mapping.entry(c.mapping_id).or_default().push(c);
    }
    // Parents first, so children can carry the Ids their parents just got.
    let mut ids: Vec<i32> = by_mapping.keys().copied().collect();
    ids.sort();
    let parents: HashMap<i32, Vec<i32>> = mappings.values().map(|m| (m.id, m.parents.iter().map(|p| p.mapping_id).collect())).collect();
    let mut known: HashMap<(i32, String), String> = claimed.parent_sfids;
    let mut failed_now: HashMap<(i32, String), String> = HashMap::new();
    let mut waiting_now: std::collections::HashSet<(i32, String)> = std::collections::HashSet::new();

    let mut results: Vec<Result_> = Vec::new();
    let mut conn_errors: HashMap<String, Option<String>> = HashMap::new();
    // (mapping, its push failure; None: its push went through, clearing an earlier one)
    let mut table_errors: Vec<(i32, Option<String>)> = Vec::new();
    for mid in parents_first(&ids, &parents) {
        let Some(changes) = by_mapping.remove(&mid) else { continue };
        let Some(m) = mappings.get(&mid) else { continue };
        let mut ready = Vec::with_capacity(changes.len());
        let mut held = Vec::new();
        for mut c in changes {
            if let (Write::Upsert(payload), false) = (&c.write, m.parents.is_empty()) {
                let state = |pm: i32, key: &str| {
                    let k = (pm, key.to_string());
                    if let Some(id) = known.get(&k) {
                        Parent::Known(id.clone())
                    } else if let Some(why) = failed_now.get(&k) {
                        Parent::Failed(why.clone())
                    } else if waiting_now.contains(&k) {
                        Parent::Pending
                    } else {
                        claimed.parents.get(&k).cloned().unwrap_or(Parent::Missing)
                    }
                };
                match resolve(payload, &m.parents, state) {
                    Resolution::Ready(p) => c.write = Write::Upsert(p),
                    Resolution::Pending => {
                        held.push(Result_ { change: c, operation: "", outcome: Outcome::Deferred });
                        continue;
                    }
                    Resolution::Blocked { code, message } => {
                        held.push(Result_ { change: c, operation: "upsert", outcome: Outcome::Blocked { code, message } });
                        continue;
                    }
                }
            }
            ready.push(c);
        }
        // Rows of a mapping with `match` link to the record they match instead of creating.
        let ready = if m.match_keys.is_empty() || ready.is_empty() {
            ready
        } else {
            let (ready, unsent) = link::link(ctx, m, ready)?;
            held.extend(unsent);
            ready
        };
        let deferred = |ready: Vec<Change>| -> Vec<Result_> {
            ready.into_iter().map(|c| Result_ { change: c, operation: "", outcome: Outcome::Deferred }).collect()
        };
        let mut sent_results = if ready.is_empty() {
            Vec::new()
        } else {
            let step = Step::new(m.id, "push");
            match clients::call(ctx, &m.connection, step, || send::send(&*clients::client(ctx, &m.connection)?, m, ready.clone())) {
                Call::Done(r) => {
                    conn_errors.insert(m.connection.clone(), None);
                    table_errors.push((m.id, None));
                    r
                }
                Call::Waiting => deferred(ready),
                Call::Failed { error, retry_in, connection_wide } => {
                    let msg = error.to_string();
                    pgrx::warning!("sfsync: push to {} for {} failed, retrying in {retry_in:?}: {msg}", m.sobject, m.table);
                    // The connection's trouble shows on the connection; a refusal of this
                    // table's request shows on the table (and holds up only its records).
                    if connection_wide {
                        conn_errors.insert(m.connection.clone(), Some(msg));
                    } else {
                        table_errors.push((m.id, Some(format!("push: {msg}"))));
                    }
                    deferred(ready)
                }
            }
        };
        sent_results.extend(held);
        // What the children of this mapping will see.
        for r in &sent_results {
            let k = (r.change.mapping_id, r.change.pk.clone());
            match &r.outcome {
                Outcome::Done { sfid: Some(id) } if matches!(r.change.write, Write::Upsert(_)) => {
                    known.insert(k, id.clone());
                }
                Outcome::Rejected { code, message, transient: false, .. } => {
                    failed_now.insert(k, format!("{code}: {message}"));
                }
                Outcome::Done { .. } => {}
                _ => {
                    waiting_now.insert(k);
                }
            }
        }
        results.extend(sent_results);
    }
    ctx.tx(|| {
        for (name, err) in &conn_errors {
            clients::set_connection_error(name, err.as_deref())?;
        }
        for (id, err) in &table_errors {
            settle::set_push_error(*id, err.as_deref())?;
        }
        settle::settle(&results, &claimed.attempts, &mappings, &mut summary)?;
        clients::flush_stats()
    })?;
    Ok(summary)
}
