//! Conflicts: Salesforce changes of records that also have a local change pending in the
//! outbox. One query per page finds them (usually none); only those are resolved row by
//! row, by the mapping's policy (plan::conflict). The losing version goes to
//! sfsync.conflicts.

use crate::error::{Result, SyncError};
use crate::plan::conflict::{decide, echo, Both, Known, Winner};
use crate::plan::convert;
use crate::spi_util;
use crate::sync::rewritten;
use crate::sync::{archive, Mapping};
use pgrx::datum::DatumWithOid;
use pgrx::spi::quote_identifier;
use salesforce::Record;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Candidate {
    pk: String,
    sfid: String,
    local: Map<String, Value>,
    remote: Map<String, Value>,
    entries: Vec<i64>,
    changed: Option<Vec<String>>,
    all_columns: bool,
    /// Per column, the values (text form) it had before each pending local change of it.
    bases: Option<Map<String, Value>>,
    /// Per column, the values (jsonb form) we sent for the record, as the archive keeps them.
    sent: Option<Map<String, Value>>,
    /// Salesforce's values in the same text form.
    remote_text: Map<String, Value>,
    salesforce_changed: bool,
    sf_modified: Option<String>,
    sf_us: Option<i64>,
    pg_modified: Option<String>,
    pg_us: Option<i64>,
}

/// Resolves the rows of `live` (the page's records as table rows, keyed by `sfid`) that
/// have a pending local change. Runs inside the page's transaction, while the sync's own
/// writes are not captured. Returns how many rows it updated.
pub fn resolve(m: &Mapping, records: &[Record], live: &[Value]) -> Result<usize> {
    resolve_with(m, records, live, None)
}

/// `resolve` for records a change event updated: `changed` holds, per Id, the columns the
/// events changed (changedFields and nulledFields) and `live` only those columns. Any other
/// column is no Salesforce change: never a conflict, nothing to take.
pub fn resolve_changed(m: &Mapping, records: &[Record], live: &[Value], changed: &BTreeMap<String, Vec<String>>) -> Result<usize> {
    resolve_with(m, records, live, Some(changed))
}

