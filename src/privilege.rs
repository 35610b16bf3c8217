//! Who is acting, and acting as someone else for a while.
//!
//! sfsync's SQL functions run as their caller (SECURITY INVOKER) so that they can see who
//! called them; after checking that the caller may act on what it names, the catalog work
//! runs as the extension's owner (`as_extension_owner`). The worker applies rows as the
//! table's owner (`as_role`), so a table owner's triggers, defaults and index expressions
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
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let _restore = Restore { user, context };
    unsafe { pg_sys::SetUserIdAndSecContext(role, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32) };
    f()
}

/// Runs `f` as the extension's owner: catalog work after the caller's rights were checked.
pub fn as_extension_owner<T>(f: impl FnOnce() -> T) -> T {
    match extension_owner() {
        Some(owner) => as_role(owner, f),
        None => f(),
    }
}
