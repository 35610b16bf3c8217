//! Synced queries (`sfsync.sync_query`): a query's result pushed to Salesforce.
//!
//! A refresh is three steps, like a push: read (one transaction: the query runs as its
//! owner, the stored result is read), send (no transaction: only what `plan::query::diff`
//! found changed), settle (one transaction: the stored result follows what Salesforce
//! accepted, rejections go to sfsync.query_errors, shown by sfsync.errors). The worker
//! refreshes the queries whose `every` is due; `sfsync.refresh(name)` does one now.

mod send;
pub mod sources;

use crate::error::{Result, SyncError};
use crate::plan::fields::ColumnMap;
use crate::plan::options::OnRemove;
use crate::plan::query::{diff, Op, ResultRow, Stored, Target};
use crate::privilege;
use crate::spi_util;
use crate::sync::clients::{self, Call, Step};
use crate::sync::Ctx;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A row of sfsync.synced_queries, parsed.
#[derive(Debug, Clone)]
pub struct QueryDef {
    pub id: i32,
    pub name: String,
    pub query: String,
    pub sobject: String,
    pub connection: String,
    pub owner: u32,
    pub key_column: String,
    pub target: Target,
    pub columns: Vec<ColumnMap>,
    pub on_remove: OnRemove,
}

#[derive(Deserialize)]
struct Row {
    id: i32,
    name: String,
    query: String,
    sobject: String,
    connection: String,
    owner: u32,
    key_column: String,
    key_field: String,
    columns: Vec<ColumnMap>,
    on_remove: OnRemove,
}

/// What one refresh did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Rows the query returned.
    pub rows: usize,
    /// Records created or updated (accepted by Salesforce).
    pub sent: usize,
    pub unchanged: usize,
    /// Records cleared or deleted because their row left the result (accepted).
    pub removed: usize,
    /// Rows rejected, or not sent (a key the result holds twice): see sfsync.errors.
    pub failed: usize,
    /// Rows without a key (nothing to write).
    pub null_keys: usize,
}

/// The synced queries: one by name, or those due (`due`: their `every` has come, or a
/// source table changed), or all.
pub fn load(name: Option<&str>, due: bool) -> Result<Vec<QueryDef>> {
    let args: Vec<DatumWithOid> = vec![name.into(), due.into()];
    let v = spi_util::json(
        "SELECT COALESCE(jsonb_agg(jsonb_build_object(
                 'id', q.id, 'name', q.name, 'query', q.query, 'sobject', q.sobject, 'connection', q.connection,
                 'owner', q.owner::bigint, 'key_column', q.key_column, 'key_field', q.key_field, 'columns', q.columns,
                 'on_remove', q.on_remove) ORDER BY q.id), '[]')
         FROM sfsync.synced_queries q
         WHERE ($1::text IS NULL OR q.name = $1)
           AND (NOT $2 OR (q.every IS NOT NULL AND COALESCE(q.next_refresh_at, '-infinity') <= now())
                OR EXISTS (SELECT 1 FROM sfsync.query_due d WHERE d.query_id = q.id))",
        &args,
    )?
    .unwrap_or_default();
    let rows: Vec<Row> = serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding sfsync.synced_queries: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|r| QueryDef {
            id: r.id,
            name: r.name,
            query: r.query,
            sobject: r.sobject,
            connection: r.connection,
            owner: r.owner,
            key_column: r.key_column,
            target: Target::parse(&r.key_field),
            columns: r.columns,
            on_remove: r.on_remove,
        })
        .collect())
}

/// The statement that reads a query's result: one jsonb per row. The query is wrapped as a
/// subquery and prepared, so it must be one SELECT (no second statement, no data-modifying
/// WITH).
pub fn wrapped(query: &str) -> String {
    format!("SELECT pg_catalog.to_jsonb(q) FROM ({query}\n) q")
}

