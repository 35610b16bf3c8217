//! Change Data Capture as the low-latency path of the pull.
//!
//! One listener thread per connection subscribes to the change events of the objects the
//! connection's tables pull, over the connection's transport (`sfsync.set_change_stream`):
//! the Pub/Sub API, CometD, or `auto` — Pub/Sub, and CometD while the Pub/Sub endpoint
//! can't be reached or refuses us (said once in the log, Pub/Sub tried again every
//! [`PUBSUB_RETRY`]). The thread only does HTTP — it never calls into
//! Postgres — and hands the parsed events to the worker through a bounded inbox, waking it
//! by writing a byte to a socket pair whose other end the worker's wait watches
//! (`WaitLatchOrSocket`). The worker applies the events directly (`sync::source::events`: the
//! changed fields only) and leaves what it can't apply faithfully to the ordinary
//! SystemModstamp pull. When the inbox is full, events are dropped and their objects
//! reported as missed, so memory stays bounded and a catch-up poll reads what was dropped.
//! While the stream is healthy the timed poll is only a slow safety net
//! (`sfsync.cdc_safety_interval`) that catches anything the stream missed.
//!
//! A subscribed stream that has not heard from the server for longer than a long-poll can
//! take ([`KEEPALIVE`]) is `stalled`: a hung connection, an unreachable org. It is not
//! healthy then, so its tables are polled at once and at the normal interval until the
//! server answers again (or the request times out and the stream is `down`).
//!
//! Positions are per transport: a Pub/Sub replay id is kept under `pubsub:<channel>`, a
//! CometD one under `<channel>`. A listener that switches transport starts the new one at
//! its newest events, and its tables are polled from their own marks (as after any
//! resubscription), which catches what happened in between.

use super::cdc_inbox::{deliver, move_past, Inbox, Note};
use super::cdc_transport::PUBSUB_KEY;
pub use super::cdc_transport::{object_named, object_of, Transport};
use super::echo_book;
use crate::plan::echoes::{EchoBook, Heard};
use salesforce::cdc::{channel_for, CdcError, ChangeEvent, ReplayFrom};
use salesforce::pubsub::PubSubOptions;
use salesforce::{with_signals_blocked, Client, ClientOptions, Credentials};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest a listener holds one CometD connect; also how long it takes to notice a stop.
const HOLD: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(5);
/// Longest silence of a healthy stream: a connect is answered within HOLD (the server's
/// advised interval and timeout are capped by it), plus a margin for a slow answer.
pub const KEEPALIVE: Duration = Duration::from_secs(HOLD.as_secs() + 5);
/// How long `auto` stays on CometD after the Pub/Sub API failed before trying it again.
pub const PUBSUB_RETRY: Duration = Duration::from_secs(300);
struct Listener {
    objects: BTreeSet<String>,
    choice: Transport,
    /// The transport of the live subscription.
    transport: Option<&'static str>,
    stop: Arc<AtomicBool>,
    inbox: Arc<Mutex<Inbox>>,
    /// What this process wrote through the connection lately (`plan::echoes`).
    echoes: Arc<Mutex<EchoBook>>,
    healthy: bool,
    /// Why the stream last went down, until it is up again.
    down: Option<String>,
    /// When the server last answered (ms since the epoch), set by the listener thread.
    heard: Arc<AtomicU64>,
    /// Subscribed, but silent for longer than KEEPALIVE.
    stalled: bool,
    /// Since when the stream has been healthy without a break (None: it is not).
    live_since: Option<Instant>,
}

impl Listener {
    /// Subscribed and heard from within KEEPALIVE.
    fn is_healthy(&self) -> bool {
        self.healthy && !self.stalled
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The thread ends by itself within HOLD; nothing waits for it.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the worker learns from one drain.
#[derive(Default, Debug)]
pub struct Drained {
    /// Change events by connection, in delivery order.
    pub events: Vec<(String, ChangeEvent)>,
    /// (connection, object) pairs to poll now.
    pub missed: BTreeSet<(String, String)>,
    /// (connection, channel) -> replay id of events not delivered (dropped), to persist.
    pub dropped: HashMap<(String, String), i64>,
    /// Events dropped as echoes of this process's own writes.
    pub echoes: u64,
    /// Connections whose stream went down, with why.
    pub down: Vec<(String, String)>,
    /// Connections that fell back from the Pub/Sub API to CometD, with why (once each).
    pub fallback: Vec<(String, String)>,
}

pub struct Cdc {
    listeners: HashMap<String, Listener>,
    wake_rx: UnixStream,
    wake_tx: UnixStream,
}

impl Cdc {
    pub fn new() -> std::io::Result<Cdc> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Cdc { listeners: HashMap::new(), wake_rx, wake_tx })
    }

