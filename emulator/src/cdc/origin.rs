//! The `changeOrigin` of a change event: which API, and which client (`Sforce-Call-Options`),
//! made the save.

use std::cell::RefCell;

tokio::task_local! {
    /// `changeOrigin` of the current request (set by the /services layer).
    pub static ORIGIN: String;
}

thread_local! {
    /// `changeOrigin` of work done outside a request, on a blocking thread: a Bulk ingest
    /// job's saves (`with_origin`).
    static THREAD_ORIGIN: RefCell<Option<String>> = const { RefCell::new(None) };
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

/// The origin of a Bulk API job's saves, from the origin of the call that created it:
/// `com/salesforce/api/bulkapi/62.0;client=X` (Salesforce names the API `bulkapi`, and
/// Bulk API takes the client from `Sforce-Call-Options` as REST does).
pub fn bulk_origin(request_origin: &str) -> String {
    match request_origin.strip_prefix("com/salesforce/api/rest/") {
        Some(rest) => format!("com/salesforce/api/bulkapi/{rest}"),
        None => String::new(),
    }
}

/// The current request's origin (empty outside one).
pub fn request_origin() -> String {
    ORIGIN.try_with(|o| o.clone()).unwrap_or_default()
}

/// Runs `f` (on a blocking thread) with `origin` as the origin of its saves.
pub fn with_origin<T>(origin: &str, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            THREAD_ORIGIN.with(|o| o.borrow_mut().take());
        }
    }
    THREAD_ORIGIN.with(|o| *o.borrow_mut() = Some(origin.to_string()));
    let _reset = Reset;
    f()
}

pub(super) fn current_origin() -> String {
    ORIGIN.try_with(|o| o.clone()).ok().or_else(|| THREAD_ORIGIN.with(|o| o.borrow().clone())).unwrap_or_default()
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
        assert_eq!(bulk_origin("com/salesforce/api/rest/62.0;client=sfsync"), "com/salesforce/api/bulkapi/62.0;client=sfsync");
        assert_eq!(bulk_origin(""), "");
        assert_eq!(with_origin("com/salesforce/api/bulkapi/62.0", current_origin), "com/salesforce/api/bulkapi/62.0");
        assert_eq!(current_origin(), "", "reset after");
    }
}
