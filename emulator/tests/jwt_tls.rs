//! JWT bearer and refresh-token flows, the token signature, and HTTPS with the bundled test cert.
mod common;
use common::Org;
use serde_json::{json, Value};
use sf_emulator::routes::auth::{base64_decode, base64_encode};

const KEY_PEM: &str = include_str!("../testdata/jwt-test-key.pem");
const TOKEN: &str = "/services/oauth2/token";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn b64url(data: &[u8]) -> String {
    base64_encode(data).replace('+', "-").replace('/', "_").trim_end_matches('=').to_string()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&body).unwrap()
}

/// An RS256 JWT signed with the bundled test key.
fn sign(claims: &Value) -> String {
    let key = ring::signature::RsaKeyPair::from_pkcs8(&pem_der(KEY_PEM)).unwrap();
    let input = format!("{}.{}", b64url(br#"{"alg":"RS256"}"#), b64url(claims.to_string().as_bytes()));
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", b64url(&sig))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(aud: &str, exp: Value) -> Value {
    json!({"iss": "sfsync-local", "sub": "integration@sfsync.local", "aud": aud, "exp": exp})
}

fn jwt_login(org: &Org, assertion: &str) -> common::Resp {
    org.form(TOKEN, &[("grant_type", JWT_GRANT), ("assertion", assertion)])
}

#[test]
fn jwt_bearer_accepts_good_assertions() {
    let org = Org::start();
    let exp = now_secs() + 180;
    for (aud, exp) in [
        ("https://login.salesforce.com", json!(exp)),
        ("https://test.salesforce.com/", json!(exp)),
        (org.base.as_str(), json!(exp)),
        ("https://login.salesforce.com", json!(exp.to_string())),
    ] {
        let r = jwt_login(&org, &sign(&claims(aud, exp.clone())));
        assert_eq!(r.status, 200, "aud {aud} exp {exp}: {:?}", r.body);
        let b = &r.body;
        assert_eq!(b["instance_url"], json!(org.base));
        assert_eq!(b["token_type"], "Bearer");
        assert!(b.get("refresh_token").is_none(), "JWT flow issues no refresh token");
        let t = b["access_token"].as_str().unwrap();
        assert_eq!(org.get_with("sobjects", &[("Authorization", &format!("Bearer {t}"))]).status, 200);
    }
}

#[test]
fn jwt_bearer_refusals_use_salesforce_errors() {
    let org = Org::start();
    let exp = now_secs() + 180;
    let good = sign(&claims("https://login.salesforce.com", json!(exp)));
    // Tampered payload: the signature no longer matches.
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims = b64url(
        json!({"iss": "sfsync-local", "sub": "integration@sfsync.local",
        "aud": "https://login.salesforce.com", "exp": exp + 100_000})
        .to_string()
        .as_bytes(),
    );
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let mut other_user = claims("https://login.salesforce.com", json!(exp));
    other_user["sub"] = json!("someone@else.invalid");
    let mut other_app = claims("https://login.salesforce.com", json!(exp));
    other_app["iss"] = json!("not-our-app");
    let cases: Vec<(String, &str, &str)> = vec![
        (forged, "invalid_grant", "invalid assertion"),
        ("not.a.jwt".into(), "invalid_grant", "invalid assertion"),
        (sign(&claims("https://login.salesforce.com", json!(now_secs() - 10))), "invalid_grant", "expired access/refresh token"),
        (
            sign(&claims("https://login.salesforce.com", json!((now_secs() - 10).to_string()))),
            "invalid_grant",
            "expired access/refresh token",
        ),
        (sign(&claims("https://evil.example.com", json!(exp))), "invalid_grant", "audience is invalid"),
        (sign(&other_user), "invalid_grant", "user hasn't approved this consumer"),
        (sign(&other_app), "invalid_client_id", "client identifier invalid"),
    ];
    for (assertion, err, desc) in cases {
        let r = jwt_login(&org, &assertion);
        assert_eq!(r.status, 400, "{desc}");
        assert_eq!(r.body, json!({"error": err, "error_description": desc}));
    }
    // The emulator clock applies: moving it past exp expires a good assertion.
    org.admin("POST", "clock", json!({"advance_ms": 200_000}));
    let r = jwt_login(&org, &good);
    assert_eq!(r.body["error_description"], "expired access/refresh token");
}

#[test]
fn password_flow_refresh_token_round_trip() {
    let org = Org::start();
    let pw = org.form(
        TOKEN,
        &[
            ("grant_type", "password"),
            ("client_id", "sfsync-local"),
            ("client_secret", "sfsync-local-secret"),
            ("username", "integration@sfsync.local"),
            ("password", "sfsync"),
        ],
    );
    assert_eq!(pw.status, 200, "{:?}", pw.body);
    let rt = pw.body["refresh_token"].as_str().expect("refresh_token").to_string();
    for form in [
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", "sfsync-local"),
            ("client_secret", "sfsync-local-secret"),
            ("refresh_token", rt.as_str()),
        ],
        vec![("grant_type", "refresh_token"), ("client_id", "sfsync-local"), ("refresh_token", rt.as_str())],
    ] {
        let r = org.form(TOKEN, &form);
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(r.body.get("refresh_token").is_none());
        let t = r.body["access_token"].as_str().unwrap();
        assert_eq!(org.get_with("sobjects", &[("Authorization", &format!("Bearer {t}"))]).status, 200);
    }
    let bad = org.form(TOKEN, &[("grant_type", "refresh_token"), ("client_id", "sfsync-local"), ("refresh_token", "bogus")]);
    assert_eq!(
        (bad.status, bad.body.clone()),
        (400, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}))
    );
    let wrong_app = org.form(TOKEN, &[("grant_type", "refresh_token"), ("client_id", "x"), ("refresh_token", rt.as_str())]);
    assert_eq!(wrong_app.body["error"], "invalid_client_id");
    // Refresh tokens survive a reset (like sessions).
    org.admin("POST", "reset", json!({}));
    let r = org.form(TOKEN, &[("grant_type", "refresh_token"), ("client_id", "sfsync-local"), ("refresh_token", rt.as_str())]);
    assert_eq!(r.status, 200);
}

