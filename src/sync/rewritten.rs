//! Values a user's BEFORE ROW trigger put in place of the ones the apply wrote (an
//! enrichment trigger filling a column of a record that arrives from Salesforce).
//!
//! The capture trigger skips the rows of the sync's own statements, so such a value would
//! never reach Salesforce. Instead each apply statement returns, set-based, the mapped
//! columns of every written row that differ (`IS DISTINCT FROM`) from the value the apply
//! meant to write; afterwards the worker queues those columns as a local update. The value
//! the sync meant to write goes in as the entry's `base`: when Salesforce sends it again it
//! is no change there (plan::conflict), so the trigger's value goes out and the sides meet
//! after one round trip. The table statements run as the owner and may not mention the
//! catalog: the outbox insert happens here, after them, as the worker.

use crate::error::Result;
use crate::spi_util;
use crate::sync::Mapping;
use pgrx::datum::DatumWithOid;
use pgrx::spi::{quote_identifier, quote_literal};
use serde_json::Value;

/// SQL columns `pk, sfid, changed, base` describing a written row: `new` is the alias of
/// the row as written, `meant(quoted column, column name)` the value the apply meant for it.
pub fn returning(m: &Mapping, new: &str, meant: impl Fn(&str, &str) -> String) -> String {
    let mut changed = Vec::new();
    let mut base = Vec::new();
    for c in &m.columns {
        let (q, lit) = (quote_identifier(&c.column), quote_literal(&c.column));
        let want = meant(&q, &c.column);
        changed.push(format!("CASE WHEN {new}.{q} IS DISTINCT FROM {want} THEN {lit} END"));
        base.push(format!("{lit}, ({want})::text"));
    }
    if changed.is_empty() {
        return format!(
            "{new}.{pk}::text AS pk, {new}.sfid::text AS sfid, '{{}}'::text[] AS changed, NULL::jsonb AS base",
            pk = m.pk_ident()
        );
    }
    format!(
        "{new}.{pk}::text AS pk, {new}.sfid::text AS sfid, array_remove(ARRAY[{changed}]::text[], NULL) AS changed,
         jsonb_build_object({base}) AS base",
        pk = m.pk_ident(),
        changed = changed.join(", "),
        base = base.join(", ")
    )
}

/// The statement `w` (a CTE yielding [`returning`]'s columns per written row) wrapped so it
/// returns how many rows it wrote and the rewritten ones.
pub fn wrap(w: &str) -> String {
    wrap_after("", w)
}

/// [`wrap`], `w` reading the CTEs `before` (`name AS (...), `): a data-modifying statement
/// must be a CTE at the top level.
pub fn wrap_after(before: &str, w: &str) -> String {
    format!(
        "WITH {before}w AS ({w})
         SELECT jsonb_build_object('n', count(*),
                                   'rows', COALESCE(jsonb_agg(to_jsonb(w)) FILTER (WHERE cardinality(w.changed) > 0), '[]'))
         FROM w"
    )
}

/// Runs the wrapped statement as the table's owner, queues what triggers rewrote, and
/// returns how many rows the statement wrote.
pub fn run(m: &Mapping, sql: &str, args: &[DatumWithOid]) -> Result<usize> {
    let out = m.as_owner(|| spi_util::json(sql, args))?.unwrap_or_default();
    let n = out.get("n").and_then(Value::as_u64).unwrap_or(0) as usize;
    if let Some(rows) = out.get("rows").filter(|r| r.as_array().is_some_and(|a| !a.is_empty())) {
        queue(m, rows.clone())?;
    }
    Ok(n)
}

/// Rewritten columns as local updates in the outbox, with the value the sync meant as base.
fn queue(m: &Mapping, rows: Value) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![m.id.into(), spi_util::jsonb(rows)];
    spi_util::exec(
        "INSERT INTO sfsync.outbox (mapping_id, op, pk, sfid, changed, base)
         SELECT $1, 'update', r.pk, r.sfid, r.changed,
                (SELECT jsonb_object_agg(b.key, b.value) FROM jsonb_each(r.base) AS b WHERE b.key = ANY(r.changed))
         FROM jsonb_to_recordset($2) AS r(pk text, sfid text, changed text[], base jsonb)",
        &args,
    )?;
    crate::capture::wake_worker_at_commit();
    Ok(())
}
