//! Credentials and the OAuth 2.0 flows (client credentials, username-password,
//! JWT bearer, refresh token).

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::error::Error;

/// A secret string. `Debug` and `Display` print `***`; only [`Secret::expose`]
/// gives the value back.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

/// The OAuth flow used to obtain an access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthFlow {
    ClientCredentials,
    Password,
    Jwt,
    RefreshToken,
}

impl AuthFlow {
    pub const ALL: [AuthFlow; 4] = [AuthFlow::ClientCredentials, AuthFlow::Password, AuthFlow::Jwt, AuthFlow::RefreshToken];

    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFlow::ClientCredentials => "client_credentials",
            AuthFlow::Password => "password",
            AuthFlow::Jwt => "jwt",
            AuthFlow::RefreshToken => "refresh_token",
        }
    }

    /// The OAuth `grant_type` sent to the token endpoint.
    pub fn grant_type(&self) -> &'static str {
        match self {
            AuthFlow::ClientCredentials => "client_credentials",
            AuthFlow::Password => "password",
            AuthFlow::Jwt => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            AuthFlow::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthFlow {
    type Err = Error;

    /// Accepts `client_credentials`, `password`, `jwt`, `refresh_token`
    /// (case-insensitive, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<AuthFlow, Error> {
        let norm = s.trim().to_ascii_lowercase();
        AuthFlow::ALL.into_iter().find(|f| f.as_str() == norm).ok_or_else(|| {
            Error::Config(format!("unknown auth_flow '{}': expected one of client_credentials, password, jwt, refresh_token", s))
        })
    }
}

/// An org's login data. `Debug` never shows secrets.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, a My Domain URL or the emulator.
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`) for the JWT flow.
    pub private_key: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub flow: AuthFlow,
}

impl Credentials {
    /// Credentials for a flow with every optional part empty.
    pub fn new(flow: AuthFlow, login_url: impl Into<String>, client_id: impl Into<String>) -> Credentials {
        Credentials {
            login_url: login_url.into(),
            client_id: client_id.into(),
            client_secret: None,
            username: None,
            password: None,
            private_key: None,
            refresh_token: None,
            flow,
        }
    }

    /// Checks that the parts the flow needs are present (not that they are right).
    pub fn validate(&self) -> Result<(), Error> {
        fn missing(flow: AuthFlow, what: &str) -> Error {
            Error::Config(format!("auth_flow '{}' requires {what}", flow.as_str()))
        }
        let present = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
        let has_user = self.username.as_ref().is_some_and(|u| !u.trim().is_empty());
        if self.login_url.trim().is_empty() {
            return Err(Error::Config("login_url is empty".into()));
        }
        if self.client_id.trim().is_empty() {
            return Err(missing(self.flow, "client_id"));
        }
        match self.flow {
            AuthFlow::ClientCredentials => {
                if !present(&self.client_secret) {
                    return Err(missing(self.flow, "client_secret"));
                }
            }
            AuthFlow::Password => {
                if !has_user {
                    return Err(missing(self.flow, "username"));
                }
                if !present(&self.password) {
                    return Err(missing(self.flow, "password"));
                }
            }
            AuthFlow::Jwt => {
                if !has_user {
                    return Err(missing(self.flow, "username"));
                }
                if !present(&self.private_key) {
                    return Err(missing(self.flow, "private_key"));
                }
            }
            AuthFlow::RefreshToken => {
                if !present(&self.refresh_token) {
                    return Err(missing(self.flow, "refresh_token"));
                }
            }
        }
        Ok(())
    }

    /// Form fields for `POST {login_url}/services/oauth2/token`.
    /// Contains secrets: never log the result.
    pub(crate) fn token_form(&self, login_url: &str) -> Result<Vec<(&'static str, String)>, Error> {
        self.validate()?;
        let mut form: Vec<(&'static str, String)> = vec![("grant_type", self.flow.grant_type().to_string())];
        let secret = self.client_secret.as_ref().filter(|s| !s.is_empty());
        match self.flow {
            AuthFlow::ClientCredentials => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.map(|s| s.expose().to_string()).unwrap_or_default()));
            }
            AuthFlow::Password => {
                form.push(("client_id", self.client_id.clone()));
                if let Some(s) = secret {
                    form.push(("client_secret", s.expose().to_string()));
                }
                form.push(("username", self.username.clone().unwrap_or_default()));
                form.push(("password", self.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default()));
            }
            AuthFlow::RefreshToken => {
                form.push(("client_id", self.client_id.clone()));
                if let Some(s) = secret {
                    form.push(("client_secret", s.expose().to_string()));
                }
                form.push(("refresh_token", self.refresh_token.as_ref().map(|p| p.expose().to_string()).unwrap_or_default()));
            }
            AuthFlow::Jwt => {
                let assertion = jwt_assertion(
                    &self.client_id,
                    self.username.as_deref().unwrap_or_default(),
                    login_url,
                    self.private_key.as_ref().map(|k| k.expose()).unwrap_or_default(),
                    SystemTime::now(),
                )?;
                form.push(("assertion", assertion));
            }
        }
        Ok(form)
    }
}

/// Successful token endpoint response.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub instance_url: String,
    #[serde(default)]
    pub id: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .finish()
    }
}

/// Org and user ids from the identity URL `https://login.../id/00D.../005...`.
pub(crate) fn ids_from_identity_url(id: &str) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = id.trim_end_matches('/').split('/').collect();
    match parts.iter().rposition(|p| *p == "id") {
        Some(i) if parts.len() >= i + 3 => {
            let org = parts[i + 1];
            let user = parts[i + 2];
            let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
            (ok(org).then(|| org.to_string()), ok(user).then(|| user.to_string()))
        }
        _ => (None, None),
    }
}

