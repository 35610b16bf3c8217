//! A column backfill's batch: fields newly added to a mapping (`sync_table` run again with
//! more fields) filled into the rows already linked to their records. Only the mapping's
//! columns given are written (the caller passes the mapping narrowed to them), only rows that
//! exist (no inserts, no deletes: those belong to the pull), and not rows whose local change
//! is still on its way out (the push is about to send their values).

use super::records::translate_parents;
use super::{held, Rows, Summary};
use crate::capture::Applying;
use crate::error::Result;
use crate::plan::convert;
use crate::spi_util;
use crate::sync::{Ctx, Mapping};
use pgrx::spi::quote_identifier;
use serde_json::{Map, Value};

/// One batch in one transaction, with `then` (progress) in the same transaction.
pub fn batch(ctx: Ctx, m: &Mapping, all: &[Mapping], rows: Rows, then: &dyn Fn(&Summary) -> Result<()>) -> Result<Summary> {
    let records = match rows {
        Rows::Records(r) => r.to_vec(),
        Rows::Csv(shape, csv) => csv.records(shape, 0..csv.len()),
    };
    ctx.tx(|| {
        let _applying = Applying::start();
        let mut live: Vec<Value> = records
            .iter()
            .filter_map(|r| {
                let id = r.get("Id")?.as_str()?;
                let mut row = Map::new();
                row.insert("sfid".into(), Value::String(id.to_string()));
                for c in &m.columns {
                    row.insert(c.column.clone(), r.get(&c.field).map(|v| convert::from_sf(c, v)).unwrap_or(Value::Null));
                }
                Some(Value::Object(row))
            })
            .collect();
        translate_parents(m, all, &mut live)?;
        let sfids: Vec<String> = live.iter().filter_map(|r| r["sfid"].as_str().map(String::from)).collect();
        let pending = held::pending(m, &sfids)?;
        let cols: Vec<String> = m.columns.iter().map(|c| quote_identifier(&c.column)).collect();
        let list = |p: &str| cols.iter().map(|c| format!("{p}.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE {tbl} t SET ({set}) = ROW({src}) FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
             WHERE t.sfid = p.sfid AND ROW({tgt}) IS DISTINCT FROM ROW({src}) AND t.{pk}::text <> ALL($2)",
            tbl = m.table,
            set = cols.join(", "),
            src = list("p"),
            tgt = list("t"),
            pk = m.pk_ident()
        );
        let updated = m.as_owner(|| spi_util::exec(&sql, &[spi_util::jsonb(Value::Array(live)), pending.into()]))?;
        let s = Summary { fetched: records.len(), updated, ..Default::default() };
        then(&s)?;
        Ok(s)
    })
}
