//! When the worker polls each table: the pull scheduler.
//!
//! A table is polled every `sfsync.pull_interval` (the safety interval when its change stream
//! is healthy), at once when something may have been missed (a changed filter, a stream gap),
//! and when change events ask for it (what they could not apply). An event-asked poll runs at
//! once on a quiet table, else `sfsync.cdc_poll_spacing` after the table's last poll: under a
//! steady stream of changes one poll reads them all instead of one poll each. A table that
//! also pushes and whose asked poll is still waiting is polled first when it has local changes
//! to send, so the conflict policy, not the push, meets Salesforce's change of a record with a
//! local change pending (the worker asks the outbox; see [`Pulls::waiting_asked`]).
//!
//! A timed poll is a safety net for what the stream may have missed. With
//! `sfsync.cdc_safety_interval = 0` the worker trusts a stream that has been live without a
//! break since the table's last poll began (a new subscription, a gap, a dropped event or an
//! outage each make a poll due anyway) and skips the timed poll ([`Pulls::covered`]): an
//! idle table then costs no call at all.
//!
//! Times are passed in, so the schedule is a plain value with plain tests.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Pulls {
    next: HashMap<i32, Instant>,
    /// When each table's last pull started: the polls change events ask for are spaced from it.
    started: HashMap<i32, Instant>,
    /// Tables that push whose event-asked poll waits for its spacing.
    asked: HashSet<i32>,
    /// The filter each table had at its last pull: a changed filter makes it due at once.
    filters: HashMap<i32, Option<String>>,
    /// Tables whose next poll is the timed one (not asked for, not made due at once).
    timed: HashSet<i32>,
}

impl Pulls {
    /// How long the worker may sleep: until the first table is due, at most `poll`.
    pub fn next_wake(&self, now: Instant, poll: Duration) -> Duration {
        self.next.values().map(|t| t.saturating_duration_since(now)).min().map_or(poll, |d| d.min(poll))
    }

    pub fn is_due(&self, id: i32, now: Instant) -> bool {
        self.next.get(&id).is_none_or(|t| now >= *t)
    }

    /// Due at once (a changed filter, events that may have been missed).
    pub fn now(&mut self, id: i32) {
        self.timed.remove(&id);
        self.next.remove(&id);
    }

    /// Change events ask for a poll of the table: at once if its last poll started more than
    /// `spacing` ago, else when that much has passed. A table that `pushes` is remembered
    /// for [`Pulls::waiting_asked`].
    pub fn asked(&mut self, id: i32, pushes: bool, now: Instant, spacing: Duration) {
        let at = self.started.get(&id).map_or(now, |t| (*t + spacing).max(now));
        if self.next.get(&id).is_none_or(|t| at < *t) {
            self.next.insert(id, at);
            self.timed.remove(&id);
        }
        if at > now && pushes {
            self.asked.insert(id);
        }
    }

    /// The table's poll starts now; the next one is due after `interval`.
    pub fn started(&mut self, id: i32, now: Instant, interval: Duration) {
        self.started.insert(id, now);
        self.next.insert(id, now + interval);
        self.asked.remove(&id);
        self.timed.insert(id);
    }

