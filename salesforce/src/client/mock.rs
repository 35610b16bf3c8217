//! A scripted HTTP/1.1 server on 127.0.0.1 for the client's retry/auth tests (test builds only).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Client, ClientOptions};
use crate::auth::Credentials;

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
    start_naming(None, handler)
}

/// `start`, its token responses naming `instance_url` (default: the server itself).
pub fn start_naming(instance_url: Option<&str>, handler: impl Fn(&Seen, usize) -> Reply + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let instance = instance_url.map_or_else(|| url.clone(), String::from);
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
                        r#"{{"access_token":"tok{token_n}","instance_url":"{instance}","id":"{base}/id/00D000000000001AAA/005000000000001AAA","token_type":"Bearer"}}"#
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

/// A client logged in to the mock server `url`.
pub fn mock_client(url: &str, opts: ClientOptions) -> Client {
    let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, url, "cid");
    c.client_secret = Some("shh".into());
    Client::login(c, opts).unwrap()
}
