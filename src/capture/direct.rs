//! Writes captured changes straight into `sfsync.outbox`'s heap and indexes, the way
//! PostgreSQL writes its own catalogs (`CatalogTupleInsertWithInfo`): no plan, no executor, no
//! parameters to convert. Through SPI, a single-row statement's INSERT planned, started and
//! ended an executor for its one row; without it a synced single-row INSERT runs about 14 %
//! faster (docs/performance.md).
//!
//! What the executor would add is checked for, not assumed: the outbox must be a plain heap
//! table without triggers, row security, CHECK constraints or generated columns, whose
//! columns are the ones below with their types, and whose indexes are plain (no expression,
//! predicate, exclusion or deferred uniqueness). Otherwise (a superuser added a trigger to the
//! outbox, a newer catalog is half installed) `insert` answers false and the caller writes
//! through SPI as before. No rights are checked here: this is sfsync writing its own table.
//! The column defaults are those of `sql/catalog.sql`; a pg_test compares the two.

use super::pending::Change;
use crate::error::SyncError;
use pgrx::pg_sys::{self, Datum};
use pgrx::IntoDatum;
use std::ffi::CString;

extern "C-unwind" {
    // commands/sequence.h (not in pgrx's bindings): nextval() without its privilege check,
    // which would be the writing user's.
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

/// The outbox's columns, in the order of `Layout::at`.
const COLUMNS: [(&str, pg_sys::Oid); 13] = [
    ("id", pg_sys::INT8OID),
    ("mapping_id", pg_sys::INT4OID),
    ("op", pg_sys::TEXTOID),
    ("pk", pg_sys::TEXTOID),
    ("sfid", pg_sys::VARCHAROID),
    ("changed", pg_sys::TEXTARRAYOID),
    ("base", pg_sys::JSONBOID),
    ("txid", pg_sys::XID8OID),
    ("captured_at", pg_sys::TIMESTAMPTZOID),
    ("state", pg_sys::TEXTOID),
    ("attempts", pg_sys::INT4OID),
    ("claimed_until", pg_sys::TIMESTAMPTZOID),
    ("next_attempt_at", pg_sys::TIMESTAMPTZOID),
];
const ID: usize = 0;
const MAPPING: usize = 1;
const OP: usize = 2;
const PK: usize = 3;
const SFID: usize = 4;
const CHANGED: usize = 5;
const BASE: usize = 6;
const TXID: usize = 7;
const CAPTURED_AT: usize = 8;
const STATE: usize = 9;
const ATTEMPTS: usize = 10;
const NEXT_ATTEMPT_AT: usize = 12;

/// `sfid varchar(18)`: its typmod (the length plus the 4-byte header).
const SFID_TYPMOD: i32 = 18 + 4;
/// `'-infinity'::timestamptz` (DT_NOBEGIN).
const MINUS_INFINITY: i64 = i64::MIN;

/// Where each of `COLUMNS` is in the table's tuple descriptor (0-based).
struct Layout {
    at: [usize; COLUMNS.len()],
    natts: usize,
}

impl Layout {
    /// The table's columns are exactly `COLUMNS` (dropped ones aside), with their types.
    unsafe fn of(desc: pg_sys::TupleDesc) -> Option<Layout> {
        let tupdesc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(desc) };
        let natts = tupdesc.len();
        let mut at = [usize::MAX; COLUMNS.len()];
        for i in 0..natts {
            let att = tupdesc.get(i)?;
            if att.attisdropped {
                continue;
            }
            let name = unsafe { std::ffi::CStr::from_ptr(att.attname.data.as_ptr()) }.to_str().ok()?;
            let c = COLUMNS.iter().position(|(n, _)| *n == name)?;
            if att.atttypid != COLUMNS[c].1 || at[c] != usize::MAX || att.attgenerated != 0 {
                return None;
            }
            if c == SFID && att.atttypmod != SFID_TYPMOD {
                return None;
            }
            at[c] = i;
        }
        at.iter().all(|&i| i != usize::MAX).then_some(Layout { at, natts })
    }
}

/// The outbox as a plain heap table, and its sequence; None when it is anything else.
unsafe fn suitable(rel: pg_sys::Relation) -> Option<Layout> {
    unsafe {
        let class = &*(*rel).rd_rel;
        if class.relkind as u8 != pg_sys::RELKIND_RELATION
            || class.relrowsecurity
            || !(*rel).trigdesc.is_null()
            || !std::ptr::eq((*rel).rd_tableam, pg_sys::GetHeapamTableAmRoutine())
        {
            return None;
        }
        let desc = (*rel).rd_att;
        let constr = (*desc).constr;
        if !constr.is_null() && ((*constr).num_check > 0 || (*constr).has_generated_stored) {
            return None;
        }
        Layout::of(desc)
    }
}

