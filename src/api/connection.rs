//! sfsync.add_connection: store an org's credentials after proving they log in.

use crate::error::{OrRaise, Result, SyncError};
use crate::spi_util;
use crate::sync::clients::{self, ConnectionSpec};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::JsonB;
use salesforce::Client;
use serde_json::json;

/// Logs in with the given credentials and, if that works, stores them as connection
/// `name` (replacing an existing one). Returns what the org told us, never a secret.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn add_connection(
    name: &str,
    login_url: &str,
    client_id: &str,
    client_secret: default!(Option<&str>, "NULL"),
    username: default!(Option<&str>, "NULL"),
    password: default!(Option<&str>, "NULL"),
    private_key: default!(Option<&str>, "NULL"),
    auth_flow: default!(&str, "'client_credentials'"),
    refresh_token: default!(Option<&str>, "NULL"),
) -> JsonB {
    JsonB(add(name, login_url, client_id, client_secret, username, password, private_key, auth_flow, refresh_token).or_raise())
}

#[allow(clippy::too_many_arguments)]
fn add(
    name: &str,
    login_url: &str,
    client_id: &str,
    client_secret: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
    private_key: Option<&str>,
    auth_flow: &str,
    refresh_token: Option<&str>,
) -> Result<serde_json::Value> {
    if name.trim().is_empty() {
        return Err(SyncError::Invalid("name: a connection needs a non-empty name".into()));
    }
    if !(login_url.starts_with("https://") || login_url.starts_with("http://")) {
        return Err(SyncError::Invalid(format!("login_url: \"{login_url}\" is not an http(s) URL (e.g. https://login.salesforce.com)")));
    }
    if client_id.trim().is_empty() {
        return Err(SyncError::Invalid("client_id: the connected app's consumer key is required".into()));
    }
    let need = |v: Option<&str>, what: &str| -> Result<()> {
        match v {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(SyncError::Invalid(format!("auth_flow '{auth_flow}' needs {what}"))),
        }
    };
    match auth_flow {
        "client_credentials" => need(client_secret, "client_secret")?,
        "password" => {
            need(username, "username")?;
            need(password, "password")?;
        }
        "jwt" => {
            need(username, "username")?;
            need(private_key, "private_key (PEM)")?;
        }
        "refresh_token" => need(refresh_token, "refresh_token")?,
        other => {
            return Err(SyncError::Invalid(format!(
                "auth_flow: unknown flow \"{other}\"; use one of jwt, client_credentials, refresh_token, password"
            )))
        }
    }
    let spec = ConnectionSpec {
        login_url: login_url.to_string(),
        client_id: client_id.to_string(),
        auth_flow: auth_flow.to_string(),
        username: username.map(String::from),
        client_secret: client_secret.map(String::from),
        password: password.map(String::from),
        private_key: private_key.map(String::from),
        refresh_token: refresh_token.map(String::from),
        ..Default::default()
    };
    let client = Client::login(spec.credentials()?, clients::options())?;
    let args: Vec<DatumWithOid> = vec![
        name.into(),
        login_url.trim_end_matches('/').into(),
        client_id.into(),
        auth_flow.into(),
        username.into(),
        client.instance_url().into(),
        client.org_id().into(),
        client.user_id().into(),
    ];
    spi_util::exec(
        "INSERT INTO sfsync.connections (name, login_url, client_id, auth_flow, username, instance_url, org_id, user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (name) DO UPDATE SET login_url = EXCLUDED.login_url, client_id = EXCLUDED.client_id,
             auth_flow = EXCLUDED.auth_flow, username = EXCLUDED.username, instance_url = EXCLUDED.instance_url,
             org_id = EXCLUDED.org_id, user_id = EXCLUDED.user_id, updated_at = clock_timestamp()",
        &args,
    )?;
    let args: Vec<DatumWithOid> = vec![name.into(), client_secret.into(), password.into(), private_key.into(), refresh_token.into()];
    spi_util::exec(
        "INSERT INTO sfsync.connection_secrets (connection, client_secret, password, private_key, refresh_token)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (connection) DO UPDATE SET client_secret = EXCLUDED.client_secret, password = EXCLUDED.password,
             private_key = EXCLUDED.private_key, refresh_token = EXCLUDED.refresh_token",
        &args,
    )?;
    spi_util::exec(
        "INSERT INTO sfsync.connection_state (connection) VALUES ($1) ON CONFLICT (connection) DO UPDATE SET last_error = NULL",
        &[name.into()],
    )?;
    clients::forget(name);
    Ok(json!({
        "name": name,
        "instance_url": client.instance_url(),
        "api_version": client.api_version(),
        "org_id": client.org_id(),
        "user_id": client.user_id(),
        "auth_flow": auth_flow,
    }))
}
