//! In-memory records. One `Table` per object (same index as `Schema::objects`), records keyed by
//! the ID's sequence number in a BTreeMap (so scans run in creation/ID order). Records are sparse
//! (only non-null slots, sorted by field position): most fields of most records are null, and
//! this keeps a million records within a few hundred MB.

use crate::clock::Clock;
use crate::ids;
use crate::schema::{ObjectDef, Schema};
use crate::value::{Value, NULL};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Salesforce empties the recycle bin of records deleted more than 15 days ago.
pub const RECYCLE_BIN_MS: i64 = 15 * crate::clock::DAY_MS;

#[derive(Clone, Debug, Default)]
pub struct Record {
    slots: Vec<(u16, Value)>,
}

impl Record {
    pub fn get(&self, field: usize) -> &Value {
        match self.slots.binary_search_by_key(&(field as u16), |(i, _)| *i) {
            Ok(p) => &self.slots[p].1,
            Err(_) => &NULL,
        }
    }
    pub fn set(&mut self, field: usize, v: Value) {
        let key = field as u16;
        match (self.slots.binary_search_by_key(&key, |(i, _)| *i), v) {
            (Ok(p), Value::Null) => {
                self.slots.remove(p);
            }
            (Ok(p), v) => self.slots[p].1 = v,
            (Err(_), Value::Null) => {}
            (Err(p), v) => self.slots.insert(p, (key, v)),
        }
    }
    /// Drops slot `field` and moves later slots down one (a field removed from the object).
    pub fn drop_slot(&mut self, field: usize) {
        let key = field as u16;
        self.slots.retain(|(i, _)| *i != key);
        for (i, _) in self.slots.iter_mut().filter(|(i, _)| *i > key) {
            *i -= 1;
        }
    }
    pub fn shrink(&mut self) {
        self.slots.shrink_to_fit();
    }
}

#[derive(Clone, Default)]
pub struct Table {
    pub recs: BTreeMap<u64, Record>,
    /// field position → lowercased value → records having it (deleted ones included).
    index: HashMap<usize, HashMap<Box<str>, Vec<u64>>>,
    /// Hard-deleted records (Bulk `hardDelete`): gone from queries, still reported by
    /// getDeleted until purged like the recycle bin. seq → deletion time.
    pub tombstones: BTreeMap<u64, i64>,
    /// Deletion time of the newest record physically purged: getDeleted's earliestDateAvailable.
    pub purged_through: Option<i64>,
    /// Records of `recs` in the recycle bin (IsDeleted): `live()` without a scan, what an
    /// unfiltered `COUNT()` (the backfill's estimate of a million records) answers.
    deleted: usize,
}

impl Table {
    fn index_key(v: &Value) -> Option<Box<str>> {
        match v {
            Value::Null => None,
            Value::Str(s) => Some(s.to_lowercase().into()),
            other => Some(other.display().into()),
        }
    }

    fn unindex(&mut self, def: &ObjectDef, seq: u64, rec: &Record) {
        for &f in &def.indexed {
            if let Some(k) = Self::index_key(rec.get(f)) {
                if let Some(m) = self.index.get_mut(&f) {
                    if let Some(v) = m.get_mut(&k) {
                        v.retain(|s| *s != seq);
                        if v.is_empty() {
                            m.remove(&k);
                        }
                    }
                }
            }
        }
    }

    /// Inserts or replaces a record, keeping the indexes right; returns the previous version.
    pub fn put(&mut self, def: &ObjectDef, seq: u64, mut rec: Record) -> Option<Record> {
        rec.shrink();
        let old = self.recs.remove(&seq);
        if let Some(o) = &old {
            self.unindex(def, seq, o);
            self.deleted -= usize::from(is_deleted(def, o));
        }
        self.deleted += usize::from(is_deleted(def, &rec));
        for &f in &def.indexed {
            if let Some(k) = Self::index_key(rec.get(f)) {
                self.index.entry(f).or_default().entry(k).or_default().push(seq);
            }
        }
        self.recs.insert(seq, rec);
        old
    }

    /// Rewrites every record (deleted ones included) with `f` and rebuilds the indexes for
    /// `def`: a field of the object was removed or retyped.
    pub fn rewrite(&mut self, def: &ObjectDef, mut f: impl FnMut(&mut Record)) {
        let recs = std::mem::take(&mut self.recs);
        self.index.clear();
        self.deleted = 0;
        for (seq, mut rec) in recs {
            f(&mut rec);
            self.put(def, seq, rec);
        }
    }

