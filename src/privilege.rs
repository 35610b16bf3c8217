//! Who is acting, and acting as someone else for a while.
//!
//! sfsync's SQL functions run as their caller (SECURITY INVOKER) so that they can see who
//! called them; after checking that the caller may act on what it names, the catalog work
//! runs as the extension's owner (`as_extension_owner`). The worker applies rows as the
//! table's owner (`as_table_owner`), so a table owner's triggers, defaults and index expressions
//! never run with the worker's superuser rights. The switch is PostgreSQL's own
//! `SetUserIdAndSecContext` with `SECURITY_LOCAL_USERID_CHANGE`, which also forbids
//! `SET ROLE` / `SET SESSION AUTHORIZATION` inside it; an error unwinds through the guard,
//! and a transaction abort restores the user anyway.

use crate::error::{Result, SyncError};
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use std::ffi::CString;

/// The role that makes its members sfsync administrators (created by the install script).
pub const ADMIN_ROLE: &str = "sfsync_admin";

/// The current user (the caller, outside any switch).
pub fn current_user() -> Oid {
    unsafe { pg_sys::GetUserId() }
}

pub fn is_superuser(role: Oid) -> bool {
    unsafe { pg_sys::superuser_arg(role) }
}

/// Superuser, or has the privileges of `sfsync_admin`.
pub fn is_admin(role: Oid) -> bool {
    if is_superuser(role) {
        return true;
    }
    let name = CString::new(ADMIN_ROLE).expect("no NUL");
    let admin = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    admin != pg_sys::InvalidOid && unsafe { pg_sys::has_privs_of_role(role, admin) }
}

/// Superuser, or has the privileges of pg_read_server_files (what COPY FROM a file asks).
pub fn reads_server_files(role: Oid) -> bool {
    is_superuser(role) || unsafe { pg_sys::has_privs_of_role(role, Oid::from(pg_sys::ROLE_PG_READ_SERVER_FILES)) }
}

/// Superuser, or has the privileges of `owner` (is it or a member of it), as ALTER TABLE asks.
pub fn acts_as(role: Oid, owner: Oid) -> bool {
    is_superuser(role) || unsafe { pg_sys::has_privs_of_role(role, owner) }
}

/// The caller may act on the table (the rule of the table-level functions and of the rows
/// the views show): an admin, or one with the privileges of the table's owner.
pub fn may_act_on(role: Oid, table: Oid) -> bool {
    is_admin(role) || table_owner(table).is_some_and(|owner| acts_as(role, owner))
}

/// The mappings the caller may act on, for the functions that act on "every table": None
/// when that is every mapping (an admin).
pub fn permitted_mappings() -> Result<Option<Vec<i32>>> {
    let me = current_user();
    if is_admin(me) {
        return Ok(None);
    }
    let all = Spi::connect(|c| {
        c.select("SELECT id, tbl::oid FROM sfsync.mappings", None, &[])?
            .map(|r| Ok((r.get::<i32>(1)?.unwrap_or_default(), r.get::<Oid>(2)?.unwrap_or(pg_sys::InvalidOid))))
            .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
    })?;
    Ok(Some(all.into_iter().filter(|(_, table)| may_act_on(me, *table)).map(|(id, _)| id).collect()))
}

/// For an admin-only function: the caller is an admin, else a 42501 error naming the fix.
pub fn require_admin(function: &str) -> Result<()> {
    let me = current_user();
    if is_admin(me) {
        return Ok(());
    }
    Err(SyncError::Denied(format!(
        "permission denied: {function} needs membership in {ADMIN_ROLE} (GRANT {ADMIN_ROLE} TO {})",
        quote(&role_name(me))
    )))
}

/// For a table-level function: the caller acts as the table's owner or is an admin, else a
/// 42501 error naming the function, the table, its owner and the fix.
pub fn require_table(table: Oid, function: &str) -> Result<()> {
    let me = current_user();
    if may_act_on(me, table) {
        return Ok(());
    }
    Err(denied(table, function, true))
}

/// For sync_table: the caller acts as the table's owner (as ALTER TABLE and CREATE TRIGGER
/// ask); being an admin is not enough, syncing sends the table's rows to Salesforce.
pub fn require_owner(table: Oid, function: &str) -> Result<()> {
    let me = current_user();
    if table_owner(table).is_some_and(|owner| acts_as(me, owner)) {
        return Ok(());
    }
    Err(denied(table, function, false))
}

fn denied(table: Oid, function: &str, or_admin: bool) -> SyncError {
    let owner = table_owner(table).map(role_name).unwrap_or_else(|| "unknown".into());
    SyncError::Denied(format!(
        "permission denied: {function} on table {} needs ownership of the table (owner: {owner}){}",
        table_name(table),
        if or_admin { format!(" or membership in {ADMIN_ROLE}") } else { String::new() }
    ))
}

