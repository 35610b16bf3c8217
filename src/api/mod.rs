//! The SQL API: the functions and their argument names are the product contract listed in
//! docs/sql-reference.md; keep them stable.

mod access;
mod backfill;
mod connection;
mod identity;
mod mapping;
mod ops;
mod outbox;
mod query;
mod review;
