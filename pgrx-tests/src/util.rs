//! Small process / filesystem helpers shared by the harness.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether this process runs as root (then Postgres runs as the OS user `postgres`).
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("failed to run `id -u`");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// `SFSYNC_E2E_KEEP=1`: keep temp dirs and logs after a test.
pub fn keep_artifacts() -> bool {
    env_flag("SFSYNC_E2E_KEEP")
}

/// `SFSYNC_E2E_STREAM`: the change stream transport the shared setup gives the `default`
/// connection, `pubsub` or `cometd` (the default: the emulator's login host is not
/// Salesforce's, so `auto` uses CometD unless a Pub/Sub endpoint is named).
pub fn stream_transport() -> &'static str {
    match std::env::var("SFSYNC_E2E_STREAM").as_deref().map(str::trim) {
        Ok("pubsub") => "pubsub",
        Ok("") | Ok("cometd") | Err(_) => "cometd",
        Ok(other) => panic!("SFSYNC_E2E_STREAM={other}: use pubsub or cometd"),
    }
}

pub(crate) fn env_flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref().map(str::trim), Ok("1") | Ok("true") | Ok("yes") | Ok("on"))
}

/// The Cargo workspace root (parent of `pgrx-tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Creates a fresh, unique directory `/tmp/<prefix>-<pid>-<n>-<nanos>`.
pub(crate) fn make_temp_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        // Keep it short: the unix socket path (dir + "/.s.PGSQL.NNNNN") must stay < 107 bytes.
        let dir = base.join(format!("{prefix}-{}-{n}{:x}", std::process::id(), nanos & 0xffff));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", dir.display()),
        }
    }
}

/// A free TCP port on 127.0.0.1 (racy by nature, good enough for tests).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("cannot find a free port")
}

/// Runs `cmd` and returns stdout, or an error message with status, stdout and stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("failed to spawn {shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{shown} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// Last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