fn resolve_with(m: &Mapping, records: &[Record], live: &[Value], changed: Option<&BTreeMap<String, Vec<String>>>) -> Result<usize> {
    if live.is_empty() || m.columns.is_empty() {
        return Ok(0);
    }
    let policy = m.options.conflict;
    let meta: Vec<Value> = records
        .iter()
        .filter_map(|r| {
            let id = r.get("Id")?.as_str()?;
            let stamp = |f: &str| r.get(f).and_then(Value::as_str).map(convert::colon_offset);
            Some(json!({"sfid": id, "lmd": stamp("LastModifiedDate"), "sms": stamp("SystemModstamp")}))
        })
        .collect();
    let pk = m.pk_ident();
    let tbl = &m.table;
    let remote_text: Vec<String> =
        m.columns.iter().map(|c| format!("{}, p.{}::text", pgrx::spi::quote_literal(&c.column), quote_identifier(&c.column))).collect();
    let remote_text = remote_text.join(", ");
    // A record is changed in Salesforce "since the last sync" when the pull has not seen this
    // version yet (stamp past the mark) and it is not our own push coming back (modified
    // after our last confirmed push of the record, per the outbox archive).
    let sql = format!(
        "WITH meta AS (SELECT * FROM jsonb_to_recordset($3) AS x(sfid text, lmd timestamptz, sms timestamptz)),
              st AS (SELECT hwm_modstamp AS hwm FROM sfsync.sync_state WHERE mapping_id = $2)
         SELECT jsonb_agg(jsonb_build_object(
                    'pk', t.{pk}::text, 'sfid', t.sfid, 'local', to_jsonb(t), 'remote', to_jsonb(p),
                    'entries', e.ids, 'changed', e.changed, 'all_columns', e.all_columns, 'bases', e.bases, 'sent', a.sent,
                    'remote_text', jsonb_build_object({remote_text}),
                    'salesforce_changed', (st.hwm IS NULL OR meta.sms IS NULL OR meta.sms > st.hwm)
                                          AND (a.pushed IS NULL OR meta.lmd IS NULL OR meta.lmd > a.pushed),
                    'sf_modified', meta.lmd, 'sf_us', (extract(epoch FROM meta.lmd) * 1000000)::bigint,
                    'pg_modified', e.captured, 'pg_us', (extract(epoch FROM e.captured) * 1000000)::bigint))
         FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
         JOIN {tbl} t ON t.sfid = p.sfid
         JOIN LATERAL (
             SELECT array_agg(o.id ORDER BY o.id) AS ids, bool_or(o.changed IS NULL) AS all_columns,
                    max(o.captured_at) AS captured,
                    (SELECT jsonb_object_agg(x.key, x.vals) FROM (
                         SELECT b.key, jsonb_agg(DISTINCT b.value) AS vals
                         FROM sfsync.outbox o3 CROSS JOIN LATERAL jsonb_each(o3.base) AS b
                         WHERE o3.mapping_id = $2 AND o3.pk = t.{pk}::text AND o3.state = 'pending' AND o3.op <> 'delete'
                         GROUP BY b.key) x) AS bases,
                    (SELECT array_agg(DISTINCT c) FROM sfsync.outbox o2 CROSS JOIN LATERAL unnest(o2.changed) AS c
                     WHERE o2.mapping_id = $2 AND o2.pk = t.{pk}::text AND o2.state = 'pending' AND o2.op <> 'delete') AS changed
             FROM sfsync.outbox o
             WHERE o.mapping_id = $2 AND o.pk = t.{pk}::text AND o.state = 'pending' AND o.op <> 'delete'
         ) e ON e.ids IS NOT NULL
         LEFT JOIN meta ON meta.sfid = p.sfid
         LEFT JOIN st ON true
         LEFT JOIN LATERAL (
             SELECT max(ar.processed_at) AS pushed,
                    (SELECT jsonb_object_agg(y.key, y.vals) FROM (
                         SELECT v.key, jsonb_agg(DISTINCT v.value) AS vals
                         FROM sfsync.outbox_archive ar2 CROSS JOIN LATERAL jsonb_each(ar2.sent) AS v
                         WHERE ar2.mapping_id = $2 AND ar2.pk = t.{pk}::text AND ar2.outcome = 'sent'
                         GROUP BY v.key) y) AS sent
             FROM sfsync.outbox_archive ar
             WHERE ar.mapping_id = $2 AND ar.pk = t.{pk}::text AND ar.outcome = 'sent'
         ) a ON true"
    );
    let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(live.to_vec())), m.id.into(), spi_util::jsonb(Value::Array(meta))];
    let Some(found) = spi_util::json(&sql, &args)? else { return Ok(0) };
    let candidates: Vec<Candidate> =
        serde_json::from_value(found).map_err(|e| SyncError::Spi(format!("decoding conflict candidates: {e}")))?;
    let mut updated = 0;
    let all: Vec<String> = m.columns.iter().map(|c| c.column.clone()).collect();
    for mut c in candidates {
        // Per column: did the change event say Salesforce changed it? (None: a pulled record,
        // no such list.) An unchanged one holds the local value, so nothing differs.
        let listed = changed.map(|ch| ch.get(&c.sfid).cloned().unwrap_or_default());
        let in_event = |col: &str| listed.as_ref().map(|l| l.iter().any(|x| x == col));
        for col in &all {
            if in_event(col) == Some(false) {
                let local = c.local.get(col).cloned().unwrap_or(Value::Null);
                c.remote.insert(col.clone(), local);
            }
        }
        let differing: Vec<String> = all
            .iter()
            .filter(|col| !convert::same_json(c.local.get(*col).unwrap_or(&Value::Null), c.remote.get(*col).unwrap_or(&Value::Null)))
            .cloned()
            .collect();
        let pending = if c.all_columns { None } else { Some(c.changed.clone().unwrap_or_default()) };
        // Per column: is Salesforce's value an echo of ours (a value of the local chain, or one
        // we sent, or a field the change event did not change) rather than Salesforce's own change?
        let values = |m: &Option<Map<String, Value>>, col: &str| -> Vec<Value> {
            m.as_ref().and_then(|m| m.get(col)).and_then(Value::as_array).cloned().unwrap_or_default()
        };
        // A lookup's sent value is the parent's Salesforce Id, while `remote` holds it as our
        // parent's key: Salesforce's own Id for the field is compared with what we sent.
        let raw = records.iter().find(|r| r.get("Id").and_then(Value::as_str) == Some(c.sfid.as_str()));
        let lookup_id = |col: &str| -> Option<Value> {
            m.parents.iter().find(|p| p.column == col)?;
            raw?.get(&m.column(col)?.field).filter(|v| !v.is_null()).cloned()
        };
        let kept: Vec<String> = all
            .iter()
            .filter(|col| {
                let (bases, sent) = (values(&c.bases, col), values(&c.sent, col));
                let (text, json) = (c.remote_text.get(*col).unwrap_or(&Value::Null), c.remote.get(*col).unwrap_or(&Value::Null));
                let known = Known { bases: &bases, sent: &sent };
                echo(known, text, json, in_event(col))
                    || lookup_id(col).is_some_and(|id| echo(Known { bases: &[], sent: &sent }, &id, &id, None))
            })
            .cloned()
            .collect();
        let d = decide(
            policy,
            &Both {
                differing: &differing,
                pending: pending.as_deref(),
                salesforce_kept: &kept,
                salesforce_changed: c.salesforce_changed,
                salesforce_modified: c.sf_us,
                postgres_modified: c.pg_us,
            },
        );
        if !d.take_salesforce.is_empty() {
            updated += take_salesforce(m, &c, &d.take_salesforce)?;
        }
        if !d.drop_local.is_empty() {
            drop_local(&c.entries, &all, &d.drop_local)?;
        }
        if let Some((winner, columns)) = d.conflict {
            record(m, &c, winner, &columns)?;
        }
    }
    Ok(updated)
}

