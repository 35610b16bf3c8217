//! sfsync.add_connection: store an org's credentials after proving they log in.
//!
//! Admin only (EXECUTE is granted to sfsync_admin, and checked again inside). The URL must
//! be https (plain http only to a loopback host) on a Salesforce domain or a host
//! `sfsync.allowed_login_hosts` names. Secrets given inline are stored in
//! sfsync.connection_secrets (owner only, not part of a pg_dump); secrets given as files
//! (`*_file`) are read by the server whenever it logs in, and only their paths are stored.
//! The statement's text is kept out of the server log (`log_filter`). See docs/secrets.md.

use crate::error::{OrRaise, Result, SyncError};
use crate::sync::clients::{self, ConnectionSpec, SecretFiles};
use crate::{log_filter, privilege, spi_util};
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
    client_secret_file: default!(Option<&str>, "NULL"),
    password_file: default!(Option<&str>, "NULL"),
    private_key_file: default!(Option<&str>, "NULL"),
    refresh_token_file: default!(Option<&str>, "NULL"),
) -> JsonB {
    log_filter::statement_carries_secret();
    let inline = Inline { client_secret, password, private_key, refresh_token };
    let files = SecretFiles {
        client_secret: client_secret_file.map(String::from),
        password: password_file.map(String::from),
        private_key: private_key_file.map(String::from),
        refresh_token: refresh_token_file.map(String::from),
    };
    JsonB(add(name, login_url, client_id, username, auth_flow, inline, files).or_raise())
}

/// The secrets given in the statement itself.
struct Inline<'a> {
    client_secret: Option<&'a str>,
    password: Option<&'a str>,
    private_key: Option<&'a str>,
    refresh_token: Option<&'a str>,
}

fn add(
    name: &str,
    login_url: &str,
    client_id: &str,
    username: Option<&str>,
    auth_flow: &str,
    inline: Inline,
    files: SecretFiles,
) -> Result<serde_json::Value> {
    privilege::require_admin("sfsync.add_connection")?;
    if name.trim().is_empty() {
        return Err(SyncError::Invalid("name: a connection needs a non-empty name".into()));
    }
    if client_id.trim().is_empty() {
        return Err(SyncError::Invalid("client_id: the connected app's consumer key is required".into()));
    }
    for (what, value, file) in [
        ("client_secret", inline.client_secret, &files.client_secret),
        ("password", inline.password, &files.password),
        ("private_key", inline.private_key, &files.private_key),
        ("refresh_token", inline.refresh_token, &files.refresh_token),
    ] {
        if value.is_some() && file.is_some() {
            return Err(SyncError::Invalid(format!("give {what} or {what}_file, not both")));
        }
        if let Some(path) = file {
            if !std::path::Path::new(path).is_absolute() {
                return Err(SyncError::Invalid(format!("{what}_file: \"{path}\" is not an absolute path")));
            }
        }
    }
    if !files.is_empty() && !privilege::reads_server_files(privilege::current_user()) {
        return Err(SyncError::Denied(format!(
            "permission denied to read secret files: role \"{}\" needs to be a superuser or a member of pg_read_server_files, as COPY FROM a file does",
            privilege::role_name(privilege::current_user())
        )));
    }
    let need = |inline: Option<&str>, file: &Option<String>, what: &str| -> Result<()> {
        match (inline, file) {
            (Some(s), _) if !s.is_empty() => Ok(()),
            (_, Some(_)) => Ok(()),
            _ => Err(SyncError::Invalid(format!("auth_flow '{auth_flow}' needs {what} (or {what}_file)"))),
        }
    };
    let present = |v: Option<&str>, what: &str| -> Result<()> {
        match v {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(SyncError::Invalid(format!("auth_flow '{auth_flow}' needs {what}"))),
        }
    };
    match auth_flow {
        "client_credentials" => need(inline.client_secret, &files.client_secret, "client_secret")?,
        "password" => {
            present(username, "username")?;
            need(inline.password, &files.password, "password")?;
        }
        "jwt" => {
            present(username, "username")?;
            need(inline.private_key, &files.private_key, "private_key")?;
        }
        "refresh_token" => need(inline.refresh_token, &files.refresh_token, "refresh_token")?,
        other => {
            return Err(SyncError::Invalid(format!(
                "auth_flow: unknown flow \"{other}\"; use one of jwt, client_credentials, refresh_token, password"
            )))
        }
    }
    let mut spec = ConnectionSpec {
        login_url: login_url.to_string(),
        client_id: client_id.to_string(),
        auth_flow: auth_flow.to_string(),
        username: username.map(String::from),
        client_secret: inline.client_secret.map(String::from),
        password: inline.password.map(String::from),
        private_key: inline.private_key.map(String::from),
        refresh_token: inline.refresh_token.map(String::from),
        secret_files: Some(files.clone()),
        ..Default::default()
    };
    spec.resolve_secrets(name)?;
    // A refused URL or a missing part is the caller's argument, not Salesforce's answer.
    let client = Client::login(spec.credentials()?, clients::options()?).map_err(|e| match e {
        salesforce::Error::Config(m) => SyncError::Invalid(m),
        e => SyncError::Salesforce(e),
    })?;
    let stored_url = client.login_url().to_string();
    privilege::as_extension_owner(|| store(name, &stored_url, client_id, auth_flow, username, &client, &inline, &files))?;
    clients::forget(name);
    Ok(json!({
        "name": name,
        "instance_url": client.instance_url(),
        "api_version": client.api_version(),
        "org_id": client.org_id(),
        "user_id": client.user_id(),
        "auth_flow": auth_flow,
        "secret_files": files.to_json(),
    }))
}

/// The catalog rows of the connection (as the extension's owner).
#[allow(clippy::too_many_arguments)]
fn store(
    name: &str,
    login_url: &str,
    client_id: &str,
    auth_flow: &str,
    username: Option<&str>,
    client: &Client,
    inline: &Inline,
    files: &SecretFiles,
) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![
        name.into(),
        login_url.into(),
        client_id.into(),
        auth_flow.into(),
        username.into(),
        client.instance_url().into(),
        client.org_id().into(),
        client.user_id().into(),
        spi_util::jsonb(files.to_json()),
    ];
    spi_util::exec(
        "INSERT INTO sfsync.connections (name, login_url, client_id, auth_flow, username, instance_url, org_id, user_id, secret_files)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name) DO UPDATE SET login_url = EXCLUDED.login_url, client_id = EXCLUDED.client_id,
             auth_flow = EXCLUDED.auth_flow, username = EXCLUDED.username, instance_url = EXCLUDED.instance_url,
             org_id = EXCLUDED.org_id, user_id = EXCLUDED.user_id, secret_files = EXCLUDED.secret_files,
             updated_at = clock_timestamp()",
        &args,
    )?;
    let args: Vec<DatumWithOid> =
        vec![name.into(), inline.client_secret.into(), inline.password.into(), inline.private_key.into(), inline.refresh_token.into()];
    // No row when every secret is a file, so no stale inline secret outlives a switch to files.
    spi_util::exec("DELETE FROM sfsync.connection_secrets WHERE connection = $1", &[name.into()])?;
    spi_util::exec(
        "INSERT INTO sfsync.connection_secrets (connection, client_secret, password, private_key, refresh_token)
         SELECT $1, $2, $3, $4, $5 WHERE num_nonnulls($2, $3, $4, $5) > 0",
        &args,
    )?;
    spi_util::exec(
        "INSERT INTO sfsync.connection_state (connection) VALUES ($1) ON CONFLICT (connection) DO UPDATE SET last_error = NULL",
        &[name.into()],
    )?;
    Ok(())
}
