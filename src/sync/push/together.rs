//! Small batches of several mappings on one connection in one Composite request: each
//! mapping's upserts, updates and deletes become sObject Collections subrequests (the same
//! requests `send` makes on its own, `allOrNone=false` inside and out), at most five to a
//! request as `plan::push_groups` packed them. One API call instead of one per table.
//!
//! Per record, the results are those of a direct call. A subrequest Salesforce refuses as a
//! whole (a value it cannot parse, an unknown field, …) sends its records again by the
//! mapping's own path (`send`: bisected to the bad record, or the mapping's own error and
//! backoff). A failure of the whole request (network, session, budget) defers every record
//! in it and shows on the connection, or on each of its tables. The Composite POST is never
//! retried by the client (it may hold creates); the upserts on the external id keep a replay
//! from making duplicates.

use super::send::{self, Sorted};
use super::{bulk_write, deferred, send_alone, Result_, Shown};
use crate::plan::coalesce::{Change, Write};
use crate::plan::options::OnDelete;
use crate::plan::push_groups::{requests, Batch};
use crate::sync::clients::{self, Call, Step};
use crate::sync::{Ctx, Mapping};
use salesforce::{collections_results, CollectionsWrite, CompositeSubrequest, Record, COLLECTIONS_CHUNK};
use std::collections::HashMap;

/// How one mapping's batch would be sent, for `plan::push_groups`.
pub(super) fn batch(ctx: Ctx, m: &Mapping, changes: &[Change]) -> Batch {
    let (mut upserts, mut updates, mut deletes, mut lookups) = (0, 0, 0, 0);
    for c in changes {
        match (&c.write, c.sfid.is_some()) {
            (Write::Upsert(_), true) => updates += 1,
            (Write::Upsert(_), false) => upserts += 1,
            (Write::Delete, _) if m.options.on_delete == OnDelete::Ignore => {}
            (Write::Delete, true) => deletes += 1,
            (Write::Delete, false) => lookups += 1,
            (Write::Skip, _) => {}
        }
    }
    let shareable = m.match_keys.is_empty()
        && lookups == 0
        && ![upserts, updates, deletes].into_iter().any(bulk_write::by_bulk)
        && !clients::step_waiting(ctx, Step::new(m.id, "push"));
    Batch {
        mapping: m.id,
        connection: m.connection.clone(),
        requests: requests(upserts, updates, deletes) + usize::from(lookups > 0),
        shareable,
        parents: m.parents.iter().map(|p| p.mapping_id).collect(),
    }
}

/// One Collections subrequest's records.
enum Records {
    Upsert(Vec<Record>),
    Update(Vec<(String, Record)>),
    Delete(Vec<String>),
}

struct Part<'a> {
    m: &'a Mapping,
    operation: &'static str,
    changes: Vec<Change>,
    records: Records,
}

impl Part<'_> {
    fn write(&self) -> CollectionsWrite<'_> {
        match &self.records {
            Records::Upsert(r) => CollectionsWrite::Upsert { ext_field: &self.m.external_id, records: r },
            Records::Update(r) => CollectionsWrite::Update(r),
            Records::Delete(ids) => CollectionsWrite::Delete(ids),
        }
    }
}

fn parts<'a>(m: &'a Mapping, sorted: Sorted, out: &mut Vec<Part<'a>>) {
    let Sorted { upserts, updates, deletes, .. } = sorted;
    for chunk in upserts.chunks(COLLECTIONS_CHUNK) {
        let (changes, records) = chunk.iter().cloned().unzip();
        out.push(Part { m, operation: "upsert", changes, records: Records::Upsert(records) });
    }
    for chunk in updates.chunks(COLLECTIONS_CHUNK) {
        let (changes, records) = chunk.iter().cloned().unzip();
        out.push(Part { m, operation: "update", changes, records: Records::Update(records) });
    }
    for chunk in deletes.chunks(COLLECTIONS_CHUNK) {
        let (changes, ids) = chunk.iter().cloned().unzip();
        out.push(Part { m, operation: "delete", changes, records: Records::Delete(ids) });
    }
}

