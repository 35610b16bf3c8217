//! The blocking REST client, one submodule per API area, each adding its methods to
//! [`Client`]. This module holds the client itself: options, login and the OAuth session
//! (token requests, one re-login after a 401, API version negotiation), plus the name
//! checks every area shares. The submodules:
//!
//! - `request`: the request core every area goes through: one attempt, bounded jittered
//!   retries, one re-login on 401, budget checks; also the raw Streaming API POST (for
//!   [`crate::cdc`]) and the streamed CSV GET (for Bulk query results). Keeping every
//!   retry loop in one file keeps the retry semantics reviewable in one place.
//! - `limits`: [`ApiStats`] (`Sforce-Limit-Info`) and the API budget pacer.
//! - `records`: single-record REST (create, get, update, delete, upsert).
//! - `collections`: sObject Collections in chunks of [`COLLECTIONS_CHUNK`].
//! - `query`: SOQL paging and [`QueryIter`].
//! - `describe`: describeGlobal and the cached per-object describe.
//! - [`bulk`]: Bulk API 2.0 ingest and query jobs.

pub mod bulk;
mod collections;
pub mod describe;
mod limits;
#[cfg(test)]
mod mock;
mod query;
mod records;
mod request;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{ids_from_identity_url, Credentials, Secret, TokenResponse};
use crate::budget::{BudgetHandle, Pacer};
use crate::error::Error;
use crate::hosts::{check_base_url, HostPolicy};
use crate::http::{form_encode, normalize_version, version_key};
use crate::soql::is_valid_identifier;
use crate::types::SObjectDescribe;

pub use collections::COLLECTIONS_CHUNK;
pub(crate) use collections::{typed, update_record};
pub use limits::ApiStats;
pub use query::QueryIter;
use request::{Method, Request, Target};

/// Transport and retry settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// TCP + TLS connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Whole request including the response body (default 30 s).
    pub request_timeout: Duration,
    /// Fixed API version like `62.0`; `None` negotiates the newest from `GET /services/data/`.
    pub api_version: Option<String>,
    /// Allow `http://` to non-loopback hosts (default false; loopback is always allowed).
    pub allow_insecure_http: bool,
    /// The hosts the login URL and the instance URL a login returns may name (`None`: any).
    pub hosts: Option<HostPolicy>,
    /// Transient-failure retries per call (default 3).
    pub max_retries: u32,
    /// Upper bound on the time spent retrying one call (default 30 s).
    pub max_retry_time: Duration,
    /// Keep this client within this share (0..1] of the org's daily API allocation
    /// (see [`crate::budget`]): calls over budget fail fast with `Error::Budget`.
    /// `None`: no pacing.
    pub api_share: Option<f64>,
    /// Where the clients of one org share their budget (see [`crate::budget`]); `None`, or
    /// no cell for the org: this client paces alone.
    pub budget: Option<BudgetHandle>,
    /// `Sforce-Call-Options: client=<this>` on every REST call: Salesforce names the client in
    /// the `changeOrigin` of the change events its saves cause (`None`: not sent).
    pub client_name: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            api_version: None,
            allow_insecure_http: false,
            hosts: None,
            max_retries: 3,
            max_retry_time: Duration::from_secs(30),
            api_share: None,
            budget: None,
            client_name: None,
        }
    }
}

/// The current access token and what its token response said about the org.
struct Session {
    token: Secret,
    instance_url: String,
    org_id: Option<String>,
    user_id: Option<String>,
}

/// A session one client obtained, handed to another client of the same connection (in
/// sfsync: through shared memory, to every backend of the database) so that it can call
/// without logging in or reading the versions resource again.
#[derive(Clone, Debug)]
pub struct SessionSeed {
    pub token: Secret,
    pub instance_url: String,
    pub api_version: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
}

