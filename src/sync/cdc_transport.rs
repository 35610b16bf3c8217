//! Which change stream a connection uses (`sfsync.set_change_stream`): the Pub/Sub API, CometD,
//! or `auto` (Pub/Sub where it can be reached, CometD otherwise).

use salesforce::pubsub::DEFAULT_ENDPOINT;

/// A connection's choice of change stream (sfsync.connections.stream, pubsub_endpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// `auto`, `pubsub` or `cometd`.
    pub mode: String,
    pub endpoint: Option<String>,
}

impl Transport {
    /// The Pub/Sub endpoint to use, None for CometD only. Salesforce's own endpoint serves
    /// orgs on its domains: for another login host, `auto` needs an endpoint named.
    pub fn pubsub(&self, login_url: &str) -> Option<String> {
        match (self.mode.as_str(), &self.endpoint) {
            ("cometd", _) => None,
            (_, Some(e)) => Some(e.clone()),
            ("pubsub", None) => Some(DEFAULT_ENDPOINT.to_string()),
            _ => salesforce_hosted(login_url).then(|| DEFAULT_ENDPOINT.to_string()),
        }
    }

    pub(super) fn falls_back(&self) -> bool {
        self.mode != "pubsub"
    }
}

/// Whether a login URL is on Salesforce's own domains.
fn salesforce_hosted(login_url: &str) -> bool {
    let host = url::Url::parse(login_url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default();
    ["salesforce.com", "force.com"].iter().any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Positions of the Pub/Sub API are kept under this prefix of the channel.
pub(super) const PUBSUB_KEY: &str = "pubsub:";

/// The object an event is about: its header's entity, else its channel's.
pub fn object_named(e: &salesforce::cdc::ChangeEvent) -> String {
    if e.header.entity_name.is_empty() {
        object_of(&e.channel)
    } else {
        e.header.entity_name.clone()
    }
}

/// The object of a change channel: `/data/Invoice__ChangeEvent` -> `Invoice__c`.
pub fn object_of(channel: &str) -> String {
    let name = channel.trim_start_matches(PUBSUB_KEY).trim_start_matches("/data/").trim_end_matches("ChangeEvent");
    match name.strip_suffix("__") {
        Some(base) => format!("{base}__c"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_follows_the_choice_and_the_login_host() {
        let t = |mode: &str, endpoint: Option<&str>| Transport { mode: mode.into(), endpoint: endpoint.map(String::from) };
        let sf = "https://login.salesforce.com";
        let local = "http://127.0.0.1:8080";
        assert_eq!(t("auto", None).pubsub(sf).as_deref(), Some(DEFAULT_ENDPOINT), "Salesforce's endpoint for its orgs");
        assert_eq!(t("auto", None).pubsub("https://acme.my.salesforce.com").as_deref(), Some(DEFAULT_ENDPOINT));
        assert_eq!(t("auto", None).pubsub(local), None, "another host names its endpoint, else CometD");
        assert_eq!(t("auto", None).pubsub("https://evilsalesforce.com"), None);
        assert_eq!(t("auto", Some("http://127.0.0.1:9")).pubsub(local).as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(t("cometd", Some("http://127.0.0.1:9")).pubsub(local), None);
        assert_eq!(t("pubsub", None).pubsub(local).as_deref(), Some(DEFAULT_ENDPOINT), "pubsub only: no fallback");
        assert!(t("auto", None).falls_back() && !t("pubsub", None).falls_back());
    }
}
