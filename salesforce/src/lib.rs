//! Blocking, pure-Rust Salesforce API client used by the sfsync background
//! worker: OAuth flows (client credentials, password, JWT bearer, refresh
//! token), REST CRUD and upsert, sObject Collections, SOQL paging, Bulk API
//! 2.0 ingest and query jobs (`client::bulk`), a typed error model, bounded
//! retries and API usage accounting, and a CometD client for Change Data
//! Capture ([`cdc`]).
//!
//! [`Client`]'s methods are grouped by API area in the submodules of [`client`]
//! (request core, limits, records, collections, query, describe, bulk); its
//! public types are re-exported at the crate root.
//!
//! No async runtime and no pgrx: every call blocks the calling thread for at
//! most `ClientOptions::request_timeout` per attempt and
//! `ClientOptions::max_retry_time` across retries.
//!
//! ```no_run
//! use salesforce::{AuthFlow, Client, ClientOptions, Credentials, Secret, soql};
//!
//! let mut creds = Credentials::new(AuthFlow::ClientCredentials, "https://acme.my.salesforce.com", "3MVG9...");
//! creds.client_secret = Some(Secret::new("...".into()));
//! let client = Client::login(creds, ClientOptions::default())?;
//! let q = format!("SELECT Id, Name FROM Account WHERE Name = {}", soql::quote("O'Brien"));
//! for rec in client.query_iter(&q, false) {
//!     let rec = rec?;
//!     println!("{}", rec["Id"]);
//! }
//! # Ok::<(), salesforce::Error>(())
//! ```
//!
//! Retries: transient failures (5xx, 429, `UNABLE_TO_LOCK_ROW`,
//! `SERVER_UNAVAILABLE`, transport errors, `REQUEST_LIMIT_EXCEEDED` with a
//! short `Retry-After`) are retried with jittered exponential backoff (200 ms
//! base, 5 s cap, `Retry-After` honoured) up to `max_retries` times within
//! `max_retry_time`. Creates (`create`, `collections_create`) are retried only
//! when the request surely was not processed (connection refused, 503, lock);
//! never after a timeout or reset. One `401` per call triggers a re-login.

pub mod auth;
pub mod budget;
pub mod cdc;
pub mod client;
pub mod composite;
mod de;
pub mod error;
pub mod hosts;
mod http;
pub mod pubsub;
pub use http::with_signals_blocked;
pub mod replication;
pub mod soql;
pub mod types;

pub use auth::{AuthFlow, Credentials, Secret};
pub use budget::{BudgetCell, BudgetHandle, BudgetShare};
pub use cdc::{CdcError, CdcStream, ChangeEvent, ChangeEventHeader, ReplayFrom};
pub use client::bulk::{
    build_csv, map_results, poll_delay, BulkIngestResult, BulkJobInfo, BulkOperation, BulkOptions, BulkQueryReader, BulkRowOutcome,
    IngestStarted, BULK_NULL,
};
pub use client::describe::DescribeCheck;
pub use client::{ApiStats, Client, ClientOptions, QueryIter, SessionSeed, SessionShare, COLLECTIONS_CHUNK};
pub use composite::{collections_results, CollectionsWrite, CompositeSubrequest, CompositeSubresponse};
/// A Bulk query result row (see [`BulkQueryReader`]).
pub use csv::StringRecord;
pub use error::{ApiError, Error, RecordError};
pub use hosts::HostPolicy;
pub use replication::{DeletedRecord, DeletedResult, UpdatedResult};
pub use types::{DescribeGlobal, FieldDescribe, PicklistValue, QueryPage, Record, SObjectDescribe, SaveResult, UpsertResult};
