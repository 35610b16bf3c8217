//! OAuth 2.0 JWT bearer flow: the connected app's certificate (or public key) and assertion
//! checks with Salesforce's error shapes.
//!
//! The default certificate is the bundled TEST key pair in `emulator/testdata/`
//! (`jwt-test-cert.pem`; its private key `jwt-test-key.pem` is public knowledge — test only).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use serde_json::Value;

/// The bundled test certificate (public half of `testdata/jwt-test-key.pem`).
pub const BUNDLED_CERT_PEM: &str = include_str!("../testdata/jwt-test-cert.pem");

/// Audiences Salesforce accepts for the token endpoint (besides the emulator's own URL).
pub const LOGIN_AUDIENCES: [&str; 2] = ["https://login.salesforce.com", "https://test.salesforce.com"];

/// A verified-on-demand RSA public key (PKCS#1 `RSAPublicKey` DER).
#[derive(Clone)]
pub struct JwtKey {
    rsa_der: Vec<u8>,
}

impl JwtKey {
    /// From PEM text: `CERTIFICATE`, `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<JwtKey, String> {
        if let Ok(cert) = CertificateDer::from_pem_slice(pem.as_bytes()) {
            let spki = spki_from_cert(&cert).ok_or("certificate has no readable subjectPublicKeyInfo")?;
            return rsa_from_spki(spki).map(|rsa_der| JwtKey { rsa_der });
        }
        if let Ok(spki) = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()) {
            return rsa_from_spki(&spki).map(|rsa_der| JwtKey { rsa_der });
        }
        if let Some(der) = pem_block(pem, "RSA PUBLIC KEY") {
            return Ok(JwtKey { rsa_der: der });
        }
        Err("expected a PEM CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY".into())
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
    let dk = jsonwebtoken::DecodingKey::from_rsa_der(&key.rsa_der);
    let data = jsonwebtoken::decode::<Value>(assertion.trim(), &dk, &v).map_err(|_| INVALID_ASSERTION)?;
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

fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    crate::routes::auth::base64_decode(&b64)
}

/// One DER TLV at `pos`: (tag, content start, content end).
fn tlv(d: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *d.get(pos)?;
    let first = *d.get(pos + 1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(pos + 2 + i)? as usize;
        }
        (len, pos + 2 + n)
    };
    let end = start.checked_add(len)?;
    (end <= d.len()).then_some((tag, start, end))
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, signature,
/// issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
fn spki_from_cert(d: &[u8]) -> Option<&[u8]> {
    let (_, cstart, _) = tlv(d, 0)?;
    let (ttag, tstart, _) = tlv(d, cstart)?;
    if ttag != 0x30 {
        return None;
    }
    let mut pos = tstart;
    let (tag, _, end) = tlv(d, pos)?;
    if tag == 0xa0 {
        pos = end;
    }
    // serial, signature, issuer, validity, subject
    for _ in 0..5 {
        pos = tlv(d, pos)?.2;
    }
    let (tag, _, end) = tlv(d, pos)?;
    (tag == 0x30).then(|| &d[pos..end])
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { rsaEncryption, NULL }, BIT STRING }
fn rsa_from_spki(d: &[u8]) -> Result<Vec<u8>, String> {
    const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let parse = || {
        let (_, start, _) = tlv(d, 0)?;
        let (atag, astart, aend) = tlv(d, start)?;
        let (otag, ostart, oend) = tlv(d, astart)?;
        if atag != 0x30 || otag != 0x06 || &d[ostart..oend] != RSA_OID {
            return None;
        }
        let (btag, bstart, bend) = tlv(d, aend)?;
        (btag == 0x03 && bend > bstart && d[bstart] == 0).then(|| d[bstart + 1..bend].to_vec())
    };
    parse().ok_or_else(|| "the public key is not an RSA key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_cert_and_public_key_agree() {
        let a = JwtKey::bundled();
        let b = JwtKey::from_pem(include_str!("../testdata/jwt-test-pubkey.pem")).unwrap();
        assert_eq!(a.rsa_der, b.rsa_der);
        assert!(JwtKey::from_pem("nope").is_err());
    }
}
