//! Compiles a parsed query against the schema (names, types, literals) and runs it over the
//! store: filter in one scan, sort once, then pages render from the matched-ID snapshot.
//!
//! Entry points: [`compile`], [`execute`] (record queries), [`execute_aggregate`] and [`render`].
//! The work is split by concern:
//! - `plan`: the compiled query ([`Plan`]) and the compiler's spine (FROM, the select list);
//! - `relationships`: field paths through parent lookups ([`FieldRef`], [`resolve`]), child
//!   relationship subqueries, semi/anti-joins;
//! - `predicates`: WHERE (literals, date literals, LIKE/IN/INCLUDES, SOQL's comparison rules);
//! - `aggregates`: GROUP BY, HAVING, aggregate functions;
//! - `ordering`: ORDER BY … NULLS FIRST/LAST, OFFSET/LIMIT;
//! - `render`: result rows as JSON;
//! - `columns`: the select list's column metadata (`query?columns=true`).

mod aggregates;
mod columns;
mod ordering;
mod plan;
mod predicates;
mod relationships;
mod render;

pub use aggregates::execute_aggregate;
pub use columns::column_metadata;
pub use plan::{compile, Plan};
pub use predicates::{compare, like};
pub use relationships::{resolve, FieldRef};
pub use render::{field_json, render};

use crate::schema::Schema;
use crate::store::{is_deleted, Record, Store};

/// Runs the plan: matching record seqs in result order, OFFSET/LIMIT applied.
pub fn execute(plan: &Plan, schema: &Schema, store: &Store, include_deleted: bool) -> Vec<u64> {
    let table = &store.tables[plan.obj];
    select(plan, schema, store, include_deleted, table.recs.iter())
}

/// `COUNT()`: how many records the plan matches, OFFSET/LIMIT applied. Without a filter the
/// table's own count answers (no scan of a million records for the backfill's estimate).
pub fn count(plan: &Plan, schema: &Schema, store: &Store, include_deleted: bool) -> usize {
    let table = &store.tables[plan.obj];
    let matched = match &plan.filter {
        None => table.count(include_deleted),
        Some(c) => {
            let def = &schema.objects[plan.obj];
            table
                .recs
                .values()
                .filter(|r| include_deleted || !is_deleted(def, r))
                .filter(|r| predicates::eval(c, schema, store, plan.obj, r))
                .count()
        }
    };
    let (off, lim) = ordering::window(plan);
    matched.saturating_sub(off).min(lim)
}

/// The scan: live rows of `recs` (deleted ones too with `include_deleted`) that pass WHERE,
/// then ORDER BY and OFFSET/LIMIT. Child subqueries run it over one parent's children.
fn select<'s>(
    plan: &Plan,
    schema: &Schema,
    store: &'s Store,
    include_deleted: bool,
    recs: impl Iterator<Item = (&'s u64, &'s Record)>,
) -> Vec<u64> {
    let def = &schema.objects[plan.obj];
    let hits = recs
        .filter(|(_, r)| include_deleted || !is_deleted(def, r))
        .filter(|(_, r)| plan.filter.as_ref().is_none_or(|c| predicates::eval(c, schema, store, plan.obj, r)));
    ordering::sort_and_window(plan, schema, store, hits)
}