#[derive(serde::Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

/// Builds the RS256 JWT bearer assertion (iss=client_id, sub=username,
/// aud=login URL (see [`jwt_audience`]), exp=now+180s).
pub(crate) fn jwt_assertion(client_id: &str, username: &str, audience: &str, pem: &str, now: SystemTime) -> Result<String, Error> {
    let key = signing_key(pem)?;
    let exp = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 180;
    let aud = jwt_audience(audience);
    let claims = JwtClaims { iss: client_id, sub: username, aud: &aud, exp };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .map_err(|e| Error::Config(format!("cannot sign the JWT assertion with private_key: {e}")))
}

/// The `aud` claim for a login URL. Salesforce rejects My Domain hosts as the
/// audience: they map to `https://login.salesforce.com` (production) or
/// `https://test.salesforce.com` (sandboxes). Any other URL (the emulator,
/// login/test themselves, Experience Cloud sites) is used as given.
pub(crate) fn jwt_audience(login_url: &str) -> String {
    let url = login_url.trim().trim_end_matches('/');
    let host = url.split_once("://").map_or(url, |(_, rest)| rest).split(['/', ':']).next().unwrap_or_default().to_ascii_lowercase();
    if host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".into()
    } else if host.ends_with(".my.salesforce.com") {
        "https://login.salesforce.com".into()
    } else {
        url.to_string()
    }
}

