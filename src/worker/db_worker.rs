//! The sync worker of one database: woken at commit by the capture trigger (or by its
//! poll timeout), it pushes the outbox and pulls each mapping when its interval is due.

use crate::error::{Result, SyncError};
use crate::plan::schedule::Pulls;
use crate::sync::clients::{self, Call, Step};
use crate::sync::source::{backfill, events, poll};
use crate::sync::{self, push, Ctx};
use crate::{guc, registry};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn sfsync_worker_main(arg: pg_sys::Datum) {
    let dboid = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(dboid)), None);
    pin_search_path();

    let epoch = registry::wants_epoch(dboid);
    if !extension_exists().unwrap_or(true) {
        // Nothing to do here until CREATE EXTENSION wakes the launcher again.
        registry::release_worker_slot(dboid, true, epoch);
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

    let mut pulls = Pulls::default();
    let mut busy = false;
    let mut last_pass: Option<Instant> = None;
    let mut stream = Stream::new();
    let mut last_purge: Option<Instant> = None;
    let mut warned_outdated = false;
    let mut warned_copy = false;
    loop {
        // After a full batch, go straight on; otherwise sleep until woken (commit, change
        // event, signal) or due.
        let timeout = if busy { Duration::ZERO } else { pulls.next_wake(Instant::now(), guc::ms(&guc::POLL_INTERVAL_MS)) };
        if !wait(timeout, stream.cdc.as_ref().map(|c| c.wake_fd())) || crate::worker::shutdown_requested() {
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
        let epoch = registry::wants_epoch(dboid);
        let mappings = match crate::worker::tx::run(begin_pass) {
            Ok(Pass::Run(m, transports)) => {
                stream.transports = transports;
                m
            }
            Ok(Pass::Skip) => {
                busy = false;
                continue;
            }
            Ok(Pass::Outdated(version)) => {
                if !warned_outdated {
                    warning!(
                        "sfsync: the extension in this database is version {version} but the installed library is {}; \
                         nothing is synced until ALTER EXTENSION sfsync UPDATE is run",
                        env!("CARGO_PKG_VERSION")
                    );
                    warned_outdated = true;
                }
                busy = false;
                continue;
            }
            Ok(Pass::Copy(origin)) => {
                if !warned_copy {
                    let message = sync::identity::copy_message(&origin);
                    warning!("sfsync: {message}");
                    let raised = crate::worker::tx::run(|| {
                        crate::alerts::raise(
                            None,
                            None,
                            crate::alerts::AlertKind::CopyPaused,
                            &message,
                            serde_json::json!({"copy_of": origin}),
                        )
                    });
                    if let Err(e) = raised {
                        warning!("sfsync: could not raise the alert of a paused copy: {e}");
                    }
                    warned_copy = true;
                }
                busy = false;
                continue;
            }
            Ok(Pass::NoExtension) => {
                log!("sfsync extension dropped; worker exiting");
                registry::release_worker_slot(dboid, true, epoch);
                return;
            }
            Err(e) => {
                warning!("sfsync: could not start a pass: {e}");
                busy = false;
                continue;
            }
        };
        // Rolled-back write-through changes first: their keys' events wait for it.
        push::rollback::repair(&mappings);
        stream.follow(&mappings, &mut pulls);
        // A chunk of a backfill (initial or asked for); their tables' polling waits for it.
        let backfill = backfill::step(&mappings);
        // Fields changed in Salesforce (describe If-Modified-Since, when due or after an
        // INVALID_FIELD): followed before the pulls and pushes that would name them.
        // A field unmapped there must not be named by this pass's later steps.
        let mappings = if sync::sf_schema::run_due(&mappings) {
            match crate::worker::tx::run(|| sync::load_mappings(None)) {
                Ok(fresh) => fresh,
                Err(e) => {
                    warning!("sfsync: could not read the mappings again: {e}");
                    mappings
                }
            }
        } else {
            mappings
        };
        // Pull before push: a Salesforce change of a record with a local change pending is
        // seen (and resolved by the mapping's conflict policy) before the push sends it.
        pull_due(&mappings, &mut pulls, &stream, &backfill.active);
        // Deletes getDeleted reports (or a full reconciliation) and formula refreshes, when due.
        sync::periodic::run_due(&mappings, &backfill.active);
        // Synced queries whose `every` is due: run as their owners, what changed is sent.
        sync::query::run_due();
        // A table whose event-asked poll is still spaced out but that now has local changes
        // to send is pulled first: the conflict policy, not the push, must meet Salesforce's
        // change of a record with a local change pending.
        if hurry_for_pending_changes(&mut pulls) {
            pull_due(&mappings, &mut pulls, &stream, &backfill.active);
        }
        busy = match push::pass(Ctx::Worker, &mappings, None) {
            Ok(s) => s.claimed >= guc::BATCH_SIZE.get() as usize,
            // Nothing was claimed: the next pass, at once, reads the mappings again.
            Err(SyncError::Stale(e)) => {
                debug1!("sfsync: {e}");
                true
            }
            Err(e) => {
                warning!("sfsync push failed: {e}");
                false
            }
        };
        busy |= backfill.more;
        sync::archive::purge_due(&mut last_purge);
        let unlock = format!("SELECT pg_advisory_unlock({})", sync::PASS_LOCK);
        if let Err(e) = crate::worker::tx::run(|| Ok(Spi::run(&unlock)?)) {
            warning!("sfsync: could not release the pass lock: {e}");
        }
    }
    log!("sfsync worker stopping");
}

enum Pass {
    /// The mappings, and each connection's choice of change stream transport.
    Run(Vec<sync::Mapping>, BTreeMap<String, sync::cdc::Transport>),
    /// Disabled, or run_once holds the pass lock.
    Skip,
    NoExtension,
    /// The extension's catalog is of another version than this library (new binaries
    /// installed, `ALTER EXTENSION sfsync UPDATE` not run yet): touching it could misread it.
    Outdated(String),
    /// A copy of another database not adopted yet (sync::identity): says of what.
    Copy(String),
}

/// One transaction: is the extension still there, are we enabled, take the pass lock
/// (session level, so run_once waits for us) and read the mappings.
fn begin_pass() -> Result<Pass> {
    if !Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'sfsync')")?.unwrap_or(false) {
        return Ok(Pass::NoExtension);
    }
    let version = Spi::get_one::<String>("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'sfsync'")?.unwrap_or_default();
    if version != env!("CARGO_PKG_VERSION") {
        return Ok(Pass::Outdated(version));
    }
    if !guc::ENABLED.get() {
        return Ok(Pass::Skip);
    }
    // The worker never records the identity itself (sync_table and adopt do): while a dump
    // is being restored, its own identity row may not have arrived yet.
    if let sync::identity::Standing::Copy(origin) = sync::identity::standing()? {
        return Ok(Pass::Copy(origin));
    }
    if !Spi::get_one::<bool>(&format!("SELECT pg_try_advisory_lock({})", sync::PASS_LOCK))?.unwrap_or(false) {
        return Ok(Pass::Skip);
    }
    Ok(Pass::Run(sync::load_mappings(None)?, load_transports()?))
}