/// The table's schema-qualified, quoted name, for messages.
pub fn table_name(table: Oid) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[table.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("with oid {}", table.to_u32()))
}

fn quote(name: &str) -> String {
    pgrx::spi::quote_identifier(name)
}

/// The role's name, for messages.
pub fn role_name(role: Oid) -> String {
    let p = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if p.is_null() {
        return format!("role {}", role.to_u32());
    }
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The owner of a relation; None when it does not exist.
pub fn table_owner(table: Oid) -> Option<Oid> {
    Spi::get_one_with_args::<Oid>("SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1", &[table.into()]).ok().flatten()
}

/// The owner of the sfsync extension in this database.
pub fn extension_owner() -> Option<Oid> {
    Spi::get_one::<Oid>("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'sfsync'").ok().flatten()
}

/// Restores the user and security context it was made with, when dropped (also while a
/// Rust panic or a PostgreSQL error unwinds).
struct Restore {
    user: Oid,
    context: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Runs `f` as `role` (as `SET ROLE` would, but SET ROLE and SET SESSION AUTHORIZATION are
/// refused inside), then switches back.
pub fn as_role<T>(role: Oid, f: impl FnOnce() -> T) -> T {
    switch(role, pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32, f)
}

fn switch<T>(role: Oid, flags: i32, f: impl FnOnce() -> T) -> T {
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let _restore = Restore { user, context };
    unsafe { pg_sys::SetUserIdAndSecContext(role, context | flags) };
    f()
}

/// Runs `f` as the extension's owner: catalog work after the caller's rights were checked.
/// With `search_path` pinned to `pg_catalog, pg_temp` for its duration, as a SECURITY DEFINER
/// function pins it: otherwise a caller's own schema put first on its path could lend the
/// owner's SQL a function or an operator (a `now()` of its own) and run it with the owner's
/// rights. Names the caller gave are resolved before the switch.
pub fn as_extension_owner<T>(f: impl FnOnce() -> T) -> T {
    match extension_owner() {
        Some(owner) => as_definer(owner, f),
        None => f(),
    }
}

/// `as_role` with `search_path = pg_catalog, pg_temp` (undone on the way out), what
/// PostgreSQL does around a SECURITY DEFINER function with that setting.
fn as_definer<T>(role: Oid, f: impl FnOnce() -> T) -> T {
    as_role(role, || {
        let _settings = GucLevel(unsafe { pg_sys::NewGUCNestLevel() });
        set_setting(c"search_path", c"pg_catalog, pg_temp", pg_sys::GucContext::PGC_USERSET, pg_sys::GucAction::GUC_ACTION_SAVE);
        f()
    })
}

/// Sets a setting as the session would (`SET`, or for `GUC_ACTION_SAVE` until the current
/// GUC nest level ends); an ERROR if Postgres refuses the value.
pub(crate) fn set_setting(
    name: &std::ffi::CStr,
    value: &std::ffi::CStr,
    context: pg_sys::GucContext::Type,
    action: pg_sys::GucAction::Type,
) {
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        )
    };
}

/// Undoes the GUC changes made since it was made, when dropped normally (a transaction or
/// subtransaction abort undoes them anyway while an error unwinds).
struct GucLevel(i32);

impl Drop for GucLevel {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            unsafe { pg_sys::AtEOXact_GUC(false, self.0) };
        }
    }
}

/// Runs code the table's owner controls (its triggers, defaults, casts, index expressions)
/// as `owner`, the way PostgreSQL 16+ applies a subscription's rows: `as_role` as a
/// security-restricted operation (no temporary objects, cursors or deferred triggers that
/// would outlive it and later run or be found by the worker's own statements), and any
/// setting changed inside (a trigger's `SET search_path`, say) is undone on the way out.
/// Inside, search_path is the session's default (the worker's, or the caller's `RESET` value).
pub fn as_table_owner<T>(owner: Oid, f: impl FnOnce() -> T) -> T {
    let flags = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
    switch(owner, flags, || {
        let _settings = GucLevel(unsafe { pg_sys::NewGUCNestLevel() });
        // The owner's code resolves names as it would in the worker: with the session's
        // default search_path, not sfsync's pinned one nor a path the caller SET.
        // SAFETY: the reset value is the GUC's own string, valid while it is not reset.
        let default = unsafe { std::ffi::CStr::from_ptr(pg_sys::GetConfigOptionResetString(c"search_path".as_ptr())) };
        set_setting(c"search_path", default, pg_sys::GucContext::PGC_USERSET, pg_sys::GucAction::GUC_ACTION_SAVE);
        f()
    })
}

