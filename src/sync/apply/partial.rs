//! Updates from change events: each row sets only the mapped columns its events changed,
//! in one statement, guarded by IS DISTINCT FROM so our own writes coming back change
//! nothing. Runs inside the events' transaction (`source::events`), as the table's owner.

use super::{advance, clear_errors, conflicts, held, records::translate_parents};
use crate::error::Result;
use crate::plan::cdc::Update;
use crate::spi_util;
use crate::sync::rewritten;
use crate::sync::Mapping;
use pgrx::datum::DatumWithOid;
use pgrx::spi::{quote_identifier, quote_literal};
use salesforce::cdc::ChangeEvent;
use salesforce::soql::{datetime, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Key listing an update row's touched columns (not a column name).
const TOUCHED: &str = "__sfsync_touched";

/// Partial updates in one statement: each row sets only the columns its events changed.
/// True when a record gained a pending local change meanwhile (its update was skipped: the
/// pull and the conflict policy decide for it), or a lookup points at a parent we don't have.
pub fn update(m: &Mapping, all: &[Mapping], updates: &[Update]) -> Result<bool> {
    let mut rows: Vec<Value> = updates.iter().map(|u| u.row(TOUCHED)).collect();
    let unresolved = unresolved_parents(m, all, rows.clone())?;
    translate_parents(m, all, &mut rows)?;
    let mut touched: Vec<&String> = updates.iter().flat_map(|u| u.values.keys()).collect();
    touched.sort();
    touched.dedup();
    // Only mapped columns reach here (plan::cdc::route): identifiers are the mapping's.
    let cols: Vec<String> = touched.iter().map(|c| quote_identifier(c.as_str())).collect();
    let new: Vec<String> = touched
        .iter()
        .zip(&cols)
        .map(|(name, q)| format!("CASE WHEN p.touched ? {} THEN (p.r).{q} ELSE t.{q} END", quote_literal(name)))
        .collect();
    let old: Vec<String> = cols.iter().map(|q| format!("t.{q}")).collect();
    let (tbl, pk) = (&m.table, m.pk_ident());
    // What we meant for each mapped column: the event's value where it changed the column,
    // else the row's value before (`o`, the same row as the statement's snapshot saw it).
    // A user's BEFORE trigger that wrote something else gets it queued (`rewritten`).
    let meant = |q: &str, name: &str| {
        if touched.iter().any(|t| t.as_str() == name) {
            format!("CASE WHEN p.touched ? {} THEN (p.r).{q} ELSE o.{q} END", quote_literal(name))
        } else {
            format!("o.{q}")
        }
    };
    let sql = rewritten::wrap(&format!(
        "UPDATE {tbl} t SET ({set}) = ROW({new})
         FROM (SELECT e -> '{TOUCHED}' AS touched, jsonb_populate_record(NULL::{tbl}, e) AS r FROM jsonb_array_elements($1) AS e) p,
              {tbl} o
         WHERE t.sfid = (p.r).sfid AND o.{pk} = t.{pk} AND ROW({old}) IS DISTINCT FROM ROW({new}) AND t.{pk}::text <> ALL($2)
         RETURNING {ret}",
        set = cols.join(", "),
        new = new.join(", "),
        old = old.join(", "),
        ret = rewritten::returning(m, "t", meant),
    ));
    let ids: Vec<String> = updates.iter().map(|u| u.sfid.clone()).collect();
    let args = [spi_util::jsonb(Value::Array(rows)), held::pending(m, &ids)?.into()];
    let n = rewritten::run(m, &sql, &args)?;
    clear_errors(m, ids.clone().into())?;
    advance(m, None, n)?;
    // A local change committed after we looked: the guard above skipped the row.
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {tbl} t JOIN sfsync.outbox o ON o.mapping_id = $1 AND o.pk = t.{pk}::text AND o.state = 'pending'
                        WHERE t.sfid = ANY($2))"
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), ids.into()];
    let raced = pgrx::prelude::Spi::get_one_with_args::<bool>(&sql, &args)?.unwrap_or(false);
    Ok(raced || unresolved)
}

/// Updates of records with a local change pending: the conflict policy decides
/// (`apply::conflicts`) knowing which columns the events changed, so a field Salesforce did
/// not change is never taken for a conflict. True when a lookup points at a parent we don't
/// have.
pub fn contended(m: &Mapping, all: &[Mapping], updates: &[Update], events: &[ChangeEvent]) -> Result<bool> {
    let mut rows: Vec<Value> = updates
        .iter()
        .map(|u| {
            let mut r = u.values.clone();
            r.insert("sfid".into(), Value::String(u.sfid.clone()));
            Value::Object(r)
        })
        .collect();
    let unresolved = unresolved_parents(m, all, rows.clone())?;
    translate_parents(m, all, &mut rows)?;
    // The events' commit time stands for the record's LastModifiedDate and SystemModstamp.
    let records: Vec<salesforce::Record> = updates
        .iter()
        .map(|u| {
            let at = events.iter().filter(|e| e.header.record_ids.contains(&u.sfid)).map(|e| e.header.commit_timestamp).max();
            let stamp = at.map(|ms| Value::String(datetime(Timestamp::from_millis(ms)))).unwrap_or(Value::Null);
            json!({"Id": u.sfid, "LastModifiedDate": stamp, "SystemModstamp": stamp}).as_object().cloned().unwrap_or_default()
        })
        .collect();
    let changed: BTreeMap<String, Vec<String>> = updates.iter().map(|u| (u.sfid.clone(), u.values.keys().cloned().collect())).collect();
    conflicts::resolve_changed(m, &records, &rows, &changed)?;
    Ok(unresolved)
}

/// Whether a lookup (rows keyed by column, lookups as Salesforce Ids) points at a parent we
/// don't have (yet): the column is left NULL, as the pull does, and the pull runs after the
/// parent's (parents first), which fills it in when the parent arrives with it — as when the
/// parent's own events were left to its pull.
pub fn unresolved_parents(m: &Mapping, all: &[Mapping], rows: Vec<Value>) -> Result<bool> {
    if m.parents.is_empty() {
        return Ok(false);
    }
    let mut translated = rows.clone();
    translate_parents(m, all, &mut translated)?;
    Ok(rows.iter().zip(&translated).any(|(sf, pg)| {
        m.parents.iter().any(|p| sf.get(&p.column).is_some_and(Value::is_string) && pg.get(&p.column).is_some_and(Value::is_null))
    }))
}
