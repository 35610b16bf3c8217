//! Logged-in Salesforce clients, one per connection and process, their session shared by
//! the database's processes (`token_cache`); the one guarded way a
//! worker step calls a connection ([`call`]: backoff after request-level failures, Retry-After
//! and budget pauses); and the API-call accounting.

use super::Ctx;
use crate::alerts::{self, AlertKind};
use crate::error::{Result, SyncError};
use crate::plan::retry::Backoff;
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use salesforce::{AuthFlow, Client, ClientOptions, Credentials, HostPolicy, Secret};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Cached {
    stamp: String,
    client: Rc<Client>,
    reported_calls: u64,
}

#[derive(Default)]
struct Pause {
    failures: u32,
    until: Option<Instant>,
}

thread_local! {
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    /// Connections backing off after a failure that was theirs.
    static BACKOFF: RefCell<HashMap<String, Pause>> = RefCell::new(HashMap::new());
    /// Steps of mappings backing off after a failure of their own.
    static STEP_BACKOFF: RefCell<HashMap<Step, Pause>> = RefCell::new(HashMap::new());
    /// Connections this process raised a stopping alert for (login, budget) that has not
    /// ended yet: one alert per episode, not one per pass.
    static EPISODES: RefCell<HashSet<(String, AlertKind)>> = RefCell::new(HashSet::new());
    /// Connections a call of which failed naming an unknown field (INVALID_FIELD, "No such
    /// column"): sync::sf_schema checks their objects' describes at once.
    static UNKNOWN_FIELD: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// A connection as stored (or about to be): what logging in needs.
#[derive(Deserialize, Default)]
pub struct ConnectionSpec {
    pub login_url: String,
    pub client_id: String,
    pub auth_flow: String,
    pub username: Option<String>,
    pub client_secret: Option<String>,
    pub password: Option<String>,
    pub private_key: Option<String>,
    pub refresh_token: Option<String>,
    /// Secrets the server reads from files whenever it logs in (their paths).
    #[serde(default)]
    pub secret_files: Option<SecretFiles>,
    /// Changes whenever the stored connection does (its updated_at), or a secret file.
    #[serde(default)]
    pub stamp: String,
}

/// Paths of files holding a connection's secrets, read by the server at each login.
#[derive(Deserialize, Serialize, Default, Clone, Debug)]
pub struct SecretFiles {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl SecretFiles {
    pub fn is_empty(&self) -> bool {
        self.client_secret.is_none() && self.password.is_none() && self.private_key.is_none() && self.refresh_token.is_none()
    }

    /// `{"client_secret": "/path", ...}`, or null when there are none.
    pub fn to_json(&self) -> serde_json::Value {
        if self.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

impl ConnectionSpec {
    /// Reads the secrets kept in files, then checks that the flow has the secret it needs:
    /// when it has not (the connection came from a dump, which carries no secrets), the
    /// error says how to enter it again. Messages name paths, never contents.
    pub fn resolve_secrets(&mut self, name: &str) -> Result<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        if let Some(files) = self.secret_files.clone() {
            for (what, path, slot) in [
                ("client_secret", &files.client_secret, &mut self.client_secret),
                ("password", &files.password, &mut self.password),
                ("private_key", &files.private_key, &mut self.private_key),
                ("refresh_token", &files.refresh_token, &mut self.refresh_token),
            ] {
                let Some(path) = path else { continue };
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SyncError::Credentials(format!(
                        "connection \"{name}\": cannot read {what}_file \"{path}\": {e} (the server reads it as the operating system user running PostgreSQL)"
                    ))
                })?;
                let text = text.trim().to_string();
                if text.is_empty() {
                    return Err(SyncError::Credentials(format!("connection \"{name}\": {what}_file \"{path}\" is empty")));
                }
                text.hash(&mut hasher);
                *slot = Some(text);
            }
        }
        let has = |v: &Option<String>| v.as_ref().is_some_and(|s| !s.is_empty());
        let (what, present) = match self.auth_flow.as_str() {
            "client_credentials" => ("client_secret", has(&self.client_secret)),
            "password" => ("password", has(&self.password)),
            "jwt" => ("private_key", has(&self.private_key)),
            "refresh_token" => ("refresh_token", has(&self.refresh_token)),
            _ => ("secret", true),
        };
        if !present {
            return Err(SyncError::Credentials(format!(
                "connection \"{name}\" has no {what} stored in this database (a pg_dump does not carry secrets); enter it again with \
                 SELECT sfsync.add_connection('{name}', '{}', '{}', auth_flow => '{}', {what} => ...) or {what}_file => '/path' (see docs/secrets.md)",
                self.login_url, self.client_id, self.auth_flow
            )));
        }
        if self.secret_files.as_ref().is_some_and(|f| !f.is_empty()) {
            self.stamp = format!("{} {:x}", self.stamp, hasher.finish());
        }
        Ok(())
    }

    pub fn credentials(&self) -> Result<Credentials> {
        let flow: AuthFlow = self.auth_flow.parse().map_err(|e: salesforce::Error| SyncError::Invalid(format!("auth_flow: {e}")))?;
        let secret = |v: &Option<String>| v.clone().map(Secret::new);
        Ok(Credentials {
            login_url: self.login_url.trim_end_matches('/').to_string(),
            client_id: self.client_id.clone(),
            client_secret: secret(&self.client_secret),
            username: self.username.clone(),
            password: secret(&self.password),
            private_key: secret(&self.private_key),
            refresh_token: secret(&self.refresh_token),
            flow,
        })
    }
}

/// How the worker and the SQL functions call Salesforce; the hosts allowed are Salesforce's
/// and `sfsync.allowed_login_hosts`.
pub fn options() -> Result<ClientOptions> {
    let timeout = guc::ms(&guc::HTTP_TIMEOUT_MS);
    let hosts = HostPolicy::salesforce_and(
        &guc::allowed_login_hosts(),
        "a superuser can allow it with sfsync.allowed_login_hosts (postgresql.conf or ALTER SYSTEM, then reload)",
    )?;
    Ok(ClientOptions {
        connect_timeout: timeout.min(Duration::from_secs(5)),
        request_timeout: timeout,
        // Keep retries inside the call short: the outbox retries with its own backoff.
        max_retries: 2,
        max_retry_time: timeout,
        api_share: Some(guc::API_BUDGET.get()),
        // One budget per org for the whole cluster (org_budget), when preloaded.
        budget: crate::org_budget::handle(),
        hosts: Some(hosts),
        // Our saves' change events say so (changeOrigin), so the stream can tell our echoes.
        client_name: Some(crate::plan::echoes::CLIENT.to_string()),
        ..ClientOptions::default()
    })
}

/// The stored connection `name` (inside a transaction).
pub fn load(name: &str) -> Result<ConnectionSpec> {
    let args: Vec<DatumWithOid> = vec![name.into()];
    let v = spi_util::json(
        "SELECT jsonb_build_object('login_url', c.login_url, 'client_id', c.client_id, 'auth_flow', c.auth_flow,
                'username', c.username, 'client_secret', s.client_secret, 'password', s.password,
                'private_key', s.private_key, 'refresh_token', s.refresh_token, 'stamp', c.updated_at::text,
                'secret_files', c.secret_files)
         FROM sfsync.connections c LEFT JOIN sfsync.connection_secrets s ON s.connection = c.name
         WHERE c.name = $1",
        &args,
    )?
    .ok_or_else(|| SyncError::NotFound(format!("connection \"{name}\" does not exist (see sfsync.add_connection)")))?;
    let mut spec: ConnectionSpec = serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding connection \"{name}\": {e}")))?;
    spec.resolve_secrets(name)?;
    Ok(spec)
}

