//! SOAP API login (`/services/Soap/u/<version>` partner, `/services/Soap/c/<version>` enterprise):
//! the username/password flow jsforce and simple-salesforce use without an OAuth2 client. Only
//! `login` and `logout` are served; other operations get Salesforce's "No operation available"
//! fault.

use super::St;
use crate::state::{AppState, USERNAME};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;

const ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub const INVALID_LOGIN: &str = "Invalid username, password, security token; or user locked out.";

/// The operation (first element in the Body) and the text of its direct children.
#[derive(Debug, Default, PartialEq)]
pub struct Call {
    pub operation: String,
    pub args: Vec<(String, String)>,
    /// `SessionHeader/sessionId` from the SOAP Header.
    pub session: Option<String>,
}

impl Call {
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses a SOAP 1.1 request envelope. Names are compared without their namespace prefixes, as
/// clients pick their own (`urn:`, `n1:`, none).
pub fn parse(xml: &[u8]) -> Result<Call, String> {
    let mut r = Reader::from_reader(xml);
    r.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut call = Call::default();
    let mut in_body = false;
    loop {
        match r.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                if in_body && call.operation.is_empty() {
                    call.operation = name.clone();
                } else if name == "Body" && path.len() == 1 {
                    in_body = true;
                }
                path.push(name);
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if in_body && call.operation.is_empty() {
                    call.operation = name;
                } else if in_body && path.len() == 3 {
                    call.args.push((name, String::new()));
                }
            }
            Event::Text(t) if path.len() == 4 && path[1] == "Header" && path[2] == "SessionHeader" && path[3] == "sessionId" => {
                call.session = Some(t.xml10_content().trim().to_string());
            }
            Event::Text(t) if in_body && path.len() == 4 => {
                let text = t.xml10_content().to_string();
                push_text(&mut call, &path[3], &text);
            }
            Event::GeneralRef(g) if in_body && path.len() == 4 => {
                let name = g.to_string();
                let text = match g.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&name).ok_or(format!("unknown entity &{name};"))?.to_string(),
                };
                push_text(&mut call, &path[3], &text);
            }
            Event::CData(t) if in_body && path.len() == 4 => {
                push_text(&mut call, &path[3], &t);
            }
            Event::End(_) if path.pop().as_deref() == Some("Body") => in_body = false,
            Event::Eof => break,
            _ => {}
        }
    }
    if call.operation.is_empty() {
        return Err("no operation in the SOAP Body".into());
    }
    Ok(call)
}

/// Appends to the current argument (text arrives in pieces around entity references).
fn push_text(call: &mut Call, name: &str, text: &str) {
    match call.args.last_mut() {
        Some((k, v)) if k == name => v.push_str(text),
        _ => call.args.push((name.to_string(), text.to_string())),
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
}

/// A SOAP fault as Salesforce sends it: HTTP 500, `faultcode` `sf:<CODE>` (or a SOAP `Client`
/// fault), the message prefixed with the code.
pub fn fault(api: char, code: &str, message: &str) -> Response {
    let ns = if api == 'c' { "urn:fault.enterprise.soap.sforce.com" } else { "urn:fault.partner.soap.sforce.com" };
    let (faultcode, faultstring, detail) = if code.starts_with("soapenv:") {
        (code.to_string(), escape(message).to_string(), String::new())
    } else {
        let kind = if code == "INVALID_LOGIN" { "LoginFault" } else { "UnexpectedErrorFault" };
        (
            format!("sf:{code}"),
            escape(format!("{code}: {message}")).to_string(),
            format!(
                "<detail><sf:{kind} xsi:type=\"sf:{kind}\"><sf:exceptionCode>{code}</sf:exceptionCode>\
                 <sf:exceptionMessage>{}</sf:exceptionMessage></sf:{kind}></detail>",
                escape(message)
            ),
        )
    };
    xml_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{ENVELOPE}\" xmlns:sf=\"{ns}\" \
             xmlns:xsi=\"{XSI}\"><soapenv:Body><soapenv:Fault><faultcode>{faultcode}</faultcode>\
             <faultstring>{faultstring}</faultstring>{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
    )
}

fn el(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", escape(value))
}

