//! The SQL API (stable names per DESIGN.md).

mod connection;
mod mapping;
mod ops;
mod outbox;
mod review;
