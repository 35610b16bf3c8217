//! Server configuration (command-line flags map onto it, see cli.rs). Its own module so the core
//! modules that read it (state, cli) need not import the crate root, which builds and serves
//! them; the root re-exports it as `sf_emulator::Config`.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Newest API version served, e.g. "62.0".
    pub api_version: String,
    pub token_ttl_secs: u64,
    /// JSON file with custom objects/fields.
    pub schema_file: Option<PathBuf>,
    /// Default query page size (Sforce-Query-Options batchSize overrides, within 200..=2000).
    pub batch_size: usize,
    pub daily_api_limit: u64,
    /// How long a CometD `/meta/connect` is held waiting for events (ms).
    pub cometd_timeout_ms: u64,
    /// PEM certificate / public key of the connected app for the JWT bearer flow
    /// (default: the bundled test certificate, testdata/jwt-test-cert.pem).
    pub jwt_cert: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain and `tls_key` (both or neither).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The user's security token; when set, password logins take password + token.
    pub security_token: Option<String>,
    /// The Pub/Sub API's own listener (gRPC).
    pub pubsub_listen: SocketAddr,
    /// A Subscribe stream with nothing to send answers a keepalive after this long (ms).
    pub pubsub_keepalive_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_version: "62.0".into(),
            token_ttl_secs: 7200,
            schema_file: None,
            batch_size: 2000,
            daily_api_limit: 100_000,
            cometd_timeout_ms: 110_000,
            jwt_cert: None,
            tls_cert: None,
            tls_key: None,
            security_token: None,
            pubsub_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            pubsub_keepalive_ms: 270_000,
        }
    }
}