fn login_result(st: &AppState, api: char, version: &str, instance: &str, session: &str) -> String {
    let org = &st.org_id;
    let user = &st.user_id;
    let info = [
        ("accessibilityMode", "false"),
        ("chatterExternal", "false"),
        ("currencySymbol", "$"),
        ("orgAttachmentFileSizeLimit", "5242880"),
        ("orgDefaultCurrencyIsoCode", "USD"),
        ("orgDefaultCurrencyLocale", "en_US"),
        ("orgDisallowHtmlAttachments", "false"),
        ("orgHasPersonAccounts", "false"),
        ("organizationId", org),
        ("organizationMultiCurrency", "false"),
        ("organizationName", crate::state::ORG_NAME),
        ("profileId", &st.profile_id),
    ]
    .iter()
    .map(|(k, v)| el(k, v))
    .chain(std::iter::once("<roleId xsi:nil=\"true\"/>".to_string()))
    .chain(
        [
            ("sessionSecondsValid", st.cfg.token_ttl_secs.to_string().as_str()),
            ("userEmail", USERNAME),
            ("userFullName", "Integration User"),
            ("userId", user),
            ("userLanguage", "en_US"),
            ("userLocale", "en_US"),
            ("userName", USERNAME),
            ("userTimeZone", "GMT"),
            ("userType", "Standard"),
            ("userUiSkin", "Theme3"),
        ]
        .iter()
        .map(|(k, v)| el(k, v)),
    )
    .collect::<String>();
    format!(
        "{}{}{}{}{}{}<userInfo>{info}</userInfo>",
        el("metadataServerUrl", &format!("{instance}/services/Soap/m/{version}/{org}")),
        el("passwordExpired", "false"),
        el("sandbox", "false"),
        el("serverUrl", &format!("{instance}/services/Soap/{api}/{version}/{org}")),
        el("sessionId", session),
        el("userId", user),
    )
}

/// `POST /services/Soap/{u|c}/{version}` (and with a trailing org id, as `serverUrl` names it).
pub async fn endpoint(
    axum::extract::State(st): St,
    Path(params): Path<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
    let api = if get("api") == "c" { 'c' } else { 'u' };
    let version = get("version").to_string();
    if !matches!(get("api"), "u" | "c") || !super::served_versions(&st.cfg.api_version).contains(&version) {
        return crate::errors::ApiError::not_found().into_response();
    }
    let call = match parse(&body) {
        Ok(c) => c,
        Err(e) => return fault(api, "soapenv:Client", &format!("Unable to parse the request: {e}")),
    };
    if call.operation == "logout" {
        // Ends the session named in the SessionHeader, as Salesforce does.
        let valid = call.session.as_deref().is_some_and(|t| st.session_valid(t));
        if !valid {
            return fault(api, "INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session");
        }
        if let Some(t) = &call.session {
            st.tokens.lock().remove(t);
        }
        let ns = if api == 'c' { "urn:enterprise.soap.sforce.com" } else { "urn:partner.soap.sforce.com" };
        return xml_response(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{ENVELOPE}\" xmlns=\"{ns}\">\
                 <soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>"
            ),
        );
    }
    if call.operation != "login" {
        let ns = if api == 'c' { "urn:enterprise.soap.sforce.com" } else { "urn:partner.soap.sforce.com" };
        return fault(api, "soapenv:Client", &format!("No operation available for request {{{ns}}}{}", call.operation));
    }
    // Clients send password + security token in one `password` (an empty token when none is set).
    if !st.password_ok(call.arg("username"), call.arg("password")) {
        return fault(api, "INVALID_LOGIN", INVALID_LOGIN);
    }
    let instance = super::auth::instance_url(&st, &headers);
    let session = st.issue_token();
    let ns = if api == 'c' { "urn:enterprise.soap.sforce.com" } else { "urn:partner.soap.sforce.com" };
    xml_response(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{ENVELOPE}\" xmlns=\"{ns}\" \
             xmlns:xsi=\"{XSI}\"><soapenv:Body><loginResponse><result>{}</result></loginResponse></soapenv:Body></soapenv:Envelope>",
            login_result(&st, api, &version, &instance, &session)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_login_with_any_prefix_and_escapes() {
        let xml = br#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>x</urn:client></urn:CallOptions></env:Header>
  <env:Body><urn:login><urn:username>a@b.c</urn:username><urn:password>p&amp;w&#33;<![CDATA[<x>]]></urn:password></urn:login></env:Body>
</env:Envelope>"#;
        let call = parse(xml).unwrap();
        assert_eq!(call.operation, "login");
        assert_eq!(call.arg("username"), Some("a@b.c"));
        assert_eq!(call.arg("password"), Some("p&w!<x>"));
        assert_eq!(call.arg("client"), None);
        assert_eq!(call.session, None);
        let xml = br#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader>
            <sessionId> 00Dx!AQ </sessionId></SessionHeader></se:Header><se:Body><logout/></se:Body></se:Envelope>"#;
        let call = parse(xml).unwrap();
        assert_eq!((call.operation.as_str(), call.session.as_deref()), ("logout", Some("00Dx!AQ")));
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<Envelope><Body></Body></Envelope>").is_err());
    }
}
