//! Step 1 of a push: claim a batch of outbox entries and read what to send.

use super::send::plain;
use crate::error::{Result, SyncError};
use crate::plan::coalesce::{Entry, Op};
use crate::plan::relations::Parent;
use crate::sync::Mapping;
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

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

pub(super) struct Claim {
    pub entries: Vec<Entry>,
    pub attempts: HashMap<i64, i32>,
    /// The claimed rows' Salesforce Ids now.
    pub sfids: HashMap<(i32, String), String>,
    /// Parents referenced by the claimed rows: Salesforce Ids known now...
    pub parent_sfids: HashMap<(i32, String), String>,
    /// ...and the state of those without one.
    pub parents: HashMap<(i32, String), Parent>,
    /// The last entry read in order: where the pass's next batch starts looking.
    pub last: Option<i64>,
}

/// Claims ready entries, plus every other unclaimed entry of the same records (earlier
/// failures included) so a record's changes always travel together and in order; then
/// reads the claimed rows' current values.
pub(super) fn claim(only: Option<i32>, after: Option<i64>, mappings: &HashMap<i32, Mapping>) -> Result<Claim> {
    // Only entries of the mappings this pass knows: one made after the pass read the
    // mappings would be claimed and never sent, stuck until its claim timed out.
    // Nor of a shadow run's: they wait in the outbox for go_live (a table put back into
    // shadow by sync_table), nothing is sent.
    let known: Vec<i32> = mappings.values().filter(|m| !m.options.shadow()).map(|m| m.id).collect();
    let args: Vec<DatumWithOid> =
        vec![guc::BATCH_SIZE.get().into(), guc::CLAIM_TIMEOUT_S.get().into(), only.into(), known.into(), after.into()];
    // One plan is right for this statement whatever the statistics say: the oldest
    // entries read in the primary key's order up to the batch and no further, then each
    // one's record looked up by index. With statistics taken before a backlog was written
    // (its rows "few") the planner would rather read every pending entry and sort them,
    // or hash the whole outbox, each batch, which makes draining N entries O(N²) (1M: half
    // a second a batch instead of 20 ms), so the alternatives are switched off for it.
    // The same holds for the reads of the claimed rows and their parents below: a batch's
    // keys looked up by index. The planner reads the whole table for 10,000 keys of 300,000
    // rows (sequential pages beat random ones), which makes a drain O(N²) again.
    spi_util::with_settings(
        &[("enable_sort", "off"), ("enable_hashjoin", "off"), ("enable_mergejoin", "off"), ("enable_seqscan", "off")],
        || claim_batch(mappings, args),
    )
}

