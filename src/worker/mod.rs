//! Background processes: one launcher per cluster, one sync worker per database that has
//! the extension.

mod database_commands;
mod db_worker;
mod launcher;
pub mod tx;

pub use database_commands::with_database_released;
pub use launcher::register_launcher;

use pgrx::prelude::*;

/// True once SIGTERM asked us to stop (set by pgrx's handler; not consumed here).
pub fn shutdown_requested() -> bool {
    unsafe { std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) != 0 }
}
