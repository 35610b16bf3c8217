//! Injected faults (admin surface): matched per request by path prefix and method, fired with a
//! probability `rate`, at most `count` times.

use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Respond with `status` and a Salesforce-shaped error body.
    Status,
    /// Delay by `latency_ms`, then serve normally.
    Latency,
    /// Hold the request (300 s or `latency_ms`) — until the client gives up.
    Timeout,
    /// 401 INVALID_SESSION_ID, and revoke the presented token.
    ExpiredSession,
    /// Writes fail per record with UNABLE_TO_LOCK_ROW.
    Lock,
    /// The next CometD request (default prefix `/cometd`) forgets every CometD client: they get
    /// `403::Unknown client` and must handshake again.
    CometdDrop,
    /// Close the TCP connection without sending a response (a dropped connection: the client
    /// sees "connection reset" / "empty reply"). The request is not processed.
    Drop,
}

#[derive(Deserialize, Serialize, Clone, Debug)]
pub struct Fault {
    #[serde(default)]
    pub id: u64,
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Probability that a matching request is hit (default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Remaining hits; absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Default `/services/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only this HTTP method (e.g. "PATCH"); absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// How many times it fired.
    #[serde(default)]
    pub hits: u64,
}

impl Fault {
    pub fn validate(&self) -> Result<(), String> {
        if self.kind == FaultKind::Status && !self.status.is_some_and(|s| (400..600).contains(&s)) {
            return Err("a status fault needs \"status\" between 400 and 599".into());
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err("a latency fault needs \"latency_ms\"".into());
        }
        if self.rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err("\"rate\" must be within 0.0..=1.0".into());
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Faults {
    pub list: Vec<Fault>,
    pub next_id: u64,
}

fn is_write(method: &str) -> bool {
    matches!(method, "POST" | "PATCH" | "PUT" | "DELETE")
}

impl Faults {
    pub fn add(&mut self, mut f: Fault) -> Fault {
        self.next_id += 1;
        f.id = self.next_id;
        f.hits = 0;
        self.list.push(f.clone());
        f
    }

    /// The faults that fire for this request; `draw` yields uniform numbers in [0, 1).
    pub fn fire(&mut self, method: &str, path: &str, mut draw: impl FnMut() -> f64) -> Vec<Fault> {
        let mut fired = vec![];
        for f in &mut self.list {
            let default_prefix = if f.kind == FaultKind::CometdDrop { "/cometd" } else { "/services/data" };
            let prefix = f.path_prefix.as_deref().unwrap_or(default_prefix);
            if !path.starts_with(prefix)
                || f.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || (f.kind == FaultKind::Lock && !is_write(method))
                || f.count == Some(0)
            {
                continue;
            }
            if draw() >= f.rate.unwrap_or(1.0) {
                continue;
            }
            if let Some(c) = &mut f.count {
                *c -= 1;
            }
            f.hits += 1;
            fired.push(f.clone());
        }
        self.list.retain(|f| f.count != Some(0));
        fired
    }
}

/// Salesforce's error code and message for an injected status.
pub fn status_body(status: u16) -> (&'static str, &'static str) {
    match status {
        401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
        403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        404 => ("NOT_FOUND", "The requested resource does not exist"),
        429 => ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
        502..=504 => ("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."),
        400..=499 => ("BAD_REQUEST", "Bad request"),
        _ => (
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1122334455-66778 (-1234567890)",
        ),
    }
}
