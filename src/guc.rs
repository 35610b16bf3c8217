//! `sfsync.*` settings. All are reloadable (SIGHUP) unless noted.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::time::Duration;

pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static API_BUDGET: GucSetting<f64> = GucSetting::<f64>::new(0.5);
pub static CDC: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static CDC_SAFETY_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(300_000);
pub static CDC_POLL_SPACING_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static BATCH_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static PULL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static PULL_OVERLAP_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(10000);
pub static BULK_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(2000);
pub static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(20000);
pub static CLAIM_TIMEOUT_S: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static LAUNCHER_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(10000);
pub static RESTART_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static ARCHIVE_RETENTION_S: GucSetting<i32> = GucSetting::<i32>::new(7 * 86_400);
pub static BACKFILL_BULK_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(10000);
pub static DELETE_CHECK_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(600);
pub static SCHEMA_CHECK_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static FORMULA_REFRESH_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(3600);
pub static BACKFILL_BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static MATCH_BULK_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(crate::plan::matching::BULK_LOOKUP_KEYS as i32);
/// Hosts besides Salesforce's own that connections may log in to (superuser only).
pub static ALLOWED_LOGIN_HOSTS: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"localhost, 127.0.0.0/8, ::1"));

pub fn register() {
    GucRegistry::define_bool_guc(
        c"sfsync.enabled",
        c"Whether the sfsync background workers push and pull.",
        c"When off, workers stay connected but idle; changes keep accumulating in sfsync.outbox.",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"sfsync.api_budget",
        c"Share of the org's daily API allocation each connection may use (0-1).",
        c"Calls are paced to stay within it; sfsync.status shows a connection that waits for budget.",
        &API_BUDGET,
        0.001,
        1.0,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"sfsync.cdc",
        c"Listen to Change Data Capture events so Salesforce changes arrive at once.",
        c"Polling on SystemModstamp stays as the safety net (sfsync.cdc_safety_interval).",
        &CDC,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // Superuser only (PGC_SUSET): it decides where the server sends credentials. Set it in
    // postgresql.conf or with ALTER SYSTEM so the workers see it too.
    GucRegistry::define_string_guc(
        c"sfsync.allowed_login_hosts",
        c"Hosts besides Salesforce's domains that a connection's login and instance URLs may name.",
        c"Comma-separated: host names, *.domain, IP addresses or networks (127.0.0.0/8). Plain http:// stays limited to loopback hosts.",
        &ALLOWED_LOGIN_HOSTS,
        GucContext::Suset,
        GucFlags::default(),
    );
    let ms = GucFlags::UNIT_MS;
    int(c"sfsync.poll_interval", c"Fallback wake-up of the worker when no commit woke it.", &POLL_INTERVAL_MS, 10, 3_600_000, ms);
    int(
        c"sfsync.batch_delay",
        c"Least time between two push passes, so commits in a burst travel together.",
        &BATCH_DELAY_MS,
        0,
        10_000,
        ms,
    );
    int(c"sfsync.pull_interval", c"How often each mapping polls Salesforce for changes.", &PULL_INTERVAL_MS, 50, 86_400_000, ms);
    int(
        c"sfsync.cdc_safety_interval",
        c"While a connection's change stream is up, how often its tables are still polled to catch anything the stream missed; 0: not while it stays up without a break.",
        &CDC_SAFETY_INTERVAL_MS,
        0,
        86_400_000,
        ms,
    );
    int(
        c"sfsync.cdc_poll_spacing",
        c"Least time between two polls of a table asked for by change events the worker cannot apply directly (a table with local changes to push is pulled at once).",
        &CDC_POLL_SPACING_MS,
        0,
        3_600_000,
        ms,
    );
    int(
        c"sfsync.pull_overlap",
        c"How far before the high-water mark each poll looks again, so late commits are not missed.",
        &PULL_OVERLAP_MS,
        0,
        3_600_000,
        ms,
    );
    int(c"sfsync.batch_size", c"Most outbox entries claimed by one push pass.", &BATCH_SIZE, 1, 100_000, GucFlags::default());
    int(
        c"sfsync.bulk_threshold",
        c"Records of one table in one push pass from which Bulk API 2.0 is used instead of sObject Collections.",
        &BULK_THRESHOLD,
        1,
        10_000_000,
        GucFlags::default(),
    );
    int(
        c"sfsync.http_timeout",
        c"Timeout of every call to Salesforce (also bounds how long SIGTERM can wait).",
        &HTTP_TIMEOUT_MS,
        100,
        600_000,
        ms,
    );
    int(c"sfsync.claim_timeout", c"Visibility timeout of a claimed outbox entry.", &CLAIM_TIMEOUT_S, 1, 86_400, GucFlags::UNIT_S);
    int(
        c"sfsync.max_attempts",
        c"Transient failures of one record before it is parked in sfsync.errors.",
        &MAX_ATTEMPTS,
        1,
        1000,
        GucFlags::default(),
    );
    int(
        c"sfsync.launcher_interval",
        c"How often the launcher looks for databases that need a worker.",
        &LAUNCHER_INTERVAL_MS,
        100,
        3_600_000,
        ms,
    );
    int(
        c"sfsync.backfill_bulk_threshold",
        c"Records from which a backfill, or a poll finding that many changes, reads through a Bulk API 2.0 query job instead of REST paging.",
        &BACKFILL_BULK_THRESHOLD,
        0,
        i32::MAX,
        GucFlags::default(),
    );
    int(
        c"sfsync.match_bulk_threshold",
        c"Distinct keys from which a match lookup reads the object's records with a key through one Bulk API 2.0 query job instead of one SOQL query per 200 keys (0: never).",
        &MATCH_BULK_THRESHOLD,
        0,
        i32::MAX,
        GucFlags::default(),
    );
    int(
        c"sfsync.backfill_batch_size",
        c"Records a backfill applies per transaction (and how far a resumed backfill may repeat).",
        &BACKFILL_BATCH_SIZE,
        1,
        100_000,
        GucFlags::default(),
    );
    int(
        c"sfsync.schema_check_interval",
        c"How often each mapped object's describe is checked for field changes in Salesforce (0: only after INVALID_FIELD).",
        &SCHEMA_CHECK_INTERVAL_S,
        0,
        i32::MAX,
        GucFlags::UNIT_S,
    );
    int(
        c"sfsync.delete_check_interval",
        c"How often each pulled table asks Salesforce (getDeleted) for deletions the pull cannot see (0: never).",
        &DELETE_CHECK_INTERVAL_S,
        0,
        i32::MAX,
        GucFlags::UNIT_S,
    );
    int(
        c"sfsync.formula_refresh_interval",
        c"How often mapped formula and roll-up summary fields are read again (0: never).",
        &FORMULA_REFRESH_INTERVAL_S,
        0,
        i32::MAX,
        GucFlags::UNIT_S,
    );
    int(c"sfsync.restart_delay", c"Delay before a crashed database worker is started again.", &RESTART_DELAY_MS, 0, 3_600_000, ms);
    int(
        c"sfsync.archive_retention",
        c"How long settled outbox entries are kept in sfsync.outbox_archive (0: not archived).",
        &ARCHIVE_RETENTION_S,
        0,
        i32::MAX,
        GucFlags::UNIT_S,
    );
}

fn int(name: &'static std::ffi::CStr, desc: &'static std::ffi::CStr, s: &'static GucSetting<i32>, min: i32, max: i32, flags: GucFlags) {
    GucRegistry::define_int_guc(name, desc, c"", s, min, max, GucContext::Sighup, flags);
}

pub fn ms(s: &GucSetting<i32>) -> Duration {
    Duration::from_millis(s.get().max(0) as u64)
}

/// `sfsync.allowed_login_hosts` as set ("" when unset).
pub fn allowed_login_hosts() -> String {
    ALLOWED_LOGIN_HOSTS.get().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
}
