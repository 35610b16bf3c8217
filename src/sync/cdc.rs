//! Change Data Capture as the low-latency path of the pull.
//!
//! One listener thread per connection long-polls CometD for the change events of the
//! objects the connection's tables pull. The thread only does HTTP — it never calls into
//! Postgres — and wakes the worker by writing a byte to a socket pair whose other end the
//! worker's wait watches (`WaitLatchOrSocket`). An event makes the worker poll that object
//! at once, through the same SystemModstamp pull as always; so a Salesforce change lands
//! within a poll's round trip, and while the stream is healthy the timed poll is only a slow
//! safety net (`sfsync.cdc_safety_interval`) that catches anything the stream missed.

use salesforce::cdc::{channel_for, CdcError, ReplayFrom};
use salesforce::{Client, ClientOptions, Credentials};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// Longest a listener holds one CometD connect; also how long it takes to notice a stop.
const HOLD: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(5);

/// What a listener tells the worker.
#[derive(Debug)]
enum Note {
    /// Subscribed (again): events from now on arrive.
    Subscribed,
    /// A change of this object; the replay id to resume after.
    Changed { object: String, channel: String, replay_id: i64 },
    /// Events may have been missed (invalid replay id, gap events): poll these objects.
    Missed(Vec<String>),
    /// The stream is down (and retrying).
    Down(String),
}

struct Listener {
    objects: BTreeSet<String>,
    stop: Arc<AtomicBool>,
    rx: Receiver<Note>,
    healthy: bool,
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
    /// (connection, object) pairs to poll now.
    pub changed: BTreeSet<(String, String)>,
    /// (connection, channel) -> replay id to persist.
    pub replay: HashMap<(String, String), i64>,
    /// Connections whose stream went down, with why.
    pub down: Vec<(String, String)>,
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
        wanted: HashMap<String, (Credentials, ClientOptions, BTreeSet<String>)>,
        replay: &HashMap<(String, String), i64>,
    ) {
        self.listeners.retain(|conn, l| wanted.get(conn).is_some_and(|(_, _, objects)| *objects == l.objects));
        for (conn, (creds, opts, objects)) in wanted {
            if objects.is_empty() || self.listeners.contains_key(&conn) {
                continue;
            }
            let subs: Vec<(String, ReplayFrom)> = objects
                .iter()
                .map(|o| {
                    let ch = channel_for(o);
                    let from = replay.get(&(conn.clone(), ch.clone())).map_or(ReplayFrom::New, |id| ReplayFrom::After(*id));
                    (ch, from)
                })
                .collect();
            let stop = Arc::new(AtomicBool::new(false));
            let (tx, rx) = channel();
            let wake = match self.wake_tx.try_clone() {
                Ok(w) => w,
                Err(_) => continue,
            };
            let thread_stop = stop.clone();
            // Postgres's signal handlers (SIGTERM, SIGHUP, latch wake-ups) must run in the
            // backend's own thread: the listener starts, and stays, with every signal blocked.
            let spawned = with_signals_blocked(|| {
                std::thread::Builder::new()
                    .name(format!("sfsync-cdc-{conn}"))
                    .spawn(move || listen(creds, opts, subs, thread_stop, tx, wake))
            });
            if spawned.is_ok() {
                self.listeners.insert(conn, Listener { objects, stop, rx, healthy: false });
            }
        }
    }

    /// Whether the connection's stream is subscribed and up: its timed polls can slow down.
    pub fn healthy(&self, conn: &str) -> bool {
        self.listeners.get(conn).is_some_and(|l| l.healthy)
    }

    /// Everything the listeners said since the last drain.
    pub fn drain(&mut self) -> Drained {
        let mut buf = [0u8; 256];
        while matches!(self.wake_rx.read(&mut buf), Ok(n) if n > 0) {}
        let mut out = Drained::default();
        for (conn, l) in self.listeners.iter_mut() {
            while let Ok(note) = l.rx.try_recv() {
                match note {
                    Note::Subscribed => l.healthy = true,
                    Note::Changed { object, channel, replay_id } => {
                        out.changed.insert((conn.clone(), object));
                        out.replay.insert((conn.clone(), channel), replay_id);
                    }
                    Note::Missed(objects) => out.changed.extend(objects.into_iter().map(|o| (conn.clone(), o))),
                    Note::Down(why) => {
                        l.healthy = false;
                        out.down.push((conn.clone(), why));
                    }
                }
            }
        }
        out
    }
}

pub(crate) fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: plain pthread_sigmask calls on this thread's mask, restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// The listener thread: log in, subscribe, long-poll; on any failure report it, wait and
/// start over from the last delivered replay ids. HTTP only — no Postgres calls here.
fn listen(
    creds: Credentials,
    opts: ClientOptions,
    mut subs: Vec<(String, ReplayFrom)>,
    stop: Arc<AtomicBool>,
    tx: Sender<Note>,
    mut wake: UnixStream,
) {
    let object_of = |channel: &str| -> String {
        let name = channel.trim_start_matches("/data/").trim_end_matches("ChangeEvent");
        match name.strip_suffix("__") {
            Some(base) => format!("{base}__c"),
            None => name.to_string(),
        }
    };
    let all_objects = |subs: &[(String, ReplayFrom)]| subs.iter().map(|(c, _)| object_of(c)).collect::<Vec<_>>();
    let notify = |note: Note, wake: &mut UnixStream| {
        let _ = tx.send(note);
        let _ = wake.write(&[1]);
    };
    while !stop.load(Ordering::Relaxed) {
        let outcome: Result<(), String> = (|| {
            let client = Client::login(creds.clone(), opts.clone()).map_err(|e| e.to_string())?;
            let mut stream = client.cdc_subscribe_each(&subs).map_err(|e| e.to_string())?;
            notify(Note::Subscribed, &mut wake);
            // Whatever happened while we were not subscribed is caught by a poll.
            notify(Note::Missed(all_objects(&subs)), &mut wake);
            while !stop.load(Ordering::Relaxed) {
                match stream.poll(HOLD) {
                    Ok(events) => {
                        for e in events {
                            let object = if e.header.entity_name.is_empty() { object_of(&e.channel) } else { e.header.entity_name.clone() };
                            if e.header.change_type.is_gap() {
                                notify(Note::Missed(vec![object.clone()]), &mut wake);
                            }
                            for (ch, from) in subs.iter_mut() {
                                if *ch == e.channel {
                                    *from = ReplayFrom::After(e.replay_id);
                                }
                            }
                            notify(Note::Changed { object, channel: e.channel.clone(), replay_id: e.replay_id }, &mut wake);
                        }
                    }
                    Err(CdcError::ReplayInvalid { channel, .. }) => {
                        for (ch, from) in subs.iter_mut() {
                            if *ch == channel {
                                *from = ReplayFrom::New;
                            }
                        }
                        notify(Note::Missed(vec![object_of(&channel)]), &mut wake);
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            stream.close();
            Ok(())
        })();
        if let Err(why) = outcome {
            notify(Note::Down(why), &mut wake);
            let mut waited = Duration::ZERO;
            while waited < RETRY && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
        }
    }
}
