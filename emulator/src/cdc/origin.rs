//! The `changeOrigin` of a change event: which API, and which client (`Sforce-Call-Options`),
//! made the save.

tokio::task_local! {
    /// `changeOrigin` of the current request (set by the /services layer).
    pub static ORIGIN: String;
}

/// `com/salesforce/api/rest/62.0;client=X` for a REST call (X from `Sforce-Call-Options`).
pub fn rest_origin(path: &str, call_options: Option<&str>) -> String {
    let version = path.strip_prefix("/services/data/v").and_then(|r| r.split('/').next()).filter(|v| !v.is_empty());
    let Some(version) = version else { return String::new() };
    let mut o = format!("com/salesforce/api/rest/{version}");
    let client =
        call_options.and_then(|h| h.split(',').find_map(|p| p.trim().strip_prefix("client="))).map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = client {
        o.push_str(&format!(";client={c}"));
    }
    o
}

pub(super) fn current_origin() -> String {
    ORIGIN.try_with(|o| o.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(rest_origin("/services/data/v62.0/sobjects/Account", None), "com/salesforce/api/rest/62.0");
        assert_eq!(
            rest_origin("/services/data/v61.0/composite/sobjects", Some("client=sfsync, defaultNamespace=x")),
            "com/salesforce/api/rest/61.0;client=sfsync"
        );
        assert_eq!(rest_origin("/services/oauth2/token", None), "");
    }
}
