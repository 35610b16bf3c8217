//! Shared-memory registry of the launcher and the per-database workers.
//!
//! Backends find their database's worker here to set its latch at commit (the pg_net
//! pattern); the launcher finds which databases were seen without the extension. Latch
//! pointers point into PGPROC, which lives in shared memory at the same address in every
//! process, so setting a stale one only causes a spurious wake-up.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};

pub const MAX_DATABASES: usize = 128;

#[derive(Copy, Clone, Default)]
pub struct Slot {
    pub dboid: u32,
    pub pid: i32,
    latch: usize,
    /// The database was checked and has no sfsync extension; cleared by CREATE EXTENSION.
    pub no_extension: bool,
}

#[derive(Copy, Clone)]
pub struct Registry {
    launcher_latch: usize,
    slots: [Slot; MAX_DATABASES],
    /// (database, count of CREATE EXTENSION commits seen): a worker that found no extension
    /// only marks its database if no CREATE EXTENSION committed since it looked.
    wants: [(u32, u32); MAX_DATABASES],
    /// Databases no worker may connect to for now (a DROP or template copy of them runs).
    held: [u32; MAX_DATABASES],
}

impl Default for Registry {
    fn default() -> Self {
        Registry { launcher_latch: 0, slots: [Slot::default(); MAX_DATABASES], wants: [(0, 0); MAX_DATABASES], held: [0; MAX_DATABASES] }
    }
}

unsafe impl PGRXSharedMemory for Registry {}

static REGISTRY: PgLwLock<Registry> = unsafe { PgLwLock::new(c"sfsync_registry") };
static INITIALIZED: AtomicBool = AtomicBool::new(false);

pub fn init_shmem() {
    pg_shmem_init!(REGISTRY);
    // Set in the postmaster before forking, so every backend inherits it.
    INITIALIZED.store(true, Ordering::SeqCst);
}

/// False when sfsync is not in shared_preload_libraries: there is no worker to wake.
pub fn available() -> bool {
    INITIALIZED.load(Ordering::SeqCst)
}

fn my_latch() -> usize {
    unsafe { pg_sys::MyLatch as usize }
}

fn set_latch(latch: usize) {
    if latch != 0 {
        unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
    }
}

pub fn register_launcher() {
    REGISTRY.exclusive().launcher_latch = my_latch();
}

pub fn wake_launcher() {
    if available() {
        let latch = REGISTRY.share().launcher_latch;
        set_latch(latch);
    }
}

/// Claims the slot of `dboid` for the calling worker. Returns false when another live
/// worker already serves this database (then the caller must exit).
pub fn claim_worker_slot(dboid: u32) -> bool {
    let mut reg = REGISTRY.exclusive();
    let me = unsafe { pg_sys::MyProcPid };
    if let Some(slot) = reg.slots.iter_mut().find(|s| s.dboid == dboid) {
        if slot.pid != 0 && slot.pid != me && pid_alive(slot.pid) {
            return false;
        }
        *slot = Slot { dboid, pid: me, latch: my_latch(), no_extension: false };
        return true;
    }
    match reg.slots.iter_mut().find(|s| s.dboid == 0) {
        Some(slot) => {
            *slot = Slot { dboid, pid: me, latch: my_latch(), no_extension: false };
            true
        }
        None => {
            warning!("sfsync: more than {MAX_DATABASES} databases use sfsync; no worker for database {dboid}");
            false
        }
    }
}

/// How many CREATE EXTENSION commits the database has seen; read before looking for the
/// extension and handed back to `release_worker_slot`.
pub fn wants_epoch(dboid: u32) -> u32 {
    REGISTRY.share().wants.iter().find(|(d, _)| *d == dboid).map_or(0, |(_, e)| *e)
}

/// Called by a worker on its way out. `no_extension` records that the database does not
/// need a worker until CREATE EXTENSION says otherwise — unless one committed after the
/// worker read `seen_epoch`, in which case the launcher must start a worker again.
pub fn release_worker_slot(dboid: u32, no_extension: bool, seen_epoch: u32) {
    let mut reg = REGISTRY.exclusive();
    let current = reg.wants.iter().find(|(d, _)| *d == dboid).map_or(0, |(_, e)| *e);
    let no_extension = no_extension && current == seen_epoch;
    let me = unsafe { pg_sys::MyProcPid };
    let marked = Slot { dboid, no_extension: true, ..Slot::default() };
    match reg.slots.iter_mut().find(|s| s.dboid == dboid) {
        Some(slot) if slot.pid == me || slot.pid == 0 || !pid_alive(slot.pid) => {
            *slot = if no_extension { marked } else { Slot::default() };
        }
        Some(_) => {} // another live worker owns it
        None if no_extension => {
            if let Some(free) = reg.slots.iter_mut().find(|s| s.dboid == 0) {
                *free = marked;
            }
        }
        None => {}
    }
}

/// Clears the no-extension mark of a database and wakes the launcher.
pub fn database_wants_worker(dboid: u32) {
    if !available() {
        return;
    }
    {
        let mut reg = REGISTRY.exclusive();
        if let Some(slot) = reg.slots.iter_mut().find(|s| s.dboid == dboid && s.no_extension) {
            *slot = Slot::default();
        }
        match reg.wants.iter().position(|(d, _)| *d == dboid).or_else(|| reg.wants.iter().position(|(d, _)| *d == 0)) {
            Some(i) => reg.wants[i] = (dboid, reg.wants[i].1.wrapping_add(1)),
            None => warning!("sfsync: more than {MAX_DATABASES} databases use sfsync"),
        }
    }
    wake_launcher();
}

/// Keeps workers away from the database until [`release`].
pub fn hold(dboid: u32) {
    let mut reg = REGISTRY.exclusive();
    if !reg.held.contains(&dboid) {
        if let Some(free) = reg.held.iter_mut().find(|d| **d == 0) {
            *free = dboid;
        }
    }
}

pub fn release(dboid: u32) {
    let mut reg = REGISTRY.exclusive();
    reg.held.iter_mut().filter(|d| **d == dboid).for_each(|d| *d = 0);
}

pub fn held(dboid: u32) -> bool {
    available() && REGISTRY.share().held.contains(&dboid)
}

pub fn marked_without_extension(dboid: u32) -> bool {
    REGISTRY.share().slots.iter().any(|s| s.dboid == dboid && s.no_extension)
}

pub fn worker_pid(dboid: u32) -> Option<i32> {
    if !available() {
        return None;
    }
    REGISTRY.share().slots.iter().find(|s| s.dboid == dboid && s.pid != 0).map(|s| s.pid)
}

pub fn wake_worker(dboid: u32) {
    if !available() {
        return;
    }
    let latch = REGISTRY.share().slots.iter().find(|s| s.dboid == dboid && s.pid != 0).map(|s| s.latch);
    if let Some(latch) = latch {
        set_latch(latch);
    }
}

fn pid_alive(pid: i32) -> bool {
    // kill(pid, 0): ESRCH means gone; EPERM cannot happen for our own cluster's processes.
    unsafe { libc::kill(pid, 0) == 0 }
}