    /// The socket the worker's wait must watch.
    pub fn wake_fd(&self) -> i32 {
        self.wake_rx.as_raw_fd()
    }

    /// Starts, restarts or stops listeners so each connection listens to exactly these
    /// objects. `replay` holds the persisted replay ids by (connection, channel).
    pub fn reconcile(
        &mut self,
        wanted: HashMap<String, (Credentials, ClientOptions, BTreeSet<String>, Transport)>,
        replay: &HashMap<(String, String), i64>,
    ) {
        self.listeners.retain(|conn, l| wanted.get(conn).is_some_and(|(_, _, objects, t)| *objects == l.objects && *t == l.choice));
        for (conn, (creds, opts, objects, choice)) in wanted {
            if objects.is_empty() || self.listeners.contains_key(&conn) {
                continue;
            }
            let from = |key: String| replay.get(&(conn.clone(), key)).map_or(ReplayFrom::New, |id| ReplayFrom::After(*id));
            let subs: Vec<Sub> = objects
                .iter()
                .map(|o| {
                    let ch = channel_for(o);
                    Sub { cometd: from(ch.clone()), pubsub: from(format!("{PUBSUB_KEY}{ch}")), channel: ch }
                })
                .collect();
            let endpoint = choice.pubsub(&creds.login_url);
            let falls_back = choice.falls_back();
            let choice_kept = choice;
            let stop = Arc::new(AtomicBool::new(false));
            let inbox = Arc::new(Mutex::new(Inbox::default()));
            let tx = inbox.clone();
            let wake = match self.wake_tx.try_clone() {
                Ok(w) => w,
                Err(_) => continue,
            };
            let thread_stop = stop.clone();
            let echoes = echo_book::book(&conn);
            let thread_echoes = echoes.clone();
            let heard = Arc::new(AtomicU64::new(now_ms()));
            let thread_heard = heard.clone();
            // Postgres's signal handlers (SIGTERM, SIGHUP, latch wake-ups) must run in the
            // backend's own thread: the listener starts, and stays, with every signal blocked.
            let spawned = with_signals_blocked(|| {
                std::thread::Builder::new()
                    .name(format!("sfsync-cdc-{conn}"))
                    .spawn(move || listen(creds, opts, subs, (endpoint, falls_back), thread_stop, tx, thread_echoes, wake, thread_heard))
            });
            if spawned.is_ok() {
                let l = Listener {
                    objects,
                    choice: choice_kept,
                    transport: None,
                    stop,
                    inbox,
                    echoes,
                    healthy: false,
                    down: None,
                    heard,
                    stalled: false,
                    live_since: None,
                };
                self.listeners.insert(conn, l);
            }
        }
    }

    /// Whether the connection's stream is subscribed and up: its timed polls can slow down.
    pub fn healthy(&self, conn: &str) -> bool {
        self.listeners.get(conn).is_some_and(Listener::is_healthy)
    }

    /// Since when the connection's stream has been healthy without a break, as last drained.
    pub fn live_since(&self, conn: &str) -> Option<Instant> {
        self.listeners.get(conn).filter(|l| l.is_healthy()).and_then(|l| l.live_since)
    }

    /// What each listening connection's stream is doing, as `sfsync.status` shows it:
    /// `live`, `stalled` (subscribed but silent; polling meanwhile), `down: <why>` (polling
    /// meanwhile) or `connecting`. Connections without a listener are absent (their tables poll).
    pub fn states(&self) -> BTreeMap<String, String> {
        let state = |l: &Listener| match (l.healthy, &l.down) {
            (true, _) if l.stalled => "stalled".to_string(),
            (true, _) => "live".to_string(),
            (false, Some(why)) => format!("down: {why}"),
            (false, None) => "connecting".to_string(),
        };
        self.listeners.iter().map(|(conn, l)| (conn.clone(), state(l))).collect()
    }

