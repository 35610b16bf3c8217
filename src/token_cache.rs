//! The access tokens of the database's connections, shared in shared memory by every
//! backend and the worker: one login per connection, not one per process (a fresh backend's
//! first write-through then costs one API call). Fixed slots keyed by (database, connection
//! name, credentials stamp); a token, URL or name too big for a slot is simply not shared.
//! Tokens live only here and in each process's client: never in a table, never in a log.
//!
//! Re-login after INVALID_SESSION_ID: the first process to meet it claims the slot's
//! refresh and logs in; the others wait briefly for the slot's generation to move and take
//! the new token, so an expiry makes one login, not one per backend.
//!
//! The client may meet a 401 on a helper thread (a Bulk reader): shared memory is only
//! touched from the process's main thread, other threads simply don't share.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use salesforce::{Secret, SessionSeed, SessionShare};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SLOTS: usize = 64;
const NAME: usize = 128;
const TOKEN: usize = 2048;
const URL: usize = 256;
const SHORT: usize = 32;
/// How long others wait for a process that claimed the re-login; after that they log in.
const CLAIM: Duration = Duration::from_secs(5);

/// A string in a fixed-size shared-memory field.
#[derive(Copy, Clone)]
pub(crate) struct Text<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text { len: 0, bytes: [0; N] }
    }
}

impl<const N: usize> Text<N> {
    pub(crate) fn of(s: &str) -> Option<Self> {
        (s.len() <= N).then(|| {
            let mut t = Text::default();
            t.bytes[..s.len()].copy_from_slice(s.as_bytes());
            t.len = s.len() as u16;
            t
        })
    }
    pub(crate) fn get(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

#[derive(Copy, Clone, Default)]
struct Slot {
    dboid: u32,
    name: Text<NAME>,
    stamp: u64,
    /// Moves at every publish: waiters see a re-login finish.
    generation: u64,
    published_ms: u64,
    token: Text<TOKEN>,
    instance_url: Text<URL>,
    api_version: Text<SHORT>,
    org_id: Text<SHORT>,
    user_id: Text<SHORT>,
    /// The process logging in again now, and since when.
    refreshing_pid: i32,
    refreshing_ms: u64,
}

impl Slot {
    fn is(&self, key: &Key) -> bool {
        self.dboid == key.dboid && self.stamp == key.stamp && self.name.get() == key.name
    }
    fn seed(&self) -> Option<SessionSeed> {
        (self.token.len > 0).then(|| SessionSeed {
            token: Secret::new(self.token.get().to_string()),
            instance_url: self.instance_url.get().to_string(),
            api_version: self.api_version.get().to_string(),
            org_id: Some(self.org_id.get().to_string()).filter(|s| !s.is_empty()),
            user_id: Some(self.user_id.get().to_string()).filter(|s| !s.is_empty()),
        })
    }
}

#[derive(Copy, Clone)]
pub struct Tokens {
    slots: [Slot; SLOTS],
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens { slots: [Slot::default(); SLOTS] }
    }
}

unsafe impl PGRXSharedMemory for Tokens {}

static TOKENS: PgLwLock<Tokens> = unsafe { PgLwLock::new(c"sfsync_tokens") };
static INITIALIZED: AtomicBool = AtomicBool::new(false);

pub fn init_shmem() {
    pg_shmem_init!(TOKENS);
    INITIALIZED.store(true, Ordering::SeqCst);
}

fn usable() -> bool {
    // The main thread's tid is the pid; LWLocks must never be taken from another thread.
    INITIALIZED.load(Ordering::SeqCst) && unsafe { libc::syscall(libc::SYS_gettid) as i32 == libc::getpid() }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

/// One connection of this database, as its credentials stand (`stamp` changes with them).
pub struct Key {
    dboid: u32,
    name: String,
    stamp: u64,
}

/// The share for connection `name` whose stored credentials read `stamp`; None when shared
/// memory is not there (sfsync not preloaded) or the name does not fit a slot.
pub fn share(name: &str, stamp: &str) -> Option<std::sync::Arc<dyn SessionShare>> {
    use std::hash::{Hash, Hasher};
    if !INITIALIZED.load(Ordering::SeqCst) || name.len() > NAME {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    stamp.hash(&mut h);
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    Some(std::sync::Arc::new(Key { dboid, name: name.to_string(), stamp: h.finish() }))
}

impl SessionShare for Key {
    fn current(&self) -> Option<SessionSeed> {
        if !usable() {
            return None;
        }
        TOKENS.share().slots.iter().find(|s| s.is(self)).and_then(Slot::seed)
    }

    fn newer_than(&self, stale: &Secret) -> Option<SessionSeed> {
        if !usable() {
            return None;
        }
        let me = unsafe { pg_sys::MyProcPid };
        let deadline = std::time::Instant::now() + CLAIM;
        loop {
            {
                let mut t = TOKENS.exclusive();
                let slot = t.slots.iter_mut().find(|s| s.is(self))?;
                if slot.token.len > 0 && slot.token.get() != stale.expose() {
                    return slot.seed();
                }
                let claimed = slot.refreshing_pid != 0
                    && slot.refreshing_pid != me
                    && now_ms().saturating_sub(slot.refreshing_ms) < CLAIM.as_millis() as u64
                    && alive(slot.refreshing_pid);
                if !claimed || std::time::Instant::now() >= deadline {
                    slot.refreshing_pid = me;
                    slot.refreshing_ms = now_ms();
                    return None;
                }
            }
            // Another process is logging in: its token will be here shortly.
            std::thread::sleep(Duration::from_millis(20));
            pgrx::check_for_interrupts!();
        }
    }

    fn publish(&self, seed: &SessionSeed) {
        if !usable() {
            return;
        }
        let (Some(token), Some(url), Some(version)) =
            (Text::of(seed.token.expose()), Text::of(&seed.instance_url), Text::of(&seed.api_version))
        else {
            return; // too big for a slot: not shared
        };
        let short = |v: &Option<String>| Text::of(v.as_deref().unwrap_or("")).unwrap_or_default();
        let mut t = TOKENS.exclusive();
        // This connection's slot (also under an older stamp), else a free one, else the oldest.
        let i = t
            .slots
            .iter()
            .position(|s| s.dboid == self.dboid && s.name.get() == self.name)
            .or_else(|| t.slots.iter().position(|s| s.dboid == 0))
            .unwrap_or_else(|| (0..SLOTS).min_by_key(|&i| t.slots[i].published_ms).unwrap_or(0));
        let generation = t.slots[i].generation.wrapping_add(1);
        t.slots[i] = Slot {
            dboid: self.dboid,
            name: Text::of(&self.name).unwrap_or_default(),
            stamp: self.stamp,
            generation,
            published_ms: now_ms(),
            token,
            instance_url: url,
            api_version: version,
            org_id: short(&seed.org_id),
            user_id: short(&seed.user_id),
            refreshing_pid: 0,
            refreshing_ms: 0,
        };
    }
}

/// Forgets the database's sessions of connection `name` (it was replaced or removed).
pub fn forget(name: &str) {
    if !usable() {
        return;
    }
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let mut t = TOKENS.exclusive();
    for s in t.slots.iter_mut().filter(|s| s.dboid == dboid && s.name.get() == name) {
        *s = Slot::default();
    }
}

/// The org Id the database's session of connection `name` named, if one is shared.
pub fn org_of(name: &str) -> Option<String> {
    if !usable() {
        return None;
    }
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let t = TOKENS.share();
    t.slots.iter().find(|s| s.dboid == dboid && s.name.get() == name).map(|s| s.org_id.get().to_string()).filter(|s| !s.is_empty())
}
