//! Push: claimed outbox entries -> Salesforce -> recorded results.
//!
//! 1. claim (one transaction): lock a batch with FOR UPDATE SKIP LOCKED, stamp a
//!    visibility timeout, read the rows' current values and sfid;
//! 2. send (no transaction): coalesce per record, then sObject Collections calls:
//!    update by Id when the Salesforce Id is known, otherwise upsert on the external id
//!    holding the Postgres key (so a replay after a crash never duplicates);
//! 3. record (one transaction): delete settled entries, write new Ids back to `sfid`
//!    without capturing them, park permanent failures in sfsync.errors, back off
//!    transient ones, release what wasn't attempted.

use super::{archive, bulk_write, clients, Ctx, Mapping};
use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::coalesce::{coalesce, Change, Entry, Op, Write};
use crate::plan::relations::{parents_first, resolve, Parent, Resolution};
use crate::plan::{convert, soql};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use salesforce::{BulkOperation, Client, Record, SaveResult};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PushSummary {
    pub claimed: usize,
    pub records: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub retrying: usize,
    pub deferred: usize,
}

#[derive(Deserialize)]
struct Claimed {
    id: i64,
    mapping_id: i32,
    op: String,
    pk: String,
    sfid: Option<String>,
    changed: Option<Vec<String>>,
    attempts: i32,
}

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
    let claimed = ctx.tx(|| claim(only, &mappings))?;
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
        let mut sent_results = if ready.is_empty() {
            Vec::new()
        } else if ctx == Ctx::Worker && !clients::available(&m.connection) {
            ready.into_iter().map(|c| Result_ { change: c, operation: "", outcome: Outcome::Deferred }).collect()
        } else {
            match clients::client(ctx, &m.connection).and_then(|client| send(&client, m, ready.clone())) {
                Ok(r) => {
                    clients::succeeded(&m.connection);
                    conn_errors.insert(m.connection.clone(), None);
                    r
                }
                Err(e) => {
                    let delay = clients::failed(&m.connection, &e);
                    let msg = e.to_string();
                    pgrx::warning!("sfsync: push to {} for {} failed, retrying in {:?}: {msg}", m.sobject, m.table, delay);
                    conn_errors.insert(m.connection.clone(), Some(msg));
                    ready.into_iter().map(|c| Result_ { change: c, operation: "", outcome: Outcome::Deferred }).collect()
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
        record(&results, &claimed.attempts, &mappings, &mut summary)?;
        clients::flush_stats()
    })?;
    Ok(summary)
}

struct Claim {
    entries: Vec<Entry>,
    attempts: HashMap<i64, i32>,
    /// The claimed rows' Salesforce Ids now.
    sfids: HashMap<(i32, String), String>,
    /// Parents referenced by the claimed rows: Salesforce Ids known now...
    parent_sfids: HashMap<(i32, String), String>,
    /// ...and the state of those without one.
    parents: HashMap<(i32, String), Parent>,
}