#[test]
fn token_signature_is_hmac_of_id_and_issued_at() {
    let org = Org::start();
    let r =
        org.form(TOKEN, &[("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")]);
    let b = &r.body;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"sfsync-local-secret");
    let msg = format!("{}{}", b["id"].as_str().unwrap(), b["issued_at"].as_str().unwrap());
    assert_eq!(b["signature"].as_str().unwrap(), base64_encode(ring::hmac::sign(&key, msg.as_bytes()).as_ref()));
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    let mut want = vec!["access_token", "id", "instance_url", "issued_at", "scope", "signature", "token_type"];
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn jwt_cert_option_overrides_the_key() {
    // A public key file (instead of the certificate) works the same way.
    let dir = env!("CARGO_MANIFEST_DIR");
    let org = Org::with(sf_emulator::Config { jwt_cert: Some(format!("{dir}/testdata/jwt-test-pubkey.pem").into()), ..Default::default() });
    let r = jwt_login(&org, &sign(&claims("https://login.salesforce.com", json!(now_secs() + 60))));
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A certificate for another key refuses the bundled key's assertions.
    let other = sf_emulator::Config { jwt_cert: Some(format!("{dir}/testdata/tls-test-cert.pem").into()), ..Default::default() };
    let org = Org::with(other);
    let r = jwt_login(&org, &sign(&claims("https://login.salesforce.com", json!(now_secs() + 60))));
    assert_eq!(r.body["error_description"], "invalid assertion");
    assert!(sf_emulator::build_state(sf_emulator::Config { jwt_cert: Some("/nonexistent.pem".into()), ..Default::default() }).is_err());
}

#[test]
fn https_with_the_bundled_test_cert() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let cfg = sf_emulator::Config {
        tls_cert: Some(format!("{dir}/testdata/tls-test-cert.pem").into()),
        tls_key: Some(format!("{dir}/testdata/tls-test-key.pem").into()),
        ..Default::default()
    };
    let server = sf_emulator::spawn(cfg).unwrap();
    let base = server.base_url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca = std::fs::read(format!("{dir}/testdata/tls-test-ca.pem")).unwrap();
    let ca = ureq::tls::Certificate::from_pem(&ca).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[ca])).build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().into();
    for host in [base.clone(), base.replace("127.0.0.1", "localhost")] {
        let mut r = agent
            .post(format!("{host}/services/oauth2/token"))
            .send_form([("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")])
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(v["instance_url"], json!(host));
        let t = v["access_token"].as_str().unwrap();
        let r = agent.get(format!("{host}/services/data/v62.0/sobjects")).header("Authorization", format!("Bearer {t}")).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // Without the test CA the handshake fails (the cert is not publicly trusted).
    let strict: ureq::Agent = ureq::Agent::config_builder().build().into();
    assert!(strict.get(format!("{base}/services/data/")).call().is_err());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(5))).build().into();
    assert!(plain.get(base.replace("https://", "http://") + "/services/data/").call().is_err());
}
