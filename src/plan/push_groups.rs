//! Which mappings' push batches share one Composite request, and in which order.
//!
//! A Composite request is one API call holding at most 5 sObject Collections subrequests
//! (`salesforce::composite::MAX_QUERY_SUBREQUESTS`). Small batches of different mappings on
//! one connection go out together, so 25 tables with one change each cost 5 calls, not 25.
//! A child goes only after the request carrying its parent's batch came back (its lookups
//! need the parent's new Id), so the batches are sent in rounds: each request takes the
//! batches whose parents are done, those with the longest chain of waiting children first,
//! so that the children can ride in the next request with whatever is left.

use salesforce::composite::MAX_QUERY_SUBREQUESTS;
use salesforce::COLLECTIONS_CHUNK;
use std::collections::{HashMap, HashSet};

/// One mapping's batch in a push pass, as the grouping sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub mapping: i32,
    pub connection: String,
    /// The sObject Collections requests it needs ([`requests`]); 0: no call at all.
    pub requests: usize,
    /// Whether it may share a request: Collections-sized (not Bulk), no `match` lookups, no
    /// query first, not backing off. Otherwise it keeps its own path.
    pub shareable: bool,
    /// Its parent mappings (only those with a batch in this pass matter).
    pub parents: Vec<i32>,
}

/// One send of the pass, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Send {
    /// The mapping's own path (Collections calls, Bulk, `match`, or nothing to send).
    Alone(i32),
    /// One Composite request over these mappings' batches (one connection's), in this order.
    Together(Vec<i32>),
}

/// Collections requests for so many creates/upserts, updates and deletes (≤200 records each).
pub fn requests(upserts: usize, updates: usize, deletes: usize) -> usize {
    [upserts, updates, deletes].iter().map(|n| n.div_ceil(COLLECTIONS_CHUNK)).sum()
}

