//! Periodic refresh of mapped formula and roll-up summary fields (see plan::formulas): reads
//! Id + the calculated fields of the mapping's records (REST query paging, or one Bulk API 2.0
//! query job above `sfsync.backfill_bulk_threshold`), and updates only the rows whose values
//! differ, set-based, as the sync (never captured, so never pushed back: the push also skips
//! fields that are not createable/updateable, which calculated fields never are).

use super::{clients, Ctx, Mapping};
use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::fields::ColumnMap;
use crate::plan::{backfill, convert, formulas as plan};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use pgrx::spi::quote_identifier;
use salesforce::{BulkOptions, Record};
use serde::Serialize;
use serde_json::{Map, Value};

const BATCH: usize = 2000;

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct RefreshSummary {
    pub fetched: usize,
    pub updated: usize,
    pub bulk: bool,
}

/// Refreshes the mapping's calculated columns (nothing to do without any).
pub fn refresh(ctx: Ctx, m: &Mapping) -> Result<RefreshSummary> {
    let cols = plan::calculated(&m.columns);
    let mut out = RefreshSummary::default();
    if !cols.is_empty() {
        let fields: Vec<&str> = cols.iter().map(|c| c.field.as_str()).collect();
        let q = plan::refresh_query(&m.sobject, &fields, m.filter.as_deref()).map_err(SyncError::Invalid)?;
        let client = clients::client(ctx, &m.connection)?;
        let estimate = client.query(&backfill::count_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?)?.total_size;
        let mut batch = Vec::with_capacity(BATCH);
        let flush = |batch: &mut Vec<Record>, out: &mut RefreshSummary| -> Result<()> {
            if !batch.is_empty() {
                out.fetched += batch.len();
                out.updated += ctx.tx(|| apply(m, &cols, batch))?;
                batch.clear();
            }
            Ok(())
        };
        if estimate > guc::BACKFILL_BULK_THRESHOLD.get().max(0) as u64 {
            out.bulk = true;
            let mut reader = client.bulk_query_with(&q, false, &BulkOptions::default())?;
            let job = reader.job().id.clone();
            while let Some(r) = reader.next_record() {
                batch.push(r?);
                if batch.len() >= BATCH {
                    flush(&mut batch, &mut out)?;
                }
            }
            let _ = client.bulk_delete(true, &job); // best effort
        } else {
            for r in client.query_iter(&q, false) {
                batch.push(r?);
                if batch.len() >= BATCH {
                    flush(&mut batch, &mut out)?;
                }
            }
        }
        flush(&mut batch, &mut out)?;
    }
    ctx.tx(|| {
        spi_util::exec("UPDATE sfsync.sync_state SET formulas_refreshed_at = now() WHERE mapping_id = $1", &[m.id.into()])?;
        clients::flush_stats()
    })?;
    Ok(out)
}

/// Bulk CSV carries text, with an empty field for null.
fn value(c: &ColumnMap, v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(v) => convert::from_sf(c, v),
        None => Value::Null,
    }
}

fn apply(m: &Mapping, cols: &[&ColumnMap], records: &[Record]) -> Result<usize> {
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
    spi_util::exec(&sql, &args)
}
