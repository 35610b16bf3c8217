//! Step 3 of a push: record what became of each change, in one transaction.

use super::{Outcome, PushSummary, Result_};
use crate::capture::Applying;
use crate::error::Result;
use crate::plan::coalesce::Write;
use crate::plan::retry::{self, Rejection, PARENT_WAIT};
use crate::sync::{archive, rewritten, Mapping};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use serde_json::{json, Value};
use std::collections::HashMap;

pub(super) fn settle(
    results: &[Result_],
    attempts: &HashMap<i64, i32>,
    mappings: &HashMap<i32, Mapping>,
    summary: &mut PushSummary,
) -> Result<()> {
    let _applying = Applying::start();
    let max_attempts = guc::MAX_ATTEMPTS.get();
    // Settled entries, archived as they leave the outbox.
    let mut done: Vec<Value> = Vec::new();
    // Records whose earlier push error a success clears: mapping ids and keys, side by side.
    let mut cleared: (Vec<i32>, Vec<String>) = (Vec::new(), Vec::new());
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
                // The mapped values sent, kept with the archived entries: a Salesforce value
                // equal to one is an echo of this push, not a change (plan::conflict::echo).
                let sent = match (&c.write, mappings.get(&c.mapping_id)) {
                    (Write::Upsert(values), Some(m)) => {
                        let mapped = values.iter().filter(|(k, _)| m.column(k).is_some());
                        Some(Value::Object(mapped.map(|(k, v)| (k.clone(), v.clone())).collect()))
                    }
                    _ => None,
                };
                done.push(json!({"ids": c.entry_ids, "outcome": archive::outcome(r.operation), "sfid": sfid, "sent": sent}));
                cleared.0.push(c.mapping_id);
                cleared.1.push(c.pk.clone());
                *pushed.entry(c.mapping_id).or_default() += 1;
                if let (Write::Upsert(_), Some(sfid)) = (&c.write, sfid) {
                    writeback.entry(c.mapping_id).or_default().push(json!({"pk": c.pk, "sfid": sfid}));
                }
            }
            Outcome::Rejected { code, message, fields, transient } => {
                let decision = retry::rejected(*transient, tries, max_attempts, message);
                let (message, after) = match &decision {
                    Rejection::Retry { after } => (message.clone(), Some(after.as_secs_f64())),
                    Rejection::Park { message: why } => (why.clone().unwrap_or_else(|| message.clone()), None),
                };
                let row = json!({
                    "mapping_id": c.mapping_id, "pk": c.pk, "sfid": c.sfid, "operation": r.operation,
                    "code": code, "message": message, "fields": fields, "attempts": tries, "ids": c.entry_ids,
                    "retry_secs": after,
                });
                match decision {
                    Rejection::Park { .. } => {
                        summary.failed += 1;
                        parked.push(row);
                    }
                    Rejection::Retry { .. } => {
                        summary.retrying += 1;
                        retry.push(row);
                    }
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
        spi_util::scratch(|| archive::settle(done))?;
        // Most batches clear nothing: the lookup spares them a join of every record.
        let tables: Vec<i32> = pushed.keys().copied().collect();
        let any = spi_util::json(
            "SELECT to_jsonb(EXISTS (SELECT 1 FROM sfsync.record_errors WHERE direction = 'push' AND mapping_id = ANY($1)))",
            &[tables.into()],
        )?;
        if any == Some(Value::Bool(true)) {
            let (mids, pks) = cleared;
            spi_util::exec(
                "DELETE FROM sfsync.record_errors e USING unnest($1::int[], $2::text[]) AS r(mapping_id, pk)
                 WHERE e.direction = 'push' AND e.mapping_id = r.mapping_id AND e.pk = r.pk",
                &[mids.into(), pks.into()],
            )?;
        }
    }
    for (mid, pairs) in writeback {
        let Some(m) = mappings.get(&mid) else { continue };
        // Skip an Id another row already holds rather than fail the whole batch. The pairs
        // go as a jsonb recordset, not arrays: its estimate of 100 rows keeps the plan on
        // index lookups, where arrays' true size makes it hash the whole table each batch.
        let update = format!(
            "UPDATE {tbl} t SET sfid = s.sfid FROM jsonb_to_recordset($1) AS s(pk text, sfid text){also}
             WHERE t.{pk} = s.pk::{ty}{same} AND t.sfid IS DISTINCT FROM s.sfid
               AND NOT EXISTS (SELECT 1 FROM {tbl} x WHERE x.sfid = s.sfid)",
            tbl = m.table,
            pk = m.pk_ident(),
            ty = m.pk_type,
            also = if m.before_triggers { format!(", {} o", m.table) } else { String::new() },
            same = if m.before_triggers { format!(" AND o.{pk} = t.{pk}", pk = m.pk_ident()) } else { String::new() },
        );
        spi_util::scratch(|| {
            let args = [spi_util::jsonb(Value::Array(pairs))];
            if m.before_triggers {
                // Every mapped column is meant to keep its value (`o`): what a user's BEFORE
                // trigger writes instead is queued for the push (`sync::rewritten`).
                let sql = format!("{update} RETURNING {}", rewritten::returning(m, "t", |q, _| format!("o.{q}")));
                // As the table's owner: its triggers run with its rights, not the worker's.
                rewritten::run(m, &rewritten::wrap(&sql), &args)?;
            } else {
                // Nothing can rewrite a row of a table without BEFORE triggers of its own.
                m.as_owner(|| spi_util::exec(&update, &args))?;
            }
            Ok(())
        })?;
    }
    for (rows, park) in [(parked, true), (retry, false)] {
        if rows.is_empty() {
            continue;
        }
        let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(rows)), park.into()];
        spi_util::exec(
            "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(mapping_id int, pk text, sfid text, operation text,
                         code text, message text, fields text[], attempts int, ids bigint[], retry_secs float8)),
             upd AS (
                 UPDATE sfsync.outbox o SET claimed_until = NULL,
                        state = CASE WHEN $2 THEN 'failed' ELSE 'pending' END,
                        next_attempt_at = CASE WHEN $2 THEN o.next_attempt_at ELSE now() + make_interval(secs => r.retry_secs) END
                 FROM r WHERE o.id = ANY(r.ids)
             )
             INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message, fields, attempts, next_retry_at)
             SELECT r.mapping_id, 'push', r.pk, r.sfid, r.operation, r.code, r.message, COALESCE(r.fields, '{}'), r.attempts,
                    CASE WHEN $2 THEN NULL ELSE now() + make_interval(secs => r.retry_secs) END
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
        let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(blocked)), PARENT_WAIT.as_secs_f64().into()];
        spi_util::exec(
            "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(mapping_id int, pk text, sfid text, operation text, code text, message text)),
             upd AS (UPDATE sfsync.outbox o SET next_attempt_at = now() + make_interval(secs => $2)
                     FROM r WHERE o.mapping_id = r.mapping_id AND o.pk = r.pk)
             INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message, next_retry_at)
             SELECT r.mapping_id, 'push', r.pk, r.sfid, r.operation, r.code, r.message, now() + make_interval(secs => $2) FROM r
             ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET error_code = EXCLUDED.error_code, message = EXCLUDED.message,
                 next_retry_at = EXCLUDED.next_retry_at, last_seen = now()",
            &args,
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

/// Shows (or, with None, clears) a table's push failure in sfsync.status. Only a push error
/// is cleared: an error of the table's pull stays until its next good pull.
pub(super) fn set_push_error(mapping_id: i32, error: Option<&str>) -> Result<()> {
    match error {
        Some(e) => crate::sync::set_mapping_error(mapping_id, e),
        None => {
            spi_util::exec(
                "UPDATE sfsync.sync_state SET last_error = NULL WHERE mapping_id = $1 AND last_error LIKE 'push: %'",
                &[mapping_id.into()],
            )?;
            Ok(())
        }
    }
}

/// Startup recovery: claims left by a worker that died are released at once (there is
/// only one worker per database, and run_once never commits a claim).
pub fn release_stale_claims() -> Result<usize> {
    spi_util::exec("UPDATE sfsync.outbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL", &[])
}
