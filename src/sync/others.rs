//! Records of the mapping's object that belong to another table or database (their external
//! ID carries another namespace, `plan::namespace`), as this process last saw them: a table
//! that pushes leaves them alone (`apply::records`). Databases pointed at one org hear each
//! other's pushes on the change stream; an update event of a record a table doesn't have
//! would make it poll, only to skip the record again. Remembered here, such an event is
//! known to be none of the table's business (changes sfsync made are told apart without it,
//! `plan::cdc::route`: this is for other clients' changes of such records). Process-local
//! and bounded, the newest records kept, by a 64-bit hash of their Id (an accidental match
//! costs a missed poll of one record with chances of about one in 10^14); forgetting is
//! safe (the next event of the record polls once, and the poll remembers it again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex};

/// Records remembered per mapping: about 0.5 MB each.
const PER_MAPPING: usize = 20_000;

#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

/// The Id's hash: the same in every process and run (`DefaultHasher::new` has fixed keys).
fn key(sfid: &str) -> u64 {
    let mut h = DefaultHasher::new();
    sfid.hash(&mut h);
    h.finish()
}

static OTHERS: LazyLock<Mutex<HashMap<i32, Seen>>> = LazyLock::new(Default::default);

/// Record `sfid` belongs to another mapping than `mapping`.
pub fn note(mapping: i32, sfid: &str) {
    let mut all = OTHERS.lock().unwrap_or_else(|p| p.into_inner());
    let seen = all.entry(mapping).or_default();
    let k = key(sfid);
    if seen.ids.insert(k) {
        seen.order.push_back(k);
        while seen.order.len() > PER_MAPPING {
            if let Some(old) = seen.order.pop_front() {
                seen.ids.remove(&old);
            }
        }
    }
}

/// Which of `sfids` are known to belong to another mapping than `mapping`.
pub fn among<'a>(mapping: i32, sfids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let all = OTHERS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(seen) = all.get(&mapping) else { return Vec::new() };
    sfids.into_iter().filter(|id| seen.ids.contains(&key(id))).cloned().collect()
}
