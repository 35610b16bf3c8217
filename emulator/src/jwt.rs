//! OAuth 2.0 JWT bearer flow: the connected app's certificate (or public key) and assertion
//! checks with Salesforce's error shapes.
//!
//! The default certificate is the bundled TEST key pair in `emulator/testdata/`
//! (`jwt-test-cert.pem`; its private key `jwt-test-key.pem` is public knowledge — test only).

use serde_json::Value;

/// The bundled test certificate (public half of `testdata/jwt-test-key.pem`).
pub const BUNDLED_CERT_PEM: &str = include_str!("../testdata/jwt-test-cert.pem");

/// Audiences Salesforce accepts for the token endpoint (besides the emulator's own URL).
pub const LOGIN_AUDIENCES: [&str; 2] = ["https://login.salesforce.com", "https://test.salesforce.com"];

/// The connected app's RSA public key.
#[derive(Clone)]
pub struct JwtKey {
    key: jsonwebtoken::DecodingKey,
}

impl JwtKey {
    /// From PEM text: `CERTIFICATE`, `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<JwtKey, String> {
        jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
            .map(|key| JwtKey { key })
            .map_err(|e| format!("expected an RSA key as PEM CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY ({e})"))
    }

    pub fn bundled() -> JwtKey {
        JwtKey::from_pem(BUNDLED_CERT_PEM).expect("bundled JWT test certificate")
    }
}

/// Auth state beyond access tokens: the connected app's JWT key and issued refresh tokens
/// (refresh tokens survive `reset`, like sessions, and never expire).
pub struct AuthStore {
    pub jwt_key: JwtKey,
    pub refresh_tokens: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl Default for AuthStore {
    fn default() -> Self {
        AuthStore { jwt_key: JwtKey::bundled(), refresh_tokens: Default::default() }
    }
}

/// Why an assertion was refused: (OAuth `error`, `error_description`), as Salesforce words them.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub &'static str, pub &'static str);

pub const INVALID_ASSERTION: Refusal = Refusal("invalid_grant", "invalid assertion");
pub const BAD_AUDIENCE: Refusal = Refusal("invalid_grant", "audience is invalid");
pub const EXPIRED: Refusal = Refusal("invalid_grant", "expired access/refresh token");
pub const NOT_APPROVED: Refusal = Refusal("invalid_grant", "user hasn't approved this consumer");
pub const BAD_CLIENT: Refusal = Refusal("invalid_client_id", "client identifier invalid");

/// Checks an assertion: RS256 signature, then `iss` (client id), `aud`, `exp` (seconds, as a
/// number or a numeric string, must be in the future on the emulator clock) and `sub` (username).
/// `own_audiences` are the emulator's own base URLs (http/https for the request's Host).
pub fn verify(
    assertion: &str,
    key: &JwtKey,
    client_id: &str,
    username: &str,
    own_audiences: &[String],
    now_ms: i64,
) -> Result<(), Refusal> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // Claims are checked below, with Salesforce's wording and its tolerance for string `exp`.
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(assertion.trim(), &key.key, &v).map_err(|_| INVALID_ASSERTION)?;
    let claims = data.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(client_id) {
        return Err(BAD_CLIENT);
    }
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        LOGIN_AUDIENCES.iter().any(|l| l.eq_ignore_ascii_case(a))
            || own_audiences.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(a))
    };
    let aud_matches = match claims.get("aud") {
        Some(Value::String(a)) => aud_ok(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !aud_matches {
        return Err(BAD_AUDIENCE);
    }
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or(INVALID_ASSERTION)?;
    if (exp * 1000.0) as i64 <= now_ms {
        return Err(EXPIRED);
    }
    if !claims.get("sub").and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(username)) {
        return Err(NOT_APPROVED);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_cert_and_public_key_verify_the_test_keys_assertions() {
        let private = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../testdata/jwt-test-key.pem")).unwrap();
        let claims = serde_json::json!({"iss": "app", "sub": "u@x", "aud": "https://login.salesforce.com", "exp": 4_102_444_800u64});
        let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &private).unwrap();
        for key in [JwtKey::bundled(), JwtKey::from_pem(include_str!("../testdata/jwt-test-pubkey.pem")).unwrap()] {
            assert_eq!(verify(&jwt, &key, "app", "u@x", &[], 0), Ok(()));
        }
        assert!(JwtKey::from_pem("nope").is_err());
    }
}