/// Every index of the outbox takes its entries from plain columns, immediately.
unsafe fn plain_indexes(indexes: pg_sys::CatalogIndexState) -> bool {
    unsafe {
        let n = (*indexes).ri_NumIndices as usize;
        (0..n).all(|i| {
            let info = *(*indexes).ri_IndexRelationInfo.add(i);
            let index = *(*indexes).ri_IndexRelationDescs.add(i);
            (*info).ii_Expressions.is_null()
                && (*info).ii_Predicate.is_null()
                && (*info).ii_ExclusionOps.is_null()
                && (*(*index).rd_index).indimmediate
        })
    }
}

/// Whether the outbox as installed takes direct writes (what the tests hold the catalog to).
#[cfg(any(test, feature = "pg_test"))]
pub(crate) fn applies() -> bool {
    unsafe {
        let relid = super::pending::sfsync_relation(c"outbox").expect("sfsync.outbox exists");
        let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let indexes = pg_sys::CatalogOpenIndexes(rel);
        let ok = suitable(rel).is_some() && plain_indexes(indexes);
        pg_sys::CatalogCloseIndexes(indexes);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        ok
    }
}

fn text(s: &str) -> Datum {
    s.into_datum().expect("text is never NULL")
}

/// Writes `batch` into the outbox, in its order (the ids order a record's changes). False,
/// with nothing written: the outbox is not as expected, write it through SQL.
pub(super) fn insert(batch: &[Change]) -> Result<bool, SyncError> {
    unsafe {
        let (Some(relid), Some(seq)) = (super::pending::sfsync_relation(c"outbox"), super::pending::sfsync_relation(c"outbox_id_seq"))
        else {
            return Ok(false);
        };
        if pg_sys::get_rel_relkind(seq) as u8 != pg_sys::RELKIND_SEQUENCE {
            return Ok(false);
        }
        let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(relid, lock);
        let Some(layout) = suitable(rel) else {
            pg_sys::table_close(rel, lock);
            return Ok(false);
        };
        let indexes = pg_sys::CatalogOpenIndexes(rel);
        if !plain_indexes(indexes) {
            pg_sys::CatalogCloseIndexes(indexes);
            pg_sys::table_close(rel, lock);
            return Ok(false);
        }
        // Each change's values in a context of their own, freed row by row.
        let mut rows = pgrx::PgMemoryContexts::new("sfsync capture rows");
        let txid = Datum::from(pg_sys::GetTopFullTransactionId().value);
        let desc = (*rel).rd_att;
        let mut values = vec![Datum::from(0); layout.natts];
        let mut nulls = vec![true; layout.natts];
        let written = (|| -> Result<(), SyncError> {
            for change in batch {
                let sfid = match &change.sfid {
                    Some(id) if id.chars().count() > 18 => {
                        return Err(SyncError::Invalid(format!(
                            "sfsync: the Salesforce Id {id:?} of record {} is longer than 18 characters",
                            change.pk
                        )))
                    }
                    other => other,
                };
                rows.switch_to(|_| {
                    nulls.fill(true);
                    let mut set = |c: usize, v: Option<Datum>| {
                        if let Some(v) = v {
                            values[layout.at[c]] = v;
                            nulls[layout.at[c]] = false;
                        }
                    };
                    set(ID, Some(Datum::from(pg_sys::ffi::pg_guard_ffi_boundary(|| nextval_internal(seq, false)))));
                    set(MAPPING, Some(Datum::from(change.mapping)));
                    set(OP, Some(text(change.op.as_str())));
                    set(PK, Some(text(&change.pk)));
                    set(SFID, sfid.as_deref().map(text));
                    set(CHANGED, change.changed.as_ref().and_then(|c| c.iter().map(String::as_str).collect::<Vec<_>>().into_datum()));
                    set(BASE, change.base.as_deref().map(jsonb));
                    set(TXID, Some(txid));
                    set(CAPTURED_AT, Some(Datum::from(pg_sys::GetCurrentTimestamp())));
                    set(STATE, Some(text("pending")));
                    set(ATTEMPTS, Some(Datum::from(0i32)));
                    set(NEXT_ATTEMPT_AT, Some(Datum::from(MINUS_INFINITY)));
                    let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
                    pg_sys::CatalogTupleInsertWithInfo(rel, tuple, indexes);
                });
                pg_sys::MemoryContextReset(rows.value());
            }
            Ok(())
        })();
        drop(rows);
        pg_sys::CatalogCloseIndexes(indexes);
        // Locked until the transaction ends, as the executor leaves it.
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        written.map(|()| true)
    }
}

/// JSON text as a jsonb value (its input function, as a cast would call it).
fn jsonb(json: &str) -> Datum {
    let c = CString::new(json).expect("JSON text has no NUL");
    unsafe { pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(Datum::from(c.as_ptr()))]).expect("jsonb_in returns a value") }
}