/// Where clients of one connection share their session. Implementations must be cheap and
/// must never block on the network; `None` answers mean "log in yourself".
pub trait SessionShare: Send + Sync {
    /// The session shared now, if any (asked at login).
    fn current(&self) -> Option<SessionSeed>;
    /// Asked before logging in again because `stale` was refused: a session someone else
    /// obtained since (the implementation may wait briefly while another process logs in),
    /// or `None` when this client is the one to log in.
    fn newer_than(&self, stale: &Secret) -> Option<SessionSeed>;
    /// A session this client just obtained.
    fn publish(&self, seed: &SessionSeed);
}

/// A logged-in connection to one org. `Send + Sync`; the access token is
/// cached inside and refreshed transparently on `INVALID_SESSION_ID`.
pub struct Client {
    agent: ureq::Agent,
    creds: Credentials,
    login_url: String,
    opts: ClientOptions,
    api_version: String,
    session: Mutex<Session>,
    login_lock: Mutex<()>,
    describes: Mutex<HashMap<String, SObjectDescribe>>,
    stats: Mutex<ApiStats>,
    pacer: Mutex<Option<Pacer>>,
    query_batch_size: AtomicU32,
    share: Option<Arc<dyn SessionShare>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("instance_url", &self.instance_url())
            .field("api_version", &self.api_version)
            .field("flow", &self.creds.flow)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Logs in (OAuth token request) and negotiates the API version.
    pub fn login(creds: Credentials, opts: ClientOptions) -> Result<Client, Error> {
        Client::login_shared(creds, opts, None)
    }

    /// [`Client::login`], but first takes the session `share` holds (no request at all), and
    /// publishes every session it obtains itself (login, re-login after a 401) to it.
    pub fn login_shared(creds: Credentials, opts: ClientOptions, share: Option<Arc<dyn SessionShare>>) -> Result<Client, Error> {
        creds.validate()?;
        let login_url = check_base_url(&creds.login_url, opts.allow_insecure_http, opts.hosts.as_ref(), "login_url")?;
        let fixed_version = opts.api_version.as_deref().map(normalize_version).transpose()?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_global(Some(opts.request_timeout))
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("sfsync-salesforce/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            crate::http::SignalSafeResolver(ureq::unversioned::resolver::DefaultResolver::default()),
        );
        let mut client = Client {
            agent,
            creds,
            login_url,
            opts,
            api_version: fixed_version.clone().unwrap_or_default(),
            session: Mutex::new(Session { token: Secret::new(String::new()), instance_url: String::new(), org_id: None, user_id: None }),
            login_lock: Mutex::new(()),
            describes: Mutex::new(HashMap::new()),
            stats: Mutex::new(ApiStats::default()),
            pacer: Mutex::new(None),
            query_batch_size: AtomicU32::new(0),
            share,
        };
        if let Some(seed) = client.share.as_ref().and_then(|s| s.current()) {
            // The shared instance URL is checked like a token response's: the allowed hosts
            // may have changed since another process logged in.
            if let Ok(session) = client.adopt(&seed) {
                *lock(&client.session) = session;
                if fixed_version.is_none() {
                    client.api_version = seed.api_version;
                }
                client.start_pacing();
                return Ok(client);
            }
        }
        let session = client.fetch_token()?;
        *lock(&client.session) = session;
        if fixed_version.is_none() {
            client.api_version = client.negotiate_version()?;
        }
        client.publish();
        client.start_pacing();
        Ok(client)
    }

    /// A shared session as this client's, when its instance URL passes this client's checks.
    fn adopt(&self, seed: &SessionSeed) -> Result<Session, Error> {
        if seed.token.is_empty() || (self.opts.api_version.is_none() && version_key(&seed.api_version).is_none()) {
            return Err(Error::Decode("shared session is incomplete".into()));
        }
        let instance_url = check_base_url(&seed.instance_url, self.opts.allow_insecure_http, self.opts.hosts.as_ref(), "instance_url")?;
        Ok(Session { token: seed.token.clone(), instance_url, org_id: seed.org_id.clone(), user_id: seed.user_id.clone() })
    }

    fn publish(&self) {
        if let Some(share) = &self.share {
            let s = lock(&self.session);
            share.publish(&SessionSeed {
                token: s.token.clone(),
                instance_url: s.instance_url.clone(),
                api_version: self.api_version.clone(),
                org_id: s.org_id.clone(),
                user_id: s.user_id.clone(),
            });
        }
    }

