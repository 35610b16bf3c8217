//! The SQL API (stable names per DESIGN.md).

mod backfill;
mod connection;
mod mapping;
mod ops;
mod outbox;
mod review;