fn claim_batch(mappings: &HashMap<i32, Mapping>, args: Vec<DatumWithOid>) -> Result<Claim> {
    // `$5`: where the round before in this pass stopped reading. Its entries, still claimed,
    // and the settled ones' dead index entries before them would otherwise be read past again
    // by each batch; entries behind it that became ready meanwhile go with the next pass.
    // `upto` is where this one stops: the last entry read in order, not the newest claimed
    // (a record's later entries come along, and must not make the next batch skip others).
    #[derive(Deserialize)]
    struct Batch {
        rows: Option<Vec<Claimed>>,
        upto: Option<i64>,
    }
    let batch: Batch = spi_util::json_text(
        "WITH scanned AS (
                 SELECT id, mapping_id, pk FROM sfsync.outbox
                 WHERE state = 'pending' AND next_attempt_at <= now()
                   AND (claimed_until IS NULL OR claimed_until < now())
                   AND ($3::int IS NULL OR mapping_id = $3) AND mapping_id = ANY($4::int[])
                   AND ($5::bigint IS NULL OR id > $5)
                 ORDER BY id LIMIT $1
             ), ready AS (
                 SELECT DISTINCT mapping_id, pk FROM scanned
             ), locked AS (
                 SELECT o.id FROM sfsync.outbox o JOIN ready USING (mapping_id, pk)
                 WHERE o.claimed_until IS NULL OR o.claimed_until < now()
                 FOR UPDATE OF o SKIP LOCKED
             ), claimed AS (
                 UPDATE sfsync.outbox o SET claimed_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
                 FROM locked WHERE o.id = locked.id
                 RETURNING o.id, o.mapping_id, o.op, o.pk, o.sfid, o.changed, o.attempts
             )
             SELECT json_build_object('rows', (SELECT json_agg(claimed ORDER BY id) FROM claimed),
                                      'upto', (SELECT max(id) FROM scanned))::text",
        &args,
    )?
    .ok_or_else(|| SyncError::Spi("the claim returned nothing".into()))?;
    let rows = batch.rows.unwrap_or_default();
    let mut keys: HashMap<i32, Vec<String>> = HashMap::new();
    for r in &rows {
        keys.entry(r.mapping_id).or_default().push(r.pk.clone());
    }
    // The rows as they are now: the values to send, and the sfid the worker may have
    // written back since the change was captured.
    let mut current: HashMap<(i32, String), Map<String, Value>> = HashMap::new();
    for (mid, pks) in keys {
        let Some(m) = mappings.get(&mid) else { continue };
        if let std::borrow::Cow::Owned(_) = m.current()? {
            return Err(SyncError::Stale(format!("the mapping of {} changed during this pass", m.table)));
        }
        let sql = format!(
            "SELECT json_object_agg(t.{pk}::text, t)::text FROM {tbl} t WHERE t.{pk} = ANY($1::text[]::{ty}[])",
            pk = m.pk_ident(),
            tbl = m.table,
            ty = m.pk_type
        );
        let rows: HashMap<String, Map<String, Value>> = spi_util::json_text(&sql, &[pks.into()])?.unwrap_or_default();
        current.extend(rows.into_iter().map(|(pk, row)| ((mid, pk), row)));
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
            (_, Some(row), Some(m)) => {
                let mut p: Map<String, Value> = m
                    .columns
                    .iter()
                    .filter(|c| r.changed.as_ref().is_none_or(|ch| ch.contains(&c.column)))
                    .map(|c| (c.column.clone(), row.get(&c.column).cloned().unwrap_or(Value::Null)))
                    .collect();
                // A re-keyed row (capture lists the key column as changed): the push
                // rewrites the record's external ID.
                if r.changed.as_ref().is_some_and(|ch| ch.contains(&m.pk_column)) {
                    p.insert(m.pk_column.clone(), row.get(&m.pk_column).cloned().unwrap_or(Value::Null));
                }
                p
            }
        };
        let gone = op != Op::Delete && row.is_none();
        entries.push(Entry { id: r.id, mapping_id: r.mapping_id, op, pk: r.pk, sfid: r.sfid, payload, gone });
    }
    let (parent_sfids, parents) = parent_states(&entries, mappings)?;
    Ok(Claim { entries, attempts, sfids, parent_sfids, parents, last: batch.upto })
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

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::fixture;
    use pgrx::prelude::*;
    use std::collections::HashMap;

    #[pg_test]
    fn a_batch_ends_where_its_scan_stopped_not_at_a_later_change_it_took_along() {
        fixture();
        let batch = crate::guc::BATCH_SIZE.get() as i64;
        // A backlog of a batch and two more inserts, then a new change of the first row.
        Spi::run(&format!("INSERT INTO contacts (id, last_name) SELECT g, 'Row ' || g FROM generate_series(1, {}) g", batch + 2)).unwrap();
        Spi::run("UPDATE contacts SET email = 'first@example.com' WHERE id = 1").unwrap();
        let ids = |c: &super::Claim| c.entries.iter().map(|e| e.id).collect::<Vec<i64>>();
        let mappings: HashMap<i32, crate::sync::Mapping> =
            crate::sync::load_mappings(None).unwrap().into_iter().map(|m| (m.id, m)).collect();
        let first = super::claim(None, None, &mappings).unwrap();
        let newest = Spi::get_one::<i64>("SELECT max(id) FROM sfsync.outbox").unwrap().unwrap();
        assert!(ids(&first).contains(&newest), "the first row's later change goes with its insert");
        let scanned_upto = Spi::get_one::<i64>(&format!("SELECT id FROM sfsync.outbox ORDER BY id OFFSET {} LIMIT 1", batch - 1)).unwrap();
        assert_eq!(first.last, scanned_upto, "the mark is the batch's last entry in order, not the change it took along");
        // The pass's next batch starts there: the two inserts behind the mark are not skipped.
        let second = super::claim(None, first.last, &mappings).unwrap();
        assert_eq!(second.entries.iter().map(|e| e.pk.as_str()).collect::<Vec<_>>(), [(batch + 1).to_string(), (batch + 2).to_string()]);
        assert_eq!(second.last, Some(newest - 1));
    }
}
