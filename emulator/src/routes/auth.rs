//! OAuth 2.0 token endpoint: client_credentials, username-password, JWT bearer and refresh
//! token flows.

use super::St;
use crate::errors::ApiError;
use crate::state::{CLIENT_ID, CLIENT_SECRET, USERNAME};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    signature: String,
    scope: &'static str,
    instance_url: String,
    id: String,
    token_type: &'static str,
    issued_at: String,
}

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error, "error_description": description}))).into_response()
}

pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Standard alphabet, padding optional (clients differ).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim_end_matches('=')).ok()
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
    let scheme = if st.cfg.tls_cert.is_some() { "https" } else { "http" };
    format!("{scheme}://{}", host.unwrap_or_else(|| st.cfg.listen.to_string()))
}

/// What Salesforce documents as the token `signature`: base64(HMAC-SHA256(id + issued_at)) keyed
/// with the connected app's consumer secret, so clients can check the identity URL wasn't altered.
pub fn token_signature(id: &str, issued_at: &str, secret: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(issued_at.as_bytes());
    base64_encode(ctx.sign().as_ref())
}

fn refresh_token(st: &crate::state::AppState) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";
    let body: String = (0..80).map(|_| CHARS[(st.rand_u64() % CHARS.len() as u64) as usize] as char).collect();
    let token = format!("5Aep861{body}");
    st.auth.refresh_tokens.lock().insert(token.clone());
    token
}

pub async fn token(
    axum::extract::State(st): St,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let instance = instance_url(&st, &headers);
    let mut with_refresh = false;
    match grant {
        "client_credentials" | "password" => {
            let (id, secret) = client_creds(&form, &headers);
            if id.as_deref() != Some(CLIENT_ID) {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if secret.as_deref() != Some(CLIENT_SECRET) {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            if grant == "password" {
                if !st.password_ok(form.get("username").map(String::as_str), form.get("password").map(String::as_str)) {
                    return oauth_error("invalid_grant", "authentication failure");
                }
                // The connected app's policy allows refresh tokens ("refresh_token" scope).
                with_refresh = true;
            }
        }
        "refresh_token" => {
            let (id, secret) = client_creds(&form, &headers);
            if id.as_deref() != Some(CLIENT_ID) {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if secret.as_deref().is_some_and(|s| s != CLIENT_SECRET) {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let presented = form.get("refresh_token").map(String::as_str).unwrap_or("");
            if !st.auth.refresh_tokens.lock().contains(presented) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
        }
        JWT_BEARER => {
            let Some(assertion) = form.get("assertion") else {
                return oauth_error("invalid_grant", "invalid assertion");
            };
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
            let own = [format!("http://{host}"), format!("https://{host}"), instance.clone()];
            let now = st.clock.now_ms();
            if let Err(crate::jwt::Refusal(error, description)) =
                crate::jwt::verify(assertion, &st.auth.jwt_key, CLIENT_ID, USERNAME, &own, now)
            {
                return oauth_error(error, description);
            }
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    }
    let issued_at = st.clock.now_ms().to_string();
    let id = format!("{instance}/id/{}/{}", st.org_id, st.user_id);
    let body = TokenResponse {
        access_token: st.issue_token(),
        refresh_token: with_refresh.then(|| refresh_token(&st)),
        signature: token_signature(&id, &issued_at, CLIENT_SECRET),
        scope: if with_refresh { "refresh_token api" } else { "api" },
        id,
        instance_url: instance,
        token_type: "Bearer",
        issued_at,
    };
    Json(body).into_response()
}

/// OpenID userinfo for the integration user (needs a session).
pub async fn userinfo(axum::extract::State(st): St, headers: HeaderMap) -> Response {
    let token =
        headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.split_once(' ')).map(|(_, t)| t.trim().to_string());
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

/// The identity URL a token response's `id` names: the user, the org and the API endpoints, with
/// Salesforce's literal `{version}` placeholders.
pub async fn identity(
    axum::extract::State(st): St,
    axum::extract::Path((org, user)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let token =
        headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.split_once(' ')).map(|(_, t)| t.trim().to_string());
    if !token.is_some_and(|t| st.session_valid(&t)) {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    }
    let same = |a: &str, b: &str| crate::ids::normalize(a).is_some_and(|a| a == b);
    if !same(&org, &st.org_id) || !same(&user, &st.user_id) {
        return (StatusCode::NOT_FOUND, "Bad_Id").into_response();
    }
    let base = instance_url(&st, &headers);
    let (o, u) = (&st.org_id, &st.user_id);
    let data = format!("{base}/services/data/v{{version}}");
    Json(json!({
        "id": format!("{base}/id/{o}/{u}"),
        "asserted_user": true,
        "user_id": u,
        "organization_id": o,
        "username": USERNAME,
        "nick_name": "integ",
        "display_name": "Integration User",
        "email": USERNAME,
        "email_verified": true,
        "first_name": "Integration",
        "last_name": "User",
        "timezone": "GMT",
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "is_app_installed": true,
        "urls": {
            "enterprise": format!("{base}/services/Soap/c/{{version}}/{o}"),
            "metadata": format!("{base}/services/Soap/m/{{version}}/{o}"),
            "partner": format!("{base}/services/Soap/u/{{version}}/{o}"),
            "rest": format!("{data}/"),
            "sobjects": format!("{data}/sobjects/"),
            "search": format!("{data}/search/"),
            "query": format!("{data}/query/"),
            "recent": format!("{data}/recent/"),
            "limits": format!("{data}/limits/"),
            "profile": format!("{base}/{u}"),
            "custom_domain": base,
        },
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

    #[test]
    fn signature_is_hmac_sha256_of_id_and_issued_at() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            token_signature("what do ya want ", "for nothing?", "Jefe"),
            base64_encode(&[
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08,
                0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43
            ])
        );
    }
}
