//! API usage accounting: [`ApiStats`] (requests sent, the org's usage from the
//! `Sforce-Limit-Info` header) and the per-client budget pacer ([`crate::budget`]) that the
//! request core consults before each call and pauses on `REQUEST_LIMIT_EXCEEDED`.

use super::{lock, Client};
use crate::budget::{now_us, Pacer};
use crate::error::Error;
use crate::http::parse_limit_info;

/// API usage seen by this client.
#[derive(Clone, Debug, Default)]
pub struct ApiStats {
    /// REST requests sent, including retries and requests that timed out
    /// (OAuth token requests and connections that never opened do not count).
    pub calls: u64,
    /// From the last `Sforce-Limit-Info: api-usage=N/M` header.
    pub api_used: Option<u64>,
    pub api_max: Option<u64>,
}

impl Client {
    pub fn stats(&self) -> ApiStats {
        lock(&self.stats).clone()
    }

    /// Counts one request sent (when `counted`) and records the org's usage from a
    /// `Sforce-Limit-Info` header value, if any.
    pub(super) fn record_usage(&self, counted: bool, limit_info: Option<&str>) {
        let mut st = lock(&self.stats);
        if counted {
            st.calls += 1;
        }
        if let Some((used, max)) = limit_info.and_then(parse_limit_info) {
            st.api_used = Some(used);
            st.api_max = Some(max);
            drop(st);
            if let Some(p) = lock(&self.pacer).as_ref() {
                p.cell().record_usage(used, max);
            }
        }
    }

    /// Once logged in (the org known): paces this client at its `api_share`, from its org's
    /// shared cell when the options give a [`crate::budget::BudgetShare`] with room for it,
    /// else alone.
    pub(super) fn start_pacing(&self) {
        let Some(share) = self.opts.api_share else { return };
        let key = self
            .org_id()
            .unwrap_or_else(|| format!("{} {} {}", self.login_url, self.creds.client_id, self.creds.username.as_deref().unwrap_or("")));
        let cell = self.opts.budget.as_ref().and_then(|b| b.0.cell(&key));
        *lock(&self.pacer) = Some(match cell {
            Some(cell) => Pacer::shared(share, cell),
            None => Pacer::new(share),
        });
    }

    /// Whether this client's budget is shared with the org's other clients (`None`: not
    /// paced); and the calls its bucket holds now (`None` while the allocation is unknown).
    pub fn budget(&self) -> Option<(bool, Option<f64>)> {
        lock(&self.pacer).as_ref().map(|p| (p.is_shared(), p.cell().available(p.share(), now_us())))
    }

    /// Fails fast with `Error::Budget` when this client is over its share of the org's
    /// daily allocation (no pacer configured: always Ok).
    pub(super) fn check_budget(&self) -> Result<(), Error> {
        if let Some(p) = lock(&self.pacer).as_ref() {
            p.check(now_us()).map_err(|(wait, reason)| Error::Budget { wait, reason })?;
        }
        Ok(())
    }

    /// After a call failed with REQUEST_LIMIT_EXCEEDED, pauses the budget (the server's
    /// `Retry-After`, else a pause that grows with refusals in a row) so the next calls fail
    /// fast instead of adding to it.
    pub(super) fn pause_on_limit(&self, e: &Error) {
        if e.code() == "REQUEST_LIMIT_EXCEEDED" {
            if let Some(p) = lock(&self.pacer).as_ref() {
                p.pause_after_refusal(now_us(), &e.to_string(), e.retry_after());
            }
        }
    }

    /// An authenticated call went through: the org is not refusing requests.
    pub(super) fn budget_went_through(&self) {
        if let Some(p) = lock(&self.pacer).as_ref() {
            p.went_through();
        }
    }
}
