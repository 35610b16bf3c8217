//! `sf-emulator` child process plus small HTTP helpers around it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::util::{keep_artifacts, make_temp_dir, tail, workspace_root};
use crate::wait::{until, WAIT};

/// The emulator's org (see emulator/README.md): its connected app and its integration user.
pub const DEFAULT_CLIENT_ID: &str = "sfsync-local";
pub const DEFAULT_CLIENT_SECRET: &str = "sfsync-local-secret";
pub const DEFAULT_USERNAME: &str = "integration@sfsync.local";
pub const DEFAULT_PASSWORD: &str = "sfsync";
/// REST API version used by [`SfRest`] when `SF_API_VERSION` is unset and the org's
/// `GET /services/data/` does not answer (normally the newest listed version is used).
pub const DEFAULT_API_VERSION: &str = "v61.0";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `sf-emulator`; killed on drop.
pub struct Emulator {
    child: Child,
    url: String,
    /// The second stdout line's address (`pubsub listening on HOST:PORT`), read on first use.
    pubsub_rx: Mutex<Option<mpsc::Receiver<String>>>,
    pubsub: std::sync::OnceLock<Option<String>>,
    dir: PathBuf,
    log_path: PathBuf,
    agent: ureq::Agent,
}

impl Emulator {
    /// Starts the emulator on a free port of 127.0.0.1 with its default org.
    pub fn start() -> Emulator {
        Self::start_with_args(&[])
    }

    /// Starts the emulator with extra command-line arguments (e.g. a schema file).
    pub fn start_with_args(extra_args: &[&str]) -> Emulator {
        let bin = Self::binary_path();
        let dir = make_temp_dir("sfsync-e2e-emu");
        let log_path = dir.join("emulator.log");
        let log = Arc::new(Mutex::new(File::create(&log_path).expect("cannot create emulator log")));

        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (set SF_EMULATOR_BIN or run `make emulator`)", bin.display()));

        // stderr: copied to the log as it comes.
        let stderr = child.stderr.take().unwrap();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || drain(stderr, &log2, "stderr"));

