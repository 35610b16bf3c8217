//! OAuth 2.0 token endpoint: client_credentials and username-password flows.

use super::St;
use crate::errors::ApiError;
use crate::state::{CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    signature: String,
    scope: &'static str,
    instance_url: String,
    id: String,
    token_type: &'static str,
    issued_at: String,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error, "error_description": description}))).into_response()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = vec![];
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = acc << 6 | B64.iter().position(|&b| b == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// client_id/secret from the form, or from HTTP Basic auth.
fn client_creds(form: &HashMap<String, String>, headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let basic = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
        .and_then(|b| base64_decode(b.trim()))
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (form.get("client_id").cloned(), form.get("client_secret").cloned()),
    }
}

pub fn instance_url(st: &crate::state::AppState, headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_string);
    format!("http://{}", host.unwrap_or_else(|| st.cfg.listen.to_string()))
}

pub async fn token(axum::extract::State(st): St, headers: HeaderMap, form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" && grant != "password" {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let (id, secret) = client_creds(&form, &headers);
    if id.as_deref() != Some(CLIENT_ID) {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    if secret.as_deref() != Some(CLIENT_SECRET) {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    if grant == "password"
        && (form.get("username").map(String::as_str) != Some(USERNAME)
            || form.get("password").map(String::as_str) != Some(PASSWORD))
    {
        return oauth_error("invalid_grant", "authentication failure");
    }
    let instance = instance_url(&st, &headers);
    let issued_at = st.clock.now_ms().to_string();
    // Real signatures are HMAC-SHA256(id + issued_at, client secret); clients treat it as opaque.
    let sig: Vec<u8> = (0..4).flat_map(|_| st.rand_u64().to_be_bytes()).collect();
    let body = TokenResponse {
        access_token: st.issue_token(),
        signature: base64_encode(&sig),
        scope: "api",
        id: format!("{instance}/id/{}/{}", st.org_id, st.user_id),
        instance_url: instance,
        token_type: "Bearer",
        issued_at,
    };
    Json(body).into_response()
}

/// OpenID userinfo for the integration user (needs a session).
pub async fn userinfo(axum::extract::State(st): St, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .map(|(_, t)| t.trim().to_string());
    if !token.is_some_and(|t| st.session_valid(&t)) {
        return ApiError::invalid_session().into_response();
    }
    Json(json!({
        "sub": format!("{}/id/{}/{}", instance_url(&st, &headers), st.org_id, st.user_id),
        "user_id": st.user_id,
        "organization_id": st.org_id,
        "preferred_username": USERNAME,
        "email": USERNAME,
        "name": "Integration User",
        "active": true,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        assert_eq!(base64_encode(b"sfsync-local:sfsync-local-secret"), "c2ZzeW5jLWxvY2FsOnNmc3luYy1sb2NhbC1zZWNyZXQ=");
        assert_eq!(base64_decode("c2ZzeW5jLWxvY2FsOnNmc3luYy1sb2NhbC1zZWNyZXQ=").unwrap(), b"sfsync-local:sfsync-local-secret");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
    }
}
