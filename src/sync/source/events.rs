//! Change events applied directly, without a query: the worker's side of the stream.
//!
//! A drain's events of one object are applied to every mapping pulling it in one
//! transaction, together with the channel's replay id, so a crash neither loses them (the
//! replay id is not saved either, and a restarted listener polls anyway) nor applies them
//! twice beyond what the IS DISTINCT FROM guards make harmless. The decisions (what applies
//! as it is, which columns an update touches) are in `plan::cdc`; here data moves.
//!
//! - CREATE: applied like a pulled record (`apply::records`): same guards (not while a local
//!   delete of it is pending), linked by the external id when it carries our key.
//! - UPDATE: only the mapped columns the event changed (`apply::partial`), guarded by IS DISTINCT FROM, so our
//!   own writes coming back change nothing (and the sync's writes are never captured).
//! - DELETE: per the mapping's on_delete (`apply::deletes::pulled`).
//! - Anything else (undelete, gaps, a filtered mapping, a record with a local change
//!   pending, a record we don't have, compound columns) is left to the mapping's pull,
//!   which runs the conflict policy. So is a mapping whose apply fails: the pull applies
//!   record by record and reports the ones that fail in sfsync.errors.

use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::cdc::{coalesce, lookups, route, Local, Target};
use crate::spi_util::{self, subtransaction};
use crate::sync::apply::{held, partial, records};
use crate::sync::Mapping;
use salesforce::cdc::ChangeEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// A stream's position: (connection, channel) and replay id.
pub type Position = ((String, String), i64);

/// Applies a drain's events (by connection, delivery order): per (connection, object), parents'
/// objects first so a child's lookup finds a parent created in the same drain. `dropped`
/// holds the positions of events the listener dropped; those of the applied channels are
/// saved with them (and removed). Returns the mappings to pull now and the saved positions.
pub fn apply_drain(
    events: Vec<(String, ChangeEvent)>,
    dropped: &mut HashMap<(String, String), i64>,
    mappings: &[Mapping],
) -> (Vec<i32>, Vec<Position>) {
    let mut groups: Vec<((String, String), Vec<ChangeEvent>)> = Vec::new();
    for (conn, e) in events {
        let object = crate::sync::cdc::object_named(&e);
        match groups.iter_mut().find(|(k, _)| k.0 == conn && k.1.eq_ignore_ascii_case(&object)) {
            Some((_, evs)) => evs.push(e),
            None => groups.push(((conn, object), vec![e])),
        }
    }
    let pulling = |m: &Mapping, conn: &str, object: &str| m.pulls() && m.connection == conn && m.sobject.eq_ignore_ascii_case(object);
    let ids: Vec<i32> = mappings.iter().map(|m| m.id).collect();
    let parents: HashMap<i32, Vec<i32>> = mappings.iter().map(|m| (m.id, m.parents.iter().map(|p| p.mapping_id).collect())).collect();
    let order = crate::plan::relations::parents_first(&ids, &parents);
    groups.sort_by_key(|((conn, object), _)| {
        order.iter().position(|id| mappings.iter().any(|m| m.id == *id && pulling(m, conn, object))).unwrap_or(usize::MAX)
    });
    let (mut due, mut saved) = (Vec::new(), Vec::new());
    for ((conn, object), events) in groups {
        // The channel's position: the last event delivered (or dropped after it).
        let mut replay: HashMap<String, i64> = HashMap::new();
        for e in &events {
            let id = replay.entry(e.channel.clone()).or_insert(e.replay_id);
            *id = (*id).max(e.replay_id);
        }
        for (ch, id) in replay.iter_mut() {
            if let Some(d) = dropped.remove(&(conn.clone(), ch.clone())) {
                *id = (*id).max(d);
            }
        }
        let replay: Vec<(String, i64)> = replay.into_iter().collect();
        let targets: Vec<&Mapping> = mappings.iter().filter(|m| pulling(m, &conn, &object)).collect();
        due.extend(apply(&conn, &events, &targets, mappings, &replay));
        saved.extend(replay.into_iter().map(|(ch, id)| ((conn.clone(), ch), id)));
    }
    (due, saved)
}

/// Applies the events of one object of connection `conn` (delivery order) to `targets`, the
/// mappings that pull it, and saves `replay` ((channel, replay id) pairs) in the same
/// transaction. Returns the ids of the mappings to pull now.
pub fn apply(conn: &str, events: &[ChangeEvent], targets: &[&Mapping], all: &[Mapping], replay: &[(String, i64)]) -> Vec<i32> {
    let outcome = crate::worker::tx::run(|| {
        let mut poll = Vec::new();
        for m in targets {
            // A subtransaction: a mapping that fails leaves the others (and the replay id) alone.
            match subtransaction(|| apply_mapping(m, all, events)) {
                Ok(false) => {}
                Ok(true) => poll.push(m.id),
                Err(f) => {
                    pgrx::log!("sfsync: change events for {} not applied directly ({}); pulling instead", m.table, f.message);
                    poll.push(m.id);
                }
            }
        }
        let ids: Vec<i32> = targets.iter().map(|m| m.id).collect();
        spi_util::exec("UPDATE sfsync.sync_state SET last_event_at = now() WHERE mapping_id = ANY($1)", &[ids.into()])?;
        save_replay(conn, replay)?;
        Ok(poll)
    });
    outcome.unwrap_or_else(|e| {
        pgrx::warning!("sfsync: could not apply change events of connection \"{conn}\" ({e}); pulling instead");
        targets.iter().map(|m| m.id).collect()
    })
}

