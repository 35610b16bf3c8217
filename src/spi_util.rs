//! Thin SPI helpers: the extension moves data in and out of SQL as jsonb, so the Rust side
//! deals in serde values and the set-based work stays in SQL.

use crate::error::Result;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

/// Runs a statement returning at most one jsonb value (NULL or no row gives None).
pub fn json(sql: &str, args: &[DatumWithOid]) -> Result<Option<Value>> {
    Ok(Spi::connect_mut(|c| {
        let table = c.update(sql, Some(1), args)?;
        if table.is_empty() {
            Ok::<_, pgrx::spi::Error>(None)
        } else {
            table.first().get_one::<JsonB>()
        }
    })?
    .map(|j| j.0))
}

/// Runs a statement and returns the number of rows it processed.
pub fn exec(sql: &str, args: &[DatumWithOid]) -> Result<usize> {
    Ok(Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len()))?)
}

pub fn jsonb(v: Value) -> DatumWithOid<'static> {
    JsonB(v).into()
}