/// The query's rows as (key, columns), run as its owner as a security-restricted operation
/// (what the owner may read, nothing more; no temporary objects left behind).
fn read_result(q: &QueryDef) -> Result<Vec<ResultRow>> {
    let sql = wrapped(&q.query);
    // In a subtransaction: the query's own failure (a privilege taken away, a bad cast) is
    // this refresh's error, named, not the caller's whole statement.
    let rows: Vec<Value> = spi_util::subtransaction(|| {
        privilege::as_table_owner(pgrx::pg_sys::Oid::from(q.owner), || {
            Ok(Spi::connect(|c| {
                let stmt = c.prepare(sql.as_str(), &[])?;
                let t = c.select(&stmt, None, &[])?;
                let mut out = Vec::with_capacity(t.len());
                for row in t {
                    out.push(row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null));
                }
                Ok::<_, pgrx::spi::Error>(out)
            })?)
        })
    })
    .map_err(|f| {
        let msg = format!("query \"{}\" failed as its owner {}: {}", q.name, privilege::role_name(q.owner.into()), f.message);
        if f.code == "INSUFFICIENT_PRIVILEGE" {
            SyncError::Denied(msg)
        } else {
            SyncError::Invalid(msg)
        }
    })?;
    Ok(rows
        .into_iter()
        .map(|v| {
            let Value::Object(mut m) = v else { return (None, Map::new()) };
            let key = match m.remove(&q.key_column) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            };
            (key, m)
        })
        .collect())
}

fn stored(query_id: i32) -> Result<HashMap<String, Stored>> {
    Ok(Spi::connect(|c| {
        let t = c.select("SELECT key, sfid::text, \"values\" FROM sfsync.query_rows WHERE query_id = $1", None, &[query_id.into()])?;
        let mut out = HashMap::with_capacity(t.len());
        for row in t {
            let key: String = row.get(1)?.unwrap_or_default();
            let sfid: Option<String> = row.get(2)?;
            let values = match row.get::<JsonB>(3)?.map(|j| j.0) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            out.insert(key, Stored { values, sfid });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })?)
}

/// One refresh of `q`. Err: the query failed, or the request as a whole (recorded on the
/// query too, for sfsync.queries).
pub fn refresh(ctx: Ctx, q: &QueryDef) -> Result<Summary> {
    // The source changes this read sees are consumed with it, also when the query fails
    // (committed: a broken query is retried by `every` or the next change, not every pass).
    let read = ctx.tx(|| {
        let marked = sources::consume(q.id)?;
        Ok(read_result(q).and_then(|rows| Ok((rows, stored(q.id)?, marked))))
    });
    let (rows, stored, marked) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) | Err(e) => return Err(failed(ctx, q, e)),
    };
    let columns: Vec<String> = q.columns.iter().map(|c| c.column.clone()).collect();
    let mut summary = Summary { rows: rows.len(), ..Default::default() };
    let d = diff(rows, &stored, q.on_remove, &columns);
    summary.unchanged = d.unchanged;
    summary.null_keys = d.null_keys;
    let results = if d.sends.is_empty() {
        Vec::new()
    } else {
        let step = Step::new(-q.id, "query refresh");
        match clients::call(ctx, &q.connection, step, || send::send(&*clients::client(ctx, &q.connection)?, q, &d.sends)) {
            Call::Done(r) => r,
            Call::Waiting => {
                // The connection waits (backoff, budget): the change is still to be sent.
                if marked {
                    ctx.tx(|| sources::mark(q.id))?;
                }
                return Ok(summary);
            }
            Call::Failed { error, .. } => return Err(failed(ctx, q, error)),
        }
    };
    ctx.tx(|| {
        settle(q, &d, &results, &mut summary)?;
        clients::flush_stats()
    })?;
    Ok(summary)
}

/// Records a refresh's failure on the query (sfsync.queries) and returns it.
fn failed(ctx: Ctx, q: &QueryDef, e: SyncError) -> SyncError {
    let msg = e.to_string();
    let _ = ctx.tx(|| {
        spi_util::exec(
            "UPDATE sfsync.synced_queries SET last_error = $2, last_error_at = now(),
                 next_refresh_at = now() + COALESCE(every, interval '0') WHERE id = $1",
            &[q.id.into(), msg.as_str().into()],
        )?;
        clients::flush_stats()
    });
    e
}