/// The worker's side of Change Data Capture: listeners per connection (see sync::cdc),
/// and the replay ids to persist.
struct Stream {
    cdc: Option<sync::cdc::Cdc>,
    /// connection -> objects listened to, and over what.
    wanted: BTreeMap<String, (BTreeSet<String>, sync::cdc::Transport)>,
    /// Each connection's choice of transport, as this pass read it.
    transports: BTreeMap<String, sync::cdc::Transport>,
    /// Last applied replay ids, where a restarted listener resumes.
    replay: HashMap<(String, String), i64>,
    /// The streams' states as last written to sfsync.connection_state.
    shown: BTreeMap<String, String>,
}

impl Stream {
    fn new() -> Stream {
        let cdc = sync::cdc::Cdc::new().map_err(|e| warning!("sfsync: change data capture disabled: {e}")).ok();
        // What an earlier worker showed of its streams is no longer true.
        let replay = crate::worker::tx::run(|| {
            crate::spi_util::exec(
                "UPDATE sfsync.connection_state SET stream = NULL, stream_since = NULL, stream_transport = NULL WHERE stream IS NOT NULL",
                &[],
            )?;
            load_replay()
        })
        .unwrap_or_default();
        Stream { cdc, wanted: BTreeMap::new(), transports: BTreeMap::new(), replay, shown: BTreeMap::new() }
    }

    fn healthy(&self, conn: &str) -> bool {
        guc::CDC.get() && self.cdc.as_ref().is_some_and(|c| c.healthy(conn))
    }

    /// Since when the connection's stream has been live without a break (None: it is not).
    fn live_since(&self, conn: &str) -> Option<Instant> {
        self.cdc.as_ref().filter(|_| guc::CDC.get()).and_then(|c| c.live_since(conn))
    }

