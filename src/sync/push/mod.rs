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
//! parents first, lookups filled from the parent's Salesforce Id). Small batches of several
//! mappings on one connection share one Composite request (`together`, grouped by
//! `plan::push_groups`), so a pass over many tables costs a call per five tables.

pub mod bulk_write;
mod claim;
mod link;
pub mod rollback;
mod send;
mod settle;
mod together;
pub mod write_through;

use crate::error::Result;
use crate::plan::coalesce::{coalesce, Change, Write};
use crate::plan::push_groups::{schedule, Batch, Send};
use crate::plan::relations::{resolve, Parent, Resolution};
use crate::sync::clients::{self, Call, Step};
use crate::sync::{Ctx, Mapping};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

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

/// The failures a pass shows when it records its results: a connection's (None: a call went
/// through, clearing an earlier one) and a mapping's own push failure.
#[derive(Default)]
struct Shown {
    connections: HashMap<String, Option<String>>,
    /// (mapping, its push failure; None: its push went through, clearing an earlier one)
    tables: Vec<(i32, Option<String>)>,
}

impl Shown {
    fn went_through(&mut self, ms: &[&Mapping]) {
        for m in ms {
            self.connections.insert(m.connection.clone(), None);
            self.tables.push((m.id, None));
        }
    }

    /// A request of these mappings failed as a whole: the connection's trouble shows on the
    /// connection; a refusal of the request shows on the tables (and holds up only theirs).
    fn failed(&mut self, ms: &[&Mapping], error: &crate::error::SyncError, retry_in: std::time::Duration, connection_wide: bool) {
        let msg = error.to_string();
        for m in ms {
            pgrx::warning!("sfsync: push to {} for {} failed, retrying in {retry_in:?}: {msg}", m.sobject, m.table);
            if connection_wide {
                self.connections.insert(m.connection.clone(), Some(msg.clone()));
            } else {
                self.tables.push((m.id, Some(format!("push: {msg}"))));
            }
        }
    }
}

/// Records not attempted: released without counting an attempt.
fn deferred(changes: Vec<Change>) -> Vec<Result_> {
    changes.into_iter().map(|c| Result_ { change: c, operation: "", outcome: Outcome::Deferred }).collect()
}

/// One mapping's ready changes by its own path (`send`: Collections calls or Bulk). With
/// `may_leave`, a Bulk job is only started and returned, to be finished (`finish_alone`)
/// after the pass's next batch went out.
fn send_alone(ctx: Ctx, m: &Mapping, ready: Vec<Change>, shown: &mut Shown, may_leave: bool) -> (Vec<Result_>, Option<send::Started>) {
    if ready.is_empty() {
        return (Vec::new(), None);
    }
    let step = Step::new(m.id, "push");
    // A call not made or failed releases the entries, which needs no values: the changes
    // themselves go to the call, so a big batch's values are not held twice.
    let released: Vec<Change> = ready.iter().map(Change::without_values).collect();
    let run = move || {
        let client = clients::client(ctx, &m.connection)?;
        if may_leave {
            send::start(&client, m, ready)
        } else {
            send::send(&client, m, ready).map(send::Sending::Done)
        }
    };
    match clients::call(ctx, &m.connection, step, run) {
        Call::Done(send::Sending::Done(r)) => {
            shown.went_through(&[m]);
            (r, None)
        }
        Call::Done(send::Sending::Started(job)) => (Vec::new(), Some(job)),
        Call::Waiting => (deferred(released), None),
        Call::Failed { error, retry_in, connection_wide } => {
            shown.failed(&[m], &error, retry_in, connection_wide);
            (deferred(released), None)
        }
    }
}

/// Waits for a Bulk job `send_alone` left processing: its results (a Bulk job's writes are
/// not noted for the echo book: see `send::note_written`), or its changes released (a job
/// that failed or could not be waited for goes again with a later pass; an upsert on the
/// external ID or an update by Id sent twice is the same write).
fn finish_alone(ctx: Ctx, m: &Mapping, started: send::Started, shown: &mut Shown) -> Vec<Result_> {
    let send::Started { mut done, changes, operation, job } = started;
    let run = || bulk_write::finish(&*clients::client(ctx, &m.connection)?, job);
    match clients::call_to_finish(ctx, &m.connection, Step::new(m.id, "push"), run) {
        Call::Done(res) => {
            shown.went_through(&[m]);
            done.extend(send::zip_results(changes.into_iter(), res, operation));
        }
        Call::Waiting => done.extend(deferred(changes)),
        Call::Failed { error, retry_in, connection_wide } => {
            shown.failed(&[m], &error, retry_in, connection_wide);
            done.extend(deferred(changes));
        }
    }
    done
}

