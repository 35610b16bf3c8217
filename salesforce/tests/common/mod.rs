//! Shared harness for the integration tests that run against a real
//! `sf-emulator` process (`mod common;` in each test file).
//!
//! The binary is found through `SF_EMULATOR_BIN`, next to the test binary
//! (`<target>/debug/sf-emulator`), `$CARGO_TARGET_DIR/debug/sf-emulator` or
//! the workspace `target/debug/sf-emulator`. Build it first with
//! `cargo build -p sf-emulator`. When it is absent every test prints a SKIP
//! line and passes (set `SF_REQUIRE_EMULATOR=1` to make that a failure).

// Each test crate compiles its own copy and uses a different subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use salesforce::{AuthFlow, Client, ClientOptions, Credentials, Record, Secret};
use serde_json::Value;

pub const CLIENT_ID: &str = "sfsync-local";
pub const CLIENT_SECRET: &str = "sfsync-local-secret";
pub const USERNAME: &str = "integration@sfsync.local";
pub const PASSWORD: &str = "sfsync";

pub fn emulator_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SF_EMULATOR_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut candidates = vec![];
    if let Ok(exe) = std::env::current_exe() {
        // <target>/debug/deps/emulator-xxxx -> <target>/debug/sf-emulator
        if let Some(profile_dir) = exe.parent().and_then(|d| d.parent()) {
            candidates.push(profile_dir.join("sf-emulator"));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("debug").join("sf-emulator"));
    }
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(ws.join("target").join("debug").join("sf-emulator"));
    candidates.into_iter().find(|p| p.is_file())
}

/// A running emulator; killed on drop.
pub struct Emulator {
    child: Child,
    pub url: String,
    /// The rest of the start-up lines (the Pub/Sub listener's).
    lines: mpsc::Receiver<String>,
    /// Plain HTTP agent for admin calls (non-2xx statuses are not errors).
    pub http: ureq::Agent,
    client_opts: ClientOptions,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an emulator on a free port, or returns `None` (test skipped).
pub fn start(test: &str) -> Option<Emulator> {
    start_with(test, &[])
}

/// Like [`start`], passing `extra_args` to the emulator after `--listen`.
pub fn start_with(test: &str, extra_args: &[&str]) -> Option<Emulator> {
    let Some(bin) = emulator_bin() else {
        if std::env::var_os("SF_REQUIRE_EMULATOR").is_some() {
            panic!("sf-emulator binary not found and SF_REQUIRE_EMULATOR is set");
        }
        eprintln!("SKIP {test}: sf-emulator binary not found (run `cargo build -p sf-emulator` or set SF_EMULATOR_BIN)");
        return None;
    };
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        // The first line names the REST listener, the second the Pub/Sub API's.
        for _ in 0..2 {
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
        }
        // keep draining so the emulator never blocks on a full pipe
        for _ in lines {}
    });
    let first = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sf-emulator printed no first line within 20s");
        }
    };
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from sf-emulator: {first:?}"))
        .trim_end_matches('/')
        .to_string();
    let http: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(10))).build().into();
    Some(Emulator { child, url, lines: rx, http, client_opts: Emulator::opts() })
}

impl Emulator {
    /// The client options the tests use unless they say otherwise.
    pub fn opts() -> ClientOptions {
        ClientOptions { request_timeout: Duration::from_secs(10), max_retry_time: Duration::from_secs(10), ..ClientOptions::default() }
    }

    /// Makes [`Emulator::client`] log in with `opts` instead of [`Emulator::opts`].
    pub fn with_client_opts(mut self, opts: ClientOptions) -> Self {
        self.client_opts = opts;
        self
    }

    /// The Pub/Sub API endpoint (`http://HOST:PORT`) from the second start-up line; None
    /// when this emulator serves none.
    pub fn pubsub_endpoint(&self) -> Option<String> {
        let line = self.lines.recv_timeout(Duration::from_secs(5)).ok()?;
        line.trim().strip_prefix("pubsub listening on ").map(|a| format!("http://{a}"))
    }

    /// Credentials of the emulator's connected app / integration user for `flow`.
    pub fn creds(&self, flow: AuthFlow) -> Credentials {
        let mut c = Credentials::new(flow, self.url.clone(), CLIENT_ID);
        match flow {
            AuthFlow::ClientCredentials => c.client_secret = Some(Secret::new(CLIENT_SECRET.into())),
            AuthFlow::Password => {
                c.client_secret = Some(Secret::new(CLIENT_SECRET.into()));
                c.username = Some(USERNAME.into());
                c.password = Some(Secret::new(PASSWORD.into()));
            }
            AuthFlow::Jwt => c.username = Some(USERNAME.into()),
            AuthFlow::RefreshToken => c.client_secret = Some(Secret::new(CLIENT_SECRET.into())),
        }
        c
    }

    /// A client-credentials login with this emulator's client options.
    pub fn client(&self) -> Client {
        Client::login(self.creds(AuthFlow::ClientCredentials), self.client_opts.clone()).expect("login")
    }

    /// POST `body` to `path` (from the root, e.g. `/__emulator/faults`): status and body.
    pub fn admin_post(&self, path: &str, body: Value) -> (u16, String) {
        let mut r = self.http.post(format!("{}{path}", self.url)).send_json(body).expect("admin call");
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
    }

    /// GET `path` (from the root): status and body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let mut r = self.http.get(format!("{}{path}", self.url)).call().expect("admin call");
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
    }

    /// DELETE `path` (from the root): status.
    pub fn admin_delete(&self, path: &str) -> u16 {
        self.http.delete(format!("{}{path}", self.url)).call().expect("admin call").status().as_u16()
    }

    /// POST `body` to `/__emulator/{path}`; asserts success, returns the JSON answer.
    pub fn admin(&self, path: &str, body: Value) -> Value {
        let (status, text) = self.admin_post(&format!("/__emulator/{path}"), body);
        Self::admin_json(path, status, &text)
    }

    /// GET `/__emulator/{path}`; asserts success, returns the JSON answer.
    pub fn admin_get_json(&self, path: &str) -> Value {
        let (status, text) = self.admin_get(&format!("/__emulator/{path}"));
        Self::admin_json(path, status, &text)
    }

    fn admin_json(path: &str, status: u16, text: &str) -> Value {
        assert!(status < 300, "{path}: {status} {text}");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text:?}"))
    }

    pub fn fault(&self, body: Value) {
        let (status, text) = self.admin_post("/__emulator/faults", body.clone());
        assert!(status < 300, "fault {body} rejected: {status} {text}");
    }

    pub fn clear_faults(&self) {
        let status = self.admin_delete("/__emulator/faults");
        assert!(status < 300, "clearing faults: {status}");
    }

    /// The emulator's clock (epoch ms).
    pub fn now_ms(&self) -> i64 {
        self.admin_get_json("clock")["now_ms"].as_i64().unwrap()
    }
}

/// A JSON object as a record.
pub fn rec(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}