    /// The tables as they are now (`(id, filter)`): the schedule forgets dropped ones, and a
    /// table whose filter changed since its last look is due at once.
    pub fn follow<'a>(&mut self, tables: impl IntoIterator<Item = (i32, Option<&'a str>)>) {
        let tables: HashMap<i32, Option<&str>> = tables.into_iter().collect();
        let live = |id: &i32| tables.contains_key(id);
        self.next.retain(|id, _| live(id));
        self.started.retain(|id, _| live(id));
        self.asked.retain(live);
        self.filters.retain(|id, _| live(id));
        self.timed.retain(live);
        for (id, filter) in tables {
            let filter = filter.map(str::to_string);
            if self.filters.insert(id, filter.clone()).is_some_and(|old| old != filter) {
                self.now(id);
            }
        }
    }

    /// Tables that push whose event-asked poll is still waiting for its spacing: the worker
    /// makes due at once those with local changes pending (see the module docs).
    pub fn waiting_asked(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.asked.iter().copied().collect();
        ids.sort();
        ids
    }

    /// Whether the table's poll is due within `window`: polled now with a connection's
    /// other due polls, it shares their request and stays in step with them after.
    pub fn due_within(&self, id: i32, now: Instant, window: Duration) -> bool {
        self.is_due(id, now + window)
    }

    /// Whether the table's due poll is a timed one that a stream live since `live_since`
    /// (without a break) already covers: its last poll began after the stream was up.
    pub fn covered(&self, id: i32, live_since: Option<Instant>) -> bool {
        match (live_since, self.started.get(&id)) {
            (Some(up), Some(last)) => self.timed.contains(&id) && up <= *last,
            _ => false,
        }
    }

    /// A covered poll is not made: the next timed one is `interval` away; the last poll's
    /// start stays what it was.
    pub fn skip(&mut self, id: i32, now: Instant, interval: Duration) {
        self.next.insert(id, now + interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_new_table_is_due_at_once_then_after_its_interval() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        assert!(p.is_due(1, t0));
        assert_eq!(p.next_wake(t0, 5 * S), 5 * S, "nothing scheduled: the poll timeout");
        p.started(1, t0, 5 * S);
        assert!(!p.is_due(1, t0 + 4 * S));
        assert!(p.is_due(1, t0 + 5 * S));
        assert_eq!(p.next_wake(t0 + 2 * S, 10 * S), 3 * S);
        assert_eq!(p.next_wake(t0 + 2 * S, S), S, "never past the poll timeout");
    }

    #[test]
    fn an_asked_poll_runs_at_once_on_a_quiet_table() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        p.started(1, t0, 300 * S);
        p.asked(1, true, t0 + 10 * S, S);
        assert!(p.is_due(1, t0 + 10 * S));
        assert!(p.waiting_asked().is_empty(), "nothing waits");
    }

    #[test]
    fn asked_polls_under_a_stream_of_changes_are_spaced_from_the_last_poll() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        p.started(1, t0, 300 * S);
        p.asked(1, false, t0 + S / 10, S);
        assert!(!p.is_due(1, t0 + S / 2), "one spacing after the last poll");
        assert!(p.is_due(1, t0 + S));
        // Asking again does not push the poll later.
        p.asked(1, false, t0 + S / 2, S);
        assert!(p.is_due(1, t0 + S));
        assert!(p.waiting_asked().is_empty(), "a table that only pulls has nothing to hurry for");
    }

    #[test]
    fn a_pushing_tables_waiting_poll_is_remembered_until_it_runs() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        p.started(2, t0, 300 * S);
        p.started(1, t0, 300 * S);
        p.asked(2, true, t0 + S / 10, S);
        p.asked(1, true, t0 + S / 10, S);
        assert_eq!(p.waiting_asked(), vec![1, 2]);
        p.now(2);
        assert!(p.is_due(2, t0 + S / 10));
        p.started(2, t0 + S / 10, 300 * S);
        assert_eq!(p.waiting_asked(), vec![1]);
    }

    #[test]
    fn a_changed_filter_makes_a_table_due_and_dropped_tables_are_forgotten() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        p.follow([(1, Some("Industry = 'Energy'")), (2, None)]);
        p.started(1, t0, 300 * S);
        p.started(2, t0, 300 * S);
        p.follow([(1, Some("Industry = 'Energy'")), (2, None)]);
        assert!(!p.is_due(1, t0 + S) && !p.is_due(2, t0 + S), "unchanged: not due");
        p.follow([(1, Some("Industry = 'Banking'"))]);
        assert!(p.is_due(1, t0 + S), "a new filter: pulled again at once");
        assert!(!p.next.contains_key(&2) && !p.started.contains_key(&2), "table 2 is gone");
    }

    #[test]
    fn a_poll_due_soon_can_join_one_due_now() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        p.started(1, t0, 10 * S);
        assert!(!p.is_due(1, t0 + 6 * S));
        assert!(p.due_within(1, t0 + 6 * S, 5 * S), "due within half its interval");
        assert!(!p.due_within(1, t0 + 4 * S, 5 * S));
    }

    #[test]
    fn a_timed_poll_a_live_stream_covers_is_skipped_and_a_break_makes_it_run() {
        let t0 = Instant::now();
        let mut p = Pulls::default();
        assert!(!p.covered(1, Some(t0)), "a table never polled is polled");
        p.started(1, t0 + S, 300 * S);
        assert!(p.covered(1, Some(t0)), "live since before the last poll: nothing missed since");
        assert!(!p.covered(1, None), "no live stream: the timed poll runs");
        assert!(!p.covered(1, Some(t0 + 2 * S)), "the stream broke after the last poll began");
        p.skip(1, t0 + 300 * S, 300 * S);
        assert!(!p.is_due(1, t0 + 301 * S) && p.is_due(1, t0 + 600 * S), "the next timed one is an interval away");
        assert!(p.covered(1, Some(t0)), "still covered");
        // An asked poll or a catch-up is never skipped.
        p.asked(1, false, t0 + 400 * S, S);
        assert!(!p.covered(1, Some(t0)), "asked by events");
        p.started(1, t0 + 401 * S, 300 * S);
        p.now(1);
        assert!(!p.covered(1, Some(t0)), "made due at once (a gap, a new subscription)");
    }
}
