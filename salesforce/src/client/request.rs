//! The request core: every REST call of every API area goes through [`Client::execute`]
//! (budget check, then one attempt at a time with token refresh and bounded, jittered
//! retries). The two transports that cannot use it, because they hand back more than a
//! buffered body, live here too so that all retry and re-login loops sit side by side:
//! [`Client::stream_post`] (CometD long-polls, no retries) and [`Client::open_csv_stream`]
//! (Bulk query result pages, streamed).

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{lock, Client};
use crate::auth::Secret;
use crate::error::{parse_error_body, Error};
use crate::http::{backoff_delay, parse_retry_after};

/// A `Retry-After` longer than this on REQUEST_LIMIT_EXCEEDED is not waited
/// for inside a call: the caller should pause the connection instead.
const SHORT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Largest response body read into memory (query pages, describes).
const MAX_BODY: u64 = 512 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Method {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
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
pub(super) enum Target<'a> {
    /// Path under the (current) instance URL, starting with `/`.
    Instance(String),
    /// Absolute URL (token endpoint).
    Absolute(&'a str),
}

pub(super) struct Request<'a> {
    pub method: Method,
    pub target: Target<'a>,
    pub body: Option<(&'static str, Vec<u8>)>,
    pub headers: Vec<(&'static str, String)>,
    /// Safe to resend after an ambiguous failure (timeout, reset, 5xx).
    pub idempotent: bool,
    /// Send the bearer token and refresh it on 401.
    pub authenticated: bool,
}

pub(super) struct Response {
    pub status: u16,
    pub body: String,
    /// The `Last-Modified` header (describe), as sent.
    pub last_modified: Option<String>,
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
            if let Some(name) = &self.opts.client_name {
                headers.push(("Sforce-Call-Options", format!("client={name}")));
            }
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
                self.record_usage(true, None);
            }
            f
        })?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let limit = header("Sforce-Limit-Info");
        let retry_after = header("Retry-After").as_deref().and_then(parse_retry_after);
        let last_modified = header("Last-Modified");
        self.record_usage(req.authenticated, limit.as_deref());
        let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| {
            let mut f = transport_failure(e, self.opts.request_timeout);
            f.not_sent = false;
            f.message = format!("reading response body (HTTP {status}): {}", f.message);
            f
        })?;
        Ok((Response { status, body, last_modified }, retry_after))
    }

    /// Sends a request within the API budget; REQUEST_LIMIT_EXCEEDED pauses the budget.
    pub(super) fn execute(&self, req: &Request<'_>) -> Result<Response, Error> {
        if req.authenticated {
            self.check_budget()?;
        }
        let result = self.execute_with_retries(req);
        match &result {
            Err(e) => self.pause_on_limit(e),
            Ok(_) if req.authenticated => self.budget_went_through(),
            Ok(_) => {}
        }
        result
    }

    /// Sends a request with token refresh and bounded, jittered retries.
    /// Returns responses with status < 300, and 304 (only a conditional request gets one);
    /// everything else as `Error`.
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
                Ok((resp, _)) if resp.status < 300 || resp.status == 304 => return Ok(resp),
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
            if !retryable || !(req.idempotent || safe) || !self.pause_before_retry(retries, started, retry_after) {
                return Err(err);
            }
            retries += 1;
        }
    }

    /// Sleeps before retry number `retries + 1` (Retry-After, else jittered backoff); false
    /// when the retry budget is spent: `max_retries`, or `max_retry_time` since `started`.
    fn pause_before_retry(&self, retries: u32, started: Instant, retry_after: Option<Duration>) -> bool {
        if retries >= self.opts.max_retries {
            return false;
        }
        let delay = retry_after.unwrap_or_else(|| backoff_delay(retries, fastrand::f64()));
        if started.elapsed() + delay > self.opts.max_retry_time {
            return false;
        }
        std::thread::sleep(delay);
        true
    }

    pub(super) fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}{}", self.api_version, rest)
    }

    pub(super) fn rest(&self, method: Method, path: String, body: Option<&Value>, idempotent: bool) -> Result<Response, Error> {
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

    // ----------------------------------------------------------- bulk CSV

    /// GET of a CSV page, returning the `Sforce-Locator` and the body as a reader (streamed).
    /// Same retry and re-login policy as other GETs; the page body has no overall timeout, only
    /// `request_timeout` per network read, so a slow consumer can take its time.
    pub(super) fn open_csv_stream(&self, path: &str) -> Result<(Option<String>, Box<dyn Read + Send>), Error> {
        let started = Instant::now();
        let mut retries = 0u32;
        let mut relogged = false;
        loop {
            let (token, url) = {
                let s = lock(&self.session);
                (s.token.clone(), format!("{}{}", s.instance_url, path))
            };
            let res = self
                .agent
                .get(&url)
                .config()
                .timeout_global(None)
                .timeout_recv_response(Some(self.opts.request_timeout))
                .timeout_per_read(Some(self.opts.request_timeout))
                .build()
                .header("Accept", "text/csv")
                .header("Authorization", format!("Bearer {}", token.expose()))
                .call();
            let (err, retry_after) = match res {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let limit = header("Sforce-Limit-Info");
                    let retry_after = header("Retry-After").as_deref().and_then(parse_retry_after);
                    let locator = header("Sforce-Locator");
                    self.record_usage(true, limit.as_deref());
                    if status < 300 {
                        let body = resp.into_body().into_with_config().limit(u64::MAX).reader();
                        return Ok((locator, Box::new(body)));
                    }
                    let text = resp.into_body().read_to_string().unwrap_or_default();
                    if status == 401 && !relogged {
                        relogged = true;
                        self.relogin(&token)?;
                        continue;
                    }
                    let e = parse_error_body(status, &text, retry_after);
                    if !(status >= 500 || status == 429 || e.is_transient()) {
                        return Err(e);
                    }
                    (e, retry_after)
                }
                Err(e) => {
                    let f = transport_failure(e, self.opts.request_timeout);
                    if !f.not_sent {
                        self.record_usage(true, None);
                    }
                    if !f.retryable {
                        return Err(Error::Transport(f.message));
                    }
                    (Error::Transport(f.message), None)
                }
            };
            if !self.pause_before_retry(retries, started, retry_after) {
                return Err(err);
            }
            retries += 1;
        }
    }
}

fn parse_json_or_null(body: &str, method: &str, path: &str) -> Result<Value, Error> {
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(body).map_err(|e| Error::Decode(format!("{method} {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::mock::{self, mock_client};
    use super::*;
    use crate::client::ClientOptions;
    use crate::types::Record;

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
}