/// What the pass knows of parent records while it sends: the children's lookups.
struct Parents {
    known: HashMap<(i32, String), String>,
    failed_now: HashMap<(i32, String), String>,
    waiting_now: HashSet<(i32, String)>,
    claimed: HashMap<(i32, String), Parent>,
}

impl Parents {
    /// The changes of `m` that can go now (lookups filled with their parents' Ids), and the
    /// results of those that wait for a parent.
    fn resolve(&self, m: &Mapping, changes: Vec<Change>) -> (Vec<Change>, Vec<Result_>) {
        let mut ready = Vec::with_capacity(changes.len());
        let mut held = Vec::new();
        for mut c in changes {
            if let (Write::Upsert(payload), false) = (&c.write, m.parents.is_empty()) {
                let state = |pm: i32, key: &str| {
                    let k = (pm, key.to_string());
                    if let Some(id) = self.known.get(&k) {
                        Parent::Known(id.clone())
                    } else if let Some(why) = self.failed_now.get(&k) {
                        Parent::Failed(why.clone())
                    } else if self.waiting_now.contains(&k) {
                        Parent::Pending
                    } else {
                        self.claimed.get(&k).cloned().unwrap_or(Parent::Missing)
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
        (ready, held)
    }

    /// What the children of these records will see.
    fn learn(&mut self, results: &[Result_]) {
        for r in results {
            let k = (r.change.mapping_id, r.change.pk.clone());
            match &r.outcome {
                Outcome::Done { sfid: Some(id) } if matches!(r.change.write, Write::Upsert(_)) => {
                    self.known.insert(k, id.clone());
                }
                Outcome::Rejected { code, message, transient: false, .. } => {
                    self.failed_now.insert(k, format!("{code}: {message}"));
                }
                Outcome::Done { .. } => {}
                _ => {
                    self.waiting_now.insert(k);
                }
            }
        }
    }
}

/// How long a pass goes on claiming batch after batch while their Bulk jobs overlap, before
/// the worker turns to its other work (pulls, change events) again.
const PIPELINE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// One batch of a pass: claimed, planned and sent, its Bulk job perhaps still processing.
struct Round {
    attempts: HashMap<i64, i32>,
    results: Vec<Result_>,
    shown: Shown,
    /// The last send of the round, a Bulk job Salesforce is processing (mapping, job).
    started: Option<(i32, send::Started)>,
    /// The records claimed, (mapping, key).
    records: HashSet<(i32, String)>,
    /// The last outbox entry its claim read in order.
    last: Option<i64>,
}

/// One push pass: batches of at most `sfsync.batch_size` entries of these mappings (which
/// must include the parents of any mapping pushed), optionally of one of them only. A batch
/// that ends in a Bulk job is pipelined in the worker: while Salesforce processes the job,
/// the next batch is claimed and sent (records with a change on its way are left for later,
/// so a record's changes stay in order), then the job's results are settled. Backlogs drain
/// at the pace of the database's work, not of the jobs'. A person's `run_once` pushes one
/// batch, as before.
pub fn pass(ctx: Ctx, mappings: &[Mapping], only: Option<i32>) -> Result<PushSummary> {
    let mappings: HashMap<i32, Mapping> = mappings.iter().map(|m| (m.id, m.clone())).collect();
    let mut summary = PushSummary::default();
    let began = std::time::Instant::now();
    let mut processing: Option<Round> = None;
    loop {
        let next = round(ctx, &mappings, only, processing.as_ref(), &mut summary);
        // The previous batch's job had the time of this batch's claim and send.
        if let Some(prev) = processing.take() {
            if let Err(e) = finish(ctx, prev, &mappings, &mut summary) {
                // This batch's job is under way: its results are still worth settling.
                if let Ok(Some(r)) = next {
                    let _ = finish(ctx, r, &mappings, &mut summary);
                }
                return Err(e);
            }
        }
        let go_on = ctx == Ctx::Worker && began.elapsed() < PIPELINE_FOR && !crate::worker::shutdown_requested();
        match next? {
            None => break,
            Some(r) if r.started.is_some() && go_on => processing = Some(r),
            Some(r) => {
                finish(ctx, r, &mappings, &mut summary)?;
                break;
            }
        }
    }
    Ok(summary)
}

/// Claims, plans and sends one batch; None when there was nothing to claim. After a round
/// still unsettled (`before`), the claim starts past the last entry that round's claim read,
/// and changes of its records are released: they go after it, so a record's writes reach
/// Salesforce in order.
fn round(
    ctx: Ctx,
    mappings: &HashMap<i32, Mapping>,
    only: Option<i32>,
    before: Option<&Round>,
    summary: &mut PushSummary,
) -> Result<Option<Round>> {
    let claimed = ctx.tx(|| claim::claim(only, before.and_then(|r| r.last), mappings))?;
    if claimed.entries.is_empty() {
        return Ok(None);
    }
    summary.claimed += claimed.entries.len();
    let upto = claimed.last;
    let changes = coalesce(claimed.entries);
    summary.records += changes.len();
    let records: HashSet<(i32, String)> = changes.iter().map(|c| (c.mapping_id, c.pk.clone())).collect();
    let (later, changes): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(|c| before.is_some_and(|r| r.records.contains(&(c.mapping_id, c.pk.clone()))));
    let mut by_mapping: HashMap<i32, Vec<Change>> = HashMap::new();
    for mut c in changes {
        if let Some(sfid) = claimed.sfids.get(&(c.mapping_id, c.pk.clone())) {
            c.sfid = Some(sfid.clone());
        }
        by_mapping.entry(c.mapping_id).or_default().push(c);
    }
    // Parents first, so children can carry the Ids their parents just got; small batches of
    // several mappings on one connection share a Composite request (plan::push_groups).
    let mut ids: Vec<i32> = by_mapping.keys().copied().collect();
    ids.sort();
    let batches: Vec<Batch> = ids.iter().filter_map(|id| Some(together::batch(ctx, mappings.get(id)?, by_mapping.get(id)?))).collect();
    let mut parents =
        Parents { known: claimed.parent_sfids, failed_now: HashMap::new(), waiting_now: HashSet::new(), claimed: claimed.parents };
    let mut results: Vec<Result_> = deferred(later);
    let mut shown = Shown::default();
    let sends = schedule(&batches);
    let last = sends.len().saturating_sub(1);
    let mut started = None;
    for (i, send) in sends.into_iter().enumerate() {
        let sent = match send {
            Send::Alone(mid) => {
                let (Some(changes), Some(m)) = (by_mapping.remove(&mid), mappings.get(&mid)) else { continue };
                let (ready, mut held) = parents.resolve(m, changes);
                // Rows of a mapping with `match` link to the record they match instead of creating.
                let ready = if m.match_keys.is_empty() || ready.is_empty() {
                    ready
                } else {
                    let (ready, unsent) = link::link(ctx, m, ready)?;
                    held.extend(unsent);
                    ready
                };
                // Only the last send may be left processing: no child of it is in this batch.
                let (mut sent, job) = send_alone(ctx, m, ready, &mut shown, i == last);
                started = job.map(|j| (mid, j));
                sent.extend(held);
                sent
            }
            Send::Together(mids) => {
                let mut group = Vec::with_capacity(mids.len());
                let mut held = Vec::new();
                for mid in mids {
                    let (Some(changes), Some(m)) = (by_mapping.remove(&mid), mappings.get(&mid)) else { continue };
                    let (ready, h) = parents.resolve(m, changes);
                    held.extend(h);
                    group.push((m, ready));
                }
                let mut sent = together::send(ctx, group, &mut shown);
                sent.extend(held);
                sent
            }
        };
        parents.learn(&sent);
        results.extend(sent);
    }
    Ok(Some(Round { attempts: claimed.attempts, results, shown, started, records, last: upto }))
}

/// Waits for a round's Bulk job, if any, and settles the round in one transaction.
fn finish(ctx: Ctx, round: Round, mappings: &HashMap<i32, Mapping>, summary: &mut PushSummary) -> Result<()> {
    let Round { attempts, mut results, mut shown, started, .. } = round;
    if let Some((mid, job)) = started {
        if let Some(m) = mappings.get(&mid) {
            results.extend(finish_alone(ctx, m, job, &mut shown));
        }
    }
    ctx.tx(|| {
        for (name, err) in &shown.connections {
            clients::set_connection_error(name, err.as_deref())?;
        }
        for (id, err) in &shown.tables {
            settle::set_push_error(*id, err.as_deref())?;
        }
        settle::settle(&results, &attempts, mappings, summary)?;
        clients::flush_stats()
    })?;
    if results.len() >= bulk_write::TRIM_AFTER {
        drop(results);
        bulk_write::give_memory_back();
    }
    Ok(())
}
