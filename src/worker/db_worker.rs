//! The sync worker of one database: woken at commit by the capture trigger (or by its
//! poll timeout), it pushes the outbox and pulls each mapping when its interval is due.

use crate::error::Result;
use crate::sync::{self, push, Ctx};
use crate::{guc, registry};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn sfsync_worker_main(arg: pg_sys::Datum) {
    let dboid = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(dboid)), None);

    if !extension_exists().unwrap_or(true) {
        // Nothing to do here until CREATE EXTENSION wakes the launcher again.
        registry::release_worker_slot(dboid, true);
        return;
    }
    if !registry::claim_worker_slot(dboid) {
        return; // another worker already serves this database
    }
    unsafe { pg_sys::before_shmem_exit(Some(on_exit), pg_sys::Datum::from(dboid)) };
    log!("sfsync worker started");

    match crate::worker::tx::run(push::release_stale_claims) {
        Ok(n) if n > 0 => log!("sfsync: released {n} outbox entries claimed by a previous worker"),
        Ok(_) => {}
        Err(e) => warning!("sfsync: could not release stale claims: {e}"),
    }

    let mut next_pull: HashMap<i32, Instant> = HashMap::new();
    let mut busy = false;
    loop {
        // After a full batch, go straight on; otherwise sleep until woken or due.
        let timeout = if busy { Duration::ZERO } else { next_wake(&next_pull) };
        if !BackgroundWorker::wait_latch(Some(timeout)) || crate::worker::shutdown_requested() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !extension_exists().unwrap_or(true) {
            log!("sfsync extension dropped; worker exiting");
            registry::release_worker_slot(dboid, true);
            return;
        }
        if !guc::ENABLED.get() {
            busy = false;
            continue;
        }
        // Session-level lock across the pass's transactions; run_once waits for it.
        if !lock(true) {
            busy = false;
            continue;
        }
        busy = match push::pass(Ctx::Worker, None) {
            Ok(s) => s.claimed >= guc::BATCH_SIZE.get() as usize,
            Err(e) => {
                warning!("sfsync push failed: {e}");
                false
            }
        };
        if let Err(e) = pull_due(&mut next_pull) {
            warning!("sfsync pull failed: {e}");
        }
        lock(false);
    }
    log!("sfsync worker stopping");
}

fn lock(take: bool) -> bool {
    let sql = if take {
        format!("SELECT pg_try_advisory_lock({})", sync::PASS_LOCK)
    } else {
        format!("SELECT pg_advisory_unlock({})", sync::PASS_LOCK)
    };
    crate::worker::tx::run(|| Ok(Spi::get_one::<bool>(&sql)?)).ok().flatten().unwrap_or(false)
}

fn next_wake(next_pull: &HashMap<i32, Instant>) -> Duration {
    let poll = guc::ms(&guc::POLL_INTERVAL_MS);
    let now = Instant::now();
    next_pull.values().map(|t| t.saturating_duration_since(now)).min().map_or(poll, |d| d.min(poll))
}

fn pull_due(next_pull: &mut HashMap<i32, Instant>) -> Result<()> {
    let mappings = crate::worker::tx::run(|| sync::load_mappings(None))?;
    next_pull.retain(|id, _| mappings.iter().any(|m| m.id == *id));
    let interval = guc::ms(&guc::PULL_INTERVAL_MS);
    for m in mappings.iter().filter(|m| m.pulls()) {
        if crate::worker::shutdown_requested() {
            break;
        }
        if next_pull.get(&m.id).is_some_and(|t| Instant::now() < *t) {
            continue;
        }
        if !sync::clients::available(&m.connection) {
            continue;
        }
        next_pull.insert(m.id, Instant::now() + interval);
        if let Err(e) = sync::pull::pass(Ctx::Worker, m) {
            let delay = sync::clients::failed(&m.connection);
            warning!("sfsync: pull of {} into {} failed, retrying in {delay:?}: {e}", m.sobject, m.table);
            let msg = e.to_string();
            let _ = crate::worker::tx::run(|| sync::set_mapping_error(m.id, &msg));
        } else {
            sync::clients::succeeded(&m.connection);
        }
    }
    Ok(())
}

/// Err (could not tell) is treated by callers as "exists": only a definite no stops us.
fn extension_exists() -> Result<bool> {
    crate::worker::tx::run(|| Ok(Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'sfsync')")?.unwrap_or(false)))
}

#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: i32, arg: pg_sys::Datum) {
    registry::release_worker_slot(arg.value() as u32, false);
}