    /// Keeps the listeners in line with the pulled objects, applies the events (with their
    /// replay ids), and asks for the pulls of what they could not apply (`Pulls::asked`).
    fn follow(&mut self, mappings: &[sync::Mapping], pulls: &mut Pulls) {
        let Some(cdc) = self.cdc.as_mut() else { return };
        let mut wanted: BTreeMap<String, (BTreeSet<String>, sync::cdc::Transport)> = BTreeMap::new();
        if guc::CDC.get() {
            for m in mappings.iter().filter(|m| m.pulls()) {
                let t = self.transports.get(&m.connection).cloned().unwrap_or_default();
                wanted.entry(m.connection.clone()).or_insert_with(|| (BTreeSet::new(), t)).0.insert(m.sobject.clone());
            }
        }
        if wanted != self.wanted {
            let specs = crate::worker::tx::run(|| {
                let mut out = HashMap::new();
                for (conn, (objects, transport)) in &wanted {
                    let creds = clients::load(conn)?.credentials()?;
                    out.insert(conn.clone(), (creds, clients::options()?, objects.clone(), transport.clone()));
                }
                Ok(out)
            });
            match specs {
                Ok(specs) => {
                    cdc.reconcile(specs, &self.replay);
                    self.wanted = wanted;
                }
                Err(e) => warning!("sfsync: cannot start change data capture: {e}"),
            }
        }
        // An object two tables pull (a mirror beside a synced table): each needs the other's
        // writes from the stream, so none of its events is an echo to drop.
        let mut pulling: BTreeMap<(&str, String), usize> = BTreeMap::new();
        for m in mappings.iter().filter(|m| m.pulls()) {
            *pulling.entry((m.connection.as_str(), m.sobject.to_ascii_lowercase())).or_default() += 1;
        }
        for conn in self.wanted.keys() {
            let shared = pulling.iter().filter(|((c, _), n)| *c == conn.as_str() && **n > 1).map(|((_, o), _)| o.clone());
            sync::echo_book::share(conn, shared);
        }
        let drained = cdc.drain();
        // Objects whose events may have been missed: their pulls are due now.
        for (conn, object) in &drained.missed {
            for m in mappings.iter().filter(|m| m.connection == *conn && m.sobject.eq_ignore_ascii_case(object)) {
                pulls.now(m.id);
            }
        }
        for (conn, why) in &drained.fallback {
            log!(
                "sfsync: change stream of connection \"{conn}\" uses CometD: the Pub/Sub API failed ({why}); trying it again every {} s",
                sync::cdc::PUBSUB_RETRY.as_secs()
            );
        }
        for (conn, why) in &drained.down {
            log!("sfsync: change stream of connection \"{conn}\" is down, polling meanwhile: {why}");
        }
        self.show();
        if drained.echoes > 0 {
            debug1!("sfsync: {} change events only echoed our own writes: not applied", drained.echoes);
        }
        let mut dropped = drained.dropped;
        let (due, applied) = events::apply_drain(drained.events, &mut dropped, mappings);
        for id in due {
            let pushes = mappings.iter().find(|m| m.id == id).is_none_or(|m| m.pushes());
            pulls.asked(id, pushes, Instant::now(), guc::ms(&guc::CDC_POLL_SPACING_MS));
        }
        self.replay.extend(applied);
        // Positions of channels whose events were all dropped (their objects are polled).
        if !dropped.is_empty() {
            let saved = crate::worker::tx::run(|| {
                for ((conn, ch), id) in &dropped {
                    events::save_replay(conn, &[(ch.clone(), *id)])?;
                }
                Ok(())
            });
            if let Err(e) = saved {
                warning!("sfsync: could not save change stream positions: {e}");
            }
            self.replay.extend(dropped);
        }
    }