/// A logged-in client for connection `name`. Reads the stored credentials in a short
/// transaction, and logs in (HTTP) only when they changed or there is no client yet — and
/// not even then when another process of this database shared its session
/// (`token_cache`): a fresh backend makes no login and no versions request.
pub fn client(ctx: Ctx, name: &str) -> Result<Rc<Client>> {
    let stored = ctx.tx(|| load(name))?;
    if let Some(c) = CACHE.with(|c| c.borrow().get(name).filter(|c| c.stamp == stored.stamp).map(|c| c.client.clone())) {
        return Ok(c);
    }
    let creds = stored.credentials()?;
    let share = crate::token_cache::share(name, &stored.stamp);
    let client = Rc::new(Client::login_shared(creds, options()?, share)?);
    CACHE.with(|c| c.borrow_mut().insert(name.to_string(), Cached { stamp: stored.stamp, client: client.clone(), reported_calls: 0 }));
    Ok(client)
}

/// Forget a connection's client (after it was replaced or removed).
pub fn forget(name: &str) {
    CACHE.with(|c| c.borrow_mut().remove(name));
    crate::token_cache::forget(name);
}

/// Whether the worker may call this connection now (it backs off after request failures).
pub fn available(name: &str) -> bool {
    !BACKOFF.with(|b| waiting(&b.borrow(), &name.to_string()))
}