/// The sends of a pass: every batch exactly once, each after the batches of its parents
/// (mappings in a cycle keep the order `relations::parents_first` gives them). A shared
/// request holds at most [`MAX_QUERY_SUBREQUESTS`] Collections requests; a lone batch that
/// needs one request goes alone (the same one call, by its own path).
pub fn schedule(batches: &[Batch]) -> Vec<Send> {
    let ids: Vec<i32> = batches.iter().map(|b| b.mapping).collect();
    let parents: HashMap<i32, Vec<i32>> = batches.iter().map(|b| (b.mapping, b.parents.clone())).collect();
    let order = super::relations::parents_first(&ids, &parents);
    let pos: HashMap<i32, usize> = order.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let by_id: HashMap<i32, &Batch> = batches.iter().map(|b| (b.mapping, b)).collect();
    // What each batch waits for: its parents placed before it (a cycle is broken there).
    let deps: HashMap<i32, Vec<i32>> = order
        .iter()
        .map(|m| {
            let ps = by_id[m].parents.iter().copied().filter(|p| pos.get(p).is_some_and(|pp| *pp < pos[m])).collect();
            (*m, ps)
        })
        .collect();
    // Longest chain of children below each batch: the sooner it goes, the sooner they can.
    let mut height: HashMap<i32, usize> = HashMap::new();
    for m in order.iter().rev() {
        let h = order.iter().filter(|c| deps[*c].contains(m)).map(|c| height.get(c).copied().unwrap_or(0) + 1).max().unwrap_or(0);
        height.insert(*m, h);
    }
    let mut done: HashSet<i32> = HashSet::new();
    let mut left: Vec<i32> = order.clone();
    let mut out = Vec::with_capacity(order.len());
    while !left.is_empty() {
        let mut ready: Vec<i32> = left.iter().copied().filter(|m| deps[m].iter().all(|p| done.contains(p))).collect();
        // Highest first, then in parents-first order (stable).
        ready.sort_by_key(|m| (std::cmp::Reverse(height[m]), pos[m]));
        let mut sent: Vec<i32> = Vec::new();
        // Batches keeping their own path go now.
        for m in &ready {
            let b = by_id[m];
            if !b.shareable || b.requests == 0 || b.requests > MAX_QUERY_SUBREQUESTS {
                out.push(Send::Alone(*m));
                sent.push(*m);
            }
        }
        // One request per connection per round, the most urgent batches first.
        let mut connections: Vec<&str> = Vec::new();
        for m in &ready {
            let c = by_id[m].connection.as_str();
            if !sent.contains(m) && !connections.contains(&c) {
                connections.push(c);
            }
        }
        for c in connections {
            let mut group = Vec::new();
            let mut used = 0;
            for m in ready.iter().filter(|m| !sent.contains(m) && by_id[*m].connection == c) {
                let need = by_id[m].requests;
                if used + need <= MAX_QUERY_SUBREQUESTS {
                    used += need;
                    group.push(*m);
                }
            }
            sent.extend(&group);
            if group.len() == 1 && used <= 1 {
                out.push(Send::Alone(group[0]));
            } else {
                out.push(Send::Together(group));
            }
        }
        done.extend(&sent);
        left.retain(|m| !sent.contains(m));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(mapping: i32, requests: usize, parents: &[i32]) -> Batch {
        Batch { mapping, connection: "default".into(), requests, shareable: true, parents: parents.to_vec() }
    }

    fn calls(sends: &[Send]) -> usize {
        sends.len()
    }

    #[test]
    fn twenty_five_small_tables_take_five_requests() {
        let batches: Vec<Batch> = (1..=25).map(|m| batch(m, 1, &[])).collect();
        let sends = schedule(&batches);
        assert_eq!(calls(&sends), 5);
        for s in &sends {
            assert!(matches!(s, Send::Together(g) if g.len() == 5), "{s:?}");
        }
        let mut all: Vec<i32> = sends.iter().flat_map(|s| if let Send::Together(g) = s { g.clone() } else { vec![] }).collect();
        all.sort();
        assert_eq!(all, (1..=25).collect::<Vec<_>>(), "each batch exactly once");
    }

    #[test]
    fn a_child_goes_in_a_later_request_than_its_parent_without_costing_a_call() {
        // 8 tables, table 8 a child of table 5: still ceil(8/5) = 2 requests.
        let mut batches: Vec<Batch> = (1..=7).map(|m| batch(m, 1, &[])).collect();
        batches.insert(0, batch(8, 1, &[5]));
        let sends = schedule(&batches);
        assert_eq!(calls(&sends), 2, "{sends:?}");
        let Send::Together(first) = &sends[0] else { panic!("{sends:?}") };
        assert!(first.contains(&5) && !first.contains(&8), "the parent first: {sends:?}");
        let Send::Together(second) = &sends[1] else { panic!("{sends:?}") };
        assert!(second.contains(&8));
    }

    #[test]
    fn a_chain_of_parents_goes_one_level_per_request() {
        // Grandparent 1 -> parent 2 -> child 3, and two unrelated tables.
        let batches = vec![batch(3, 1, &[2]), batch(2, 1, &[1]), batch(1, 1, &[]), batch(4, 1, &[]), batch(5, 1, &[])];
        let sends = schedule(&batches);
        let where_is =
            |m: i32| sends.iter().position(|s| matches!(s, Send::Together(g) if g.contains(&m)) || *s == Send::Alone(m)).unwrap();
        assert!(where_is(1) < where_is(2) && where_is(2) < where_is(3), "{sends:?}");
        assert_eq!(calls(&sends), 3);
    }

    #[test]
    fn requests_are_weighed_and_never_exceed_five() {
        let batches = vec![batch(1, 3, &[]), batch(2, 3, &[]), batch(3, 2, &[]), batch(4, 1, &[])];
        let sends = schedule(&batches);
        let weight = |g: &Vec<i32>| g.iter().map(|m| batches.iter().find(|b| b.mapping == *m).unwrap().requests).sum::<usize>();
        for s in &sends {
            if let Send::Together(g) = s {
                assert!(weight(g) <= MAX_QUERY_SUBREQUESTS, "{s:?}");
            }
        }
        assert_eq!(calls(&sends), 2, "3+2 and 3+1: {sends:?}");
    }

    #[test]
    fn bulk_match_idle_and_lone_batches_keep_their_own_path() {
        let mut bulk = batch(1, 1, &[]);
        bulk.shareable = false;
        let big = batch(2, 6, &[]);
        let nothing = batch(3, 0, &[]);
        let sends = schedule(&[bulk, big, nothing, batch(4, 1, &[])]);
        assert_eq!(sends, vec![Send::Alone(1), Send::Alone(2), Send::Alone(3), Send::Alone(4)]);
        // A lone batch needing two requests still saves one call in a Composite request.
        assert_eq!(schedule(&[batch(5, 2, &[])]), vec![Send::Together(vec![5])]);
    }

    #[test]
    fn connections_never_share_a_request() {
        let mut other = batch(2, 1, &[]);
        other.connection = "other".into();
        let sends = schedule(&[batch(1, 1, &[]), other, batch(3, 1, &[])]);
        assert_eq!(sends, vec![Send::Together(vec![1, 3]), Send::Alone(2)]);
    }

    #[test]
    fn a_cycle_is_broken_and_everyone_goes_once() {
        let sends = schedule(&[batch(1, 1, &[2]), batch(2, 1, &[1]), batch(3, 1, &[3])]);
        let mut all: Vec<i32> = sends
            .iter()
            .flat_map(|s| match s {
                Send::Together(g) => g.clone(),
                Send::Alone(m) => vec![*m],
            })
            .collect();
        all.sort();
        assert_eq!(all, vec![1, 2, 3]);
    }

    #[test]
    fn request_counts() {
        assert_eq!(requests(0, 0, 0), 0);
        assert_eq!(requests(1, 1, 1), 3);
        assert_eq!(requests(200, 201, 0), 3);
    }
}
