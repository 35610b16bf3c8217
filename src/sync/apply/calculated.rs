//! Calculated columns (formula and roll-up summary fields) from the formula refresh: only
//! the rows whose values differ are updated, set-based, as the sync (never captured, so never
//! pushed back: the push also skips fields that are not createable/updateable, which
//! calculated fields never are). What a user's BEFORE trigger writes into other mapped
//! columns meanwhile is queued for the push (`sync::rewritten`).

use crate::capture::Applying;
use crate::error::Result;
use crate::plan::convert;
use crate::plan::fields::ColumnMap;
use crate::spi_util;
use crate::sync::{rewritten, Mapping};
use pgrx::datum::DatumWithOid;
use pgrx::spi::quote_identifier;
use salesforce::Record;
use serde_json::{Map, Value};

/// Bulk CSV carries text, with an empty field for null.
fn value(c: &ColumnMap, v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(v) => convert::from_sf(c, v),
        None => Value::Null,
    }
}

/// The refreshed values of some records, inside the current transaction. Returns rows changed.
pub fn apply(m: &Mapping, cols: &[&ColumnMap], records: &[Record]) -> Result<usize> {
    let _applying = Applying::start();
    let rows: Vec<Value> = records
        .iter()
        .filter_map(|r| {
            let id = r.get("Id").and_then(Value::as_str)?;
            let mut row = Map::new();
            row.insert("sfid".into(), Value::String(id.to_string()));
            for c in cols {
                row.insert(c.column.clone(), value(c, r.get(&c.field)));
            }
            Some(Value::Object(row))
        })
        .collect();
    let names: Vec<String> = cols.iter().map(|c| quote_identifier(&c.column)).collect();
    let src: Vec<String> = names.iter().map(|c| format!("p.{c}")).collect();
    let tgt: Vec<String> = names.iter().map(|c| format!("t.{c}")).collect();
    // What we meant: the refreshed value for a calculated column, the row's own value
    // (`o`, as the statement's snapshot saw it) for every other.
    let meant = |q: &str, name: &str| if cols.iter().any(|c| c.column == name) { format!("p.{q}") } else { format!("o.{q}") };
    let sql = rewritten::wrap(&format!(
        "UPDATE {tbl} t SET ({set}) = ROW({src}) FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p, {tbl} o
         WHERE t.sfid = p.sfid AND o.{pk} = t.{pk} AND ROW({tgt}) IS DISTINCT FROM ROW({src}) RETURNING {ret}",
        tbl = m.table,
        pk = m.pk_ident(),
        set = names.join(", "),
        src = src.join(", "),
        tgt = tgt.join(", "),
        ret = rewritten::returning(m, "t", meant),
    ));
    let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(rows))];
    rewritten::run(m, &sql, &args)
}
