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
pub fn as_extension_owner<T>(f: impl FnOnce() -> T) -> T {
    match extension_owner() {
        Some(owner) => as_role(owner, f),
        None => f(),
    }
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
pub fn as_table_owner<T>(owner: Oid, f: impl FnOnce() -> T) -> T {
    let flags = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
    switch(owner, flags, || {
        let _settings = GucLevel(unsafe { pg_sys::NewGUCNestLevel() });
        f()
    })
}
