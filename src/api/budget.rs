//! What sfsync.status shows of the API budget: whose it is (one per org for the cluster, or
//! each process's own when sfsync is not preloaded) and how many calls it holds now.

use crate::{guc, org_budget, token_cache};
use pgrx::prelude::*;

/// 'org' when the cluster paces each org with one budget (sfsync preloaded), 'process' when
/// every process paces itself.
#[pg_extern(stable, parallel_safe)]
fn api_budget_scope() -> &'static str {
    if org_budget::shared() {
        "org"
    } else {
        "process"
    }
}

/// Calls the API budget of connection `connection`'s org holds now (rounded down); NULL
/// while unknown (no session yet, or the org's allocation not read yet) or not shared.
#[pg_extern(volatile, parallel_safe)]
fn api_budget_left(connection: &str) -> Option<i64> {
    let org = token_cache::org_of(connection)?;
    let cell = org_budget::existing(&org)?;
    cell.available(guc::API_BUDGET.get(), salesforce::budget::now_us()).map(|a| a.floor() as i64)
}