/// Claims ready entries, plus every other unclaimed entry of the same records (earlier
/// failures included) so a record's changes always travel together and in order; then
/// reads the claimed rows' current values.
fn claim(only: Option<i32>, mappings: &HashMap<i32, Mapping>) -> Result<Claim> {
    let args: Vec<DatumWithOid> = vec![guc::BATCH_SIZE.get().into(), guc::CLAIM_TIMEOUT_S.get().into(), only.into()];
    let rows = spi_util::json(
        "WITH ready AS (
             SELECT DISTINCT mapping_id, pk FROM (
                 SELECT mapping_id, pk FROM sfsync.outbox
                 WHERE state = 'pending' AND next_attempt_at <= now()
                   AND (claimed_until IS NULL OR claimed_until < now())
                   AND ($3::int IS NULL OR mapping_id = $3)
                 ORDER BY id LIMIT $1) r
         ), locked AS (
             SELECT o.id FROM sfsync.outbox o JOIN ready USING (mapping_id, pk)
             WHERE o.claimed_until IS NULL OR o.claimed_until < now()
             FOR UPDATE OF o SKIP LOCKED
         ), claimed AS (
             UPDATE sfsync.outbox o SET claimed_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
             FROM locked WHERE o.id = locked.id
             RETURNING o.id, o.mapping_id, o.op, o.pk, o.sfid, o.changed, o.attempts
         )
         SELECT jsonb_agg(to_jsonb(claimed) ORDER BY id) FROM claimed",
        &args,
    )?
    .unwrap_or(Value::Array(vec![]));
    let rows: Vec<Claimed> = serde_json::from_value(rows).map_err(|e| SyncError::Spi(format!("decoding claimed outbox rows: {e}")))?;
    let mut keys: HashMap<i32, Vec<String>> = HashMap::new();
    for r in &rows {
        keys.entry(r.mapping_id).or_default().push(r.pk.clone());
    }
    // The rows as they are now: the values to send, and the sfid the worker may have
    // written back since the change was captured.
    let mut current: HashMap<(i32, String), Map<String, Value>> = HashMap::new();
    for (mid, pks) in keys {
        let Some(m) = mappings.get(&mid) else { continue };
        let sql = format!(
            "SELECT jsonb_object_agg(t.{pk}::text, to_jsonb(t)) FROM {tbl} t WHERE t.{pk} = ANY($1::text[]::{ty}[])",
            pk = m.pk_ident(),
            tbl = m.table,
            ty = m.pk_type
        );
        if let Some(Value::Object(map)) = spi_util::json(&sql, &[pks.into()])? {
            for (pk, row) in map {
                if let Value::Object(row) = row {
                    current.insert((mid, pk), row);
                }
            }
        }
    }
    let mut attempts = HashMap::new();
    let mut sfids = HashMap::new();
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        attempts.insert(r.id, r.attempts);
        let op = Op::parse(&r.op).ok_or_else(|| SyncError::Spi(format!("outbox entry {} has unknown op {:?}", r.id, r.op)))?;
        let row = current.get(&(r.mapping_id, r.pk.clone()));
        if let Some(Value::String(s)) = row.and_then(|row| row.get("sfid")) {
            sfids.insert((r.mapping_id, r.pk.clone()), s.clone());
        }
        let payload = match (op, row, mappings.get(&r.mapping_id)) {
            (Op::Delete, _, _) | (_, None, _) | (_, _, None) => Map::new(),
            (_, Some(row), Some(m)) => m
                .columns
                .iter()
                .filter(|c| r.changed.as_ref().is_none_or(|ch| ch.contains(&c.column)))
                .map(|c| (c.column.clone(), row.get(&c.column).cloned().unwrap_or(Value::Null)))
                .collect(),
        };
        let gone = op != Op::Delete && row.is_none();
        entries.push(Entry { id: r.id, mapping_id: r.mapping_id, op, pk: r.pk, sfid: r.sfid, payload, gone });
    }
    let (parent_sfids, parents) = parent_states(&entries, mappings)?;
    Ok(Claim { entries, attempts, sfids, parent_sfids, parents })
}

type ParentStates = (HashMap<(i32, String), String>, HashMap<(i32, String), Parent>);

/// For every parent key the entries refer to: its Salesforce Id, or whether a change of it
/// is pending or was rejected.
fn parent_states(entries: &[Entry], mappings: &HashMap<i32, Mapping>) -> Result<ParentStates> {
    let mut keys: HashMap<i32, Vec<String>> = HashMap::new();
    for e in entries {
        let Some(m) = mappings.get(&e.mapping_id) else { continue };
        for p in &m.parents {
            match e.payload.get(&p.column) {
                None | Some(Value::Null) => {}
                Some(v) => keys.entry(p.mapping_id).or_default().push(plain(v)),
            }
        }
    }
    let mut sfids = HashMap::new();
    let mut states = HashMap::new();
    for (pm, mut pks) in keys {
        let Some(parent) = mappings.get(&pm) else { continue };
        pks.sort();
        pks.dedup();
        let sql = format!(
            "SELECT jsonb_object_agg(t.{pk}::text, t.sfid) FROM {tbl} t WHERE t.{pk} = ANY($1::text[]::{ty}[]) AND t.sfid IS NOT NULL",
            pk = parent.pk_ident(),
            tbl = parent.table,
            ty = parent.pk_type
        );
        if let Some(Value::Object(map)) = spi_util::json(&sql, &[pks.clone().into()])? {
            for (k, v) in map {
                sfids.insert((pm, k), plain(&v));
            }
        }
        let args: Vec<DatumWithOid> = vec![pm.into(), pks.into()];
        let pending = spi_util::json(
            "SELECT jsonb_object_agg(x.pk, x.why) FROM (
                 SELECT o.pk, CASE WHEN bool_or(o.state = 'failed')
                                   THEN COALESCE(max(e.error_code || ': ' || e.message), 'rejected') END AS why
                 FROM sfsync.outbox o
                 LEFT JOIN sfsync.record_errors e ON e.mapping_id = o.mapping_id AND e.direction = 'push' AND e.pk = o.pk
                 WHERE o.mapping_id = $1 AND o.pk = ANY($2) GROUP BY o.pk) x",
            &args,
        )?;
        if let Some(Value::Object(map)) = pending {
            for (k, why) in map {
                let state = match why {
                    Value::String(w) => Parent::Failed(w),
                    _ => Parent::Pending,
                };
                states.insert((pm, k), state);
            }
        }
    }
    Ok((sfids, states))
}