/// Saves replay ids ((channel, id) of connection `conn`).
pub fn save_replay(conn: &str, replay: &[(String, i64)]) -> Result<()> {
    if replay.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = replay.iter().map(|(ch, id)| json!({"channel": ch, "replay_id": id})).collect();
    spi_util::exec(
        "INSERT INTO sfsync.cdc_state AS s (connection, channel, replay_id)
         SELECT $1, r.channel, r.replay_id FROM jsonb_to_recordset($2) AS r(channel text, replay_id bigint)
         WHERE EXISTS (SELECT 1 FROM sfsync.connections c WHERE c.name = $1)
         ON CONFLICT (connection, channel) DO UPDATE SET replay_id = EXCLUDED.replay_id, updated_at = now()
         WHERE s.replay_id IS DISTINCT FROM EXCLUDED.replay_id",
        &[conn.into(), spi_util::jsonb(Value::Array(rows))],
    )?;
    Ok(())
}

#[derive(Deserialize, Default)]
struct State {
    known: Vec<String>,
    pending: Vec<String>,
    backfilling: bool,
}

/// One mapping's share of the events, inside the transaction. True: pull it now.
pub(crate) fn apply_mapping(m: &Mapping, all: &[Mapping], events: &[ChangeEvent]) -> Result<bool> {
    let m = &*m.current()?;
    let _applying = Applying::start();
    let target = Target::new(&m.columns, &m.external_id, &m.namespace, m.filter.is_some(), m.pushes());
    let coalesced = coalesce(&target, events);
    if coalesced.poll_all {
        return Ok(true);
    }
    let look = lookups(&target, &coalesced);
    let mut state = if look.is_empty() { State::default() } else { local_state(m, &look)? };
    // A write-through transaction still open on a record: its change may be that
    // transaction's own echo; the pull reads it again once the transaction ended.
    state.pending.extend(held::locked(m, &look)?);
    if state.backfilling {
        // The backfill owns the table until it is done; the pull after it reads these.
        return Ok(true);
    }
    let others = crate::sync::others::among(m.id, look.iter().map(|(id, _)| id)).into_iter().collect();
    let local = Local { known: state.known.into_iter().collect(), pending: state.pending.into_iter().collect(), others };
    let routed = route(&target, coalesced, &local);
    let mut poll = routed.poll;
    // Creates and deletes are what the pull applies for a new or deleted record.
    if !routed.creates.is_empty() {
        // Lookups of the created records, by column, as Salesforce Ids.
        let lookups: Vec<Value> = routed
            .creates
            .iter()
            .map(|r| {
                let ids = m.parents.iter().filter_map(|p| Some((p.column.clone(), r.get(&m.column(&p.column)?.field)?.clone())));
                Value::Object(ids.collect())
            })
            .collect();
        poll |= partial::unresolved_parents(m, all, lookups)?;
    }
    let mut records: Vec<salesforce::Record> = routed.creates;
    records.extend(routed.deletes.iter().map(|id| json!({"Id": id, "IsDeleted": true}).as_object().cloned().unwrap_or_default()));
    if !records.is_empty() {
        // Deferred records (a write-through transaction holds them) are the pull's.
        poll |= records::apply(m, all, &records, None)?.deferred > 0;
    }
    if !routed.updates.is_empty() {
        poll |= partial::update(m, all, &routed.updates)?;
    }
    if !routed.contended.is_empty() {
        poll |= partial::contended(m, all, &routed.contended, events)?;
    }
    Ok(poll)
}

/// Which of the records we have, and which have a local change pending (by their row's
/// key, their Id, or the Postgres key a created record carries; a local delete held for
/// review counts too).
fn local_state(m: &Mapping, look: &[(String, Option<String>)]) -> Result<State> {
    let rows: Vec<Value> = look.iter().map(|(sfid, pgid)| json!({"sfid": sfid, "pgid": pgid})).collect();
    let sql = format!(
        "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(sfid text, pgid text)),
              k AS (SELECT r.sfid, t.{pk}::text AS pk FROM r JOIN {tbl} t ON t.sfid = r.sfid)
         SELECT jsonb_build_object(
             'known', COALESCE((SELECT jsonb_agg(sfid) FROM k), '[]'),
             'pending', COALESCE((SELECT jsonb_agg(DISTINCT x.sfid) FROM (
                  SELECT k.sfid FROM k JOIN sfsync.outbox o ON o.mapping_id = $2 AND o.pk = k.pk AND o.state = 'pending'
                  UNION ALL
                  SELECT r.sfid FROM r JOIN sfsync.outbox o ON o.mapping_id = $2 AND o.pk = r.pgid AND o.state = 'pending'
                  UNION ALL
                  SELECT r.sfid FROM r JOIN sfsync.outbox o ON o.mapping_id = $2 AND o.sfid = r.sfid AND o.state = 'pending'
                  UNION ALL
                  SELECT r.sfid FROM r JOIN sfsync.delete_review d ON d.mapping_id = $2 AND d.decided_at IS NULL
                         AND d.origin = 'postgres' AND (d.sfid = r.sfid OR d.key = r.pgid)
              ) x), '[]'),
             'backfilling', EXISTS (SELECT 1 FROM sfsync.backfills b WHERE b.mapping_id = $2 AND b.state IN ('pending', 'running')))",
        pk = m.pk_ident(),
        tbl = m.table
    );
    let v = spi_util::json(&sql, &[spi_util::jsonb(Value::Array(rows)), m.id.into()])?.unwrap_or_default();
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding the local state of change events: {e}")))
}
