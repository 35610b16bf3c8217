//! The org's current schema, replaceable at runtime (admin field changes) without threading a
//! lock through every handler: each version is leaked and read as a `&'static Schema`, so a
//! request that started on one version keeps a consistent view of it. Versions change only on
//! admin field changes and the resets after them (a handful per test run): the leak is small.

use super::Schema;
use parking_lot::RwLock;
use std::ops::Deref;

pub struct LiveSchema {
    current: RwLock<&'static Schema>,
    /// The startup schema, which `restore` brings back.
    original: Schema,
    altered: std::sync::atomic::AtomicBool,
}

impl LiveSchema {
    pub fn new(schema: Schema) -> LiveSchema {
        let current = RwLock::new(&*Box::leak(Box::new(schema.clone())));
        LiveSchema { current, original: schema, altered: Default::default() }
    }
    /// The schema as of now (stays valid after later changes).
    pub fn get(&self) -> &'static Schema {
        *self.current.read()
    }
    pub fn replace(&self, schema: Schema) {
        *self.current.write() = Box::leak(Box::new(schema));
        self.altered.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    /// Brings back the startup schema if fields were changed since; its describes then count
    /// as modified at `now_ms` (a cached describe of the changed schema is stale). Returns
    /// whether anything changed.
    pub fn restore(&self, now_ms: i64) -> bool {
        if !self.altered.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let mut s = self.original.clone();
        let cur = self.get();
        for (o, c) in s.objects.iter_mut().zip(&cur.objects) {
            o.modified_ms = now_ms.max(c.modified_ms + 1000);
        }
        *self.current.write() = Box::leak(Box::new(s));
        true
    }
}

impl Deref for LiveSchema {
    type Target = Schema;
    fn deref(&self) -> &Schema {
        self.get()
    }
}