fn take_salesforce(m: &Mapping, c: &Candidate, columns: &[String]) -> Result<usize> {
    let cols: Vec<String> = columns.iter().map(quote_identifier).collect();
    let src: Vec<String> = cols.iter().map(|c| format!("p.{c}")).collect();
    // Columns not taken keep the row's value (`o`, as the statement's snapshot saw it).
    let meant = |q: &str, name: &str| if columns.iter().any(|c| c == name) { format!("p.{q}") } else { format!("o.{q}") };
    let sql = rewritten::wrap(&format!(
        "UPDATE {tbl} t SET ({set}) = ROW({src}) FROM jsonb_populate_record(NULL::{tbl}, $1) AS p, {tbl} o
         WHERE t.sfid = $2 AND o.{pk} = t.{pk} RETURNING {ret}",
        tbl = m.table,
        pk = m.pk_ident(),
        set = cols.join(", "),
        src = src.join(", "),
        ret = rewritten::returning(m, "t", meant),
    ));
    let args = [spi_util::jsonb(Value::Object(c.remote.clone())), c.sfid.clone().into()];
    rewritten::run(m, &sql, &args)
}

/// Removes the columns from the record's pending entries; entries left with nothing to
/// send leave the outbox (archived as skipped).
fn drop_local(entries: &[i64], all: &[String], drop: &[String]) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![entries.to_vec().into(), all.to_vec().into(), drop.to_vec().into()];
    let empty = spi_util::json(
        "WITH upd AS (
             UPDATE sfsync.outbox o SET changed = ARRAY(SELECT c FROM unnest(COALESCE(o.changed, $2)) AS c WHERE c <> ALL($3))
             WHERE o.id = ANY($1) RETURNING o.id, o.changed
         )
         SELECT jsonb_agg(id) FROM upd WHERE cardinality(changed) = 0",
        &args,
    )?;
    if let Some(Value::Array(ids)) = empty {
        if !ids.is_empty() {
            archive::settle(vec![json!({"ids": ids, "outcome": "skipped", "sfid": null})])?;
        }
    }
    Ok(())
}

fn record(m: &Mapping, c: &Candidate, winner: Winner, columns: &[String]) -> Result<()> {
    let pick = |row: &Map<String, Value>| -> Value {
        Value::Object(columns.iter().map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Value::Null))).collect())
    };
    let row = json!({
        "key": c.pk, "sfid": c.sfid, "policy": m.options.conflict.as_str(), "winner": winner.as_str(), "columns": columns,
        "postgres_values": pick(&c.local), "salesforce_values": pick(&c.remote),
        "salesforce_modified": c.sf_modified, "postgres_modified": c.pg_modified,
    });
    let args: Vec<DatumWithOid> = vec![m.id.into(), spi_util::jsonb(row)];
    spi_util::exec(
        "INSERT INTO sfsync.conflicts (mapping_id, \"table\", key, sfid, policy, winner, columns, postgres_values, salesforce_values,
                                       salesforce_modified, postgres_modified)
         SELECT $1, m.tbl, r.key, r.sfid, r.policy, r.winner, r.columns, r.postgres_values, r.salesforce_values,
                r.salesforce_modified, r.postgres_modified
         FROM jsonb_to_record($2) AS r(key text, sfid text, policy text, winner text, columns text[], postgres_values jsonb,
                                       salesforce_values jsonb, salesforce_modified timestamptz, postgres_modified timestamptz)
         JOIN sfsync.mappings m ON m.id = $1",
        &args,
    )?;
    Ok(())
}
