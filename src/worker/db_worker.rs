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
    let mut last_pass: Option<Instant> = None;
    loop {
        // After a full batch, go straight on; otherwise sleep until woken or due.
        let timeout = if busy { Duration::ZERO } else { next_wake(&next_pull) };
        if !BackgroundWorker::wait_latch(Some(timeout)) || crate::worker::shutdown_requested() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        // Commits wake us one by one; passes are spaced by sfsync.batch_delay so a burst
        // of small transactions is sent as a few batches, not one pass per commit.
        let delay = guc::ms(&guc::BATCH_DELAY_MS);
        if let Some(since) = last_pass.map(|t| t.elapsed()).filter(|e| *e < delay) {
            sleep(delay - since);
        }
        last_pass = Some(Instant::now());
        let mappings = match crate::worker::tx::run(begin_pass) {
            Ok(Pass::Run(m)) => m,
            Ok(Pass::Skip) => {
                busy = false;
                continue;
            }
            Ok(Pass::NoExtension) => {
                log!("sfsync extension dropped; worker exiting");
                registry::release_worker_slot(dboid, true);
                return;
            }
            Err(e) => {
                warning!("sfsync: could not start a pass: {e}");
                busy = false;
                continue;
            }
        };
        busy = match push::pass(Ctx::Worker, &mappings, None) {
            Ok(s) => s.claimed >= guc::BATCH_SIZE.get() as usize,
            Err(e) => {
                warning!("sfsync push failed: {e}");
                false
            }
        };
        // A chunk of a backfill (initial or asked for); their tables' polling waits for it.
        let backfill = sync::backfill::step(&mappings);
        busy |= backfill.more;
        pull_due(&mappings, &mut next_pull, &backfill.active);
        let unlock = format!("SELECT pg_advisory_unlock({})", sync::PASS_LOCK);
        if let Err(e) = crate::worker::tx::run(|| Ok(Spi::run(&unlock)?)) {
            warning!("sfsync: could not release the pass lock: {e}");
        }
    }
    log!("sfsync worker stopping");
}

enum Pass {
    Run(Vec<sync::Mapping>),
    /// Disabled, or run_once holds the pass lock.
    Skip,
    NoExtension,
}

/// One transaction: is the extension still there, are we enabled, take the pass lock
/// (session level, so run_once waits for us) and read the mappings.
fn begin_pass() -> Result<Pass> {
    if !Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'sfsync')")?.unwrap_or(false) {
        return Ok(Pass::NoExtension);
    }
    if !guc::ENABLED.get() {
        return Ok(Pass::Skip);
    }
    if !Spi::get_one::<bool>(&format!("SELECT pg_try_advisory_lock({})", sync::PASS_LOCK))?.unwrap_or(false) {
        return Ok(Pass::Skip);
    }
    Ok(Pass::Run(sync::load_mappings(None)?))
}

/// Sleeps without waking for latch sets (those are what we are batching).
fn sleep(d: Duration) {
    let ms = d.as_millis().min(60_000) as std::ffi::c_long;
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            ms,
            pg_sys::PG_WAIT_EXTENSION,
        );
    }
}

fn next_wake(next_pull: &HashMap<i32, Instant>) -> Duration {
    let poll = guc::ms(&guc::POLL_INTERVAL_MS);
    let now = Instant::now();
    next_pull.values().map(|t| t.saturating_duration_since(now)).min().map_or(poll, |d| d.min(poll))
}

fn pull_due(mappings: &[sync::Mapping], next_pull: &mut HashMap<i32, Instant>, backfilling: &[i32]) {
    next_pull.retain(|id, _| mappings.iter().any(|m| m.id == *id));
    let interval = guc::ms(&guc::PULL_INTERVAL_MS);
    // Parents first, so a child's lookup finds the parent row it points to.
    let ids: Vec<i32> = mappings.iter().map(|m| m.id).collect();
    let parents: HashMap<i32, Vec<i32>> = mappings.iter().map(|m| (m.id, m.parents.iter().map(|p| p.mapping_id).collect())).collect();
    let ordered = crate::plan::relations::parents_first(&ids, &parents);
    for m in ordered.iter().filter_map(|id| mappings.iter().find(|m| m.id == *id)).filter(|m| m.pulls() && !backfilling.contains(&m.id)) {
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
        if let Err(e) = sync::pull::pass(Ctx::Worker, m, mappings) {
            let delay = sync::clients::failed(&m.connection, &e);
            warning!("sfsync: pull of {} into {} failed, retrying in {delay:?}: {e}", m.sobject, m.table);
            let msg = e.to_string();
            let _ = crate::worker::tx::run(|| sync::set_mapping_error(m.id, &msg));
        } else {
            sync::clients::succeeded(&m.connection);
        }
    }
}

/// Err (could not tell) is treated by callers as "exists": only a definite no stops us.
fn extension_exists() -> Result<bool> {
    crate::worker::tx::run(|| Ok(Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'sfsync')")?.unwrap_or(false)))
}

#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: i32, arg: pg_sys::Datum) {
    registry::release_worker_slot(arg.value() as u32, false);
}