/// Records a failure of `who` (a connection, or one step of one mapping): the delay doubles up
/// to 30 s (`Backoff::CONNECTION`), or is what Salesforce (Retry-After) or the API budget
/// asked for.
fn failed<K: std::hash::Hash + Eq>(pauses: &mut HashMap<K, Pause>, who: K, e: &SyncError) -> Duration {
    let asked = match e {
        SyncError::Salesforce(e) => e.retry_after(),
        _ => None,
    };
    let p = pauses.entry(who).or_default();
    p.failures = p.failures.saturating_add(1);
    let delay = asked.unwrap_or_else(|| Backoff::CONNECTION.after(p.failures));
    p.until = Some(Instant::now() + delay);
    delay
}

fn waiting<K: std::hash::Hash + Eq>(pauses: &HashMap<K, Pause>, who: &K) -> bool {
    pauses.get(who).and_then(|p| p.until).is_some_and(|t| Instant::now() < t)
}

/// One kind of work of one mapping, for the backoff of failures that are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    pub mapping: i32,
    pub what: &'static str,
}

impl Step {
    pub fn new(mapping: i32, what: &'static str) -> Step {
        Step { mapping, what }
    }
}

/// What became of a step run through [`call`].
pub enum Call<T> {
    /// The connection, or this step of this mapping, is backing off after a failure: nothing
    /// was tried.
    Waiting,
    Done(T),
    /// The step failed; it is not tried again for `retry_in`. `connection_wide`: the failure
    /// was the connection's (network, login, limits), and every step on it waits.
    Failed {
        error: SyncError,
        retry_in: Duration,
        connection_wide: bool,
    },
}

/// Whether a failure says the connection itself is unusable for now — the network, the
/// login, Salesforce's availability or the org's limits — rather than something about one
/// mapping's request (an unknown field, a malformed query, a record Salesforce refuses, a
/// local database error), which must not hold up the other mappings on the connection.
pub fn connection_wide(e: &SyncError) -> bool {
    const CONNECTION_CODES: &[&str] =
        &["INVALID_SESSION_ID", "REQUEST_LIMIT_EXCEEDED", "API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED", "SERVER_UNAVAILABLE"];
    match e {
        SyncError::Salesforce(se) => match se {
            salesforce::Error::Api { status, .. } => {
                *status == 401 || *status == 429 || *status >= 500 || CONNECTION_CODES.contains(&se.code().as_str())
            }
            salesforce::Error::Transport(_)
            | salesforce::Error::Auth { .. }
            | salesforce::Error::Budget { .. }
            | salesforce::Error::Decode(_)
            | salesforce::Error::Config(_) => true,
        },
        SyncError::Unreachable(_) | SyncError::Credentials(_) => true,
        SyncError::Invalid(_)
        | SyncError::NotFound(_)
        | SyncError::Denied(_)
        | SyncError::Spi(_)
        | SyncError::External(_)
        | SyncError::BadValue(_)
        | SyncError::Outdated(_)
        | SyncError::Stale(_) => false,
    }
}

/// Runs one step of one mapping that talks to connection `name` (a pull, a push, a backfill
/// chunk, a delete check...) the way every such step must: not while the connection or this
/// step backs off (in the worker; a person's `run_once` always tries); a success clears both
/// backoffs; a failure backs off the connection when it is the connection's
/// ([`connection_wide`]), else only this step of this mapping, so one broken table never
/// delays the others. The delay is Retry-After or the API budget's pause
/// (REQUEST_LIMIT_EXCEEDED) when Salesforce gave one, else `Backoff::CONNECTION`. The budget's
/// pacing of single calls happens inside the client (`salesforce::budget`).
pub fn call<T>(ctx: Ctx, name: &str, step: Step, run: impl FnOnce() -> Result<T>) -> Call<T> {
    call_for(ctx, name, &[step], run)
}

/// Whether this step of a mapping is backing off (in the worker) after a failure of its own.
pub fn step_waiting(ctx: Ctx, step: Step) -> bool {
    ctx == Ctx::Worker && STEP_BACKOFF.with(|b| waiting(&b.borrow(), &step))
}

