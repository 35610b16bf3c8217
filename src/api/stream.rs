//! sfsync.set_change_stream: which transport a connection's change stream uses.
//!
//! Admin only, like the connection itself. `auto` (the default) is the Pub/Sub API with
//! CometD as the automatic fallback; `pubsub` and `cometd` use only that one. The Pub/Sub
//! endpoint defaults to Salesforce's (`api.pubsub.salesforce.com:7443`) for orgs on
//! Salesforce's domains; any other host (a local emulator) names its own. The worker
//! follows the change at its next pass.

use crate::error::{OrRaise, Result, SyncError};
use crate::{privilege, spi_util};
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
fn set_change_stream(connection: &str, stream: &str, pubsub_endpoint: default!(Option<&str>, "NULL")) {
    set(connection, stream, pubsub_endpoint).or_raise()
}

fn set(connection: &str, stream: &str, endpoint: Option<&str>) -> Result<()> {
    privilege::require_admin("sfsync.set_change_stream")?;
    if !["auto", "pubsub", "cometd"].contains(&stream) {
        return Err(SyncError::Invalid(format!("stream: unknown transport \"{stream}\"; use auto, pubsub or cometd")));
    }
    if let Some(e) = endpoint {
        check_endpoint(e).map_err(SyncError::Invalid)?;
    }
    let n = privilege::as_extension_owner(|| {
        spi_util::exec(
            "UPDATE sfsync.connections SET stream = $2, pubsub_endpoint = $3, updated_at = clock_timestamp() WHERE name = $1",
            &[connection.into(), stream.into(), endpoint.into()],
        )
    })?;
    if n == 0 {
        return Err(SyncError::Invalid(format!("connection \"{connection}\" does not exist; add it with sfsync.add_connection")));
    }
    Ok(())
}

/// `https://host:port`, or `http://` (plain HTTP/2, for a local emulator: the stream refuses
/// it unless the host is a loopback address or plain HTTP is allowed).
pub fn check_endpoint(e: &str) -> std::result::Result<(), String> {
    let url = url::Url::parse(e).map_err(|err| format!("pubsub_endpoint \"{e}\": {err}; give it as https://host:port"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() || url.path() != "/" || url.query().is_some() {
        return Err(format!("pubsub_endpoint \"{e}\": give it as https://host:port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        assert!(check_endpoint("https://api.pubsub.salesforce.com:7443").is_ok());
        assert!(check_endpoint("http://127.0.0.1:4000").is_ok());
        assert!(check_endpoint("api.pubsub.salesforce.com:7443").is_err(), "no scheme");
        assert!(check_endpoint("ftp://x:1").is_err());
        assert!(check_endpoint("https://x:1/path").is_err());
    }
}
