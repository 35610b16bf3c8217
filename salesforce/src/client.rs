//! The blocking REST client: login, retries, REST, sObject Collections, queries.
//! Bulk API 2.0 lives in the [`bulk`] submodule.

pub mod bulk;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{ids_from_identity_url, Credentials, Secret, TokenResponse};
use crate::budget::{Pacer, LIMIT_PAUSE};
use crate::error::{parse_error_body, ApiError, Error, RecordError};
use crate::http::{
    backoff_delay, check_base_url, encode_query, encode_segment, form_encode, normalize_version, parse_limit_info, parse_retry_after,
    version_key,
};
use crate::soql::is_valid_identifier;
use crate::types::{strip_attributes, DescribeGlobal, QueryPage, Record, SObjectDescribe, SaveResult, UpsertResult};

/// Maximum records per sObject Collections request.
pub const COLLECTIONS_CHUNK: usize = 200;

/// A `Retry-After` longer than this on REQUEST_LIMIT_EXCEEDED is not waited
/// for inside a call: the caller should pause the connection instead.
const SHORT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Largest response body read into memory (query pages, describes).
const MAX_BODY: u64 = 512 * 1024 * 1024;

/// Transport and retry settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// TCP + TLS connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Whole request including the response body (default 30 s).
    pub request_timeout: Duration,
    /// Fixed API version like `62.0`; `None` negotiates the newest from `GET /services/data/`.
    pub api_version: Option<String>,
    /// Allow `http://` to non-loopback hosts (default false; loopback is always allowed).
    pub allow_insecure_http: bool,
    /// Transient-failure retries per call (default 3).
    pub max_retries: u32,
    /// Upper bound on the time spent retrying one call (default 30 s).
    pub max_retry_time: Duration,
    /// Keep this client within this share (0..1] of the org's daily API allocation
    /// (see [`crate::budget`]): calls over budget fail fast with `Error::Budget`.
    /// `None`: no pacing.
    pub api_share: Option<f64>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            api_version: None,
            allow_insecure_http: false,
            max_retries: 3,
            max_retry_time: Duration::from_secs(30),
            api_share: None,
        }
    }
}

/// API usage seen by this client.
#[derive(Clone, Debug, Default)]
pub struct ApiStats {
    /// REST requests sent, including retries and requests that timed out
    /// (OAuth token requests and connections that never opened do not count).
    pub calls: u64,
    /// From the last `Sforce-Limit-Info: api-usage=N/M` header.
    pub api_used: Option<u64>,
    pub api_max: Option<u64>,
}

struct Session {
    token: Secret,
    instance_url: String,
    org_id: Option<String>,
    user_id: Option<String>,
}

