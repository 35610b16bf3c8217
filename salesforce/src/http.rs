//! Pure helpers around HTTP: encoding, backoff schedule, header parsing (URL checks:
//! [`crate::hosts`]).

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::Error;

/// Everything but RFC 3986 unreserved characters gets percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Encodes one URL path segment (an external id value may contain `/`, `?`,
/// `#`, `%`, spaces, ...). A segment made only of dots is encoded too so
/// servers cannot treat it as `.`/`..`.
pub(crate) fn encode_segment(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c == '.') {
        return "%2E".repeat(s.len());
    }
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Encodes a query-string or form value (spaces as `%20`).
pub(crate) fn encode_query(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// `application/x-www-form-urlencoded` body.
pub(crate) fn form_encode(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v))).collect::<Vec<_>>().join("&")
}

/// Parses `Sforce-Limit-Info: api-usage=18/5000[, per-app-api-usage=...]`.
pub(crate) fn parse_limit_info(v: &str) -> Option<(u64, u64)> {
    v.split(',').find_map(|part| {
        let (k, val) = part.trim().split_once('=')?;
        if k.trim() != "api-usage" {
            return None;
        }
        let (used, max) = val.trim().split_once('/')?;
        let max: String = max.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((used.trim().parse().ok()?, max.parse().ok()?))
    })
}

/// Parses `Retry-After` given in seconds (integer or decimal).
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e9).map(Duration::from_secs_f64)
}

pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(200);
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Delay before retry number `attempt` (0-based): exponential from 200 ms,
/// capped at 5 s, with "equal jitter": uniformly in `[d/2, d]`, `jitter` in `[0, 1)`.
pub(crate) fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
    let d = exp.min(BACKOFF_CAP);
    let half = d / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Normalises an API version given by a user: `v62.0`, `62.0`, `62` -> `62.0`.
pub(crate) fn normalize_version(v: &str) -> Result<String, Error> {
    let t = v.trim().trim_start_matches(['v', 'V']);
    let (major, minor) = t.split_once('.').unwrap_or((t, "0"));
    if major.is_empty() || !major.chars().all(|c| c.is_ascii_digit()) || minor.is_empty() || !minor.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Config(format!("api_version '{v}' is not a version like '62.0'")));
    }
    Ok(format!("{}.{}", major.parse::<u32>().unwrap_or(0), minor))
}

