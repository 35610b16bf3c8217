//! Test helpers: an in-process emulator and a tiny JSON client over real HTTP.
#![allow(dead_code)]

use serde_json::Value;
use sf_emulator::{spawn, Config, Running};

pub struct Org {
    pub server: Running,
    pub base: String,
    pub token: String,
    agent: ureq::Agent,
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> &str {
        self.body[0]["errorCode"].as_str().unwrap_or("")
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("http");
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Resp { status, headers, body }
}

impl Org {
    pub fn start() -> Org {
        Org::with(Config::default())
    }
    pub fn with(cfg: Config) -> Org {
        let server = spawn(cfg).expect("spawn");
        let base = server.base_url();
        let mut org = Org { server, base, token: String::new(), agent: agent() };
        let r = org.form(
            "/services/oauth2/token",
            &[("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")],
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        org.token = r.body["access_token"].as_str().unwrap().to_string();
        org
    }
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/services/data/v62.0/{path}", self.base)
        }
    }
    pub fn form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        finish(self.agent.post(self.url(path)).send_form(fields.iter().copied()))
    }
    pub fn form_basic(&self, path: &str, fields: &[(&str, &str)], basic: &str) -> Resp {
        finish(self.agent.post(self.url(path)).header("Authorization", basic).send_form(fields.iter().copied()))
    }
    pub fn get(&self, path: &str) -> Resp {
        finish(self.agent.get(self.url(path)).header("Authorization", format!("Bearer {}", self.token)).call())
    }
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.agent.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        finish(req.call())
    }
    pub fn query(&self, soql: &str) -> Resp {
        self.get(&format!("query?q={}", enc(soql)))
    }
    pub fn post(&self, path: &str, body: Value) -> Resp {
        finish(self.agent.post(self.url(path)).header("Authorization", format!("Bearer {}", self.token)).send_json(body))
    }
    pub fn patch(&self, path: &str, body: Value) -> Resp {
        finish(self.agent.patch(self.url(path)).header("Authorization", format!("Bearer {}", self.token)).send_json(body))
    }
    pub fn delete(&self, path: &str) -> Resp {
        finish(self.agent.delete(self.url(path)).header("Authorization", format!("Bearer {}", self.token)).call())
    }
    /// Admin calls need no token.
    pub fn admin(&self, method: &str, path: &str, body: Value) -> Resp {
        let url = format!("{}/__emulator/{path}", self.base);
        finish(match method {
            "GET" => self.agent.get(url).call(),
            "DELETE" => self.agent.delete(url).call(),
            "PATCH" => self.agent.patch(url).send_json(body),
            _ => self.agent.post(url).send_json(body),
        })
    }
    pub fn create(&self, object: &str, body: Value) -> String {
        let r = self.post(&format!("sobjects/{object}"), body);
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes `json` to a schema file no other test in this process shares: tests run in
/// parallel threads, and one test truncating a shared path while another reads it fails both.
pub fn schema_file(json: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sf-emulator-test-{}-{n}.json", std::process::id()));
    std::fs::write(&path, json).expect("write schema file");
    path
}