/// A logged-in connection to one org. `Send + Sync`; the access token is
/// cached inside and refreshed transparently on `INVALID_SESSION_ID`.
pub struct Client {
    agent: ureq::Agent,
    creds: Credentials,
    login_url: String,
    opts: ClientOptions,
    api_version: String,
    session: Mutex<Session>,
    login_lock: Mutex<()>,
    describes: Mutex<HashMap<String, SObjectDescribe>>,
    stats: Mutex<ApiStats>,
    pacer: Mutex<Option<Pacer>>,
    query_batch_size: AtomicU32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("instance_url", &self.instance_url())
            .field("api_version", &self.api_version)
            .field("flow", &self.creds.flow)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// Where a request goes.
enum Target<'a> {
    /// Path under the (current) instance URL, starting with `/`.
    Instance(String),
    /// Absolute URL (token endpoint).
    Absolute(&'a str),
}

struct Request<'a> {
    method: Method,
    target: Target<'a>,
    body: Option<(&'static str, Vec<u8>)>,
    headers: Vec<(&'static str, String)>,
    /// Safe to resend after an ambiguous failure (timeout, reset, 5xx).
    idempotent: bool,
    /// Send the bearer token and refresh it on 401.
    authenticated: bool,
}

struct Response {
    status: u16,
    body: String,
}

/// A raw Streaming API response (see `Client::stream_post`).
pub(crate) struct StreamResponse {
    pub status: u16,
    pub body: String,
    pub set_cookies: Vec<String>,
}

/// A failed attempt before a response arrived.
struct TransportFailure {
    message: String,
    /// The request surely never reached the server (connect refused, DNS, connect timeout).
    not_sent: bool,
    /// Worth retrying at all (a TLS certificate error is not).
    retryable: bool,
}

fn transport_failure(e: ureq::Error, timeout: Duration) -> TransportFailure {
    use ureq::Timeout as T;
    let (message, not_sent, retryable) = match &e {
        ureq::Error::Timeout(T::Resolve) | ureq::Error::Timeout(T::Connect) => (format!("connect timed out ({e})"), true, true),
        ureq::Error::Timeout(_) => (format!("request timed out after {:?} ({e})", timeout), false, true),
        ureq::Error::HostNotFound => ("host not found".to_string(), true, true),
        ureq::Error::ConnectionFailed => ("connection failed".to_string(), true, true),
        ureq::Error::Io(io) => {
            use std::io::ErrorKind as K;
            let not_sent = matches!(io.kind(), K::ConnectionRefused | K::AddrNotAvailable | K::NotFound);
            (format!("{e}"), not_sent, true)
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => (format!("TLS: {e}"), true, false),
        ureq::Error::BodyExceedsLimit(_) => (format!("{e}"), false, false),
        _ => (format!("{e}"), false, true),
    };
    TransportFailure { message, not_sent, retryable }
}

impl Client {
    /// Logs in (OAuth token request) and negotiates the API version.
    pub fn login(creds: Credentials, opts: ClientOptions) -> Result<Client, Error> {
        creds.validate()?;
        let login_url = check_base_url(&creds.login_url, opts.allow_insecure_http, "login_url")?;
        let fixed_version = opts.api_version.as_deref().map(normalize_version).transpose()?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_global(Some(opts.request_timeout))
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("sfsync-salesforce/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent: ureq::Agent = config.into();
        let pacer = opts.api_share.map(Pacer::new);
        let mut client = Client {
            agent,
            creds,
            login_url,
            opts,
            api_version: fixed_version.clone().unwrap_or_default(),
            session: Mutex::new(Session { token: Secret::new(String::new()), instance_url: String::new(), org_id: None, user_id: None }),
            login_lock: Mutex::new(()),
            describes: Mutex::new(HashMap::new()),
            stats: Mutex::new(ApiStats::default()),
            pacer: Mutex::new(pacer),
            query_batch_size: AtomicU32::new(0),
        };
        let session = client.fetch_token()?;
        *lock(&client.session) = session;
        if fixed_version.is_none() {
            client.api_version = client.negotiate_version()?;
        }
        Ok(client)
    }

    pub fn instance_url(&self) -> String {
        lock(&self.session).instance_url.clone()
    }

    /// The API version in use, like `62.0`.
    pub fn api_version(&self) -> String {
        self.api_version.clone()
    }

    pub fn org_id(&self) -> Option<String> {
        lock(&self.session).org_id.clone()
    }

    pub fn user_id(&self) -> Option<String> {
        lock(&self.session).user_id.clone()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    pub fn stats(&self) -> ApiStats {
        lock(&self.stats).clone()
    }

    /// Page size hint for queries (`Sforce-Query-Options: batchSize=N`,
    /// Salesforce accepts 200..=2000). `None` uses the server default.
    pub fn set_query_batch_size(&self, size: Option<u32>) {
        self.query_batch_size.store(size.unwrap_or(0), Ordering::Relaxed);
    }

    /// Forces a new access token now (normally done automatically).
    pub fn refresh_token(&self) -> Result<(), Error> {
        let _login = lock(&self.login_lock);
        let s = self.fetch_token()?;
        *lock(&self.session) = s;
        Ok(())
    }

    // ---------------------------------------------------------------- auth

    fn fetch_token(&self) -> Result<Session, Error> {
        let form = self.creds.token_form(&self.login_url)?;
        let url = format!("{}/services/oauth2/token", self.login_url);
        let req = Request {
            method: Method::Post,
            target: Target::Absolute(&url),
            body: Some(("application/x-www-form-urlencoded", form_encode(&form).into_bytes())),
            headers: vec![],
            idempotent: true,
            authenticated: false,
        };
        let resp = self.execute(&req)?;
        let tok: TokenResponse = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("token response: {e}")))?;
        if tok.access_token.is_empty() {
            return Err(Error::Decode("token response has an empty access_token".into()));
        }
        let instance_url = check_base_url(&tok.instance_url, self.opts.allow_insecure_http, "instance_url")?;
        let (org_id, user_id) = tok.id.as_deref().map(ids_from_identity_url).unwrap_or((None, None));
        Ok(Session { token: Secret::new(tok.access_token), instance_url, org_id, user_id })
    }

    /// Re-login after a 401, unless another thread already replaced `stale`.
    fn relogin(&self, stale: &Secret) -> Result<(), Error> {
        // Serialise re-logins; the session lock itself is never held across HTTP.
        let _login = lock(&self.login_lock);
        if lock(&self.session).token != *stale {
            return Ok(());
        }
        let fresh = self.fetch_token()?;
        *lock(&self.session) = fresh;
        Ok(())
    }

    fn negotiate_version(&self) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct V {
            version: String,
        }
        let resp = self.execute(&Request {
            method: Method::Get,
            target: Target::Instance("/services/data/".into()),
            body: None,
            headers: vec![],
            idempotent: true,
            authenticated: true,
        })?;
        let versions: Vec<V> = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("GET /services/data/: {e}")))?;
        versions
            .into_iter()
            .filter_map(|v| version_key(&v.version).map(|k| (k, v.version)))
            .max_by_key(|(k, _)| *k)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::Decode("GET /services/data/ listed no API versions".into()))
    }

    // ------------------------------------------------------------ streaming

    /// One POST to a Streaming API path (e.g. `/cometd/62.0`) with the session
    /// token and the given `Cookie` header, bounded by `timeout`. Re-logs in
    /// once on 401. No retries (the CometD state machine decides), and not
    /// counted in [`ApiStats::calls`]: Salesforce meters streaming separately.
    pub(crate) fn stream_post(&self, path: &str, body: &[u8], cookie: &str, timeout: Duration) -> Result<StreamResponse, Error> {
        let mut relogged = false;
        loop {
            let (token, url) = {
                let s = lock(&self.session);
                (s.token.clone(), format!("{}{}", s.instance_url, path))
            };
            let mut b = self
                .agent
                .post(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header("Accept", "application/json")
                .header("Content-Type", "application/json")
                .header("Authorization", format!("Bearer {}", token.expose()));
            if !cookie.is_empty() {
                b = b.header("Cookie", cookie);
            }
            let mut resp = b.send(body).map_err(|e| Error::Transport(transport_failure(e, timeout).message))?;
            let status = resp.status().as_u16();
            let set_cookies = resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
            let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| {
                Error::Transport(format!("reading streaming response (HTTP {status}): {}", transport_failure(e, timeout).message))
            })?;
            if status == 401 && !relogged {
                relogged = true;
                self.relogin(&token)?;
                continue;
            }
            return Ok(StreamResponse { status, body, set_cookies });
        }
    }

    // ------------------------------------------------------------ transport

    fn send_once(&self, req: &Request<'_>, url: &str, token: Option<&Secret>) -> Result<(Response, Option<Duration>), TransportFailure> {
        let mut headers: Vec<(&str, String)> = vec![("Accept", "application/json".into())];
        if let Some(t) = token {
            headers.push(("Authorization", format!("Bearer {}", t.expose())));
        }
        headers.extend(req.headers.iter().map(|(k, v)| (*k, v.clone())));
        let result = match (req.method, &req.body) {
            (Method::Get, _) => {
                let mut b = self.agent.get(url);
                for (k, v) in &headers {
                    b = b.header(*k, v);
                }
                b.call()
            }
            (Method::Delete, _) => {
                let mut b = self.agent.delete(url);
                for (k, v) in &headers {
                    b = b.header(*k, v);
                }
                b.call()
            }
            (m, body) => {
                let mut b = match m {
                    Method::Post => self.agent.post(url),
                    Method::Put => self.agent.put(url),
                    _ => self.agent.patch(url),
                };
                for (k, v) in &headers {
                    b = b.header(*k, v);
                }
                match body {
                    Some((ct, bytes)) => b.header("Content-Type", *ct).send(&bytes[..]),
                    None => b.send_empty(),
                }
            }
        };
        let mut resp = result.map_err(|e| {
            let f = transport_failure(e, self.opts.request_timeout);
            if !f.not_sent && req.authenticated {
                // it may well have reached Salesforce and counted there
                lock(&self.stats).calls += 1;
            }
            f
        })?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let limit = header("Sforce-Limit-Info");
        let retry_after = header("Retry-After").as_deref().and_then(parse_retry_after);
        {
            let mut st = lock(&self.stats);
            if req.authenticated {
                st.calls += 1;
            }
            if let Some((used, max)) = limit.as_deref().and_then(parse_limit_info) {
                st.api_used = Some(used);
                st.api_max = Some(max);
            }
        }
        let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| {
            let mut f = transport_failure(e, self.opts.request_timeout);
            f.not_sent = false;
            f.message = format!("reading response body (HTTP {status}): {}", f.message);
            f
        })?;
        Ok((Response { status, body }, retry_after))
    }

    /// Sends a request within the API budget; REQUEST_LIMIT_EXCEEDED pauses the budget.
    fn execute(&self, req: &Request<'_>) -> Result<Response, Error> {
        if req.authenticated {
            let st = self.stats();
            if let Some(p) = lock(&self.pacer).as_mut() {
                p.check(Instant::now(), st.api_used, st.api_max).map_err(|(wait, reason)| Error::Budget { wait, reason })?;
            }
        }
        let result = self.execute_with_retries(req);
        if let Err(e) = &result {
            if e.code() == "REQUEST_LIMIT_EXCEEDED" {
                if let Some(p) = lock(&self.pacer).as_mut() {
                    p.pause(Instant::now(), e.retry_after().unwrap_or(LIMIT_PAUSE));
                }
            }
        }
        result
    }

    /// Sends a request with token refresh and bounded, jittered retries.
    /// Returns responses with status < 300; everything else as `Error`.
    fn execute_with_retries(&self, req: &Request<'_>) -> Result<Response, Error> {
        let started = Instant::now();
        let mut retries = 0u32;
        let mut relogged = false;
        loop {
            let (token, url) = {
                let s = lock(&self.session);
                let url = match &req.target {
                    Target::Instance(path) => format!("{}{}", s.instance_url, path),
                    Target::Absolute(u) => u.to_string(),
                };
                (req.authenticated.then(|| s.token.clone()), url)
            };
            // (error, retryable, safe even for non-idempotent requests, retry-after)
            let (err, retryable, safe, retry_after) = match self.send_once(req, &url, token.as_ref()) {
                Ok((resp, _)) if resp.status < 300 => return Ok(resp),
                Ok((resp, retry_after)) => {
                    let err = parse_error_body(resp.status, &resp.body, retry_after);
                    if resp.status == 401 && req.authenticated && !relogged {
                        relogged = true;
                        if let Some(t) = &token {
                            self.relogin(t)?;
                        }
                        continue;
                    }
                    let code = err.code();
                    let (retryable, safe) = match (resp.status, code.as_str()) {
                        (_, "REQUEST_LIMIT_EXCEEDED") => (retry_after.is_some_and(|d| d <= SHORT_RETRY_AFTER), true),
                        (503, _) | (429, _) => (true, true),
                        (_, "UNABLE_TO_LOCK_ROW") | (_, "SERVER_UNAVAILABLE") => (true, true),
                        (500 | 502 | 504, _) => (true, false),
                        _ => (false, false),
                    };
                    (err, retryable, safe, retry_after)
                }
                Err(f) => (Error::Transport(f.message), f.retryable, f.not_sent, None),
            };
            if !retryable || !(req.idempotent || safe) || retries >= self.opts.max_retries {
                return Err(err);
            }
            let delay = retry_after.unwrap_or_else(|| backoff_delay(retries, fastrand::f64()));
            if started.elapsed() + delay > self.opts.max_retry_time {
                return Err(err);
            }
            std::thread::sleep(delay);
            retries += 1;
        }
    }

    fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}{}", self.api_version, rest)
    }

    fn rest(&self, method: Method, path: String, body: Option<&Value>, idempotent: bool) -> Result<Response, Error> {
        let body = body
            .map(|b| serde_json::to_vec(b).map(|v| ("application/json", v)))
            .transpose()
            .map_err(|e| Error::Decode(format!("cannot serialize request body: {e}")))?;
        self.execute(&Request { method, target: Target::Instance(path), body, headers: vec![], idempotent, authenticated: true })
    }

    /// Sends an arbitrary authenticated REST request to a path under the
    /// instance URL (e.g. `/services/data/v62.0/limits`) and returns the
    /// status and the JSON body (`Value::Null` when empty). Retries only
    /// when `idempotent`.
    pub fn request_json(&self, method: &str, path: &str, body: Option<&Value>, idempotent: bool) -> Result<(u16, Value), Error> {
        let m = match method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => return Err(Error::Config(format!("unsupported HTTP method {other}"))),
        };
        if !path.starts_with('/') || path.contains("://") {
            return Err(Error::Config(format!("path '{path}' must start with '/'")));
        }
        let resp = self.rest(m, path.to_string(), body, idempotent)?;
        Ok((resp.status, parse_json_or_null(&resp.body, m.as_str(), path)?))
    }

    // ---------------------------------------------------------------- REST

    /// `GET /sobjects/` (describeGlobal): every object of the org with its flags and key
    /// prefix. Not cached: it is cheap and objects come and go.
    pub fn describe_global(&self) -> Result<DescribeGlobal, Error> {
        let resp = self.rest(Method::Get, self.data_path("/sobjects/"), None, true)?;
        serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("describeGlobal: {e}")))
    }

    /// `GET /sobjects/{sobject}/describe`, cached per object until
    /// [`Client::invalidate_describe`].
    pub fn describe(&self, sobject: &str) -> Result<SObjectDescribe, Error> {
        check_object(sobject)?;
        let key = sobject.to_ascii_lowercase();
        if let Some(d) = lock(&self.describes).get(&key) {
            return Ok(d.clone());
        }
        let resp = self.rest(Method::Get, self.data_path(&format!("/sobjects/{}/describe", encode_segment(sobject))), None, true)?;
        let d: SObjectDescribe = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("describe {sobject}: {e}")))?;
        lock(&self.describes).insert(key, d.clone());
        Ok(d)
    }

    /// Drops one object's cached describe, or all of them with `None`.
    pub fn invalidate_describe(&self, sobject: Option<&str>) {
        let mut cache = lock(&self.describes);
        match sobject {
            Some(s) => {
                cache.remove(&s.to_ascii_lowercase());
            }
            None => cache.clear(),
        }
    }

    fn query_request(&self, path: String) -> Result<QueryPage, Error> {
        let mut headers = vec![];
        let batch = self.query_batch_size.load(Ordering::Relaxed);
        if batch > 0 {
            headers.push(("Sforce-Query-Options", format!("batchSize={batch}")));
        }
        let resp = self.execute(&Request {
            method: Method::Get,
            target: Target::Instance(path),
            body: None,
            headers,
            idempotent: true,
            authenticated: true,
        })?;
        QueryPage::parse(&resp.body)
    }

    /// First page of a SOQL query.
    pub fn query(&self, soql: &str) -> Result<QueryPage, Error> {
        self.query_request(self.data_path(&format!("/query?q={}", encode_query(soql))))
    }

    /// First page of a SOQL query that includes deleted and archived rows (`queryAll`).
    pub fn query_all(&self, soql: &str) -> Result<QueryPage, Error> {
        self.query_request(self.data_path(&format!("/queryAll?q={}", encode_query(soql))))
    }

    /// Next page, from [`QueryPage::next_records_url`].
    pub fn query_more(&self, next_records_url: &str) -> Result<QueryPage, Error> {
        let path = self.instance_path(next_records_url)?;
        self.query_request(path)
    }

    fn instance_path(&self, url: &str) -> Result<String, Error> {
        let url = url.trim();
        if url.starts_with('/') && !url.starts_with("//") {
            return Ok(url.to_string());
        }
        let instance = self.instance_url();
        match url.strip_prefix(&instance) {
            Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
            _ => Err(Error::Config(format!("'{url}' is not a path on the instance {instance}"))),
        }
    }

    /// Iterates over every record of a query, one page in memory at a time,
    /// following `nextRecordsUrl`. `include_deleted` uses `queryAll`.
    pub fn query_iter<'a>(&'a self, soql: &str, include_deleted: bool) -> QueryIter<'a> {
        QueryIter {
            client: self,
            soql: Some(soql.to_string()),
            include_deleted,
            records: Vec::new().into_iter(),
            next: None,
            total_size: None,
            finished: false,
        }
    }

    /// `POST /sobjects/{sobject}/`; returns the new Id. Not retried after an
    /// ambiguous failure (it could create a duplicate).
    pub fn create(&self, sobject: &str, fields: &Record) -> Result<String, Error> {
        check_object(sobject)?;
        let body = Value::Object(clean_fields(fields, &[]));
        let resp = self.rest(Method::Post, self.data_path(&format!("/sobjects/{}/", encode_segment(sobject))), Some(&body), false)?;
        let r: SaveResult = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("create {sobject}: {e}")))?;
        match r.id {
            Some(id) if r.success || r.errors.is_empty() => Ok(id),
            _ => Err(Error::Api {
                status: resp.status,
                errors: r
                    .errors
                    .into_iter()
                    .map(|e| ApiError { error_code: e.status_code, message: e.message, fields: e.fields, retry_after: None })
                    .collect(),
            }),
        }
    }

    /// `GET /sobjects/{sobject}/{id}[?fields=...]`.
    pub fn get(&self, sobject: &str, id: &str, fields: Option<&[&str]>) -> Result<Record, Error> {
        check_object(sobject)?;
        let mut path = self.data_path(&format!("/sobjects/{}/{}", encode_segment(sobject), encode_segment(id)));
        if let Some(fields) = fields {
            if let Some(bad) = fields.iter().find(|f| !is_valid_identifier(f)) {
                return Err(Error::Config(format!("'{bad}' is not a valid field name")));
            }
            if !fields.is_empty() {
                path.push_str(&format!("?fields={}", encode_query(&fields.join(","))));
            }
        }
        let resp = self.rest(Method::Get, path, None, true)?;
        let mut rec: Record = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("get {sobject}: {e}")))?;
        strip_attributes(&mut rec);
        Ok(rec)
    }

    /// `PATCH /sobjects/{sobject}/{id}` (an `Id` key in `fields` is ignored).
    pub fn update(&self, sobject: &str, id: &str, fields: &Record) -> Result<(), Error> {
        check_object(sobject)?;
        let body = Value::Object(clean_fields(fields, &["Id"]));
        self.rest(
            Method::Patch,
            self.data_path(&format!("/sobjects/{}/{}", encode_segment(sobject), encode_segment(id))),
            Some(&body),
            true,
        )?;
        Ok(())
    }

    /// `DELETE /sobjects/{sobject}/{id}`. A retried delete whose first
    /// attempt went through fails with `ENTITY_IS_DELETED`.
    pub fn delete(&self, sobject: &str, id: &str) -> Result<(), Error> {
        check_object(sobject)?;
        self.rest(Method::Delete, self.data_path(&format!("/sobjects/{}/{}", encode_segment(sobject), encode_segment(id))), None, true)?;
        Ok(())
    }

    /// `PATCH /sobjects/{sobject}/{ext_field}/{ext_value}`: 201 created, 200/204
    /// updated; several matches (HTTP 300) is `Error::Api` with code
    /// `MULTIPLE_CHOICES`. The external id field and `Id` are removed from
    /// the body (the value travels in the URL).
    pub fn upsert(&self, sobject: &str, ext_field: &str, ext_value: &str, fields: &Record) -> Result<UpsertResult, Error> {
        check_object(sobject)?;
        check_field(ext_field)?;
        if ext_value.is_empty() {
            return Err(Error::Config(format!("empty value for external id field {ext_field}")));
        }
        let path =
            self.data_path(&format!("/sobjects/{}/{}/{}", encode_segment(sobject), encode_segment(ext_field), encode_segment(ext_value)));
        let body = Value::Object(clean_fields(fields, &["Id", ext_field]));
        let resp = match self.rest(Method::Patch, path.clone(), Some(&body), true) {
            Ok(r) => r,
            Err(Error::Api { status: 300, errors }) => {
                let mut e = ApiError::new("MULTIPLE_CHOICES", format!("more than one {sobject} has {ext_field} = {ext_value:?}"));
                e.fields = vec![ext_field.to_string()];
                e.retry_after = errors.first().and_then(|x| x.retry_after);
                return Err(Error::Api { status: 300, errors: vec![e] });
            }
            Err(e) => return Err(e),
        };
        let created_by_status = resp.status == 201;
        if resp.body.trim().is_empty() {
            // Older API versions answer an update with 204 and no body.
            let rec = self.get_raw(&format!("{path}?fields=Id"))?;
            let id = rec.get("Id").and_then(Value::as_str).ok_or_else(|| Error::Decode(format!("upsert {sobject}: no Id after 204")))?;
            return Ok(UpsertResult { id: id.to_string(), created: created_by_status });
        }
        let r: SaveResult = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("upsert {sobject}: {e}")))?;
        let id = r.id.ok_or_else(|| Error::Decode(format!("upsert {sobject}: response has no id")))?;
        Ok(UpsertResult { id, created: r.created.unwrap_or(created_by_status) })
    }

    fn get_raw(&self, path: &str) -> Result<Record, Error> {
        let resp = self.rest(Method::Get, path.to_string(), None, true)?;
        let mut rec: Record = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("GET {path}: {e}")))?;
        strip_attributes(&mut rec);
        Ok(rec)
    }

    // --------------------------------------------------------- collections

    fn collections_call(
        &self,
        method: Method,
        path: String,
        body: Option<&Value>,
        expected: usize,
        idempotent: bool,
    ) -> Result<Vec<SaveResult>, Error> {
        let resp = self.rest(method, path, body, idempotent)?;
        let results: Vec<SaveResult> = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("collections result: {e}")))?;
        if results.len() != expected {
            return Err(Error::Decode(format!("collections returned {} results for {expected} records", results.len())));
        }
        Ok(results)
    }

    /// `POST /composite/sobjects` (allOrNone=false) in chunks of 200; one
    /// result per input record, in input order. Not retried after an
    /// ambiguous failure. See [`run_chunks`] for chunk-level failures.
    pub fn collections_create(&self, sobject: &str, records: &[Record]) -> Result<Vec<SaveResult>, Error> {
        check_object(sobject)?;
        let path = self.data_path("/composite/sobjects");
        run_chunks(records, COLLECTIONS_CHUNK, |chunk| {
            let recs: Vec<Value> = chunk.iter().map(|r| Value::Object(typed(sobject, r, &["Id"]))).collect();
            let body = json!({ "allOrNone": false, "records": recs });
            self.collections_call(Method::Post, path.clone(), Some(&body), chunk.len(), false)
        })
    }

    /// `PATCH /composite/sobjects` with `(Id, fields)` pairs.
    pub fn collections_update(&self, sobject: &str, records: &[(String, Record)]) -> Result<Vec<SaveResult>, Error> {
        check_object(sobject)?;
        let path = self.data_path("/composite/sobjects");
        run_chunks(records, COLLECTIONS_CHUNK, |chunk| {
            let recs: Vec<Value> = chunk
                .iter()
                .map(|(id, r)| {
                    let mut m = typed(sobject, r, &["Id"]);
                    m.insert("id".into(), Value::String(id.clone()));
                    Value::Object(m)
                })
                .collect();
            let body = json!({ "allOrNone": false, "records": recs });
            self.collections_call(Method::Patch, path.clone(), Some(&body), chunk.len(), true)
        })
    }

    /// `PATCH /composite/sobjects/{sobject}/{ext_field}`; each record carries
    /// its `ext_field` value. `SaveResult::created` tells insert from update.
    pub fn collections_upsert(&self, sobject: &str, ext_field: &str, records: &[Record]) -> Result<Vec<SaveResult>, Error> {
        check_object(sobject)?;
        check_field(ext_field)?;
        let path = self.data_path(&format!("/composite/sobjects/{}/{}", encode_segment(sobject), encode_segment(ext_field)));
        run_chunks(records, COLLECTIONS_CHUNK, |chunk| {
            let recs: Vec<Value> = chunk.iter().map(|r| Value::Object(typed(sobject, r, &["Id"]))).collect();
            let body = json!({ "allOrNone": false, "records": recs });
            self.collections_call(Method::Patch, path.clone(), Some(&body), chunk.len(), true)
        })
    }

    /// `DELETE /composite/sobjects?ids=...&allOrNone=false`.
    pub fn collections_delete(&self, ids: &[String]) -> Result<Vec<SaveResult>, Error> {
        run_chunks(ids, COLLECTIONS_CHUNK, |chunk| {
            let list: Vec<String> = chunk.iter().map(|i| encode_query(i)).collect();
            let path = self.data_path(&format!("/composite/sobjects?ids={}&allOrNone=false", list.join(",")));
            self.collections_call(Method::Delete, path, None, chunk.len(), true)
        })
    }
}

