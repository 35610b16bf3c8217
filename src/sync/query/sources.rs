//! A synced query's source tables (`sync_query(..., sources => ...)`): a statement trigger
//! on each (`sfsync.query_source_changed()`, sql/queries.sql) inserts a row per query into
//! sfsync.query_due and wakes the worker at commit; the next refresh consumes the rows it
//! can see. Inserts only, so writers of a source never wait for one another, and however many
//! statements committed, one refresh follows. One trigger per table, shared by every query
//! that lists it, there while any does.

use crate::error::{Result, SyncError};
use crate::privilege;
use crate::spi_util;
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;

/// The trigger's name on a source table.
pub const TRIGGER: &str = "sfsync_query_source";

/// The caller may list `table` as a source: creating a trigger on it is its owner's right,
/// or the right of one granted TRIGGER on it. Checked as the caller, before any switch.
pub fn check(table: Oid) -> Result<()> {
    let kind = Spi::get_one_with_args::<String>("SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1", &[table.into()])?;
    match kind.as_deref() {
        Some("r" | "p") => {}
        Some(_) => {
            return Err(SyncError::Invalid(format!(
                "sources: {} is not a table; list the tables the query reads",
                privilege::table_name(table)
            )))
        }
        None => return Err(SyncError::NotFound(format!("sources: no table with oid {}", table.to_u32()))),
    }
    let me = privilege::current_user();
    if privilege::table_owner(table).is_some_and(|owner| privilege::acts_as(me, owner)) {
        return Ok(());
    }
    let may_trigger =
        Spi::get_one_with_args::<bool>("SELECT pg_catalog.has_table_privilege($1, $2, 'TRIGGER')", &[me.into(), table.into()])?
            .unwrap_or(false);
    if may_trigger {
        return Ok(());
    }
    Err(SyncError::Denied(format!(
        "permission denied: sources of sfsync.sync_query: a trigger on table {} needs ownership of the table (owner: {}) or GRANT TRIGGER ON {} TO {}",
        privilege::table_name(table),
        privilege::table_owner(table).map(privilege::role_name).unwrap_or_else(|| "unknown".into()),
        privilege::table_name(table),
        pgrx::spi::quote_identifier(privilege::role_name(me)),
    )))
}

/// Makes `tables` the query's sources (as the extension's owner): the triggers of tables no
/// query lists any more are dropped, new ones created.
pub fn set(query_id: i32, tables: &[Oid]) -> Result<()> {
    let before = listed(query_id)?;
    let oids: Vec<i64> = tables.iter().map(|t| i64::from(t.to_u32())).collect();
    spi_util::exec(
        "DELETE FROM sfsync.query_sources WHERE query_id = $1 AND NOT (tbl::oid::bigint = ANY ($2))",
        &[query_id.into(), oids.clone().into()],
    )?;
    spi_util::exec(
        "INSERT INTO sfsync.query_sources (query_id, tbl) SELECT $1, u.t::oid::regclass FROM unnest($2::bigint[]) AS u(t)
         ON CONFLICT DO NOTHING",
        &[query_id.into(), oids.into()],
    )?;
    for t in tables {
        install(*t)?;
    }
    drop_unused(&before)
}

/// The query's source tables.
pub fn listed(query_id: i32) -> Result<Vec<Oid>> {
    Ok(Spi::get_one_with_args::<Vec<i64>>(
        "SELECT array_agg(tbl::oid::bigint) FROM sfsync.query_sources WHERE query_id = $1",
        &[query_id.into()],
    )?
    .unwrap_or_default()
    .into_iter()
    .map(|o| Oid::from(o as u32))
    .collect())
}

/// Drops the trigger of each of `tables` that no query lists any more.
pub fn drop_unused(tables: &[Oid]) -> Result<()> {
    for t in tables {
        let used = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM sfsync.query_sources WHERE tbl = $1::oid::regclass)",
            &[(*t).into()],
        )?
        .unwrap_or(false);
        if !used && has_trigger(*t)? {
            Spi::run(&format!("DROP TRIGGER {TRIGGER} ON {}", privilege::table_name(*t)))?;
        }
    }
    Ok(())
}

fn has_trigger(table: Oid) -> Result<bool> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = $2)",
        &[table.into(), TRIGGER.into()],
    )?
    .unwrap_or(false))
}

fn install(table: Oid) -> Result<()> {
    if !has_trigger(table)? {
        Spi::run(&format!(
            "CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} FOR EACH STATEMENT
             EXECUTE FUNCTION sfsync.query_source_changed()",
            privilege::table_name(table)
        ))?;
    }
    Ok(())
}

/// Takes the query's due marks that this transaction sees (a source change committed later
/// leaves its own for the next refresh). True if there were any.
pub fn consume(query_id: i32) -> Result<bool> {
    Ok(spi_util::exec("DELETE FROM sfsync.query_due WHERE query_id = $1", &[query_id.into()])? > 0)
}

/// Marks the query due again (a refresh that took the marks but could not send yet).
pub fn mark(query_id: i32) -> Result<()> {
    spi_util::exec("INSERT INTO sfsync.query_due (query_id) VALUES ($1)", &[query_id.into()]).map(|_| ())
}
