//! The columnar apply of Bulk CSV rows (SQL in `plan::load`): the backfill's and the
//! poll's catch-up batches.
//!
//! A batch goes to Postgres as one `text[]` per column and is converted by the columns'
//! input functions inside a plain `INSERT .. SELECT`, the way COPY converts its input: no
//! jsonb is built or parsed. [`Batch`] is filled by the Bulk source's reader thread, which
//! lays the values out as text datums so the backend only wraps them into arrays.
//!
//! Rows that need the full treatment — records carrying our Postgres key (they may match a
//! local row without an sfid), deleted records, and whole batches touching a row with a
//! local change on its way out (the conflict policy decides) — go through `records` in the
//! same transaction. A batch that fails goes through the record path of `apply::batch`,
//! which isolates the bad record.
//!
//! While a table is being loaded from empty, the records are not looked for first, and
//! when no lookup needs translating they go in through `COPY` itself: a record that is
//! there after all (pushed meanwhile) fails the batch's unique sfid index, the batch goes
//! through the record path, and from then on every batch looks first (one index probe per
//! record) through the columnar insert.

use super::csv::{Batch, Shape};
use super::{advance, clear_errors, copy_from, held, records, Summary};
use crate::capture::Applying;
use crate::error::Result;
use crate::plan::load::{self as plan, ParentKey};
use crate::spi_util;
use crate::sync::Mapping;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::Spi;
use pgrx::spi::quote_identifier;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Per mapping: whether inserts must first look for records already in the table.
    static LOOK_FIRST: RefCell<HashMap<i32, bool>> = Default::default();
}

/// A new load of the mapping starts: inserts look first only if the table has rows.
pub fn begin(m: &Mapping) -> Result<()> {
    let has_rows = Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT 1 FROM {})", m.table))?.unwrap_or(true);
    LOOK_FIRST.with(|l| l.borrow_mut().insert(m.id, has_rows));
    Ok(())
}

/// The load is over: later batches of this mapping (a large catch-up) look first.
pub fn finish(m: &Mapping) {
    LOOK_FIRST.with(|l| l.borrow_mut().remove(&m.id));
}

fn look_first(m: &Mapping) -> bool {
    LOOK_FIRST.with(|l| l.borrow().get(&m.id).copied()).unwrap_or(true)
}

/// Whether the plain rows of the next batches can go in through `COPY`: into a table being
/// loaded from empty (nothing to look up) whose mapping has no lookups to translate.
pub fn copy_mode(m: &Mapping) -> bool {
    !look_first(m) && m.parents.is_empty()
}

/// A batch failed: from now on this load's batches look first (see the module docs).
pub fn look_first_from_now(m: &Mapping) {
    LOOK_FIRST.with(|l| l.borrow_mut().insert(m.id, true));
}

/// The batch, inside the current transaction; see the module docs.
pub fn apply(m: &Mapping, all: &[Mapping], shape: &Shape, batch: &Batch) -> Result<Summary> {
    let _applying = Applying::start();
    if batch.ids.len() > 0 && local_changes_waiting(m)? {
        let ids: Vec<&str> = (0..batch.len()).filter(|i| batch.special.binary_search(i).is_err()).map(|i| batch.id(shape, i)).collect();
        if held_back(m, &ids)? {
            // Rare (a local change to a row being loaded): the pull's apply decides per row.
            return records::apply(m, all, &batch.records(shape, 0..batch.len()), None);
        }
    }
    let mut s = match &batch.copy {
        Some(_) if look_first(m) => {
            // Read for COPY, but an earlier batch found records already here: look first.
            let plain = (0..batch.len()).filter(|i| batch.special.binary_search(i).is_err());
            records::apply(m, all, &batch.records(shape, plain), None)?
        }
        Some(bytes) => copy_in(m, batch, bytes)?,
        None => columnar(m, all, batch)?,
    };
    if !batch.special.is_empty() {
        s.add(records::apply(m, all, &batch.records(shape, batch.special.iter().copied()), None)?);
    }
    Ok(s)
}