    /// The transport of each connection's live stream (`pubsub` or `cometd`).
    pub fn transports(&self) -> BTreeMap<String, &'static str> {
        self.listeners.iter().filter(|(_, l)| l.healthy).filter_map(|(c, l)| l.transport.map(|t| (c.clone(), t))).collect()
    }

    /// Everything the listeners said since the last drain.
    pub fn drain(&mut self) -> Drained {
        let mut buf = [0u8; 256];
        while matches!(self.wake_rx.read(&mut buf), Ok(n) if n > 0) {}
        let mut out = Drained::default();
        let now = now_ms();
        for (conn, l) in self.listeners.iter_mut() {
            let taken = std::mem::take(&mut *l.inbox.lock().unwrap_or_else(|p| p.into_inner()));
            let was_healthy = l.is_healthy();
            if let Some(up) = taken.up {
                l.healthy = up;
                if up {
                    l.down = None;
                }
            }
            if let Some(t) = taken.transport {
                l.transport = Some(t);
            }
            if let Some(why) = taken.fallback {
                out.fallback.push((conn.clone(), why));
            }
            if let Some(why) = taken.down {
                l.down = Some(why.clone());
                out.down.push((conn.clone(), why));
            }
            l.stalled = l.healthy && silent_too_long(l.heard.load(Ordering::Relaxed), now);
            // A new subscription (taken.up) starts a new unbroken run, even if the drain
            // before saw the stream healthy: the listener resubscribed in between.
            l.live_since = match (l.is_healthy(), taken.up) {
                (false, _) => None,
                (true, Some(true)) => Some(Instant::now()),
                (true, _) => l.live_since.or_else(|| Some(Instant::now())),
            };
            // Its tables were polled only as a safety net: poll them now, then at the
            // normal interval while the stream is not healthy.
            if was_healthy && !l.is_healthy() {
                out.missed.extend(l.objects.iter().map(|o| (conn.clone(), o.clone())));
            }
            // An event delivered before the push noted its writes (it can beat the call's
            // answer) is judged again now: an echo, or older than the write.
            let mut book = l.echoes.lock().unwrap_or_else(|p| p.into_inner());
            let (mut dropped, mut missed) = (taken.dropped, taken.missed);
            for (e, stamp) in taken.events {
                match book.hear(&e, Some(stamp)) {
                    Heard::News => out.events.push((conn.clone(), e)),
                    Heard::Echo => {
                        move_past(&mut dropped, &e);
                        out.echoes += 1;
                    }
                    Heard::Stale => {
                        missed.insert(object_named(&e));
                        move_past(&mut dropped, &e);
                    }
                }
            }
            drop(book);
            out.missed.extend(missed.into_iter().map(|o| (conn.clone(), o)));
            out.dropped.extend(dropped.into_iter().map(|(ch, id)| ((conn.clone(), ch), id)));
            out.echoes += taken.echoes;
        }
        out
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whether a stream last heard from at `heard` (ms) is silent for longer than KEEPALIVE.
fn silent_too_long(heard: u64, now: u64) -> bool {
    now.saturating_sub(heard) > KEEPALIVE.as_millis() as u64
}

/// A channel's starting points on each transport.
#[derive(Clone, Debug)]
struct Sub {
    channel: String,
    cometd: ReplayFrom,
    pubsub: ReplayFrom,
}

/// Either subscribed stream, polled alike.
enum Live<'a> {
    PubSub(Box<salesforce::pubsub::PubSubStream<'a>>),
    CometD(salesforce::CdcStream<'a>),
}

impl Live<'_> {
    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ChangeEvent>, CdcError> {
        match self {
            Live::PubSub(s) => s.poll(max_wait),
            Live::CometD(s) => s.poll(max_wait),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Live::PubSub(_) => "pubsub",
            Live::CometD(_) => "cometd",
        }
    }
}

/// The listener thread: log in, subscribe (Pub/Sub first when it has an endpoint), poll; on
/// any failure report it, wait and start over from the last delivered replay ids. HTTP and
/// gRPC only — no Postgres calls here.
#[allow(clippy::too_many_arguments)]
fn listen(
    creds: Credentials,
    opts: ClientOptions,
    mut subs: Vec<Sub>,
    (endpoint, falls_back): (Option<String>, bool),
    stop: Arc<AtomicBool>,
    inbox: Arc<Mutex<Inbox>>,
    echoes: Arc<Mutex<EchoBook>>,
    mut wake: UnixStream,
    heard: Arc<AtomicU64>,
) {
    let hear = || heard.store(now_ms(), Ordering::Relaxed);
    let all_objects = |subs: &[Sub]| subs.iter().map(|s| object_of(&s.channel)).collect::<Vec<_>>();
    // On CometD until then, because the Pub/Sub API failed; whether that was said already.
    let mut cometd_until: Option<Instant> = None;
    let mut said_fallback = false;
    let mut last_transport: Option<&'static str> = None;
    while !stop.load(Ordering::Relaxed) {
        let outcome: Result<(), String> = (|| {
            let client = Client::login(creds.clone(), opts.clone()).map_err(|e| e.to_string())?;
            let try_pubsub = endpoint.is_some() && cometd_until.is_none_or(|t| Instant::now() >= t);
            let mut stream = None;
            if let (true, Some(ep)) = (try_pubsub, &endpoint) {
                let switching = last_transport.is_some_and(|t| t != "pubsub");
                let ps: Vec<(String, ReplayFrom)> =
                    subs.iter().map(|s| (s.channel.clone(), if switching { ReplayFrom::New } else { s.pubsub })).collect();
                let popts = PubSubOptions { endpoint: ep.clone(), ..PubSubOptions::default() };
                match client.pubsub_subscribe(&ps, popts) {
                    Ok(s) => {
                        cometd_until = None;
                        stream = Some(Live::PubSub(Box::new(s)));
                    }
                    Err(e) if falls_back => {
                        cometd_until = Some(Instant::now() + PUBSUB_RETRY);
                        if !said_fallback {
                            said_fallback = true;
                            deliver(&inbox, &echoes, &mut wake, Note::Fallback(format!("Pub/Sub API at {ep}: {e}")));
                        }
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            let mut stream = match stream {
                Some(s) => s,
                None => {
                    let switching = last_transport.is_some_and(|t| t != "cometd");
                    let cd: Vec<(String, ReplayFrom)> =
                        subs.iter().map(|s| (s.channel.clone(), if switching { ReplayFrom::New } else { s.cometd })).collect();
                    Live::CometD(client.cdc_subscribe_each(&cd).map_err(|e| e.to_string())?)
                }
            };
            let transport = stream.name();
            last_transport = Some(transport);
            hear();
            deliver(&inbox, &echoes, &mut wake, Note::Subscribed(transport));
            // Whatever happened while we were not subscribed is caught by a poll.
            deliver(&inbox, &echoes, &mut wake, Note::Missed(all_objects(&subs)));
            while !stop.load(Ordering::Relaxed) {
                if transport == "cometd" && cometd_until.is_some_and(|t| Instant::now() >= t) {
                    return Ok(()); // time to try the Pub/Sub API again
                }
                let polled = stream.poll(HOLD);
                if matches!(polled, Ok(_) | Err(CdcError::ReplayInvalid { .. })) {
                    hear();
                }
                match polled {
                    Ok(events) => {
                        for mut e in events {
                            for s in subs.iter_mut().filter(|s| s.channel == e.channel) {
                                match transport {
                                    "pubsub" => s.pubsub = ReplayFrom::After(e.replay_id),
                                    _ => s.cometd = ReplayFrom::After(e.replay_id),
                                }
                            }
                            if transport == "pubsub" {
                                // Its position is kept apart from CometD's.
                                e.channel = format!("{PUBSUB_KEY}{}", e.channel);
                            }
                            // Gap events go to the worker too: their records are polled.
                            deliver(&inbox, &echoes, &mut wake, Note::Event(Box::new(e)));
                        }
                    }
                    Err(CdcError::ReplayInvalid { channel, .. }) => {
                        for s in subs.iter_mut().filter(|s| s.channel == channel) {
                            s.pubsub = ReplayFrom::New;
                            s.cometd = ReplayFrom::New;
                        }
                        deliver(&inbox, &echoes, &mut wake, Note::Missed(vec![object_of(&channel)]));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            if let Live::CometD(s) = stream {
                s.close();
            }
            Ok(())
        })();
        if let Err(why) = outcome {
            deliver(&inbox, &echoes, &mut wake, Note::Down(why));
            let mut waited = Duration::ZERO;
            while waited < RETRY && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_silent_longer_than_a_long_poll_is_stalled() {
        let heard = 1_000_000;
        assert!(!silent_too_long(heard, heard + HOLD.as_millis() as u64), "a long-poll held to the end is not a stall");
        assert!(!silent_too_long(heard, heard + KEEPALIVE.as_millis() as u64));
        assert!(silent_too_long(heard, heard + KEEPALIVE.as_millis() as u64 + 1));
        assert!(!silent_too_long(heard + 5, heard), "a clock step back is not a stall");
    }

    #[test]
    fn channels_name_their_objects() {
        assert_eq!(object_of("pubsub:/data/AccountChangeEvent"), "Account", "a Pub/Sub position's channel");
        assert_eq!(object_of("/data/AccountChangeEvent"), "Account");
        assert_eq!(object_of("/data/Invoice__ChangeEvent"), "Invoice__c");
    }
}