/// Sort key for "62.0" style versions.
pub(crate) fn version_key(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.').unwrap_or((v, "0"));
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(sig: i32) -> bool {
        // SAFETY: reads this thread's mask.
        unsafe {
            let mut cur: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
            libc::sigismember(&cur, sig) == 1
        }
    }

    /// A resolver that starts a thread, as ureq's own does with a timeout set, and notes
    /// which signals that thread blocks.
    #[derive(Debug, Default)]
    struct ThreadedProbe(std::sync::Arc<std::sync::Mutex<Option<[bool; 4]>>>);

    impl ureq::unversioned::resolver::Resolver for ThreadedProbe {
        fn resolve(
            &self,
            _: &ureq::http::Uri,
            _: &ureq::config::Config,
            _: ureq::unversioned::transport::NextTimeout,
        ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
            let mask = std::thread::spawn(|| [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGUSR1].map(blocks)).join().unwrap();
            *self.0.lock().unwrap() = Some(mask);
            Err(ureq::Error::HostNotFound)
        }
    }

    #[test]
    fn the_clients_resolver_threads_never_take_the_hosts_signals() {
        let probe = ThreadedProbe::default();
        let seen = probe.0.clone();
        let config = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(1))).build();
        let agent = ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::default(), SignalSafeResolver(probe));
        assert!(agent.get("http://sfsync-test.invalid/").call().is_err());
        let seen = seen.lock().unwrap().expect("the agent asked the resolver");
        assert_eq!(seen, [true; 4], "the resolver's thread blocks SIGTERM, SIGHUP, SIGINT and SIGUSR1");
        assert!(!blocks(libc::SIGTERM), "the caller's mask is restored");
    }

    #[test]
    fn threads_started_with_signals_blocked_never_take_the_hosts_signals() {
        assert!(!blocks(libc::SIGTERM), "the test thread starts with SIGTERM deliverable");
        let (inside, child) = with_signals_blocked(|| {
            let child = std::thread::spawn(|| [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGUSR1].map(blocks));
            (blocks(libc::SIGTERM), child.join().unwrap())
        });
        assert!(inside);
        assert_eq!(child, [true; 4], "a thread started meanwhile (ureq's resolver) blocks every signal");
        assert!(!blocks(libc::SIGTERM), "the caller's mask is restored");
    }

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(encode_segment("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(encode_segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(
            encode_query("SELECT Id FROM Account WHERE Name = 'a&b=c+d'"),
            "SELECT%20Id%20FROM%20Account%20WHERE%20Name%20%3D%20%27a%26b%3Dc%2Bd%27"
        );
        assert_eq!(form_encode(&[("a", "x y".into()), ("b&", "=".into())]), "a=x%20y&b%26=%3D");
    }

    #[test]
    fn limit_info() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(parse_limit_info("api-usage=25/5000, per-app-api-usage=17/250(appName=sample-app)"), Some((25, 5000)));
        assert_eq!(parse_limit_info("per-app-api-usage=17/250(appName=x), api-usage=3/15000"), Some((3, 15000)));
        assert_eq!(parse_limit_info("garbage"), None);
        assert_eq!(parse_limit_info("api-usage=x/5"), None);
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn backoff_bounds() {
        for attempt in 0..40 {
            let full = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(20)).min(BACKOFF_CAP);
            for j in [0.0, 0.25, 0.999, 1.0, 7.0, -1.0] {
                let d = backoff_delay(attempt, j);
                assert!(d >= full / 2 && d <= full, "attempt {attempt} jitter {j}: {d:?}");
                assert!(d <= BACKOFF_CAP);
            }
        }
        assert_eq!(backoff_delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(0, 1.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(3, 1.0), Duration::from_millis(1600));
        assert_eq!(backoff_delay(10, 1.0), BACKOFF_CAP);
        assert_eq!(backoff_delay(u32::MAX, 0.0), BACKOFF_CAP / 2);
    }

    #[test]
    fn versions() {
        assert_eq!(normalize_version("v62.0").unwrap(), "62.0");
        assert_eq!(normalize_version("59").unwrap(), "59.0");
        assert!(normalize_version("abc").is_err());
        assert!(normalize_version("62.0/../x").is_err());
        assert!(version_key("62.0") > version_key("9.0"));
        assert!(version_key("62.0") > version_key("61.5"));
    }
}

/// ureq's own resolver, called with every signal blocked on the calling thread.
///
/// With a timeout set, ureq resolves each new connection's host on a short-lived thread of
/// its own, which inherits the caller's signal mask. Inside a PostgreSQL backend that thread
/// could then take SIGTERM or SIGHUP, whose handlers must only run on the backend's thread:
/// a shutdown at that moment aborted the process and made the postmaster restart the whole
/// cluster. Blocked while the lookup runs (bounded by the request's timeout), the signals
/// stay pending and are handled by the caller as soon as the mask is restored.
#[derive(Debug)]
pub(crate) struct SignalSafeResolver<R = ureq::unversioned::resolver::DefaultResolver>(pub R);

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver for SignalSafeResolver<R> {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        with_signals_blocked(|| self.0.resolve(uri, config, timeout))
    }
}

/// Runs `f` with every signal blocked on this thread (threads it starts inherit the mask);
/// the previous mask is restored afterwards, which delivers what arrived meanwhile.
pub fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: pthread_sigmask on this thread's own mask, restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}