/// One transaction: the stored result follows what Salesforce accepted; rejections (and
/// keys held twice) into sfsync.query_errors, accepted keys out of it.
fn settle(q: &QueryDef, d: &crate::plan::query::Diff, results: &[salesforce::SaveResult], summary: &mut Summary) -> Result<()> {
    let mut keep = Vec::new();
    let mut drop = Vec::new();
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (s, r) in d.sends.iter().zip(results) {
        if r.success {
            ok.push(s.key.clone());
            if s.op.removes() {
                summary.removed += 1;
                drop.push(s.key.clone());
            } else {
                summary.sent += 1;
                let sfid = r.id.clone().or_else(|| s.sfid.clone()).or_else(|| (q.target == Target::ById).then(|| s.key.clone()));
                keep.push(json!({"key": s.key, "sfid": sfid, "values": s.row}));
            }
        } else {
            summary.failed += 1;
            let first = r.errors.first();
            errors.push(json!({
                "key": s.key,
                "sfid": s.sfid,
                "operation": op_name(s.op),
                "code": first.map(|e| e.status_code.clone()).unwrap_or_else(|| "UNKNOWN_ERROR".into()),
                "message": r.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "),
                "fields": r.errors.iter().flat_map(|e| e.fields.clone()).collect::<Vec<_>>(),
            }));
        }
    }
    for key in &d.duplicates {
        summary.failed += 1;
        errors.push(json!({
            "key": key, "sfid": null, "operation": "skip", "code": "DUPLICATE_KEY",
            "message": format!("the query returns key '{key}' more than once (column \"{}\"); none of its rows is sent", q.key_column),
            "fields": [],
        }));
    }
    let id = q.id;
    spi_util::exec(
        "INSERT INTO sfsync.query_rows AS r (query_id, key, sfid, \"values\")
         SELECT $1, x.key, x.sfid, x.\"values\" FROM jsonb_to_recordset($2) AS x(key text, sfid text, \"values\" jsonb)
         ON CONFLICT (query_id, key) DO UPDATE SET sfid = COALESCE(EXCLUDED.sfid, r.sfid), \"values\" = EXCLUDED.\"values\", refreshed_at = now()",
        &[id.into(), spi_util::jsonb(Value::Array(keep))],
    )?;
    spi_util::exec("DELETE FROM sfsync.query_rows WHERE query_id = $1 AND key = ANY ($2)", &[id.into(), drop.into()])?;
    // Errors of keys now accepted, or no longer in the result nor stored, are over.
    let current: Vec<String> = d.keys.iter().cloned().collect();
    spi_util::exec(
        "DELETE FROM sfsync.query_errors e WHERE e.query_id = $1
           AND (e.key = ANY ($2) OR NOT (e.key = ANY ($3) OR EXISTS (SELECT 1 FROM sfsync.query_rows r WHERE r.query_id = $1 AND r.key = e.key)))",
        &[id.into(), ok.into(), current.into()],
    )?;
    spi_util::exec(
        "INSERT INTO sfsync.query_errors AS e (query_id, key, sfid, operation, error_code, message, fields)
         SELECT $1, x.key, x.sfid, x.operation, x.code, x.message, x.fields
         FROM jsonb_to_recordset($2) AS x(key text, sfid text, operation text, code text, message text, fields text[])
         ON CONFLICT (query_id, key) DO UPDATE SET sfid = EXCLUDED.sfid, operation = EXCLUDED.operation,
             error_code = EXCLUDED.error_code, message = EXCLUDED.message, fields = EXCLUDED.fields,
             attempts = e.attempts + 1, last_seen = now()",
        &[id.into(), spi_util::jsonb(Value::Array(errors))],
    )?;
    let summary_json = serde_json::to_value(&*summary).unwrap_or_default();
    spi_util::exec(
        "UPDATE sfsync.synced_queries SET last_refresh_at = now(), next_refresh_at = now() + every,
             last_summary = $2, sent_total = sent_total + $3, last_error = NULL, last_error_at = NULL
         WHERE id = $1",
        &[id.into(), spi_util::jsonb(summary_json), ((summary.sent + summary.removed) as i64).into()],
    )?;
    Ok(())
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Create => "upsert",
        Op::Update => "update",
        Op::Clear => "clear",
        Op::Delete => "delete",
    }
}

/// The worker's step: refreshes the queries whose `every` is due.
pub fn run_due() {
    let due = match crate::worker::tx::run(|| load(None, true)) {
        Ok(d) => d,
        Err(e) => {
            warning!("sfsync: could not read the synced queries: {e}");
            return;
        }
    };
    for q in due {
        if crate::worker::shutdown_requested() {
            break;
        }
        match refresh(Ctx::Worker, &q) {
            Ok(s) if s.sent + s.removed + s.failed > 0 => {
                log!("sfsync: refresh of query {}: {}", q.name, serde_json::to_string(&s).unwrap_or_default());
            }
            Ok(_) => {}
            Err(e) => warning!("sfsync: refresh of query {} failed: {e}", q.name),
        }
    }
}

/// For messages: whether a synced query of that name exists, and its owner.
pub fn owner_of(name: &str) -> Result<Option<u32>> {
    Ok(Spi::get_one_with_args::<i64>("SELECT (SELECT owner::bigint FROM sfsync.synced_queries WHERE name = $1)", &[name.into()])?
        .map(|o| o as u32))
}