    /// Writes the streams' states that changed since the last call (a transaction only then).
    fn show(&mut self) {
        let Some(cdc) = self.cdc.as_ref() else { return };
        let transports = cdc.transports();
        // The state and, while live, its transport: `live|pubsub`, as the row shows them.
        let states: BTreeMap<String, String> = cdc
            .states()
            .into_iter()
            .map(|(c, s)| {
                let t = transports.get(&c).map_or(String::new(), |t| format!("|{t}"));
                (c, format!("{s}{t}"))
            })
            .collect();
        if states == self.shown {
            return;
        }
        let mut changes: Vec<(&str, Option<&str>)> =
            states.iter().filter(|(c, s)| self.shown.get(*c) != Some(s)).map(|(c, s)| (c.as_str(), Some(s.as_str()))).collect();
        changes.extend(self.shown.keys().filter(|c| !states.contains_key(*c)).map(|c| (c.as_str(), None)));
        let written = crate::worker::tx::run(|| {
            for (conn, state) in &changes {
                let (state, transport) = match state.map(|s| s.split_once('|').map_or((s, None), |(s, t)| (s, Some(t)))) {
                    Some((s, t)) => (Some(s), t),
                    None => (None, None),
                };
                crate::spi_util::exec(
                    "INSERT INTO sfsync.connection_state AS s (connection, stream, stream_since, stream_transport)
                     SELECT $1, $2, now(), $3 WHERE EXISTS (SELECT 1 FROM sfsync.connections c WHERE c.name = $1)
                     ON CONFLICT (connection) DO UPDATE SET stream = EXCLUDED.stream, stream_since = EXCLUDED.stream_since,
                         stream_transport = EXCLUDED.stream_transport",
                    &[(*conn).into(), state.into(), transport.into()],
                )?;
            }
            Ok(())
        });
        match written {
            Ok(()) => self.shown = states,
            Err(e) => warning!("sfsync: could not record the change streams' states: {e}"),
        }
    }
}

fn load_transports() -> Result<BTreeMap<String, sync::cdc::Transport>> {
    let v = crate::spi_util::json("SELECT jsonb_agg(jsonb_build_array(name, stream, pubsub_endpoint)) FROM sfsync.connections", &[])?;
    let rows: Vec<(String, String, Option<String>)> = v.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    Ok(rows.into_iter().map(|(c, mode, endpoint)| (c, sync::cdc::Transport { mode, endpoint })).collect())
}

fn load_replay() -> Result<HashMap<(String, String), i64>> {
    let v = crate::spi_util::json("SELECT jsonb_agg(jsonb_build_array(connection, channel, replay_id)) FROM sfsync.cdc_state", &[])?;
    let rows: Vec<(String, String, i64)> = v.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    Ok(rows.into_iter().map(|(c, ch, id)| ((c, ch), id)).collect())
}