    pub fn take(&mut self, def: &ObjectDef, seq: u64) -> Option<Record> {
        let old = self.recs.remove(&seq)?;
        self.unindex(def, seq, &old);
        self.deleted -= usize::from(is_deleted(def, &old));
        Some(old)
    }

    /// How many records a query without a filter reads: the live ones, or all of them with
    /// queryAll (the recycle bin too).
    pub fn count(&self, include_deleted: bool) -> usize {
        if include_deleted {
            self.recs.len()
        } else {
            self.recs.len() - self.deleted
        }
    }

    /// Live (not deleted) records whose indexed `field` equals `value` (case-insensitively).
    pub fn lookup(&self, def: &ObjectDef, field: usize, value: &Value) -> Vec<u64> {
        let Some(k) = Self::index_key(value) else { return vec![] };
        let hits = self.index.get(&field).and_then(|m| m.get(&k)).cloned().unwrap_or_default();
        hits.into_iter().filter(|s| self.recs.get(s).is_some_and(|r| !is_deleted(def, r))).collect()
    }
}

pub fn is_deleted(def: &ObjectDef, r: &Record) -> bool {
    matches!(r.get(def.sys.is_deleted), Value::Bool(true))
}

/// Where committed transactions go: the Change Data Capture hub (`cdc::Hub`) implements it.
/// The store owns this trait and only carries the sink to its writers, so it need not know the
/// event log (which reads the store to build events).
pub trait ChangeSink: Send + Sync {
    /// Called once per committed transaction with its applied saves (a writer's undo log:
    /// object, seq, version before that save); `store` already holds the committed versions.
    fn commit(&self, schema: &Schema, store: &Store, journal: &[(usize, u64, Option<Record>)], clock: &Clock, user: &str);
}

pub struct Store {
    pub tables: Vec<Table>,
    next_seq: u64,
    /// Committed saves are published here (see write.rs `Drop`); survives resets.
    pub changes: Arc<dyn ChangeSink>,
    /// Deletions in time order (deletion ms, object, seq), for the recycle bin purge.
    pub bin: BTreeSet<(i64, usize, u64)>,
}

/// Where minted sequence numbers start: large enough that IDs show a realistic mix of characters.
const FIRST_SEQ: u64 = 62u64.pow(5) * 17;

impl Store {
    pub fn new(schema: &Schema, changes: Arc<dyn ChangeSink>) -> Store {
        Store { tables: schema.objects.iter().map(|_| Table::default()).collect(), next_seq: FIRST_SEQ, changes, bin: BTreeSet::new() }
    }
    /// An empty store that keeps minting after `old`'s IDs (IDs are never reused, even across
    /// resets) and publishes to the same sink.
    pub fn new_after(schema: &Schema, old: &Store) -> Store {
        Store { next_seq: old.next_seq, ..Store::new(schema, old.changes.clone()) }
    }
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
    /// Whether records deleted more than 15 days before `now_ms` are still to be purged.
    pub fn purge_due(&self, now_ms: i64) -> bool {
        self.bin.first().is_some_and(|e| e.0 < now_ms - RECYCLE_BIN_MS)
    }

    /// Physically removes what was deleted more than 15 days before `now_ms` (recycle bin
    /// records and hard-delete tombstones) and moves each object's earliestDateAvailable.
    pub fn purge(&mut self, schema: &Schema, now_ms: i64) {
        while self.purge_due(now_ms) {
            let Some((t, obj, seq)) = self.bin.pop_first() else { break };
            let (def, table) = (&schema.objects[obj], &mut self.tables[obj]);
            let purged = if table.tombstones.remove(&seq).is_some() {
                true
            } else if table.recs.get(&seq).is_some_and(|r| is_deleted(def, r)) {
                table.take(def, seq);
                true
            } else {
                false // undeleted or rolled back since
            };
            if purged {
                table.purged_through = table.purged_through.max(Some(t));
            }
        }
    }

    /// Resolves a canonical 18-char ID to (object, seq) if a record with it exists.
    pub fn find(&self, schema: &Schema, id18: &str) -> Option<(usize, u64)> {
        let obj = schema.by_prefix(id18.get(..3)?)?;
        let seq = ids::seq_of(&schema.objects[obj].key_prefix, id18)?;
        self.tables[obj].recs.contains_key(&seq).then_some((obj, seq))
    }
}