        // stdout: the first line announces the address, the second the Pub/Sub API's; the
        // rest goes to the log.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<Result<String, String>>();
        let (pubsub_tx, pubsub_rx) = mpsc::channel::<String>();
        let log3 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            match reader.read_line(&mut first) {
                Ok(0) => {
                    let _ = tx.send(Err("emulator closed stdout before announcing its address".into()));
                    return;
                }
                Ok(_) => {
                    log_line(&log3, "stdout", first.trim_end());
                    let _ = tx.send(Ok(first));
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("reading emulator stdout: {e}")));
                    return;
                }
            }
            let mut second = String::new();
            if reader.read_line(&mut second).unwrap_or(0) > 0 {
                log_line(&log3, "stdout", second.trim_end());
                if let Some(addr) = second.trim().strip_prefix("pubsub listening on ") {
                    let _ = pubsub_tx.send(addr.trim().to_string());
                }
            }
            drop(pubsub_tx);
            drain(reader, &log3, "stdout");
        });

        let first = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(msg)) => fail_start(&mut child, &log_path, &msg),
            Err(_) => fail_start(&mut child, &log_path, "no `listening on` line within 30 s"),
        };
        let url = match first.trim().strip_prefix("listening on ") {
            Some(rest) => rest.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_string(),
            None => fail_start(&mut child, &log_path, &format!("unexpected first line: {first:?}")),
        };
        if !url.starts_with("http") {
            fail_start(&mut child, &log_path, &format!("unexpected first line: {first:?}"));
        }

        let pubsub_rx = Mutex::new(Some(pubsub_rx));
        Emulator { child, url, pubsub_rx, pubsub: Default::default(), dir, log_path, agent: agent() }
    }

    /// The Pub/Sub API (gRPC) address, `HOST:PORT` (TLS when the emulator serves HTTPS), from
    /// the emulator's second stdout line; None for an emulator that has no Pub/Sub listener.
    pub fn pubsub_addr(&self) -> Option<&str> {
        self.pubsub
            .get_or_init(|| {
                let rx = self.pubsub_rx.lock().ok()?.take()?;
                rx.recv_timeout(STARTUP_TIMEOUT).ok()
            })
            .as_deref()
    }

    /// Path of the `sf-emulator` binary: `$SF_EMULATOR_BIN`, else `release/` then `debug/`
    /// under `$CARGO_TARGET_DIR` or `<workspace>/target`.
    pub fn binary_path() -> PathBuf {
        if let Ok(p) = std::env::var("SF_EMULATOR_BIN") {
            if !p.is_empty() {
                return PathBuf::from(p);
            }
        }
        let mut targets = Vec::new();
        if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
            let t = PathBuf::from(t);
            targets.push(if t.is_absolute() { t } else { workspace_root().join(t) });
        }
        targets.push(workspace_root().join("target"));
        for t in &targets {
            for profile in ["release", "debug"] {
                let p = t.join(profile).join("sf-emulator");
                if p.is_file() {
                    return p;
                }
            }
        }
        panic!("sf-emulator binary not found (looked in {:?}); run `make emulator` or set SF_EMULATOR_BIN", targets);
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). Both login and instance URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the emulator listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    /// OS process id of the emulator.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Calls the admin surface and returns the JSON reply (`Value::Null` for an empty body).
    /// `path` is either relative to `/__emulator/` (`"reset"`) or absolute (`"/__emulator/reset"`).
    /// `body` of `Value::Null` sends no body. Panics on a non-2xx status.
    pub fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_admin(method, path, body) {
            Ok((status, v)) if (200..300).contains(&status) => v,
            Ok((status, v)) => panic!("admin {method} {path} -> HTTP {status}: {v}"),
            Err(e) => panic!("admin {method} {path}: {e}"),
        }
    }

    /// Like [`admin`](Self::admin) but returns `(status, json)` whatever the status.
    pub fn try_admin(&self, method: &str, path: &str, body: Value) -> Result<(u16, Value), String> {
        let path = if path.starts_with("/__emulator") { path.to_string() } else { format!("/__emulator/{}", path.trim_start_matches('/')) };
        let body = if body.is_null() { None } else { Some(body) };
        http_json(&self.agent, method, &format!("{}{path}", self.url), None, body.as_ref())
    }

    /// Injects a fault (`POST /__emulator/faults`, e.g. `{"kind": "status", "status": 503,
    /// "path_prefix": "/services/data"}`) and returns it as the emulator recorded it.
    pub fn add_fault(&self, spec: Value) -> Value {
        self.admin("POST", "faults", spec)
    }

    /// Removes every injected fault: Salesforce answers normally again.
    pub fn clear_faults(&self) {
        self.admin("DELETE", "faults", Value::Null);
    }

    /// Moves the org's clock forward by `ms` milliseconds (sessions, retention and recycle
    /// bin age with it).
    pub fn advance_clock(&self, ms: i64) {
        self.admin("POST", "clock", serde_json::json!({"advance_ms": ms}));
    }

    /// Query calls served so far (SOQL query/queryAll pages, Bulk query jobs): what a pull costs.
    pub fn query_calls(&self) -> u64 {
        let c = self.admin("GET", "counters", Value::Null);
        c["by_endpoint"]
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.to_ascii_lowercase().contains("query")).map(|(_, v)| v.as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    }

    /// Calls the emulator has served so far (its `total` counter, logins included).
    pub fn api_calls(&self) -> u64 {
        self.admin("GET", "counters", Value::Null)["total"].as_u64().expect("counters without a total")
    }

    /// Write requests (POST/PATCH/DELETE, logins left out) the emulator has served so far:
    /// direct calls, and the write subrequests inside composite requests (sfsync sends the
    /// small pushes of several tables as Collections subrequests of one `POST /composite`).
    /// `POST /composite` itself is left out: it is counted by what it carries (a connection's
    /// polls are query subrequests, not writes).
    pub fn write_calls(&self) -> u64 {
        let c = self.admin("GET", "counters", Value::Null);
        let writes = |key: &str| {
            c[key]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.starts_with("POST") || k.starts_with("PATCH") || k.starts_with("DELETE"))
                        .filter(|(k, _)| !k.contains("oauth2") && k.as_str() != "POST /composite")
                        .map(|(_, v)| v.as_u64().unwrap_or(0))
                        .sum::<u64>()
                })
                .unwrap_or(0)
        };
        writes("by_endpoint") + writes("by_subrequest")
    }

    /// Calls served so far on one endpoint (`"POST /composite"`, `"PATCH
    /// /composite/sobjects/{object}/{field}"`), and subrequests on it inside composite requests.
    pub fn endpoint_calls(&self, key: &str) -> (u64, u64) {
        let c = self.admin("GET", "counters", Value::Null);
        (c["by_endpoint"][key].as_u64().unwrap_or(0), c["by_subrequest"][key].as_u64().unwrap_or(0))
    }

    /// How to log in to this emulator: its URL with the default connected app
    /// (client_credentials flow); [`Credentials::password_flow`] adds the integration user.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            login_url: self.url.clone(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: Some(DEFAULT_CLIENT_SECRET.to_string()),
            username: None,
            password: None,
        }
    }

    /// `SELECT sfsync.add_connection(name, <this emulator>, ...)` with [`credentials`](Self::credentials).
    pub fn connect_sql(&self, name: &str) -> String {
        self.credentials().add_connection_sql(name)
    }

    /// A REST client logged in with the default connected app (client_credentials flow).
    pub fn sf(&self) -> SfRest {
        let c = self.credentials();
        SfRest::login(&c.login_url, &c.client_id, c.client_secret.as_deref().unwrap_or_default())
            .unwrap_or_else(|e| panic!("login to emulator failed: {e}\n{}", tail(&self.log_contents(), 30)))
    }

    /// Everything the emulator printed so far (stdout and stderr).
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- sf-emulator log (last 40 lines, {}) ---\n{}", self.log_path.display(), tail(&self.log_contents(), 40));
        }
        if keep_artifacts() {
            eprintln!("SFSYNC_E2E_KEEP: emulator log kept in {}", self.log_path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A login to the emulator's org, and the `sfsync.add_connection` call that stores it.
/// Fields are public so a test can vary one (a wrong secret, a missing password).
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The emulator's base URL (login and instance URL at once).
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Set for the OAuth username-password flow.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Credentials {
    /// The username-password flow as the emulator's integration user.
    pub fn password_flow(self) -> Self {
        Credentials { username: Some(DEFAULT_USERNAME.to_string()), password: Some(DEFAULT_PASSWORD.to_string()), ..self }
    }

    /// `SELECT sfsync.add_connection('name', 'login_url', 'client_id', client_secret => ...,
    /// username => ..., password => ..., auth_flow => 'password')`, the optional arguments
    /// only when set (`auth_flow => 'password'` when there is a username).
    pub fn add_connection_sql(&self, name: &str) -> String {
        let mut sql = format!("SELECT sfsync.add_connection({}, {}, {}", literal(name), literal(&self.login_url), literal(&self.client_id));
        if let Some(s) = &self.client_secret {
            sql.push_str(&format!(", client_secret => {}", literal(s)));
        }
        if let Some(u) = &self.username {
            sql.push_str(&format!(", auth_flow => 'password', username => {}", literal(u)));
        }
        if let Some(p) = &self.password {
            sql.push_str(&format!(", password => {}", literal(p)));
        }
        sql.push(')');
        sql
    }
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn fail_start(child: &mut Child, log_path: &Path, msg: &str) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(100));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    panic!("sf-emulator did not start: {msg}\n--- emulator log ---\n{}", tail(&log, 40));
}

fn log_line(log: &Mutex<File>, stream: &str, line: &str) {
    if let Ok(mut f) = log.lock() {
        let _ = writeln!(f, "[{stream}] {line}");
    }
}

fn drain(r: impl Read, log: &Mutex<File>, stream: &str) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => log_line(log, stream, String::from_utf8_lossy(&buf).trim_end()),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

/// One HTTP exchange with a JSON (or empty) body; returns status and parsed JSON
/// (`Value::Null` for an empty body, `Value::String` for a non-JSON body).
fn http_json(agent: &ureq::Agent, method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Result<(u16, Value), String> {
    let mut req = ureq::http::Request::builder().method(method).uri(url).header("Accept", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => {
            let req = req.header("Content-Type", "application/json").body(b.to_string()).map_err(|e| e.to_string())?;
            agent.run(req)
        }
        None => agent.run(req.body(()).map_err(|e| e.to_string())?),
    };
    let mut resp = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    Ok((status, parse_body(&text)))
}

fn parse_body(text: &str) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    }
}

