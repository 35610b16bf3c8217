//! SOQL queries over REST: `query` / `queryAll` first pages, `nextRecordsUrl` follow-ups, and
//! [`QueryIter`], which walks every page holding one page in memory at a time.

use std::sync::atomic::Ordering;

use super::request::{Method, Request, Target};
use super::Client;
use crate::error::Error;
use crate::http::encode_query;
use crate::types::{QueryPage, Record};

impl Client {
    /// Page size hint for queries (`Sforce-Query-Options: batchSize=N`,
    /// Salesforce accepts 200..=2000). `None` uses the server default.
    pub fn set_query_batch_size(&self, size: Option<u32>) {
        self.query_batch_size.store(size.unwrap_or(0), Ordering::Relaxed);
    }

    fn query_request(&self, path: String) -> Result<QueryPage, Error> {
        let mut headers = vec![];
        let batch = self.query_batch_size.load(Ordering::Relaxed);
        if batch > 0 {
            headers.push(("Sforce-Query-Options", format!("batchSize={batch}")));
        }
        let resp = self.execute(&Request {
            method: Method::Get,
            target: Target::Instance(path),
            body: None,
            headers,
            idempotent: true,
            authenticated: true,
        })?;
        QueryPage::parse(&resp.body)
    }

    /// First page of a SOQL query.
    pub fn query(&self, soql: &str) -> Result<QueryPage, Error> {
        self.query_request(self.data_path(&format!("/query?q={}", encode_query(soql))))
    }

    /// First page of a SOQL query that includes deleted and archived rows (`queryAll`).
    pub fn query_all(&self, soql: &str) -> Result<QueryPage, Error> {
        self.query_request(self.data_path(&format!("/queryAll?q={}", encode_query(soql))))
    }

    /// Next page, from [`QueryPage::next_records_url`].
    pub fn query_more(&self, next_records_url: &str) -> Result<QueryPage, Error> {
        let path = self.instance_path(next_records_url)?;
        self.query_request(path)
    }

    fn instance_path(&self, url: &str) -> Result<String, Error> {
        let url = url.trim();
        if url.starts_with('/') && !url.starts_with("//") {
            return Ok(url.to_string());
        }
        let instance = self.instance_url();
        match url.strip_prefix(&instance) {
            Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
            _ => Err(Error::Config(format!("'{url}' is not a path on the instance {instance}"))),
        }
    }

    /// Iterates over every record of a query, one page in memory at a time,
    /// following `nextRecordsUrl`. `include_deleted` uses `queryAll`.
    pub fn query_iter<'a>(&'a self, soql: &str, include_deleted: bool) -> QueryIter<'a> {
        QueryIter {
            client: self,
            soql: Some(soql.to_string()),
            include_deleted,
            records: Vec::new().into_iter(),
            next: None,
            total_size: None,
            finished: false,
        }
    }
}

/// Record iterator returned by [`Client::query_iter`].
pub struct QueryIter<'a> {
    client: &'a Client,
    soql: Option<String>,
    include_deleted: bool,
    records: std::vec::IntoIter<Record>,
    next: Option<String>,
    total_size: Option<u64>,
    finished: bool,
}

impl QueryIter<'_> {
    /// `totalSize` of the query, known once the first page is fetched.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }

    /// Records of the current page not yet returned: at 0, the next record costs a call.
    pub fn page_left(&self) -> usize {
        self.records.len()
    }
}

impl Iterator for QueryIter<'_> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.records.next() {
                return Some(Ok(r));
            }
            if self.finished {
                return None;
            }
            let page = if let Some(q) = self.soql.take() {
                if self.include_deleted {
                    self.client.query_all(&q)
                } else {
                    self.client.query(&q)
                }
            } else if let Some(url) = self.next.take() {
                self.client.query_more(&url)
            } else {
                self.finished = true;
                return None;
            };
            match page {
                Ok(p) => {
                    self.total_size.get_or_insert(p.total_size);
                    self.next = if p.done { None } else { p.next_records_url };
                    if self.next.is_none() {
                        self.finished = true;
                    }
                    self.records = p.records.into_iter();
                }
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
