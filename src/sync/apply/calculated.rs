//! Calculated columns (formula and roll-up summary fields) from the formula refresh: only
//! the rows whose values differ are updated, set-based, as the sync (never captured, so never
//! pushed back: the push also skips fields that are not createable/updateable, which
//! calculated fields never are).

use crate::capture::Applying;
use crate::error::Result;
use crate::plan::convert;
use crate::plan::fields::ColumnMap;
use crate::spi_util;
use crate::sync::Mapping;
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
    let sql = format!(
        "UPDATE {tbl} t SET ({set}) = ROW({src}) FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
         WHERE t.sfid = p.sfid AND ROW({tgt}) IS DISTINCT FROM ROW({src})",
        tbl = m.table,
        set = names.join(", "),
        src = src.join(", "),
        tgt = tgt.join(", ")
    );
    let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(rows))];
    m.as_owner(|| spi_util::exec(&sql, &args))
}
