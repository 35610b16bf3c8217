//! What this process wrote to Salesforce lately, per connection, so its change stream can
//! drop the events that only echo those writes (`plan::echoes` decides). The push notes its
//! writes here; each connection's listener thread (`sync::cdc`) and the worker's drain read
//! the same book. Only connections with a listener in this process have one.

use crate::plan::echoes::EchoBook;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Records of a connection whose latest writes are remembered to tell their echoes.
const ECHO_RECORDS: usize = 50_000;
/// How long a write's echo is awaited: the stream delivers in seconds; one that did not come
/// by then (a save that changed nothing) is forgotten, and the record's events apply again.
const ECHO_PATIENCE: Duration = Duration::from_secs(120);

/// What this process wrote lately, per connection that has a listener (`plan::echoes`): the
/// push notes its writes, the listener thread drops the events that only echo them.
static ECHO_BOOKS: LazyLock<Mutex<HashMap<String, Arc<Mutex<EchoBook>>>>> = LazyLock::new(Default::default);

pub(super) fn book(conn: &str) -> Arc<Mutex<EchoBook>> {
    let mut books = ECHO_BOOKS.lock().unwrap_or_else(|p| p.into_inner());
    books.entry(conn.to_string()).or_insert_with(|| Arc::new(Mutex::new(EchoBook::new(ECHO_RECORDS, ECHO_PATIENCE)))).clone()
}

/// Tells connection `conn`'s book which objects more than one table pulls (their events are
/// never dropped: the other table needs them).
pub fn share(conn: &str, objects: impl IntoIterator<Item = String>) {
    book(conn).lock().unwrap_or_else(|p| p.into_inner()).share(objects);
}

/// Lets `f` note writes to Salesforce through connection `conn`, when a listener of this
/// process hears its change events (else there is nothing to tell apart).
pub fn note_writes(conn: &str, f: impl FnOnce(&mut EchoBook)) {
    let book = ECHO_BOOKS.lock().unwrap_or_else(|p| p.into_inner()).get(conn).cloned();
    if let Some(book) = book {
        f(&mut book.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