/// Newest version listed by `GET /services/data/` (e.g. `v62.0`).
fn newest_version(agent: &ureq::Agent, base: &str) -> Option<String> {
    let (status, v) = http_json(agent, "GET", &format!("{base}/services/data/"), None, None).ok()?;
    if status != 200 {
        return None;
    }
    let newest = v.as_array()?.iter().filter_map(|e| e["version"].as_str()).max_by(|a, b| {
        let key = |s: &str| s.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
        key(a).cmp(&key(b))
    })?;
    Some(format!("v{}", newest.trim_start_matches('v')))
}

/// Minimal Salesforce REST client for tests (what a person would do with curl).
/// Methods panic with the Salesforce error body on unexpected statuses; use
/// [`request`](Self::request) to look at error replies.
pub struct SfRest {
    agent: ureq::Agent,
    instance_url: String,
    token: String,
    version: String,
}

impl SfRest {
    /// OAuth 2.0 client_credentials login against `login_url`.
    pub fn login(login_url: &str, client_id: &str, client_secret: &str) -> Result<SfRest, String> {
        let agent = agent();
        let url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
        let mut resp = agent
            .post(&url)
            .send_form([("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret)])
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = parse_body(&resp.body_mut().read_to_string().map_err(|e| e.to_string())?);
        if status != 200 {
            return Err(format!("POST {url} -> HTTP {status}: {body}"));
        }
        let token = body["access_token"].as_str().ok_or_else(|| format!("no access_token in {body}"))?;
        let instance_url = body["instance_url"].as_str().unwrap_or(login_url).trim_end_matches('/');
        let version = match std::env::var("SF_API_VERSION") {
            Ok(v) if !v.is_empty() => format!("v{}", v.trim_start_matches('v')),
            _ => newest_version(&agent, instance_url).unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
        };
        Ok(SfRest { agent, instance_url: instance_url.to_string(), token: token.to_string(), version })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn instance_url(&self) -> &str {
        &self.instance_url
    }

    /// `/services/data/vXX.X`
    pub fn data_path(&self) -> String {
        format!("/services/data/{}", self.version)
    }

    /// Raw authenticated request. `path` is absolute (`/services/...`) or relative to
    /// `/services/data/vXX.X/`. Returns `(status, json)`.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.try_request(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`request`](Self::request), a transport failure (a dropped connection) as `Err`
    /// rather than a panic: for callers that live through injected faults.
    pub fn try_request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let path = if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", self.data_path()) };
        http_json(&self.agent, method, &format!("{}{path}", self.instance_url), Some(&self.token), body)
    }

    /// A raw request with a text body (a Bulk CSV upload); `Err` on a transport failure.
    pub fn try_put_text(&self, path: &str, content_type: &str, body: String) -> Result<u16, String> {
        let url = format!("{}{}/{path}", self.instance_url, self.data_path());
        let req = ureq::http::Request::builder()
            .method("PUT")
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", content_type)
            .body(body)
            .map_err(|e| e.to_string())?;
        self.agent.run(req).map(|r| r.status().as_u16()).map_err(|e| format!("PUT {url}: {e}"))
    }

    /// Runs a SOQL query, following `nextRecordsUrl`, and returns all records.
    pub fn query(&self, soql: &str) -> Vec<Value> {
        self.query_endpoint("query", soql)
    }

    /// Like [`query`](Self::query) but through `queryAll` (includes deleted/archived rows).
    pub fn query_all(&self, soql: &str) -> Vec<Value> {
        self.query_endpoint("queryAll", soql)
    }

    fn query_endpoint(&self, endpoint: &str, soql: &str) -> Vec<Value> {
        let url = format!("{}{}/{endpoint}", self.instance_url, self.data_path());
        let mut resp = self
            .agent
            .get(&url)
            .query("q", soql)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let mut page = parse_body(&resp.body_mut().read_to_string().unwrap_or_default());
        if status != 200 {
            panic!("SOQL {soql:?} -> HTTP {status}: {page}");
        }
        let mut records = Vec::new();
        loop {
            if let Some(rs) = page["records"].as_array() {
                records.extend(rs.iter().cloned());
            }
            let next = match page["nextRecordsUrl"].as_str() {
                Some(n) if page["done"] != Value::Bool(true) => n.to_string(),
                _ => break,
            };
            let (status, p) = self.request("GET", &next, None);
            if status != 200 {
                panic!("GET {next} -> HTTP {status}: {p}");
            }
            page = p;
        }
        records
    }

    /// Creates a record and returns its Id.
    pub fn create(&self, sobject: &str, fields: Value) -> String {
        let (status, body) = self.request("POST", &format!("sobjects/{sobject}"), Some(&fields));
        if status != 201 && status != 200 {
            panic!("create {sobject} {fields} -> HTTP {status}: {body}");
        }
        body["id"].as_str().unwrap_or_else(|| panic!("create {sobject}: no id in {body}")).to_string()
    }

    /// Updates fields of a record (PATCH).
    pub fn update(&self, sobject: &str, id: &str, fields: Value) {
        let (status, body) = self.request("PATCH", &format!("sobjects/{sobject}/{id}"), Some(&fields));
        if !(200..300).contains(&status) {
            panic!("update {sobject}/{id} {fields} -> HTTP {status}: {body}");
        }
    }

    /// Deletes a record.
    pub fn delete(&self, sobject: &str, id: &str) {
        let (status, body) = self.request("DELETE", &format!("sobjects/{sobject}/{id}"), None);
        if !(200..300).contains(&status) {
            panic!("delete {sobject}/{id} -> HTTP {status}: {body}");
        }
    }

    /// Waits until `soql` returns a record, and returns the first one.
    pub fn until_record(&self, soql: &str) -> Value {
        until(&format!("a record of `{soql}`"), WAIT, || self.query(soql).into_iter().next())
    }

    /// Waits until `soql` returns exactly `n` records, and returns them.
    pub fn until_records(&self, soql: &str, n: usize) -> Vec<Value> {
        until(&format!("{n} records of `{soql}`"), WAIT, || {
            let records = self.query(soql);
            if records.len() == n {
                Ok(records)
            } else {
                Err(format!("{} records", records.len()))
            }
        })
    }

    /// Waits until the record `id` is gone (`query` no longer returns it: deleted, or in the
    /// recycle bin).
    pub fn until_gone(&self, sobject: &str, id: &str) {
        let soql = format!("SELECT Id FROM {sobject} WHERE Id = '{id}'");
        until(&format!("{sobject} {id} gone from Salesforce"), WAIT, || self.query(&soql).is_empty());
    }

    /// Bulk API 2.0 `hardDelete` of these records, waited for: not in the recycle bin, so
    /// queryAll no longer returns them and only getDeleted tells.
    pub fn hard_delete(&self, object: &str, ids: &[&str]) {
        let (status, job) = self.request(
            "POST",
            "jobs/ingest",
            Some(&serde_json::json!({"object": object, "operation": "hardDelete", "contentType": "CSV", "lineEnding": "LF"})),
        );
        assert_eq!(status, 200, "{job}");
        let job_id = job["id"].as_str().unwrap().to_string();
        let url = format!("{}{}/jobs/ingest/{job_id}/batches", self.instance_url(), self.data_path());
        let req = ureq::http::Request::builder()
            .method("PUT")
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token()))
            .header("Content-Type", "text/csv")
            .body(format!("Id\n{}\n", ids.join("\n")))
            .unwrap();
        let resp = ureq::Agent::new_with_defaults().run(req).unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let (status, _) = self.request("PATCH", &format!("jobs/ingest/{job_id}"), Some(&serde_json::json!({"state": "UploadComplete"})));
        assert_eq!(status, 200);
        until(&format!("hardDelete job {job_id} complete"), WAIT, || {
            let (_, info) = self.request("GET", &format!("jobs/ingest/{job_id}"), None);
            match info["state"].as_str() {
                Some("JobComplete") => Ok(()),
                s => Err(format!("state {s:?}")),
            }
        });
    }

    /// Waits until field `field` of record `id` equals `expected`.
    pub fn until_field(&self, sobject: &str, id: &str, field: &str, expected: impl Into<Value>) {
        let expected = expected.into();
        until(&format!("{sobject} {id} with {field} = {expected}"), WAIT, || {
            let actual = self.get(sobject, id).map(|r| r[field].clone());
            match actual {
                Some(v) if v == expected => Ok(()),
                Some(v) => Err(format!("{field} = {v}")),
                None => Err("no such record".to_string()),
            }
        })
    }

    /// Fetches a record by Id (`None` on 404).
    pub fn get(&self, sobject: &str, id: &str) -> Option<Value> {
        let (status, body) = self.request("GET", &format!("sobjects/{sobject}/{id}"), None);
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!("get {sobject}/{id} -> HTTP {status}: {body}"),
        }
    }
}