fn parse_json_or_null(body: &str, method: &str, path: &str) -> Result<Value, Error> {
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(body).map_err(|e| Error::Decode(format!("{method} {path}: {e}")))
}

fn check_object(sobject: &str) -> Result<(), Error> {
    if is_valid_identifier(sobject) && !sobject.contains('.') {
        Ok(())
    } else {
        Err(Error::Config(format!("'{sobject}' is not a valid sObject name")))
    }
}

fn check_field(field: &str) -> Result<(), Error> {
    if is_valid_identifier(field) && !field.contains('.') {
        Ok(())
    } else {
        Err(Error::Config(format!("'{field}' is not a valid field name")))
    }
}

/// Copies `fields` without `attributes` and without the `drop` keys (case-insensitive).
fn clean_fields(fields: &Record, drop: &[&str]) -> Record {
    fields
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes" && !drop.iter().any(|d| d.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A collections record: `{"attributes": {"type": sobject}, ...fields}`.
fn typed(sobject: &str, fields: &Record, drop: &[&str]) -> Record {
    let mut m = Record::new();
    m.insert("attributes".into(), json!({ "type": sobject }));
    m.extend(clean_fields(fields, drop));
    m
}

/// Runs `call` over chunks of at most `size` items and concatenates the
/// results in input order. If the first chunk fails as a whole, that error
/// is returned; if a later chunk fails, nothing more is sent and every
/// record of the failed and remaining chunks gets a failed [`SaveResult`]
/// carrying the error's code (so the successes already made are not lost).
pub(crate) fn run_chunks<T>(
    items: &[T],
    size: usize,
    mut call: impl FnMut(&[T]) -> Result<Vec<SaveResult>, Error>,
) -> Result<Vec<SaveResult>, Error> {
    let mut out = Vec::with_capacity(items.len());
    for (i, chunk) in items.chunks(size.max(1)).enumerate() {
        match call(chunk) {
            Ok(results) => out.extend(results),
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                let err = RecordError::from_error(&e);
                while out.len() < items.len() {
                    out.push(SaveResult::failed(err.clone()));
                }
                break;
            }
        }
    }
    Ok(out)
}