/// Waits for the latch (commits, signals), the change stream's socket, or the timeout.
/// False when the worker must stop.
fn wait(timeout: Duration, socket: Option<i32>) -> bool {
    let mut events = pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_POSTMASTER_DEATH;
    if socket.is_some() {
        events |= pg_sys::WL_SOCKET_READABLE;
    }
    let rc = unsafe {
        let rc = pg_sys::WaitLatchOrSocket(
            pg_sys::MyLatch,
            events as i32,
            socket.unwrap_or(-1),
            timeout.as_millis().min(i32::MAX as u128) as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
        pg_sys::check_for_interrupts!();
        rc
    };
    rc & pg_sys::WL_POSTMASTER_DEATH as i32 == 0 && !BackgroundWorker::sigterm_received()
}

/// Sleeps without waking for latch sets (those are what we are batching).
fn sleep(d: Duration) {
    let ms = d.as_millis().min(60_000) as std::ffi::c_long;
    unsafe {
        pg_sys::WaitLatch(pg_sys::MyLatch, (pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32, ms, pg_sys::PG_WAIT_EXTENSION);
    }
}

/// Makes due at once the waiting event-asked polls of tables with local changes pending
/// (one indexed probe per such table, see `plan::schedule`). True when there are any.
fn hurry_for_pending_changes(pulls: &mut Pulls) -> bool {
    let ids = pulls.waiting_asked();
    if ids.is_empty() {
        return false;
    }
    let pending = crate::worker::tx::run(|| {
        let args: Vec<pgrx::datum::DatumWithOid> = vec![ids.clone().into()];
        Ok(Spi::get_one_with_args::<Vec<i32>>(
            "SELECT COALESCE(array_agg(t.mapping), '{}') FROM unnest($1::int[]) AS t(mapping)
             WHERE EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = t.mapping AND o.state = 'pending')",
            &args,
        )?
        .unwrap_or_default())
    });
    // If we can't tell, pull them all: a poll too early costs a call, a push too early a conflict.
    let pending = pending.unwrap_or(ids);
    for id in &pending {
        pulls.now(*id);
    }
    !pending.is_empty()
}

fn pull_due(mappings: &[sync::Mapping], pulls: &mut Pulls, stream: &Stream, backfilling: &[i32]) {
    pulls.follow(mappings.iter().map(|m| (m.id, m.filter.as_deref())));
    // Parents first, so a child's lookup finds the parent row it points to.
    let ids: Vec<i32> = mappings.iter().map(|m| m.id).collect();
    let parents: HashMap<i32, Vec<i32>> = mappings.iter().map(|m| (m.id, m.parents.iter().map(|p| p.mapping_id).collect())).collect();
    let ordered = crate::plan::relations::parents_first(&ids, &parents);
    // With a healthy change stream, the timed poll is only a safety net.
    let interval = |m: &sync::Mapping| {
        if stream.healthy(&m.connection) {
            guc::ms(&guc::PULL_INTERVAL_MS).max(guc::ms(&guc::CDC_SAFETY_INTERVAL_MS))
        } else {
            guc::ms(&guc::PULL_INTERVAL_MS)
        }
    };
    let now = Instant::now();
    // cdc_safety_interval = 0: a stream live without a break since the last poll began is
    // trusted to have missed nothing (its breaks, gaps and overflows make polls due).
    let trusted =
        |pulls: &Pulls, m: &sync::Mapping| guc::CDC_SAFETY_INTERVAL_MS.get() == 0 && pulls.covered(m.id, stream.live_since(&m.connection));
    let candidates: Vec<&sync::Mapping> = ordered
        .iter()
        .filter_map(|id| mappings.iter().find(|m| m.id == *id))
        .filter(|m| m.pulls() && !backfilling.contains(&m.id) && clients::available(&m.connection))
        .collect();
    let mut due_ids = HashSet::new();
    for m in &candidates {
        if !pulls.is_due(m.id, now) {
            continue;
        }
        if trusted(pulls, m) {
            pulls.skip(m.id, now, interval(m));
        } else {
            due_ids.insert(m.id);
        }
    }
    // The polls of a connection go out together (one composite request): one due now takes
    // along the connection's others due within half their interval, and they stay in step.
    let connections: HashSet<&str> = candidates.iter().filter(|m| due_ids.contains(&m.id)).map(|m| m.connection.as_str()).collect();
    for m in candidates.iter().filter(|m| connections.contains(m.connection.as_str())) {
        if pulls.due_within(m.id, now, interval(m) / 2) && !trusted(pulls, m) {
            due_ids.insert(m.id);
        }
    }
    let due: Vec<&sync::Mapping> = candidates.into_iter().filter(|m| due_ids.contains(&m.id)).collect();
    let mut first = poll::first_pages(Ctx::Worker, &due);
    for m in due {
        if crate::worker::shutdown_requested() {
            break;
        }
        pulls.started(m.id, Instant::now(), interval(m));
        let pull = match first.remove(&m.id) {
            Some(poll::Read::Failed { error, retry_in }) => {
                warning!("sfsync: pull of {} into {} failed, retrying in {retry_in:?}: {error}", m.sobject, m.table);
                let _ = crate::worker::tx::run(|| sync::set_mapping_error(m.id, &error));
                continue;
            }
            Some(poll::Read::Page(q, page)) => clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "pull"), || {
                poll::pass_from(Ctx::Worker, m, mappings, Some((q, page)))
            }),
            None => clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "pull"), || poll::pass(Ctx::Worker, m, mappings)),
        };
        if let Call::Done(s) = &pull {
            // Records a write-through transaction held were left: read them again soon.
            if s.deferred > 0 {
                pulls.asked(m.id, m.pushes(), Instant::now(), guc::ms(&guc::CDC_POLL_SPACING_MS));
            }
        }
        if let Call::Failed { error, retry_in, .. } = pull {
            warning!("sfsync: pull of {} into {} failed, retrying in {retry_in:?}: {error}", m.sobject, m.table);
            let msg = error.to_string();
            let _ = crate::worker::tx::run(|| sync::set_mapping_error(m.id, &msg));
        }
    }
}

/// The worker is a superuser: like PostgreSQL's logical replication workers, it resolves
/// nothing through a search_path a database owner could set (`ALTER DATABASE … SET
/// search_path`) or a schema others may create in. A session setting, over the database's:
/// the tables' owners' code still runs with the database's default (`as_table_owner`).
fn pin_search_path() {
    crate::privilege::set_setting(c"search_path", c"pg_catalog, pg_temp", pg_sys::GucContext::PGC_SUSET, pg_sys::GucAction::GUC_ACTION_SET);
}

/// Err (could not tell) is treated by callers as "exists": only a definite no stops us.
fn extension_exists() -> Result<bool> {
    crate::worker::tx::run(|| {
        Ok(Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'sfsync')")?.unwrap_or(false))
    })
}

#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: i32, arg: pg_sys::Datum) {
    registry::release_worker_slot(arg.value() as u32, false, 0);
}
