//! sfsync: bidirectional Salesforce <-> PostgreSQL sync from inside the database.
//!
//! Layout: `api/` holds the SQL-callable functions, `capture` the trigger-side helpers,
//! `worker/` the launcher and per-database worker, `sync/` the push and pull passes (SPI in,
//! HTTP out), `plan/` the pure decisions (field matching, coalescing, value conversion, SOQL).
//! pgrx glue is kept thin; decisions live in plain functions with plain unit tests.

use pgrx::prelude::*;

mod abort_queue;
mod alerts;
mod api;
mod capture;
mod error;
mod guc;
mod log_filter;
mod org_budget;
mod plan;
mod privilege;
mod registry;
mod shadow;
mod spi_util;
mod sync;
mod token_cache;
mod utility_hook;
mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod connection_tests;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
extension_sql_file!("../sql/backfill.sql", name = "backfill_catalog", requires = ["catalog"]);
extension_sql_file!("../sql/queries.sql", name = "queries_catalog", requires = ["catalog"]);
extension_sql_file!("../sql/views.sql", name = "views", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    log_filter::install();
    capture::register_commit_hook();
    // Shared memory and background workers only exist when we are preloaded; a plain
    // `CREATE EXTENSION` in a server without preload still gets a working SQL API.
    let preloaded = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    utility_hook::register(preloaded);
    if preloaded {
        registry::init_shmem();
        token_cache::init_shmem();
        org_budget::init_shmem();
        abort_queue::init_shmem();
        worker::register_launcher();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
