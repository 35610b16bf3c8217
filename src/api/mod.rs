//! The SQL API: the functions and their argument names are the product contract listed in
//! docs/sql-reference.md; keep them stable.

mod access;
mod alerts;
mod backfill;
mod budget;
mod connection;
mod ddl;
mod identity;
mod link;
mod mapping;
mod ops;
mod outbox;
mod query;
mod review;
mod shadow;
mod stream;
