//! One API budget per Salesforce org for the whole cluster: the pacer's state
//! (`salesforce::BudgetCell`, five atomics) lives in shared memory, so the worker of every
//! database, its change-stream thread and every write-through backend spend from the same
//! bucket instead of each taking the full share.
//!
//! A fixed table of [`SLOTS`] slots, keyed by a hash of the org's Id (or, when a login did
//! not say which org, of the connection's login URL, client and user). A slot is claimed by
//! compare-and-swap on its key and never given back, so the claimed slots are always a
//! prefix of the table and one scan finds an org's slot or claims the first free one:
//! no lock, so the stream thread (which must not call Postgres) may use it too. When all
//! slots are taken, a further org's clients pace alone, each process for itself, and the
//! server log says so once per process. Without `shared_preload_libraries` there is no
//! table at all: the same per-process pacing, said once in the log and shown in
//! `sfsync.status` (`api_budget_scope = 'process'`).

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic};
use salesforce::{BudgetCell, BudgetHandle, BudgetShare};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Orgs the cluster paces together; each slot is 40 bytes.
pub const SLOTS: usize = 64;

#[derive(Default)]
#[repr(C)]
struct Slot {
    /// Hash of the org's key; 0: free.
    key: AtomicU64,
    cell: BudgetCell,
}

pub struct Table {
    slots: [Slot; SLOTS],
}

impl Default for Table {
    fn default() -> Self {
        Table { slots: std::array::from_fn(|_| Slot::default()) }
    }
}

unsafe impl PGRXSharedMemory for Table {}

static TABLE: PgAtomic<Table> = unsafe { PgAtomic::new(c"sfsync_org_budgets") };
static INITIALIZED: AtomicBool = AtomicBool::new(false);
static SAID_FULL: AtomicBool = AtomicBool::new(false);
static SAID_LOCAL: AtomicBool = AtomicBool::new(false);

pub fn init_shmem() {
    pg_shmem_init!(TABLE);
    INITIALIZED.store(true, Ordering::SeqCst);
}

/// Whether the budget is shared (sfsync preloaded); else every process paces alone.
pub fn shared() -> bool {
    INITIALIZED.load(Ordering::SeqCst)
}

fn hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: every process of the cluster computes the same value.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish().max(1)
}

/// The cell of `key`'s org: found, or claimed in the first free slot; None when full.
fn cell(key: &str) -> Option<&'static BudgetCell> {
    let table: &'static Table = TABLE.get();
    let want = hash(key);
    for slot in &table.slots {
        let mut seen = slot.key.load(Ordering::Acquire);
        if seen == 0 {
            seen = match slot.key.compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => want,
                Err(other) => other,
            };
        }
        if seen == want {
            return Some(&slot.cell);
        }
    }
    None
}

/// The cell of an org that already has one (never claims): for sfsync.status.
pub fn existing(key: &str) -> Option<&'static BudgetCell> {
    if !shared() {
        return None;
    }
    let want = hash(key);
    TABLE
        .get()
        .slots
        .iter()
        .take_while(|s| s.key.load(Ordering::Acquire) != 0)
        .find(|s| s.key.load(Ordering::Acquire) == want)
        .map(|s| &s.cell)
}

struct Shm;

impl BudgetShare for Shm {
    fn cell(&self, key: &str) -> Option<&'static BudgetCell> {
        let c = cell(key);
        // Only the first time in this process, and without touching Postgres from a thread:
        // eprintln reaches the server log (stderr) from any thread.
        if c.is_none() && !SAID_FULL.swap(true, Ordering::Relaxed) {
            eprintln!(
                "sfsync: WARNING: more than {SLOTS} Salesforce orgs share this cluster; the API budget of the others is paced per process"
            );
        }
        c
    }
}

/// The handle clients take in their options: None when sfsync is not preloaded (each
/// process paces alone; said once per process in the log).
pub fn handle() -> Option<BudgetHandle> {
    if shared() {
        return Some(BudgetHandle(Arc::new(Shm)));
    }
    if !SAID_LOCAL.swap(true, Ordering::Relaxed) {
        pgrx::log!(
            "sfsync: not in shared_preload_libraries: each process paces its own API budget (sfsync.api_budget) instead of one per org"
        );
    }
    None
}