/// Sends one mapping's changes. Err means the request as a whole failed (nothing known
/// about individual records); record-level rejections come back as outcomes.
fn send(client: &Client, m: &Mapping, changes: Vec<Change>) -> Result<Vec<Result_>> {
    let mut out = Vec::with_capacity(changes.len());
    let mut updates: Vec<(Change, (String, Record))> = Vec::new();
    let mut upserts: Vec<(Change, Record)> = Vec::new();
    let mut deletes: Vec<(Change, String)> = Vec::new();
    let mut unknown_deletes: Vec<Change> = Vec::new();
    for c in changes {
        match &c.write {
            Write::Skip => out.push(Result_ { change: c, operation: "skip", outcome: Outcome::Done { sfid: None } }),
            Write::Upsert(payload) => match c.sfid.clone() {
                Some(id) => {
                    let rec = to_record(m, &c.pk, payload, true);
                    updates.push((c, (id, rec)));
                }
                None => {
                    let rec = to_record(m, &c.pk, payload, false);
                    upserts.push((c, rec));
                }
            },
            Write::Delete if m.on_delete == "ignore" => {
                out.push(Result_ { change: c, operation: "skip", outcome: Outcome::Done { sfid: None } })
            }
            Write::Delete => match c.sfid.clone() {
                Some(id) => deletes.push((c, id)),
                None => unknown_deletes.push(c),
            },
        }
    }
    // A delete of a row whose Id we never learned (e.g. a crash before the write-back):
    // find the record by external id; if there is none, there is nothing to delete.
    for chunk in unknown_deletes.chunks(200) {
        let values: Vec<&str> = chunk.iter().map(|c| c.pk.as_str()).collect();
        let q = soql::by_external_ids(&m.sobject, &m.external_id, &values).map_err(SyncError::Invalid)?;
        let mut found: HashMap<String, String> = HashMap::new();
        for rec in client.query_iter(&q, false) {
            let rec = rec?;
            if let (Some(Value::String(id)), Some(ext)) = (rec.get("Id"), rec.get(&m.external_id)) {
                found.insert(plain(ext), id.clone());
            }
        }
        for c in chunk {
            match found.get(&c.pk) {
                Some(id) => deletes.push((c.clone(), id.clone())),
                None => out.push(Result_ { change: c.clone(), operation: "delete", outcome: Outcome::Done { sfid: None } }),
            }
        }
    }
    // Past the threshold one Bulk API job replaces many Collections calls.
    let bulk = |n: usize| n >= guc::BULK_THRESHOLD.get().max(1) as usize;
    if !upserts.is_empty() {
        let recs: Vec<Record> = upserts.iter().map(|(_, r)| r.clone()).collect();
        let res = if bulk(recs.len()) {
            bulk_write::write(client, &m.sobject, BulkOperation::Upsert, Some(&m.external_id), &recs)?
        } else {
            client.collections_upsert(&m.sobject, &m.external_id, &recs)?
        };
        out.extend(zip_results(upserts.into_iter().map(|(c, _)| c), res, "upsert"));
    }
    if !updates.is_empty() {
        let recs: Vec<(String, Record)> = updates.iter().map(|(_, r)| r.clone()).collect();
        let res = if bulk(recs.len()) {
            let with_ids: Vec<Record> = recs
                .into_iter()
                .map(|(id, mut r)| {
                    r.insert("Id".into(), Value::String(id));
                    r
                })
                .collect();
            bulk_write::write(client, &m.sobject, BulkOperation::Update, None, &with_ids)?
        } else {
            client.collections_update(&m.sobject, &recs)?
        };
        out.extend(zip_results(updates.into_iter().map(|(c, _)| c), res, "update"));
    }
    if !deletes.is_empty() {
        let ids: Vec<String> = deletes.iter().map(|(_, id)| id.clone()).collect();
        let res = if bulk(ids.len()) {
            let recs: Vec<Record> = ids.iter().map(|id| json!({"Id": id}).as_object().cloned().unwrap_or_default()).collect();
            bulk_write::write(client, &m.sobject, BulkOperation::Delete, None, &recs)?
        } else {
            client.collections_delete(&ids)?
        };
        let results = zip_results(deletes.into_iter().map(|(c, _)| c), res, "delete");
        // Already gone in Salesforce is what we wanted.
        out.extend(results.into_iter().map(|mut r| {
            if let Outcome::Rejected { code, .. } = &r.outcome {
                if code == "ENTITY_IS_DELETED" || code == "INVALID_CROSS_REFERENCE_KEY" || code == "NOT_FOUND" {
                    r.outcome = Outcome::Done { sfid: None };
                }
            }
            r
        }));
    }
    Ok(out)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Mapped fields of a payload as a Salesforce record, plus the external id = the key.
fn to_record(m: &Mapping, pk: &str, payload: &Map<String, Value>, update: bool) -> Record {
    let mut rec = Record::new();
    for (col, v) in payload {
        let Some(cm) = m.column(col) else { continue }; // unmapped since capture
        if (update && !cm.updateable) || (!update && !cm.createable) {
            continue;
        }
        rec.insert(cm.field.clone(), convert::to_sf(cm, v));
    }
    rec.insert(m.external_id.clone(), Value::String(pk.to_string()));
    rec
}

fn zip_results(changes: impl Iterator<Item = Change>, results: Vec<SaveResult>, operation: &'static str) -> Vec<Result_> {
    let mut results = results.into_iter();
    changes
        .map(|change| {
            let outcome = match results.next() {
                Some(r) if r.success => Outcome::Done { sfid: r.id.or_else(|| change.sfid.clone()) },
                Some(r) => {
                    let transient = !r.errors.is_empty() && r.errors.iter().all(|e| e.is_transient());
                    let first = r.errors.first();
                    Outcome::Rejected {
                        code: first.map(|e| e.status_code.clone()).unwrap_or_else(|| "UNKNOWN_ERROR".into()),
                        message: r.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "),
                        fields: r.errors.iter().flat_map(|e| e.fields.clone()).collect(),
                        transient,
                    }
                }
                None => Outcome::Rejected {
                    code: "MISSING_RESULT".into(),
                    message: "Salesforce returned fewer results than records sent".into(),
                    fields: vec![],
                    transient: true,
                },
            };
            Result_ { change, operation, outcome }
        })
        .collect()
}

fn record(results: &[Result_], attempts: &HashMap<i64, i32>, mappings: &HashMap<i32, Mapping>, summary: &mut PushSummary) -> Result<()> {
    let _applying = Applying::start();
    let max_attempts = guc::MAX_ATTEMPTS.get();
    let mut done: Vec<Value> = Vec::new(); // settled entries, archived as they leave the outbox
    let mut cleared = Vec::new();
    let mut writeback: HashMap<i32, Vec<Value>> = HashMap::new();
    let mut parked = Vec::new();
    let mut retry = Vec::new();
    let mut deferred: Vec<i64> = Vec::new();
    let mut blocked: Vec<Value> = Vec::new();
    let mut pushed: HashMap<i32, i64> = HashMap::new();
    for r in results {
        let c = &r.change;
        let tries = c.entry_ids.iter().filter_map(|id| attempts.get(id)).copied().max().unwrap_or(1);
        match &r.outcome {
            Outcome::Done { sfid } => {
                summary.succeeded += 1;
                done.push(json!({"ids": c.entry_ids, "outcome": archive::outcome(r.operation), "sfid": sfid}));
                cleared.push(json!({"mapping_id": c.mapping_id, "pk": c.pk}));
                *pushed.entry(c.mapping_id).or_default() += 1;
                if let (Write::Upsert(_), Some(sfid)) = (&c.write, sfid) {
                    writeback.entry(c.mapping_id).or_default().push(json!({"pk": c.pk, "sfid": sfid}));
                }
            }
            Outcome::Rejected { code, message, fields, transient } => {
                let give_up = !transient || tries >= max_attempts;
                let message = if *transient && give_up { format!("gave up after {tries} attempts: {message}") } else { message.clone() };
                let row = json!({
                    "mapping_id": c.mapping_id, "pk": c.pk, "sfid": c.sfid, "operation": r.operation,
                    "code": code, "message": message, "fields": fields, "attempts": tries, "ids": c.entry_ids,
                });
                if give_up {
                    summary.failed += 1;
                    parked.push(row);
                } else {
                    summary.retrying += 1;
                    retry.push(row);
                }
            }
            Outcome::Deferred => {
                summary.deferred += 1;
                deferred.extend(&c.entry_ids);
            }
            Outcome::Blocked { code, message } => {
                summary.deferred += 1;
                deferred.extend(&c.entry_ids);
                blocked.push(json!({"mapping_id": c.mapping_id, "pk": c.pk, "sfid": c.sfid, "operation": r.operation, "code": code, "message": message}));
            }
        }
    }
    if !done.is_empty() {
        archive::settle(done)?;
        spi_util::exec(
            "DELETE FROM sfsync.record_errors e USING jsonb_to_recordset($1) AS r(mapping_id int, pk text)
             WHERE e.direction = 'push' AND e.mapping_id = r.mapping_id AND e.pk = r.pk",
            &[spi_util::jsonb(Value::Array(cleared))],
        )?;
    }
    for (mid, rows) in writeback {
        let Some(m) = mappings.get(&mid) else { continue };
        // Skip an Id another row already holds rather than fail the whole batch.
        let sql = format!(
            "UPDATE {tbl} t SET sfid = s.sfid FROM jsonb_to_recordset($1) AS s(pk text, sfid text)
             WHERE t.{pk} = s.pk::{ty} AND t.sfid IS DISTINCT FROM s.sfid
               AND NOT EXISTS (SELECT 1 FROM {tbl} x WHERE x.sfid = s.sfid)",
            tbl = m.table,
            pk = m.pk_ident(),
            ty = m.pk_type
        );
        spi_util::exec(&sql, &[spi_util::jsonb(Value::Array(rows))])?;
    }
    for (rows, park) in [(parked, true), (retry, false)] {
        if rows.is_empty() {
            continue;
        }
        let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(rows)), park.into()];
        spi_util::exec(
            "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(mapping_id int, pk text, sfid text, operation text,
                         code text, message text, fields text[], attempts int, ids bigint[])),
             upd AS (
                 UPDATE sfsync.outbox o SET claimed_until = NULL,
                        state = CASE WHEN $2 THEN 'failed' ELSE 'pending' END,
                        next_attempt_at = CASE WHEN $2 THEN o.next_attempt_at
                                          ELSE now() + make_interval(secs => least(power(2, r.attempts), 3600)) END
                 FROM r WHERE o.id = ANY(r.ids)
             )
             INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message, fields, attempts, next_retry_at)
             SELECT r.mapping_id, 'push', r.pk, r.sfid, r.operation, r.code, r.message, COALESCE(r.fields, '{}'), r.attempts,
                    CASE WHEN $2 THEN NULL ELSE now() + make_interval(secs => least(power(2, r.attempts), 3600)) END
             FROM r
             ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET sfid = EXCLUDED.sfid, operation = EXCLUDED.operation,
                 error_code = EXCLUDED.error_code, message = EXCLUDED.message, fields = EXCLUDED.fields,
                 attempts = EXCLUDED.attempts, next_retry_at = EXCLUDED.next_retry_at, last_seen = now()",
            &args,
        )?;
    }
    if !deferred.is_empty() {
        spi_util::exec(
            "UPDATE sfsync.outbox SET claimed_until = NULL, attempts = greatest(attempts - 1, 0) WHERE id = ANY($1)",
            &[deferred.into()],
        )?;
    }
    if !blocked.is_empty() {
        // Held back by a parent: say so, and look again in a few seconds.
        spi_util::exec(
            "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(mapping_id int, pk text, sfid text, operation text, code text, message text)),
             upd AS (UPDATE sfsync.outbox o SET next_attempt_at = now() + interval '5 seconds'
                     FROM r WHERE o.mapping_id = r.mapping_id AND o.pk = r.pk)
             INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message, next_retry_at)
             SELECT r.mapping_id, 'push', r.pk, r.sfid, r.operation, r.code, r.message, now() + interval '5 seconds' FROM r
             ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET error_code = EXCLUDED.error_code, message = EXCLUDED.message,
                 next_retry_at = EXCLUDED.next_retry_at, last_seen = now()",
            &[spi_util::jsonb(Value::Array(blocked))],
        )?;
    }
    if !pushed.is_empty() {
        let rows: Vec<Value> = pushed.iter().map(|(m, n)| json!({"mapping_id": m, "n": n})).collect();
        spi_util::exec(
            "UPDATE sfsync.sync_state s SET last_push_at = now(), pushed_total = s.pushed_total + r.n
             FROM jsonb_to_recordset($1) AS r(mapping_id int, n bigint) WHERE s.mapping_id = r.mapping_id",
            &[spi_util::jsonb(Value::Array(rows))],
        )?;
    }
    Ok(())
}

/// Startup recovery: claims left by a worker that died are released at once (there is
/// only one worker per database, and run_once never commits a claim).
pub fn release_stale_claims() -> Result<usize> {
    spi_util::exec("UPDATE sfsync.outbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL", &[])
}
