//! The sync core: how rows move between a mapping's table and Salesforce.
//!
//! Data flows one way through it (see docs/architecture.md):
//!
//! - **from Salesforce**: a `source` (poll pages, Bulk query batches, change events, the
//!   backfill, reconciliation, formula refresh) reads records and hands them, with the mark
//!   they advance, to the one sink, `apply`, which converts, translates lookups, resolves
//!   conflicts, holds back rows with local changes, applies deletes and records errors;
//! - **to Salesforce**: `push` claims outbox entries, plans (coalesce, parents first), sends
//!   and settles them; `push::write_through` does the same inside the user's statement.
//!
//! Every step moves data in and out of SQL in a few set-based statements and does its HTTP
//! between transactions (in the worker), so no transaction is held open across a network
//! call. Sources depend on `apply`, never the other way; both use `mapping`, `clients` and
//! `archive`, and the pure decisions in `crate::plan`.

pub mod apply;
pub mod archive;
pub mod cdc;
mod cdc_inbox;
pub mod cdc_transport;
pub mod clients;
pub mod echo_book;
pub mod echo_lock;
pub mod identity;
pub mod mapping;
pub mod matching;
pub mod others;
pub mod periodic;
pub mod push;
pub mod query;
pub mod rewritten;
pub mod sf_schema;
pub mod source;

use crate::error::Result;
pub use mapping::{load_mappings, set_mapping_error, Mapping};

/// Advisory lock key held during a pass, so run_once and the worker never overlap.
pub const PASS_LOCK: i64 = 0x5f5f_5359_4e43;

/// Waits for the worker's pass in progress and keeps the next one from starting until the
/// caller's transaction ends. For commands that drop what a pass holds locks on (triggers,
/// mappings): a pass locks sfsync's catalog and the table in its own order, and meeting it
/// halfway could deadlock.
pub fn hold_pass_lock() -> Result<()> {
    pgrx::Spi::run(&format!("SELECT pg_catalog.pg_advisory_xact_lock({PASS_LOCK})"))?;
    Ok(())
}

/// Where a pass runs: in the worker (every step its own transaction), or inside the
/// caller's transaction (`sfsync.run_once`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ctx {
    Worker,
    Session,
}

impl Ctx {
    pub fn tx<R>(self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        match self {
            Ctx::Worker => crate::worker::tx::run(f),
            Ctx::Session => f(),
        }
    }
}
