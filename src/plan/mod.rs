//! Pure decisions, free of pgrx: unit-tested with plain `cargo test`.

pub mod coalesce;
pub mod conflict;
pub mod convert;
pub mod fields;
pub mod relations;
pub mod soql;
pub mod write_through;