    /// The API version in use, like `62.0`.
    pub fn api_version(&self) -> String {
        self.api_version.clone()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The login URL as checked and normalized (no trailing slash).
    pub fn login_url(&self) -> &str {
        &self.login_url
    }

    pub fn instance_url(&self) -> String {
        lock(&self.session).instance_url.clone()
    }

    /// The current access token, for transports that authenticate themselves (Pub/Sub's
    /// `accesstoken` metadata). Never logged.
    pub(crate) fn access_token(&self) -> Secret {
        lock(&self.session).token.clone()
    }

    pub fn org_id(&self) -> Option<String> {
        lock(&self.session).org_id.clone()
    }

    pub fn user_id(&self) -> Option<String> {
        lock(&self.session).user_id.clone()
    }

    /// Forces a new access token now (normally done automatically).
    pub fn refresh_token(&self) -> Result<(), Error> {
        let _login = lock(&self.login_lock);
        let s = self.fetch_token()?;
        *lock(&self.session) = s;
        self.publish();
        Ok(())
    }

    // ------------------------------------------------------------- session
    // Here rather than in a sibling of `request`: token requests go through the request
    // core like any call, and the core calls back into `relogin` on a 401.

    fn fetch_token(&self) -> Result<Session, Error> {
        let form = self.creds.token_form(&self.login_url)?;
        let url = format!("{}/services/oauth2/token", self.login_url);
        let req = Request {
            method: Method::Post,
            target: Target::Absolute(&url),
            body: Some(("application/x-www-form-urlencoded", form_encode(&form).into_bytes())),
            headers: vec![],
            idempotent: true,
            authenticated: false,
        };
        let resp = self.execute(&req)?;
        let tok: TokenResponse = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("token response: {e}")))?;
        if tok.access_token.is_empty() {
            return Err(Error::Decode("token response has an empty access_token".into()));
        }
        let instance_url = check_base_url(&tok.instance_url, self.opts.allow_insecure_http, self.opts.hosts.as_ref(), "instance_url")?;
        let (org_id, user_id) = tok.id.as_deref().map(ids_from_identity_url).unwrap_or((None, None));
        Ok(Session { token: Secret::new(tok.access_token), instance_url, org_id, user_id })
    }

    /// Re-login after a 401, unless another thread already replaced `stale`.
    fn relogin(&self, stale: &Secret) -> Result<(), Error> {
        // Serialise re-logins; the session lock itself is never held across HTTP.
        let _login = lock(&self.login_lock);
        if lock(&self.session).token != *stale {
            return Ok(());
        }
        // Another process may have met the same expiry and logged in already.
        if let Some(seed) = self.share.as_ref().and_then(|s| s.newer_than(stale)) {
            if let Ok(session) = self.adopt(&seed) {
                *lock(&self.session) = session;
                return Ok(());
            }
        }
        let fresh = self.fetch_token()?;
        *lock(&self.session) = fresh;
        self.publish();
        Ok(())
    }

    fn negotiate_version(&self) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct V {
            version: String,
        }
        let resp = self.execute(&Request {
            method: Method::Get,
            target: Target::Instance("/services/data/".into()),
            body: None,
            headers: vec![],
            idempotent: true,
            authenticated: true,
        })?;
        let versions: Vec<V> = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("GET /services/data/: {e}")))?;
        versions
            .into_iter()
            .filter_map(|v| version_key(&v.version).map(|k| (k, v.version)))
            .max_by_key(|(k, _)| *k)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::Decode("GET /services/data/ listed no API versions".into()))
    }
}

pub(crate) fn check_object(sobject: &str) -> Result<(), Error> {
    if is_valid_identifier(sobject) && !sobject.contains('.') {
        Ok(())
    } else {
        Err(Error::Config(format!("'{sobject}' is not a valid sObject name")))
    }
}

pub(crate) fn check_field(field: &str) -> Result<(), Error> {
    if is_valid_identifier(field) && !field.contains('.') {
        Ok(())
    } else {
        Err(Error::Config(format!("'{field}' is not a valid field name")))
    }
}

