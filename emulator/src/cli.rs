//! Command-line options.

use crate::config::Config;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "sf-emulator", version, about = "A faithful local Salesforce org for tests and demos")]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Newest REST API version served.
    #[arg(long, default_value = "62.0")]
    pub api_version: String,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    pub token_ttl_secs: u64,
    /// JSON file with custom objects and fields (see README.md).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Default query page size.
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    /// API calls allowed per rolling 24 hours.
    #[arg(long, default_value_t = 100_000)]
    pub daily_api_limit: u64,
    /// How long a CometD /meta/connect long-poll is held (ms).
    #[arg(long, default_value_t = 110_000)]
    pub cometd_timeout_ms: u64,
    /// Connected app certificate or public key (PEM) for the JWT bearer flow; default: the bundled test certificate.
    #[arg(long, value_name = "FILE")]
    pub jwt_cert: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The user's security token: username-password logins (SOAP and OAuth) then need the
    /// password with the token appended, as Salesforce asks from untrusted IP ranges.
    #[arg(long, value_name = "TOKEN")]
    pub security_token: Option<String>,
    /// Address of the Pub/Sub API (gRPC) listener; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub pubsub_listen: SocketAddr,
    /// Keepalive of an idle Pub/Sub Subscribe stream, in ms (Salesforce: within 270 s).
    #[arg(long, default_value_t = 270_000)]
    pub pubsub_keepalive_ms: u64,
}

impl Args {
    pub fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            api_version: self.api_version,
            token_ttl_secs: self.token_ttl_secs,
            schema_file: self.schema,
            batch_size: self.batch_size.max(1),
            daily_api_limit: self.daily_api_limit,
            cometd_timeout_ms: self.cometd_timeout_ms.max(1),
            jwt_cert: self.jwt_cert,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            security_token: self.security_token.filter(|t| !t.is_empty()),
            pubsub_listen: self.pubsub_listen,
            pubsub_keepalive_ms: self.pubsub_keepalive_ms.max(1),
        }
    }
}