/// `as_table_owner` with `session_replication_role = replica` for its duration: the table's
/// ordinary triggers, and foreign-key checks (triggers too), do not fire. A shadow run's
/// writes. The setting is sfsync's, set for the owner (only a superuser may set it), and
/// undone with the owner's other settings on the way out.
pub fn as_table_owner_without_triggers<T>(owner: Oid, f: impl FnOnce() -> T) -> T {
    as_table_owner(owner, || {
        // PGC_SUSET: set as sfsync's own code, whatever the owner may set; ERROR if refused.
        set_setting(c"session_replication_role", c"replica", pg_sys::GucContext::PGC_SUSET, pg_sys::GucAction::GUC_ACTION_SAVE);
        f()
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// Functions PUBLIC may execute: those that check their caller themselves, and the
    /// helpers the views and triggers call as the caller. A new function is refused here
    /// until it is classified (docs/privileges.md).
    const PUBLIC: [&str; 23] = [
        "ack_alert",
        "api_budget_left", // sfsync.status calls it as its caller: a count, no secret
        "api_budget_scope",
        "approve_delete",
        "approve_deletes",
        "backfill",
        "discard",
        "external_key", // a row's external ID value: no more than mappings (readable) tells
        "is_admin",
        "is_applying",
        "may_act_on",
        "paused_copy", // sfsync.status calls it as its caller
        "reconcile",
        "refresh", // a synced query's: checks its caller is the query's owner or an admin
        "refresh_formulas",
        "reject_delete",
        "reject_deletes",
        "retry",
        "run_once",
        "unsync_query",
        "unsync_table",
        "verify",
        "worker_pid",
    ];

    fn public_functions() -> Vec<String> {
        Spi::get_one::<Vec<String>>(
            "SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
             WHERE p.pronamespace = 'sfsync'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')",
        )
        .unwrap()
        .unwrap_or_default()
    }

    #[pg_test]
    fn only_functions_that_check_their_caller_are_executable_by_public() {
        let public = public_functions();
        let unlisted: Vec<&String> = public.iter().filter(|f| !PUBLIC.contains(&f.as_str())).collect();
        assert!(unlisted.is_empty(), "executable by PUBLIC but not classified: {unlisted:?}");
        for closed in [
            "add_connection",
            "sync_table",
            "sync_query",
            "mirror",
            "set_change_stream",
            "adopt",
            "capture",
            "hold_delete",
            "write_through",
            "refuse_truncate",
            "wake_at_commit",
            "query_source_changed",
            "shadow_capture",
            "go_live",
        ] {
            assert!(!public.iter().any(|f| f == closed), "{closed} must not be executable by PUBLIC");
        }
        let admin = Spi::get_one::<bool>(
            "SELECT has_function_privilege('sfsync_admin', 'sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text, text)', 'EXECUTE')
                AND has_function_privilege('sfsync_admin', 'sfsync.mirror(text, text, text, text[])', 'EXECUTE')
                AND has_function_privilege('sfsync_admin', 'sfsync.add_connection(text, text, text, text, text, text, text, text, text, text, text, text, text)', 'EXECUTE')
                AND has_function_privilege('sfsync_admin', 'sfsync.set_change_stream(text, text, text)', 'EXECUTE')
                AND NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'sfsync_admin')",
        )
        .unwrap();
        assert_eq!(admin, Some(true), "sfsync_admin: a NOLOGIN role that may sync tables and mirror objects");
    }

    #[pg_test]
    fn every_security_definer_function_pins_its_search_path() {
        let loose = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(p.proname::text) FROM pg_proc p
             WHERE p.pronamespace = 'sfsync'::regnamespace AND p.prosecdef
               AND NOT COALESCE(p.proconfig @> '{\"search_path=pg_catalog, pg_temp\"}', false)",
        )
        .unwrap();
        assert_eq!(loose, None, "SECURITY DEFINER without SET search_path = pg_catalog, pg_temp");
    }

    #[pg_test]
    fn a_callers_search_path_lends_nothing_to_what_runs_as_the_extension_owner() {
        let id = crate::tests::tests::fixture();
        // A table owner (no superuser) with a now() of its own, first on its search_path: the
        // retry's SQL, run as the extension's owner, compares next_attempt_at with now().
        Spi::run(&format!(
            "CREATE ROLE sfsync_mallory; ALTER TABLE contacts OWNER TO sfsync_mallory;
             GRANT CREATE ON DATABASE {db} TO sfsync_mallory;
             INSERT INTO sfsync.outbox (mapping_id, op, pk, next_attempt_at) VALUES ({id}, 'insert', '1', 'infinity');",
            db = Spi::get_one::<String>("SELECT quote_ident(current_database())").unwrap().unwrap()
        ))
        .unwrap();
        Spi::run(
            "SET LOCAL ROLE sfsync_mallory;
             CREATE SCHEMA mallory;
             CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_catalog.set_config('sfsync_test.ran_as', current_user::text, true); RETURN pg_catalog.now(); END $$;
             SET LOCAL search_path = mallory, pg_catalog;",
        )
        .unwrap();
        let retried = Spi::get_one::<i64>("SELECT sfsync.retry('public.contacts')::bigint").unwrap();
        let ran_as = Spi::get_one::<String>("SELECT pg_catalog.current_setting('sfsync_test.ran_as', true)").unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(retried, Some(1), "the retry itself went through");
        assert!(ran_as.as_deref().unwrap_or("").is_empty(), "the caller's now() ran as {ran_as:?}");
        let path = Spi::get_one::<String>("SELECT current_setting('search_path')").unwrap().unwrap();
        assert_eq!(path, "mallory, pg_catalog", "the caller's own setting is back");
    }

    /// A synced table `t` owned by role `sfsync_t_owner`, with Salesforce's text in its state,
    /// its connection's state and one error row.
    fn fixture() {
        Spi::run(
            "CREATE ROLE sfsync_t_owner; CREATE ROLE sfsync_plain;
             CREATE TABLE t (id bigint PRIMARY KEY, name text, sfid varchar(18) UNIQUE);
             ALTER TABLE t OWNER TO sfsync_t_owner;
             INSERT INTO sfsync.connections (name, login_url, client_id, auth_flow) VALUES ('default', 'http://127.0.0.1:1', 'x', 'client_credentials');
             INSERT INTO sfsync.connection_state (connection, last_error) VALUES ('default', 'connection detail');
             INSERT INTO sfsync.mappings (tbl, sobject, connection, pk_column, pk_type, external_id, columns)
             VALUES ('t', 'Account', 'default', 'id', 'bigint', 'Postgres_Id__c', '[]');
             INSERT INTO sfsync.sync_state (mapping_id, last_error) SELECT id, 'table detail' FROM sfsync.mappings;
             INSERT INTO sfsync.record_errors (mapping_id, direction, pk, operation, error_code, message)
             SELECT id, 'push', '1', 'insert', 'REQUIRED_FIELD_MISSING', 'row detail' FROM sfsync.mappings;",
        )
        .unwrap();
    }

    /// (status.last_error, rows of sfsync.errors) as `role` sees them.
    fn seen_by(role: &str) -> (Option<String>, i64) {
        Spi::run(&format!("SET LOCAL ROLE {role}")).unwrap();
        let seen =
            Spi::get_two::<String, i64>("SELECT (SELECT last_error FROM sfsync.status), (SELECT count(*) FROM sfsync.errors)").unwrap();
        Spi::run("RESET ROLE").unwrap();
        (seen.0, seen.1.unwrap_or(0))
    }

    #[pg_test]
    fn salesforce_text_is_shown_to_the_tables_owner_and_admins_only() {
        fixture();
        assert_eq!(seen_by("sfsync_plain"), (None, 0), "a role that may not act on t");
        assert_eq!(seen_by("sfsync_t_owner"), (Some("table detail".into()), 1));
        Spi::run("UPDATE sfsync.sync_state SET last_error = NULL").unwrap();
        assert_eq!(seen_by("sfsync_t_owner"), (None, 1), "a connection's error is for admins");
        Spi::run("GRANT sfsync_admin TO sfsync_plain").unwrap();
        assert_eq!(seen_by("sfsync_plain"), (Some("connection detail".into()), 1));
    }

    #[pg_test]
    fn a_table_function_names_the_privilege_it_misses() {
        fixture();
        Spi::run("SET LOCAL ROLE sfsync_plain").unwrap();
        Spi::run(
            "DO $$ BEGIN PERFORM sfsync.retry('t'); PERFORM set_config('sfsync_test.err', 'none', true);
             EXCEPTION WHEN OTHERS THEN PERFORM set_config('sfsync_test.err', SQLSTATE || ': ' || SQLERRM, true); END $$",
        )
        .unwrap();
        Spi::run("RESET ROLE").unwrap();
        let e = Spi::get_one::<String>("SELECT current_setting('sfsync_test.err')").unwrap().unwrap();
        assert_eq!(
            e,
            "42501: permission denied: sfsync.retry on table public.t needs ownership of the table (owner: sfsync_t_owner) or membership in sfsync_admin"
        );
    }
}