/// [`call`] for one request doing the steps of several mappings at once (a Composite
/// request carrying several tables' pushes): it waits while any of them backs off, a
/// success clears them all, and a failure that is not the connection's backs them all off.
pub fn call_for<T>(ctx: Ctx, name: &str, steps: &[Step], run: impl FnOnce() -> Result<T>) -> Call<T> {
    if ctx == Ctx::Worker && (!available(name) || steps.iter().any(|s| step_waiting(ctx, *s))) {
        return Call::Waiting;
    }
    outcome(ctx, name, steps, run())
}

/// [`call`] for the end of a step already begun (a Bulk job started, now waited for): it
/// runs even while the connection backs off, since the job is in Salesforce's hands.
pub fn call_to_finish<T>(ctx: Ctx, name: &str, step: Step, run: impl FnOnce() -> Result<T>) -> Call<T> {
    outcome(ctx, name, &[step], run())
}

/// A success clears the backoffs of the connection and the steps, a failure starts one.
fn outcome<T>(ctx: Ctx, name: &str, steps: &[Step], result: Result<T>) -> Call<T> {
    match result {
        Ok(v) => {
            BACKOFF.with(|b| b.borrow_mut().remove(name));
            STEP_BACKOFF.with(|b| {
                let mut b = b.borrow_mut();
                for s in steps {
                    b.remove(s);
                }
            });
            episode_ended(ctx, name);
            Call::Done(v)
        }
        Err(error) => {
            episode(ctx, name, &error);
            if unknown_field(&error) {
                UNKNOWN_FIELD.with(|u| u.borrow_mut().insert(name.to_string()));
            }
            let connection_wide = connection_wide(&error);
            let retry_in = if connection_wide {
                BACKOFF.with(|b| failed(&mut b.borrow_mut(), name.to_string(), &error))
            } else {
                STEP_BACKOFF.with(|b| {
                    let mut b = b.borrow_mut();
                    steps.iter().map(|s| failed(&mut b, *s, &error)).max().unwrap_or_default()
                })
            };
            Call::Failed { error, retry_in, connection_wide }
        }
    }
}

/// Salesforce does not know a field the call named: its schema changed.
fn unknown_field(e: &SyncError) -> bool {
    matches!(e, SyncError::Salesforce(se) if se.code() == "INVALID_FIELD") || e.to_string().contains("No such column")
}

/// The connections whose calls named an unknown field since the last time this was asked.
pub fn take_unknown_field() -> HashSet<String> {
    UNKNOWN_FIELD.with(|u| std::mem::take(&mut *u.borrow_mut()))
}

/// The mapping's steps may run again at once (its cause of failure was dealt with).
pub fn forgive(mapping: i32) {
    STEP_BACKOFF.with(|b| b.borrow_mut().retain(|s, _| s.mapping != mapping));
}

/// The alert a failure of a connection raises: its login fails, or its API budget is used up.
pub fn stopping(e: &SyncError) -> Option<AlertKind> {
    match e {
        SyncError::Salesforce(salesforce::Error::Auth { .. }) | SyncError::Credentials(_) => Some(AlertKind::AuthFailed),
        SyncError::Salesforce(salesforce::Error::Budget { .. }) => Some(AlertKind::BudgetPaused),
        SyncError::Salesforce(se @ salesforce::Error::Api { .. }) if se.code() == "REQUEST_LIMIT_EXCEEDED" => Some(AlertKind::BudgetPaused),
        _ => None,
    }
}

/// A failure that stops the connection starts an episode: the first one raises an alert (in
/// its own transaction in the worker); the same failure again is the same episode.
fn episode(ctx: Ctx, name: &str, error: &SyncError) {
    let Some(kind) = stopping(error) else { return };
    if !EPISODES.with(|e| e.borrow_mut().insert((name.to_string(), kind))) {
        return;
    }
    let message = match kind {
        AlertKind::AuthFailed => format!("connection \"{name}\" cannot log in to Salesforce: its tables are not synced until it can"),
        _ => format!("connection \"{name}\" has used its API budget: its calls wait until it refills"),
    };
    let detail = serde_json::json!({"error": error.to_string()});
    if let Err(e) = ctx.tx(|| alerts::raise(None, Some(name), kind, &message, detail)) {
        pgrx::warning!("sfsync: could not raise an alert for connection \"{name}\": {e}");
        EPISODES.with(|e| e.borrow_mut().remove(&(name.to_string(), kind)));
    }
}

