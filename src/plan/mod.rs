//! Pure decisions, free of pgrx: unit-tested with plain `cargo test`.

pub mod backfill;
pub mod bisect;
pub mod cdc;
pub mod check;
pub mod coalesce;
pub mod compare;
pub mod compat;
pub mod conflict;
pub mod convert;
pub mod ddl;
pub mod deletes;
pub mod fields;
pub mod filter;
pub mod formulas;
pub mod load;
pub mod matching;
pub mod mirror;
pub mod namespace;
pub mod options;
pub mod query;
pub mod relations;
pub mod retry;
pub mod schedule;
pub mod shadow;
pub mod soql;
pub mod write_through;
