//! sfsync.may_act_on / sfsync.is_admin: the rule of src/privilege.rs for SQL. The views and
//! the row-level policies call them as the reader, so a table's error text and held rows are
//! shown only to those who may act on the table.

use crate::privilege;
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;

/// True when the current user may act on table `tbl`: it has the privileges of the table's
/// owner, or is an sfsync admin (a member of sfsync_admin, or a superuser).
#[pg_extern(stable, parallel_restricted)]
fn may_act_on(tbl: Oid) -> bool {
    privilege::may_act_on(privilege::current_user(), tbl)
}

/// True when the current user is an sfsync admin.
#[pg_extern(stable, parallel_safe)]
fn is_admin() -> bool {
    privilege::is_admin(privilege::current_user())
}