/// Record iterator returned by [`Client::query_iter`].
pub struct QueryIter<'a> {
    client: &'a Client,
    soql: Option<String>,
    include_deleted: bool,
    records: std::vec::IntoIter<Record>,
    next: Option<String>,
    total_size: Option<u64>,
    finished: bool,
}

impl QueryIter<'_> {
    /// `totalSize` of the query, known once the first page is fetched.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }
}

impl Iterator for QueryIter<'_> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.records.next() {
                return Some(Ok(r));
            }
            if self.finished {
                return None;
            }
            let page = if let Some(q) = self.soql.take() {
                if self.include_deleted {
                    self.client.query_all(&q)
                } else {
                    self.client.query(&q)
                }
            } else if let Some(url) = self.next.take() {
                self.client.query_more(&url)
            } else {
                self.finished = true;
                return None;
            };
            match page {
                Ok(p) => {
                    self.total_size.get_or_insert(p.total_size);
                    self.next = if p.done { None } else { p.next_records_url };
                    if self.next.is_none() {
                        self.finished = true;
                    }
                    self.records = p.records.into_iter();
                }
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UpsertResult;

    fn ok(n: usize) -> Vec<SaveResult> {
        (0..n).map(|i| SaveResult { id: Some(format!("id{i}")), success: true, ..Default::default() }).collect()
    }

    #[test]
    fn chunks_preserve_order_and_size() {
        let items: Vec<usize> = (0..450).collect();
        let mut sizes = vec![];
        let res = run_chunks(&items, COLLECTIONS_CHUNK, |c| {
            sizes.push(c.len());
            Ok(c.iter().map(|i| SaveResult { id: Some(i.to_string()), success: true, ..Default::default() }).collect())
        })
        .unwrap();
        assert_eq!(sizes, vec![200, 200, 50]);
        assert_eq!(res.len(), 450);
        for (i, r) in res.iter().enumerate() {
            assert_eq!(r.id.as_deref(), Some(i.to_string().as_str()));
        }
        let empty: Vec<usize> = vec![];
        assert!(run_chunks(&empty, 200, |_| panic!("no call for empty input")).unwrap().is_empty());
    }

    #[test]
    fn first_chunk_error_is_returned_later_errors_become_results() {
        let items: Vec<usize> = (0..450).collect();
        let e = run_chunks(&items, 200, |_| Err(Error::Transport("refused".into()))).unwrap_err();
        assert!(matches!(e, Error::Transport(_)));

        let mut n = 0;
        let res = run_chunks(&items, 200, |c| {
            n += 1;
            if n == 2 {
                Err(Error::api(503, "SERVER_UNAVAILABLE", "down"))
            } else {
                Ok(ok(c.len()))
            }
        })
        .unwrap();
        assert_eq!(n, 2, "stops after the failed chunk");
        assert_eq!(res.len(), 450);
        assert!(res[..200].iter().all(|r| r.success));
        assert!(res[200..].iter().all(|r| !r.success && r.errors[0].status_code == "SERVER_UNAVAILABLE"));
        assert!(res[449].is_transient_failure());
    }

    #[test]
    fn field_cleaning() {
        let mut r = Record::new();
        r.insert("attributes".into(), json!({"type": "X"}));
        r.insert("ID".into(), json!("001"));
        r.insert("Postgres_Id__c".into(), json!("7"));
        r.insert("Name".into(), json!("n"));
        let c = clean_fields(&r, &["Id", "postgres_id__c"]);
        assert_eq!(c.keys().collect::<Vec<_>>(), vec!["Name"]);
        let t = typed("Account", &r, &["Id"]);
        assert_eq!(t["attributes"], json!({"type": "Account"}));
        assert!(t.contains_key("Postgres_Id__c") && !t.contains_key("ID"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_object("Account").is_ok());
        assert!(check_object("Account/../x").is_err());
        assert!(check_object("Account.Name").is_err());
        assert!(check_field("Postgres_Id__c").is_ok());
        assert!(check_field("a b").is_err());
    }

    #[test]
    fn client_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Client>();
    }

    #[test]
    fn options_defaults() {
        let o = ClientOptions::default();
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert_eq!(o.request_timeout, Duration::from_secs(30));
        assert_eq!(o.max_retries, 3);
        assert_eq!(o.max_retry_time, Duration::from_secs(30));
        assert!(!o.allow_insecure_http);
        assert!(o.api_version.is_none());
    }

    #[test]
    fn login_rejects_insecure_and_incomplete_config() {
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, "http://example.com", "cid");
        c.client_secret = Some("sekrit-value".into());
        let e = Client::login(c.clone(), ClientOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(!e.to_string().contains("sekrit"));
        c.client_secret = None;
        assert!(matches!(Client::login(c, ClientOptions::default()).unwrap_err(), Error::Config(_)));
    }

    /// A scripted HTTP/1.1 server on 127.0.0.1 for retry/auth tests.
    mod mock {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::TcpListener;
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        #[derive(Clone, Debug)]
        pub struct Seen {
            pub method: String,
            pub path: String,
            pub auth: Option<String>,
            pub body: String,
        }

        pub enum Reply {
            Json(u16, &'static str, String),
            Hang(Duration),
        }

        pub struct Server {
            pub url: String,
            pub seen: Arc<Mutex<Vec<Seen>>>,
        }

        /// `handler(request, index of non-token requests so far)`.
        pub fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
            let seen2 = seen.clone();
            let base = url.clone();
            std::thread::spawn(move || {
                let mut api_index = 0usize;
                let mut token_n = 0usize;
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() || line.is_empty() {
                        continue;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_string();
                    let path = parts.next().unwrap_or_default().to_string();
                    let mut len = 0usize;
                    let mut auth = None;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        }
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                    let req = Seen { method, path, auth, body: String::from_utf8_lossy(&body).into_owned() };
                    seen2.lock().unwrap().push(req.clone());
                    let reply = if req.path == "/services/oauth2/token" {
                        token_n += 1;
                        Reply::Json(
                            200,
                            "",
                            format!(
                                r#"{{"access_token":"tok{token_n}","instance_url":"{base}","id":"{base}/id/00D000000000001AAA/005000000000001AAA","token_type":"Bearer"}}"#
                            ),
                        )
                    } else if req.path == "/services/data/" {
                        Reply::Json(200, "", r#"[{"version":"9.0"},{"version":"62.0"},{"version":"61.0"}]"#.into())
                    } else {
                        api_index += 1;
                        handler(&req, api_index - 1)
                    };
                    match reply {
                        Reply::Json(status, extra, body) => {
                            let resp = format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nSforce-Limit-Info: api-usage=7/15000\r\nConnection: close\r\n{extra}\r\n{body}",
                                body.len()
                            );
                            let _ = stream.write_all(resp.as_bytes());
                        }
                        Reply::Hang(d) => {
                            std::thread::sleep(d);
                        }
                    }
                }
            });
            Server { url, seen }
        }
    }

    fn mock_client(url: &str, opts: ClientOptions) -> Client {
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, url, "cid");
        c.client_secret = Some("shh".into());
        Client::login(c, opts).unwrap()
    }

    #[test]
    fn login_negotiates_version_and_reads_ids() {
        let srv = mock::start(|_, _| mock::Reply::Json(200, "", r#"{"totalSize":0,"done":true,"records":[]}"#.into()));
        let c = mock_client(&srv.url, ClientOptions::default());
        assert_eq!(c.api_version(), "62.0");
        assert_eq!(c.org_id().as_deref(), Some("00D000000000001AAA"));
        assert_eq!(c.user_id().as_deref(), Some("005000000000001AAA"));
        c.query("SELECT Id FROM Account WHERE Name = 'a b'").unwrap();
        let seen = srv.seen.lock().unwrap().clone();
        assert_eq!(seen[0].method, "POST");
        assert!(seen[0].body.contains("grant_type=client_credentials") && seen[0].body.contains("client_secret=shh"));
        let q = seen.last().unwrap();
        assert_eq!(q.path, "/services/data/v62.0/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20%3D%20%27a%20b%27");
        assert_eq!(q.auth.as_deref(), Some("Bearer tok1"));
        let st = c.stats();
        assert_eq!((st.api_used, st.api_max), (Some(7), Some(15000)));
        assert_eq!(st.calls, 2, "version list + query (token call not counted)");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("tok1") && !dbg.contains("shh"), "{dbg}");
    }

    #[test]
    fn retries_503_honouring_retry_after_then_succeeds() {
        let srv = mock::start(|_, i| match i {
            0 => mock::Reply::Json(503, "Retry-After: 0\r\n", r#"[{"errorCode":"SERVER_UNAVAILABLE","message":"down"}]"#.into()),
            1 => mock::Reply::Json(503, "", "".into()),
            _ => mock::Reply::Json(201, "", r#"{"id":"001000000000001AAA","success":true,"errors":[]}"#.into()),
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        let t = Instant::now();
        let id = c.create("Account", &Record::new()).unwrap();
        assert_eq!(id, "001000000000001AAA");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(c.stats().calls, 3);
    }

    #[test]
    fn non_idempotent_not_retried_on_500_but_idempotent_is() {
        let srv = mock::start(|_, _| mock::Reply::Json(500, "", r#"[{"errorCode":"UNKNOWN_EXCEPTION","message":"boom"}]"#.into()));
        let opts = ClientOptions { api_version: Some("62.0".into()), max_retries: 2, ..Default::default() };
        let c = mock_client(&srv.url, opts);
        let e = c.create("Account", &Record::new()).unwrap_err();
        assert_eq!(e.code(), "UNKNOWN_EXCEPTION");
        assert!(e.is_transient());
        assert_eq!(c.stats().calls, 1);
        let e = c.update("Account", "001000000000001AAA", &Record::new()).unwrap_err();
        assert_eq!(e.code(), "UNKNOWN_EXCEPTION");
        assert_eq!(c.stats().calls, 1 + 3);
    }

    #[test]
    fn retry_budget_is_bounded_by_time() {
        let srv = mock::start(|_, _| mock::Reply::Json(503, "Retry-After: 5\r\n", "".into()));
        let opts = ClientOptions {
            api_version: Some("62.0".into()),
            max_retries: 10,
            max_retry_time: Duration::from_secs(1),
            ..Default::default()
        };
        let c = mock_client(&srv.url, opts);
        let t = Instant::now();
        let e = c.query("SELECT Id FROM Account").unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1), "a 5s Retry-After exceeds the 1s budget: give up at once");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(c.stats().calls, 1);
    }

    #[test]
    fn request_limit_without_retry_after_is_not_retried() {
        let srv = mock::start(|_, _| {
            mock::Reply::Json(403, "", r#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]"#.into())
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        let e = c.query("SELECT Id FROM Account").unwrap_err();
        assert_eq!(e.code(), "REQUEST_LIMIT_EXCEEDED");
        assert!(e.is_transient());
        assert_eq!(c.stats().calls, 1);
    }

    #[test]
    fn expired_session_relogs_once() {
        let srv = mock::start(|req, _| {
            if req.auth.as_deref() == Some("Bearer tok1") {
                mock::Reply::Json(401, "", r#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#.into())
            } else {
                mock::Reply::Json(204, "", "".into())
            }
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        c.delete("Account", "001000000000001AAA").unwrap();
        let seen = srv.seen.lock().unwrap().clone();
        let tokens = seen.iter().filter(|s| s.path == "/services/oauth2/token").count();
        assert_eq!(tokens, 2);
        assert_eq!(seen.last().unwrap().auth.as_deref(), Some("Bearer tok2"));

        // a server that always says 401: one re-login, then the error
        let srv = mock::start(|_, _| {
            mock::Reply::Json(401, "", r#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#.into())
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        let e = c.delete("Account", "001000000000001AAA").unwrap_err();
        assert!(e.is_invalid_session());
        assert_eq!(srv.seen.lock().unwrap().iter().filter(|s| s.path == "/services/oauth2/token").count(), 2);
    }

    #[test]
    fn timeout_bounded_and_create_not_resent() {
        let srv = mock::start(|_, _| mock::Reply::Hang(Duration::from_secs(3)));
        let opts = ClientOptions {
            api_version: Some("62.0".into()),
            request_timeout: Duration::from_millis(300),
            max_retries: 2,
            ..Default::default()
        };
        let c = mock_client(&srv.url, opts);
        let t = Instant::now();
        let e = c.create("Account", &Record::new()).unwrap_err();
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(c.stats().calls, 1, "create must not be resent after a timeout");
        let t = Instant::now();
        let e = c.query("SELECT Id FROM Account").unwrap_err();
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(c.stats().calls, 1 + 3, "query retried");
    }

    #[test]
    fn upsert_paths_and_results() {
        let srv = mock::start(|req, i| {
            match i {
            0 => mock::Reply::Json(201, "", r#"{"id":"001000000000001AAA","success":true,"errors":[],"created":true}"#.into()),
            1 => mock::Reply::Json(200, "", r#"{"id":"001000000000001AAA","success":true,"errors":[],"created":false}"#.into()),
            2 => mock::Reply::Json(300, "", r#"["/services/data/v62.0/sobjects/Account/001000000000001AAA","/services/data/v62.0/sobjects/Account/001000000000002AAA"]"#.into()),
            3 => mock::Reply::Json(204, "", "".into()),
            _ => {
                assert!(req.path.ends_with("?fields=Id"), "{}", req.path);
                mock::Reply::Json(200, "", r#"{"attributes":{"type":"Account"},"Id":"001000000000003AAA"}"#.into())
            }
        }
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        let mut fields = Record::new();
        fields.insert("Name".into(), json!("n"));
        fields.insert("Postgres_Id__c".into(), json!("a/b c"));
        let r = c.upsert("Account", "Postgres_Id__c", "a/b c", &fields).unwrap();
        assert_eq!(r, UpsertResult { id: "001000000000001AAA".into(), created: true });
        let seen = srv.seen.lock().unwrap().last().unwrap().clone();
        assert_eq!(seen.method, "PATCH");
        assert_eq!(seen.path, "/services/data/v62.0/sobjects/Account/Postgres_Id__c/a%2Fb%20c");
        assert_eq!(seen.body, r#"{"Name":"n"}"#);
        let r = c.upsert("Account", "Postgres_Id__c", "a/b c", &fields).unwrap();
        assert!(!r.created);
        let e = c.upsert("Account", "Postgres_Id__c", "dup", &fields).unwrap_err();
        assert_eq!(e.code(), "MULTIPLE_CHOICES");
        assert_eq!(e.status(), Some(300));
        let r = c.upsert("Account", "Postgres_Id__c", "old-api", &fields).unwrap();
        assert_eq!(r, UpsertResult { id: "001000000000003AAA".into(), created: false });
    }

    #[test]
    fn connection_refused_is_transport_error() {
        // Bind then drop a listener to get a port that refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, format!("http://127.0.0.1:{port}"), "cid");
        c.client_secret = Some("sekrit-value".into());
        let opts = ClientOptions { max_retries: 1, max_retry_time: Duration::from_secs(2), ..Default::default() };
        let e = Client::login(c, opts).unwrap_err();
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        assert!(e.is_transient());
        assert!(!e.to_string().contains("sekrit"));
    }
}