/// A call of the connection succeeded: its login and budget episodes are over.
fn episode_ended(ctx: Ctx, name: &str) {
    let ended: Vec<AlertKind> = EPISODES.with(|e| {
        let mut e = e.borrow_mut();
        let kinds: Vec<AlertKind> = e.iter().filter(|(n, _)| n == name).map(|(_, k)| *k).collect();
        e.retain(|(n, _)| n != name);
        kinds
    });
    for kind in ended {
        if let Err(e) = ctx.tx(|| alerts::resolve(None, Some(name), kind)) {
            pgrx::warning!("sfsync: could not resolve an alert of connection \"{name}\": {e}");
        }
    }
}

/// Adds the calls made since the last flush to sfsync.connection_state, with the org's
/// usage from Sforce-Limit-Info. Must run inside a transaction.
pub fn flush_stats() -> Result<()> {
    let rows: Vec<serde_json::Value> = CACHE.with(|c| {
        c.borrow_mut()
            .iter_mut()
            .filter_map(|(name, cached)| {
                let stats = cached.client.stats();
                let delta = stats.calls.saturating_sub(cached.reported_calls);
                cached.reported_calls = stats.calls;
                (delta > 0).then(|| serde_json::json!({"name": name, "delta": delta, "used": stats.api_used, "max": stats.api_max}))
            })
            .collect()
    });
    if rows.is_empty() {
        return Ok(());
    }
    spi_util::exec(
        "INSERT INTO sfsync.connection_state AS cs (connection, api_calls, api_used, api_max, updated_at)
         SELECT r.name, r.delta, r.used, r.max, now()
         FROM jsonb_to_recordset($1) AS r(name text, delta bigint, used bigint, max bigint)
         WHERE EXISTS (SELECT 1 FROM sfsync.connections c WHERE c.name = r.name)
         ON CONFLICT (connection) DO UPDATE SET api_calls = cs.api_calls + EXCLUDED.api_calls,
             api_used = COALESCE(EXCLUDED.api_used, cs.api_used), api_max = COALESCE(EXCLUDED.api_max, cs.api_max),
             updated_at = now()",
        &[spi_util::jsonb(serde_json::Value::Array(rows))],
    )?;
    Ok(())
}

/// Stores (or clears, with None) a connection-level error for sfsync.status.
pub fn set_connection_error(name: &str, error: Option<&str>) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![name.into(), error.into()];
    spi_util::exec(
        "INSERT INTO sfsync.connection_state AS cs (connection, last_error, last_error_at)
         SELECT $1, $2, CASE WHEN $2 IS NULL THEN NULL ELSE now() END
         WHERE EXISTS (SELECT 1 FROM sfsync.connections c WHERE c.name = $1)
         ON CONFLICT (connection) DO UPDATE SET last_error = EXCLUDED.last_error,
             last_error_at = COALESCE(EXCLUDED.last_error_at, cs.last_error_at)
         WHERE cs.last_error IS DISTINCT FROM EXCLUDED.last_error",
        &args,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce::{ApiError, Error};

    fn api(status: u16, code: &str) -> SyncError {
        SyncError::Salesforce(Error::Api { status, errors: vec![ApiError::new(code, "m")] })
    }

    #[test]
    fn only_the_connections_own_troubles_hold_up_its_other_tables() {
        for e in [
            api(503, "SERVER_UNAVAILABLE"),
            api(500, "UNKNOWN_EXCEPTION"),
            api(401, "INVALID_SESSION_ID"),
            api(403, "REQUEST_LIMIT_EXCEEDED"),
            SyncError::Salesforce(Error::Transport("connection refused".into())),
            SyncError::Salesforce(Error::Auth { error: "invalid_grant".into(), description: "expired".into() }),
            SyncError::Salesforce(Error::Budget { wait: Duration::from_secs(5), reason: "share used".into() }),
        ] {
            assert!(connection_wide(&e), "{e}");
        }
        for e in [
            api(400, "INVALID_FIELD"),
            api(400, "MALFORMED_QUERY"),
            api(400, "JSON_PARSER_ERROR"),
            api(404, "NOT_FOUND"),
            SyncError::Spi("violates check constraint".into()),
            SyncError::Invalid("filter: …".into()),
        ] {
            assert!(!connection_wide(&e), "{e}");
        }
    }
}
