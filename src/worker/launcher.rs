//! The launcher: a static background worker that starts one sync worker per database
//! that has the extension, and starts it again after a crash.
//!
//! It connects to no database and reads the shared catalog pg_database directly, so no
//! particular database has to exist. Workers exit cleanly (and are not restarted) in
//! databases without the extension; CREATE EXTENSION wakes the launcher to try again.

use crate::guc;
use crate::registry;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub fn register_launcher() {
    BackgroundWorkerBuilder::new("sfsync launcher")
        .set_type("sfsync launcher")
        .set_library("sfsync")
        .set_function("sfsync_launcher_main")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

struct Db {
    oid: u32,
    name: String,
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn sfsync_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    registry::register_launcher();
    log!("sfsync launcher started");

    let mut running: HashMap<u32, DynamicBackgroundWorker> = HashMap::new();
    // Databases whose worker stopped without marking "no extension": it crashed.
    let mut restart_at: HashMap<u32, Instant> = HashMap::new();

    loop {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let now = Instant::now();
        for db in list_databases() {
            if let Some(handle) = running.get(&db.oid) {
                match handle.pid() {
                    Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted) => continue,
                    Err(_) => {
                        running.remove(&db.oid);
                        if !registry::marked_without_extension(db.oid) && !registry::held(db.oid) {
                            warning!("sfsync worker for database \"{}\" stopped unexpectedly; restarting it", db.name);
                            restart_at.insert(db.oid, now + guc::ms(&guc::RESTART_DELAY_MS));
                        }
                    }
                }
            }
            if registry::marked_without_extension(db.oid) || registry::held(db.oid) || registry::worker_pid(db.oid).is_some() {
                continue;
            }
            if restart_at.get(&db.oid).is_some_and(|t| *t > now) {
                continue;
            }
            restart_at.remove(&db.oid);
            match start_worker(&db) {
                Some(h) => {
                    running.insert(db.oid, h);
                }
                None => {
                    warning!("sfsync: could not start a worker for database \"{}\" (max_worker_processes too low?)", db.name);
                    restart_at.insert(db.oid, now + guc::ms(&guc::RESTART_DELAY_MS));
                }
            }
        }
        let mut timeout = guc::ms(&guc::LAUNCHER_INTERVAL_MS);
        if let Some(next) = restart_at.values().min() {
            timeout = timeout.min(next.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)));
        }
        // Woken early by CREATE EXTENSION (registry) and by worker exits (notify pid).
        if !BackgroundWorker::wait_latch(Some(timeout)) {
            break;
        }
    }
    log!("sfsync launcher stopping");
}

fn start_worker(db: &Db) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("sfsync worker {}", db.name))
        .set_type("sfsync worker")
        .set_library("sfsync")
        .set_function("sfsync_worker_main")
        .set_argument(Some(pg_sys::Datum::from(db.oid)))
        .enable_spi_access()
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

/// Connectable, non-template databases, read from the shared catalog without SPI.
fn list_databases() -> Vec<Db> {
    let mut out = Vec::new();
    unsafe {
        pg_sys::StartTransactionCommand();
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tup.is_null() {
                break;
            }
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tup);
            if (*form).datallowconn && !(*form).datistemplate {
                let name = std::ffi::CStr::from_ptr((*form).datname.data.as_ptr()).to_string_lossy().into_owned();
                out.push(Db { oid: (*form).oid.to_u32(), name });
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pg_sys::CommitTransactionCommand();
    }
    out
}
