mod common;
use common::Org;
use serde_json::json;

#[test]
fn client_credentials_and_password_flows() {
    let org = Org::start();
    let r = org.form(
        "/services/oauth2/token",
        &[("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")],
    );
    assert_eq!(r.status, 200);
    let b = &r.body;
    assert!(b["access_token"].as_str().unwrap().starts_with("00D"));
    assert!(b["access_token"].as_str().unwrap().contains("!AQ"));
    assert_eq!(b["instance_url"], json!(org.base));
    assert!(b["id"].as_str().unwrap().starts_with(&format!("{}/id/00D", org.base)));
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["scope"], "api");
    assert!(b["issued_at"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(b["signature"].as_str().unwrap().ends_with('='));

    let pw = org.form(
        "/services/oauth2/token",
        &[
            ("grant_type", "password"),
            ("client_id", "sfsync-local"),
            ("client_secret", "sfsync-local-secret"),
            ("username", "integration@sfsync.local"),
            ("password", "sfsync"),
        ],
    );
    assert_eq!(pw.status, 200, "{:?}", pw.body);

    // HTTP Basic client authentication.
    let basic = org.form_basic(
        "/services/oauth2/token",
        &[("grant_type", "client_credentials")],
        "Basic c2ZzeW5jLWxvY2FsOnNmc3luYy1sb2NhbC1zZWNyZXQ=",
    );
    assert_eq!(basic.status, 200, "{:?}", basic.body);
    let t = basic.body["access_token"].as_str().unwrap();
    let r = org.get_with("sobjects", &[("Authorization", &format!("Bearer {t}"))]);
    assert_eq!(r.status, 200);
}

#[test]
fn token_errors() {
    let org = Org::start();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            &[
                ("grant_type", "password"),
                ("client_id", "sfsync-local"),
                ("client_secret", "sfsync-local-secret"),
                ("username", "integration@sfsync.local"),
                ("password", "nope"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", "x"), ("client_secret", "y")],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "y")],
            "invalid_client",
            "invalid client credentials",
        ),
        (&[("grant_type", "authorization_code"), ("client_id", "sfsync-local")], "unsupported_grant_type", "grant type not supported"),
    ];
    for (form, err, desc) in cases {
        let r = org.form("/services/oauth2/token", form);
        assert_eq!(r.status, 400);
        assert_eq!(r.body, json!({"error": err, "error_description": desc}));
    }
}

#[test]
fn sessions_required_and_expire() {
    let mut org = Org::with(sf_emulator::Config { token_ttl_secs: 60, ..Default::default() });
    assert_eq!(org.get("sobjects").status, 200);
    let missing = org.get_with("sobjects", &[]);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body, json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]));
    assert_eq!(org.get_with("sobjects", &[("Authorization", "Bearer bogus")]).status, 401);
    // Moving the emulator clock past the TTL expires the session.
    org.admin("POST", "clock", json!({"advance_ms": 61_000}));
    let r = org.get("sobjects");
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "INVALID_SESSION_ID");
    org.token.clear();
}