/// Whether the mapping has local changes on their way out, or local deletes held for review.
fn local_changes_waiting(m: &Mapping) -> Result<bool> {
    let args: Vec<DatumWithOid> = vec![m.id.into()];
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM sfsync.outbox WHERE mapping_id = $1 AND state = 'pending')
             OR EXISTS (SELECT 1 FROM sfsync.delete_review WHERE mapping_id = $1 AND decided_at IS NULL AND origin = 'postgres')",
        &args,
    )?
    .unwrap_or(true))
}

/// Whether any of these records' local row has a pending change or a held delete.
fn held_back(m: &Mapping, ids: &[&str]) -> Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(sfid)
         WHERE EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.state = 'pending' AND o.sfid = p.sfid)
            OR EXISTS (SELECT 1 FROM {tbl} t JOIN sfsync.outbox o ON o.mapping_id = $1 AND o.state = 'pending' AND o.pk = t.{pk}::text
                       WHERE t.sfid = p.sfid)
            OR EXISTS (SELECT 1 FROM sfsync.delete_review r WHERE r.mapping_id = $1 AND r.decided_at IS NULL
                       AND r.origin = 'postgres' AND r.sfid = p.sfid))",
        tbl = m.table,
        pk = m.pk_ident()
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), ids.to_vec().into()];
    Ok(Spi::get_one_with_args::<bool>(&sql, &args)?.unwrap_or(true))
}

fn columnar(m: &Mapping, all: &[Mapping], batch: &Batch) -> Result<Summary> {
    let n = batch.ids.len();
    let mut s = Summary { fetched: n, ..Default::default() };
    if n == 0 {
        return Ok(s);
    }
    let exprs: Vec<String> = m.columns.iter().enumerate().map(|(i, c)| plan::value_expr(c, &format!("p.v{}", i + 1))).collect();
    let cols: Vec<String> = m.columns.iter().map(|c| quote_identifier(&c.column)).collect();
    let sql = plan::statements(&m.table, &m.pk_ident(), &cols, &exprs);
    let mut args: Vec<DatumWithOid> = vec![batch.ids.datum()];
    for (c, values) in m.columns.iter().zip(&batch.columns) {
        let parent = m
            .parents
            .iter()
            .find(|p| p.column == c.column)
            .and_then(|p| all.iter().find(|x| x.id == p.mapping_id))
            .map(|x| ParentKey { table: x.table.clone(), pk: x.pk_ident() });
        match parent {
            // Lookups are translated by the worker: the child's owner may not read the parent.
            Some(p) => {
                let keys = Spi::get_one_with_args::<Vec<Option<String>>>(&plan::parent_keys(&p), &[values.datum()])?;
                args.push(keys.unwrap_or_default().into());
            }
            None => args.push(values.datum()),
        }
    }
    let present = look_first(m) && Spi::get_one_with_args::<i64>(&plan::count_present(&m.table), &args[..1])?.unwrap_or(0) > 0;
    if present {
        if let Some(update) = &sql.update {
            // The catalog side first (the owner cannot read the outbox): rows with a local
            // change that arrived since `apply` looked.
            args.push(held::pending_of(m, batch.ids.datum())?.into());
            s.updated += m.as_owner(|| spi_util::exec(update, &args))?;
            args.pop();
        }
        s.inserted += m.as_owner(|| spi_util::exec(&sql.insert_checked, &args))?;
    } else {
        s.inserted += m.as_owner(|| spi_util::exec(&sql.insert, &args))?;
    }
    applied(m, batch, &s)?;
    Ok(s)
}

/// The plain rows through COPY's batched heap inserts, the fastest way into a table, as the
/// table's owner (`copy_from`).
fn copy_in(m: &Mapping, batch: &Batch, bytes: &[u8]) -> Result<Summary> {
    let mut s = Summary { fetched: batch.ids.len(), ..Default::default() };
    if batch.ids.len() == 0 {
        return Ok(s);
    }
    let cols: Vec<String> = m.columns.iter().map(|c| c.column.clone()).collect();
    s.inserted = copy_from::copy(m, &cols, bytes)?;
    applied(m, batch, &s)?;
    Ok(s)
}

/// Bookkeeping of applied plain rows: their earlier pull errors go, the counter moves.
fn applied(m: &Mapping, batch: &Batch, s: &Summary) -> Result<()> {
    clear_errors(m, batch.ids.datum())?;
    advance(m, None, s.inserted + s.updated)
}