/// Sends the ready changes of these mappings (all on one connection) in one Composite
/// request; a result for every change.
pub(super) fn send(ctx: Ctx, group: Vec<(&Mapping, Vec<Change>)>, shown: &mut Shown) -> Vec<Result_> {
    let mut out = Vec::new();
    let mut all: Vec<Part> = Vec::new();
    // Changes going by their mapping's own path after all.
    let mut alone: Vec<(&Mapping, Vec<Change>)> = Vec::new();
    let mut ms: Vec<&Mapping> = group.iter().map(|(m, _)| *m).collect();
    for (m, changes) in group {
        let mut sorted = send::sort(m, changes);
        out.append(&mut sorted.done);
        if !sorted.unknown_deletes.is_empty() {
            alone.push((m, std::mem::take(&mut sorted.unknown_deletes)));
        }
        parts(m, sorted, &mut all);
    }
    // The request is only theirs whose records it carries (a mapping whose changes all wait
    // for a parent, or were settled without a call, is neither cleared nor backed off by it).
    ms.retain(|m| all.iter().any(|p| p.m.id == m.id));
    if let Some(conn) = ms.first().map(|m| m.connection.clone()).filter(|_| !all.is_empty()) {
        let steps: Vec<Step> = ms.iter().map(|m| Step::new(m.id, "push")).collect();
        let call = clients::call_for(ctx, &conn, &steps, || {
            let client = clients::client(ctx, &conn)?;
            let subrequests = all
                .iter()
                .enumerate()
                .map(|(i, p)| client.collections_subrequest(&p.m.sobject, &p.write(), &format!("w{i}")))
                .collect::<Result<Vec<CompositeSubrequest>, _>>()?;
            Ok(client.composite(false, &subrequests)?)
        });
        match call {
            Call::Done(responses) => {
                shown.went_through(&ms);
                let mut again: HashMap<i32, Vec<Change>> = HashMap::new();
                for (p, r) in all.into_iter().zip(responses) {
                    match collections_results(&r, p.changes.len()) {
                        Ok(res) => {
                            let res = if p.operation == "delete" { bulk_write::already_deleted_is_deleted(res) } else { res };
                            match &p.records {
                                Records::Upsert(r) => {
                                    send::note_written(p.m, r.iter().zip(&res).map(|(r, s)| (s.id.as_deref(), Some(r), s.success)))
                                }
                                Records::Update(r) => {
                                    send::note_written(p.m, r.iter().zip(&res).map(|((id, r), s)| (Some(id.as_str()), Some(r), s.success)))
                                }
                                Records::Delete(ids) => {
                                    send::note_written(p.m, ids.iter().zip(&res).map(|(id, s)| (Some(id.as_str()), None, s.success)))
                                }
                            }
                            out.extend(send::zip_results(p.changes.into_iter(), res, p.operation));
                        }
                        Err(e) => {
                            pgrx::debug1!("sfsync: {} of {} refused in a composite request, sent on its own: {e}", p.operation, p.m.table);
                            again.entry(p.m.id).or_default().extend(p.changes);
                        }
                    }
                }
                for m in &ms {
                    if let Some(changes) = again.remove(&m.id) {
                        alone.push((*m, changes));
                    }
                }
            }
            Call::Waiting => out.extend(all.into_iter().flat_map(|p| deferred(p.changes))),
            Call::Failed { error, retry_in, connection_wide } => {
                shown.failed(&ms, &error, retry_in, connection_wide);
                out.extend(all.into_iter().flat_map(|p| deferred(p.changes)));
            }
        }
    }
    for (m, changes) in alone {
        out.extend(send_alone(ctx, m, changes, shown, false).0);
    }
    out
}