/// The RSA private key of a PEM `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8).
/// Error messages never contain key material.
pub(crate) fn signing_key(pem: &str) -> Result<jsonwebtoken::EncodingKey, Error> {
    let bad = |why: &str| Error::Config(format!("private_key is not a usable RSA private key: {why}"));
    if pem.contains("ENCRYPTED") || pem.contains("Proc-Type:") {
        return Err(bad("encrypted PEM keys are not supported"));
    }
    jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| bad("expected an unencrypted PEM 'RSA PRIVATE KEY' (PKCS#1) or 'PRIVATE KEY' (PKCS#8) holding an RSA key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
        let mut c = Credentials::new(AuthFlow::Password, "https://login.salesforce.com", "cid");
        c.client_secret = Some("topsecret1".into());
        c.password = Some("topsecret2".into());
        c.private_key = Some("topsecret3".into());
        c.refresh_token = Some("topsecret4".into());
        c.username = Some("u@x".into());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("u@x"));
    }

    #[test]
    fn flow_parsing() {
        assert_eq!("jwt".parse::<AuthFlow>().unwrap(), AuthFlow::Jwt);
        assert_eq!(" Client_Credentials ".parse::<AuthFlow>().unwrap(), AuthFlow::ClientCredentials);
        for f in AuthFlow::ALL {
            assert_eq!(f.as_str().parse::<AuthFlow>().unwrap(), f);
        }
        let e = "oauth".parse::<AuthFlow>().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("'oauth'") && msg.contains("client_credentials") && msg.contains("refresh_token"), "{msg}");
        assert!(matches!(e, Error::Config(_)));
    }

    #[test]
    fn validation_per_flow() {
        let mut c = Credentials::new(AuthFlow::ClientCredentials, "https://x", "cid");
        assert!(c.validate().unwrap_err().to_string().contains("client_secret"));
        c.client_secret = Some("s".into());
        c.validate().unwrap();
        c.flow = AuthFlow::Password;
        assert!(c.validate().unwrap_err().to_string().contains("username"));
        c.username = Some("u".into());
        assert!(c.validate().unwrap_err().to_string().contains("password"));
        c.password = Some("p".into());
        c.validate().unwrap();
        let form = c.token_form("https://x").unwrap();
        let keys: Vec<&str> = form.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["grant_type", "client_id", "client_secret", "username", "password"]);
        c.flow = AuthFlow::Jwt;
        assert!(c.validate().unwrap_err().to_string().contains("private_key"));
        c.flow = AuthFlow::RefreshToken;
        assert!(c.validate().unwrap_err().to_string().contains("refresh_token"));
        c.refresh_token = Some("r".into());
        let form = c.token_form("https://x").unwrap();
        assert_eq!(form[0], ("grant_type", "refresh_token".to_string()));
        c.client_id = " ".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn identity_url_ids() {
        assert_eq!(
            ids_from_identity_url("https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA"),
            (Some("00D000000000001AAA".into()), Some("005000000000001AAA".into()))
        );
        assert_eq!(ids_from_identity_url("http://127.0.0.1:1/id/00Dx/005y/"), (Some("00Dx".into()), Some("005y".into())));
        assert_eq!(ids_from_identity_url("garbage"), (None, None));
    }

    #[test]
    fn jwt_audiences() {
        assert_eq!(jwt_audience("https://login.salesforce.com/"), "https://login.salesforce.com");
        assert_eq!(jwt_audience("https://test.salesforce.com"), "https://test.salesforce.com");
        assert_eq!(jwt_audience("https://acme.my.salesforce.com"), "https://login.salesforce.com");
        assert_eq!(jwt_audience("https://acme--dev.sandbox.my.salesforce.com/"), "https://test.salesforce.com");
        assert_eq!(jwt_audience("http://127.0.0.1:4321"), "http://127.0.0.1:4321");
    }

    #[test]
    fn bad_pem_is_config_error_without_key_material() {
        let Err(e) = signing_key("-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n") else { panic!() };
        assert!(matches!(e, Error::Config(_)));
        assert!(!e.to_string().contains("c2VjcmV0"));
        assert!(signing_key("not a key").is_err());
        let Err(e) = signing_key("-----BEGIN ENCRYPTED PRIVATE KEY-----\nc2VjcmV0\n-----END ENCRYPTED PRIVATE KEY-----\n") else {
            panic!()
        };
        assert!(e.to_string().contains("encrypted"), "{e}");
    }

    #[test]
    fn jwt_assertion_with_generated_keys() {
        // Needs the openssl CLI to generate keys; skip silently if absent.
        let dir = std::env::temp_dir().join(format!("sf-jwt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pkcs8 = dir.join("k8.pem");
        let pkcs1 = dir.join("k1.pem");
        let ok = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&pkcs8)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("openssl not available; skipping JWT signing test");
            return;
        }
        let ok1 = std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&pkcs8)
            .arg("-out")
            .arg(&pkcs1)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        for path in [Some(&pkcs8), ok1.then_some(&pkcs1)].into_iter().flatten() {
            let pem = std::fs::read_to_string(path).unwrap();
            let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
            let jwt = jwt_assertion("cid", "user@x", "https://login.salesforce.com/", &pem, now).unwrap();
            let parts: Vec<&str> = jwt.split('.').collect();
            assert_eq!(parts.len(), 3);
            use base64::Engine as _;
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&claims).unwrap();
            assert_eq!(v["iss"], "cid");
            assert_eq!(v["sub"], "user@x");
            assert_eq!(v["aud"], "https://login.salesforce.com");
            assert_eq!(v["exp"], 1_700_000_180u64);
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
            assert!(String::from_utf8(header).unwrap().contains("RS256"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
