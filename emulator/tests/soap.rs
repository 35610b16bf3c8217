//! SOAP API login (partner and enterprise endpoints) over HTTP.
mod common;

use common::Org;

fn envelope(user: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
  <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{user}</n1:username><n1:password>{password}</n1:password></n1:login></env:Body>
</env:Envelope>"#
    )
}

fn soap(org: &Org, path: &str, body: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent
        .post(format!("{}{path}", org.base))
        .header("Content-Type", "text/xml")
        .header("SOAPAction", "login")
        .send(body)
        .expect("http");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), ct, r.body_mut().read_to_string().unwrap())
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("<{tag}> missing in {xml}")) + open.len();
    &xml[start..start + xml[start..].find(&format!("</{tag}>")).unwrap()]
}

#[test]
fn partner_login_returns_a_session_that_works_on_rest() {
    let mut org = Org::start();
    let (status, ct, xml) = soap(&org, "/services/Soap/u/62.0", &envelope("integration@sfsync.local", "sfsync"));
    assert_eq!(status, 200, "{xml}");
    assert_eq!(ct, "text/xml;charset=UTF-8");
    assert!(xml.contains("xmlns=\"urn:partner.soap.sforce.com\""), "{xml}");
    let org_id = between(&xml, "organizationId").to_string();
    assert!(org_id.starts_with("00D"));
    assert_eq!(between(&xml, "serverUrl"), format!("{}/services/Soap/u/62.0/{org_id}", org.base));
    assert_eq!(between(&xml, "metadataServerUrl"), format!("{}/services/Soap/m/62.0/{org_id}", org.base));
    assert_eq!(between(&xml, "passwordExpired"), "false");
    assert_eq!(between(&xml, "sandbox"), "false");
    assert_eq!(between(&xml, "userName"), "integration@sfsync.local");
    assert!(between(&xml, "profileId").starts_with("00e"));
    let user_id = between(&xml, "userId").to_string();

    org.token = between(&xml, "sessionId").to_string();
    let me = org.query(&format!("SELECT Username FROM User WHERE Id = '{user_id}'"));
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["records"][0]["Username"], "integration@sfsync.local");
}

#[test]
fn enterprise_login_and_server_url_with_org_id() {
    let org = Org::start();
    let (status, _, xml) = soap(&org, "/services/Soap/c/58.0", &envelope("integration@sfsync.local", "sfsync"));
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("xmlns=\"urn:enterprise.soap.sforce.com\""), "{xml}");
    let server_url = between(&xml, "serverUrl").to_string();
    assert!(server_url.contains("/services/Soap/c/58.0/00D"), "{server_url}");
    // Clients post later calls to serverUrl; login there works too.
    let path = server_url.strip_prefix(&org.base).unwrap();
    assert_eq!(soap(&org, path, &envelope("integration@sfsync.local", "sfsync")).0, 200);
}

#[test]
fn bad_credentials_get_the_invalid_login_fault() {
    let org = Org::start();
    for (user, password) in [("integration@sfsync.local", "wrong"), ("someone@else", "sfsync"), ("integration@sfsync.local", "")] {
        let (status, ct, xml) = soap(&org, "/services/Soap/u/62.0", &envelope(user, password));
        assert_eq!(status, 500, "{xml}");
        assert_eq!(ct, "text/xml;charset=UTF-8");
        assert_eq!(between(&xml, "faultcode"), "sf:INVALID_LOGIN");
        assert_eq!(between(&xml, "faultstring"), "INVALID_LOGIN: Invalid username, password, security token; or user locked out.");
        assert_eq!(between(&xml, "sf:exceptionCode"), "INVALID_LOGIN");
    }
}

#[test]
fn other_operations_bad_xml_and_unknown_versions() {
    let org = Org::start();
    let body = envelope("integration@sfsync.local", "sfsync").replace("n1:login", "n1:describeGlobal");
    let (status, _, xml) = soap(&org, "/services/Soap/u/62.0", &body);
    assert_eq!(status, 500);
    assert_eq!(between(&xml, "faultcode"), "soapenv:Client");
    assert!(between(&xml, "faultstring").contains("No operation available for request {urn:partner.soap.sforce.com}describeGlobal"));
    let (status, _, xml) = soap(&org, "/services/Soap/u/62.0", "<env:Envelope><env:Body>");
    assert_eq!(status, 500);
    assert_eq!(between(&xml, "faultcode"), "soapenv:Client");
    assert_eq!(soap(&org, "/services/Soap/u/99.0", &envelope("integration@sfsync.local", "sfsync")).0, 404);
    assert_eq!(soap(&org, "/services/Soap/x/62.0", &envelope("integration@sfsync.local", "sfsync")).0, 404);
}

#[test]
fn logout_ends_the_session() {
    let mut org = Org::start();
    let (_, _, xml) = soap(&org, "/services/Soap/u/62.0", &envelope("integration@sfsync.local", "sfsync"));
    org.token = between(&xml, "sessionId").to_string();
    assert_eq!(org.get("limits").status, 200);
    let logout = format!(
        r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{}</sessionId></SessionHeader></se:Header><se:Body><logout xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>"#,
        org.token
    );
    let (status, _, xml) = soap(&org, "/services/Soap/u/62.0", &logout);
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<logoutResponse/>"), "{xml}");
    assert_eq!(org.get("limits").status, 401);
    let (status, _, xml) = soap(&org, "/services/Soap/u/62.0", &logout);
    assert_eq!(status, 500);
    assert_eq!(between(&xml, "faultcode"), "sf:INVALID_SESSION_ID");
}

#[test]
fn security_token_is_appended_to_the_password() {
    let org = Org::with(sf_emulator::Config { security_token: Some("TOKEN123".into()), ..Default::default() });
    let (status, _, xml) = soap(&org, "/services/Soap/u/62.0", &envelope("integration@sfsync.local", "sfsync"));
    assert_eq!(status, 500, "the password alone is refused: {xml}");
    assert_eq!(between(&xml, "faultcode"), "sf:INVALID_LOGIN");
    let (status, _, xml) = soap(&org, "/services/Soap/u/62.0", &envelope("integration@sfsync.local", "sfsyncTOKEN123"));
    assert_eq!(status, 200, "{xml}");
    // The OAuth username-password flow asks the same.
    let form = |password: &str| {
        org.form(
            "/services/oauth2/token",
            &[
                ("grant_type", "password"),
                ("client_id", "sfsync-local"),
                ("client_secret", "sfsync-local-secret"),
                ("username", "integration@sfsync.local"),
                ("password", password),
            ],
        )
        .status
    };
    assert_eq!(form("sfsync"), 400);
    assert_eq!(form("sfsyncTOKEN123"), 200);
}
