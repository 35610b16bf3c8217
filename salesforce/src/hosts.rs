//! Which URLs a client may send credentials and tokens to.
//!
//! A login URL and the instance URL a token response names are parsed with the `url` crate
//! (the WHATWG parser browsers use), never split by hand, and the normalized form is what
//! requests are built from, so the host that was checked is the host that is called.
//! `https` is required, plain `http` only to a loopback host (a local emulator). A
//! [`HostPolicy`] further limits hosts to Salesforce's domains plus configured patterns.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::Error;

/// Salesforce's own login and instance hosts: login.salesforce.com, test.salesforce.com,
/// My Domain (`*.my.salesforce.com`, `*.sandbox.my.salesforce.com`), instanced URLs
/// (`na1.salesforce.com`), Lightning and legacy `force.com` / `cloudforce.com` hosts.
pub const SALESFORCE_DOMAINS: &[&str] = &["*.salesforce.com", "*.force.com", "*.cloudforce.com"];

/// One allowed host: a name, `*.suffix` (any subdomain), an IP address or an IP network
/// (`127.0.0.0/8`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Name(String),
    /// Stored with its leading dot: `.salesforce.com`.
    Suffix(String),
    Net(IpAddr, u8),
}

impl HostPattern {
    fn parse(s: &str) -> Option<HostPattern> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(suffix) = s.strip_prefix("*.") {
            return valid_name(suffix).then(|| HostPattern::Suffix(format!(".{suffix}")));
        }
        if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip.trim_matches(['[', ']']).parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(HostPattern::Net(ip, bits));
        }
        if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Some(HostPattern::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        valid_name(&s).then_some(HostPattern::Name(s))
    }

    fn matches(&self, host: &Host<&str>) -> bool {
        match (self, host) {
            (HostPattern::Name(n), Host::Domain(d)) => n == d,
            (HostPattern::Suffix(s), Host::Domain(d)) => d.ends_with(s.as_str()),
            (HostPattern::Net(net, bits), Host::Ipv4(ip)) => in_net(*net, *bits, IpAddr::V4(*ip)),
            (HostPattern::Net(net, bits), Host::Ipv6(ip)) => in_net(*net, *bits, IpAddr::V6(*ip)),
            _ => false,
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn in_net(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The hosts a client may log in to and follow an instance URL to: Salesforce's domains
/// plus the configured patterns.
#[derive(Clone, Debug)]
pub struct HostPolicy {
    patterns: Vec<HostPattern>,
    /// How to allow another host, for the error (e.g. "set sfsync.allowed_login_hosts").
    hint: String,
}

impl HostPolicy {
    /// Salesforce's domains plus `extra`, a comma-separated list of host patterns
    /// (`host.example.com`, `*.example.com`, `10.1.2.3`, `127.0.0.0/8`, `::1`).
    /// `hint` says how to allow another host.
    pub fn salesforce_and(extra: &str, hint: impl Into<String>) -> Result<HostPolicy, Error> {
        let hint = hint.into();
        let mut patterns: Vec<HostPattern> = SALESFORCE_DOMAINS.iter().filter_map(|p| HostPattern::parse(p)).collect();
        for p in extra.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = HostPattern::parse(p).ok_or_else(|| {
                Error::Config(format!("allowed host pattern \"{p}\" is not a host name, *.domain, IP address or IP network ({hint})"))
            })?;
            patterns.push(parsed);
        }
        Ok(HostPolicy { patterns, hint })
    }

    fn allows(&self, host: &Host<&str>) -> bool {
        self.patterns.iter().any(|p| p.matches(host))
    }
}

/// `localhost` (and `*.localhost`), `127.0.0.0/8`, `::1`.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => *d == "localhost" || d.ends_with(".localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Checks a base URL (login URL or instance URL) and returns its normalized form without a
/// trailing slash: absolute, `https` (plain `http` only to a loopback host or when
/// `allow_insecure_http`), no user info, query or fragment, and a host `policy` allows
/// (`None`: any host). Errors name the URL's host and, for a refused host, how to allow it.
pub(crate) fn check_base_url(raw: &str, allow_insecure_http: bool, policy: Option<&HostPolicy>, what: &str) -> Result<String, Error> {
    let raw = raw.trim();
    // Backslashes and whitespace are read differently by different URL parsers.
    if raw.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control()) {
        return Err(Error::Config(format!("{what} \"{raw}\" contains a backslash, space or control character")));
    }
    let url = Url::parse(raw).map_err(|e| Error::Config(format!("{what} \"{raw}\" is not an absolute URL ({e})")))?;
    let host = url.host().ok_or_else(|| Error::Config(format!("{what} \"{raw}\" has no host")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(format!("{what} \"{raw}\" carries user info before its host \"{host}\"; give the plain URL")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!("{what} \"{raw}\" must be a plain base URL (no ?query or #fragment)")));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback(&host) => {}
        "http" => {
            return Err(Error::Config(format!(
                "{what} \"{raw}\" uses http:// to host \"{host}\"; use https:// (plain http is only for loopback hosts)"
            )))
        }
        other => return Err(Error::Config(format!("{what} \"{raw}\" has unsupported scheme \"{other}\"; use https://"))),
    }
    if let Some(policy) = policy {
        if !policy.allows(&host) {
            return Err(Error::Config(format!(
                "{what} host \"{host}\" is not a Salesforce domain ({}) nor an allowed host; {}",
                SALESFORCE_DOMAINS.join(", "),
                policy.hint
            )));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, policy: Option<&HostPolicy>) -> Result<String, String> {
        check_base_url(url, false, policy, "login_url").map_err(|e| e.to_string())
    }

    #[test]
    fn https_everywhere_plain_http_only_to_loopback() {
        assert_eq!(check("https://login.salesforce.com/", None).unwrap(), "https://login.salesforce.com");
        assert_eq!(check("HTTPS://Login.Salesforce.COM", None).unwrap(), "https://login.salesforce.com");
        assert!(check("http://127.0.0.1:8080", None).is_ok());
        assert!(check("http://127.1.2.3:8080/", None).is_ok());
        assert!(check("http://localhost:1", None).is_ok());
        assert!(check("http://[::1]:1", None).is_ok());
        let e = check("http://example.com", None).unwrap_err();
        assert!(e.contains("https") && e.contains("\"example.com\""), "{e}");
        assert!(check_base_url("http://example.com", true, None, "x").is_ok());
        assert!(check("http://127.0.0.1.evil.com", None).is_err());
        assert!(check("http://[::ffff:8.8.8.8]", None).is_err());
        assert!(check("ftp://x", None).is_err());
        assert!(check("login.salesforce.com", None).is_err());
        assert!(check("https://x/?a", None).is_err());
        assert!(check("https://x/#a", None).is_err());
    }

    #[test]
    fn user_info_and_parser_confusions_are_refused() {
        for url in [
            "https://login.salesforce.com@evil.example",
            "http://localhost@evil.com",
            "http://user@evil.com",
            "https://login.salesforce.com:pw@evil.example/",
            "https://evil.example\\@login.salesforce.com",
            "https://evil.example\\.salesforce.com",
            "https://evil.example /.salesforce.com",
        ] {
            assert!(check(url, None).is_err(), "{url} is refused");
        }
        let e = check("https://login.salesforce.com@evil.example", None).unwrap_err();
        assert!(e.contains("\"evil.example\""), "names the real host: {e}");
    }

    #[test]
    fn salesforce_domains_unless_configured() {
        let p = HostPolicy::salesforce_and("", "set sfsync.allowed_login_hosts").unwrap();
        for ok in [
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            "https://acme.my.salesforce.com",
            "https://acme--dev.sandbox.my.salesforce.com",
            "https://na1.salesforce.com",
            "https://acme.lightning.force.com",
            "https://acme.cloudforce.com",
        ] {
            assert!(check(ok, Some(&p)).is_ok(), "{ok} is allowed");
        }
        for bad in [
            "https://evil.example",
            "https://salesforce.com.evil.example",
            "https://evilsalesforce.com",
            "https://login.salesforce.com.",
            "http://127.0.0.1:8080",
        ] {
            let e = check(bad, Some(&p)).unwrap_err();
            assert!(e.contains("set sfsync.allowed_login_hosts"), "{bad}: {e}");
        }
        let e = check("https://evil.example/x", Some(&p)).unwrap_err();
        assert!(e.contains("host \"evil.example\""), "{e}");

        let p = HostPolicy::salesforce_and("localhost, 127.0.0.0/8, ::1, *.corp.example, 10.0.0.7", "hint").unwrap();
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9",
            "http://localhost:1",
            "https://sf.corp.example",
            "https://10.0.0.7",
            "https://login.salesforce.com",
        ] {
            assert!(check(ok, Some(&p)).is_ok(), "{ok} is allowed");
        }
        for bad in ["https://corp.example", "https://10.0.0.8", "http://sf.corp.example", "https://128.0.0.1"] {
            assert!(check(bad, Some(&p)).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        let e = HostPolicy::salesforce_and("ok.example, bad host!", "set x").unwrap_err().to_string();
        assert!(e.contains("\"bad host!\"") && e.contains("set x"), "{e}");
        assert!(HostPolicy::salesforce_and("10.0.0.0/33", "h").is_err());
        assert!(HostPolicy::salesforce_and("*.", "h").is_err());
    }
}