#[cfg(test)]
mod tests {
    use super::mock::{self, mock_client};
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_object("Account").is_ok());
        assert!(check_object("Account/../x").is_err());
        assert!(check_object("Account.Name").is_err());
        assert!(check_field("Postgres_Id__c").is_ok());
        assert!(check_field("a b").is_err());
    }

    #[test]
    fn client_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Client>();
    }

    #[test]
    fn options_defaults() {
        let o = ClientOptions::default();
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert_eq!(o.request_timeout, Duration::from_secs(30));
        assert_eq!(o.max_retries, 3);
        assert_eq!(o.max_retry_time, Duration::from_secs(30));
        assert!(!o.allow_insecure_http);
        assert!(o.api_version.is_none());
    }

    #[test]
    fn login_rejects_insecure_and_incomplete_config() {
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, "http://example.com", "cid");
        c.client_secret = Some("sekrit-value".into());
        let e = Client::login(c.clone(), ClientOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(!e.to_string().contains("sekrit"));
        c.client_secret = None;
        assert!(matches!(Client::login(c, ClientOptions::default()).unwrap_err(), Error::Config(_)));
    }

    #[test]
    fn login_negotiates_version_and_reads_ids() {
        let srv = mock::start(|_, _| mock::Reply::Json(200, "", r#"{"totalSize":0,"done":true,"records":[]}"#.into()));
        let c = mock_client(&srv.url, ClientOptions::default());
        assert_eq!(c.api_version(), "62.0");
        assert_eq!(c.org_id().as_deref(), Some("00D000000000001AAA"));
        assert_eq!(c.user_id().as_deref(), Some("005000000000001AAA"));
        c.query("SELECT Id FROM Account WHERE Name = 'a b'").unwrap();
        let seen = srv.seen.lock().unwrap().clone();
        assert_eq!(seen[0].method, "POST");
        assert!(seen[0].body.contains("grant_type=client_credentials") && seen[0].body.contains("client_secret=shh"));
        let q = seen.last().unwrap();
        assert_eq!(q.path, "/services/data/v62.0/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20%3D%20%27a%20b%27");
        assert_eq!(q.auth.as_deref(), Some("Bearer tok1"));
        let st = c.stats();
        assert_eq!((st.api_used, st.api_max), (Some(7), Some(15000)));
        assert_eq!(st.calls, 2, "version list + query (token call not counted)");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("tok1") && !dbg.contains("shh"), "{dbg}");
    }

    #[test]
    fn an_instance_url_outside_the_allowed_hosts_is_never_called() {
        let srv = mock::start_naming(Some("https://evil.example"), |_, _| mock::Reply::Json(200, "", "{}".into()));
        let hosts = HostPolicy::salesforce_and("127.0.0.0/8", "set the allowed hosts").unwrap();
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, srv.url.as_str(), "cid");
        c.client_secret = Some("shh".into());
        let e = Client::login(c, ClientOptions { hosts: Some(hosts), max_retries: 0, ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("instance_url host \"evil.example\" is not a Salesforce domain"), "{e}");
        assert!(e.to_string().contains("set the allowed hosts"), "{e}");
        let paths: Vec<String> = srv.seen.lock().unwrap().iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths, ["/services/oauth2/token"], "only the login was made");
    }

    #[test]
    fn connection_refused_is_transport_error() {
        // Bind then drop a listener to get a port that refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, format!("http://127.0.0.1:{port}"), "cid");
        c.client_secret = Some("sekrit-value".into());
        let opts = ClientOptions { max_retries: 1, max_retry_time: Duration::from_secs(2), ..Default::default() };
        let e = Client::login(c, opts).unwrap_err();
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        assert!(e.is_transient());
        assert!(!e.to_string().contains("sekrit"));
    }

    #[test]
    fn expired_session_relogs_once() {
        let srv = mock::start(|req, _| {
            if req.auth.as_deref() == Some("Bearer tok1") {
                mock::Reply::Json(401, "", r#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#.into())
            } else {
                mock::Reply::Json(204, "", "".into())
            }
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        c.delete("Account", "001000000000001AAA").unwrap();
        let seen = srv.seen.lock().unwrap().clone();
        let tokens = seen.iter().filter(|s| s.path == "/services/oauth2/token").count();
        assert_eq!(tokens, 2);
        assert_eq!(seen.last().unwrap().auth.as_deref(), Some("Bearer tok2"));

        // a server that always says 401: one re-login, then the error
        let srv = mock::start(|_, _| {
            mock::Reply::Json(401, "", r#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#.into())
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        let e = c.delete("Account", "001000000000001AAA").unwrap_err();
        assert!(e.is_invalid_session());
        assert_eq!(srv.seen.lock().unwrap().iter().filter(|s| s.path == "/services/oauth2/token").count(), 2);
    }

    /// One connection's shared session, as a process-local stand-in for shared memory.
    #[derive(Default)]
    struct Shelf(Mutex<Option<SessionSeed>>);

    impl SessionShare for Shelf {
        fn current(&self) -> Option<SessionSeed> {
            lock(&self.0).clone()
        }
        fn newer_than(&self, stale: &Secret) -> Option<SessionSeed> {
            lock(&self.0).clone().filter(|s| s.token != *stale)
        }
        fn publish(&self, seed: &SessionSeed) {
            *lock(&self.0) = Some(seed.clone());
        }
    }

    #[test]
    fn a_shared_session_spares_the_login_and_one_relogin_serves_all() {
        let srv = mock::start(|req, _| {
            if req.auth.as_deref() == Some("Bearer tok1") && req.method == "DELETE" {
                mock::Reply::Json(401, "", r#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#.into())
            } else {
                mock::Reply::Json(204, "", "".into())
            }
        });
        let shelf: Arc<dyn SessionShare> = Arc::new(Shelf::default());
        let creds = || {
            let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, srv.url.as_str(), "cid");
            c.client_secret = Some("shh".into());
            c
        };
        let count = |path: &str| srv.seen.lock().unwrap().iter().filter(|s| s.path == path).count();
        let a = Client::login_shared(creds(), ClientOptions::default(), Some(shelf.clone())).unwrap();
        assert_eq!((count("/services/oauth2/token"), count("/services/data/")), (1, 1));
        let b = Client::login_shared(creds(), ClientOptions::default(), Some(shelf.clone())).unwrap();
        assert_eq!((count("/services/oauth2/token"), count("/services/data/")), (1, 1), "the second client made no request");
        assert_eq!((b.api_version(), b.instance_url()), (a.api_version(), a.instance_url()));
        assert_eq!(b.stats().calls, 0);

        // tok1 expires: the first to meet it logs in, the other takes the new token.
        a.delete("Account", "001000000000001AAA").unwrap();
        b.delete("Account", "001000000000001AAA").unwrap();
        assert_eq!(count("/services/oauth2/token"), 2, "one re-login for both clients");
        let last = srv.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.auth.as_deref(), Some("Bearer tok2"));
    }

    #[test]
    fn a_shared_instance_url_outside_the_allowed_hosts_is_not_taken() {
        let srv = mock::start(|_, _| mock::Reply::Json(204, "", "".into()));
        let seed = SessionSeed {
            token: Secret::new("stolen".into()),
            instance_url: "https://evil.example".into(),
            api_version: "62.0".into(),
            org_id: None,
            user_id: None,
        };
        let shelf: Arc<dyn SessionShare> = Arc::new(Shelf(Mutex::new(Some(seed))));
        let hosts = HostPolicy::salesforce_and("127.0.0.0/8", "set the allowed hosts").unwrap();
        let mut c = Credentials::new(crate::AuthFlow::ClientCredentials, srv.url.as_str(), "cid");
        c.client_secret = Some("shh".into());
        let client = Client::login_shared(c, ClientOptions { hosts: Some(hosts), ..Default::default() }, Some(shelf.clone())).unwrap();
        assert_eq!(client.instance_url(), srv.url, "logged in itself");
        assert_eq!(shelf.current().unwrap().instance_url, srv.url, "and shared its own session");
    }
}
