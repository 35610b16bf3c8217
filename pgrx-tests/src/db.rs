//! Reading and waiting on a database with sfsync: one value of a query, "this arrives in
//! Postgres", "the outbox is drained", "the worker runs".

use std::fmt::Debug;

use postgres::types::FromSqlOwned;
use postgres::Client;

use crate::wait::{until, WAIT};

/// The single value of a one-row, one-column query. Panics on an error or another row count.
pub fn scalar<T: FromSqlOwned>(db: &mut Client, sql: &str) -> T {
    db.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// Waits on a `postgres::Client` connected to a database with sfsync. Every wait gives up
/// after [`WAIT`] with what it waited for and the last value it saw.
pub trait DbExt {
    /// Waits until the one value of `sql` equals `expected` (no row yet counts as not yet).
    fn until_value<T: FromSqlOwned + PartialEq + Debug>(&mut self, sql: &str, expected: T);

    /// Waits until the count query `sql` (`SELECT count(*) ...`) gives `n`.
    fn until_count(&mut self, sql: &str, n: i64) {
        self.until_value(sql, n);
    }

    /// Waits until the boolean expression or query `sql` is true (NULL or no row: not yet);
    /// `what` names the condition in a failure.
    fn until_true(&mut self, what: &str, sql: &str);

    /// Waits until `sfsync.outbox` is empty: every captured change was sent (or archived).
    fn until_outbox_drained(&mut self) {
        self.until_count("SELECT count(*) FROM sfsync.outbox", 0);
    }

    /// Waits until the database has its sfsync worker (`sfsync.worker_pid()`) and returns its pid.
    fn until_worker(&mut self) -> i32;

    /// Waits until a worker other than `old` runs the database and returns its pid.
    fn until_worker_replaced(&mut self, old: i32) -> i32;

    /// The external ID value of the row with `key` in synced `table`
    /// (`sfsync.external_key`): what to look its Salesforce record up by.
    fn external_key(&mut self, table: &str, key: &str) -> String;

    /// `ALTER SYSTEM SET name = value` for each setting (values are SQL as written:
    /// `off`, `'10ms'`, `DEFAULT`), then `pg_reload_conf()`.
    fn set_system(&mut self, settings: &[(&str, &str)]);
}

impl DbExt for Client {
    fn external_key(&mut self, table: &str, key: &str) -> String {
        let row = self
            .query_one("SELECT sfsync.external_key($1::text::regclass, $2)", &[&table, &key])
            .unwrap_or_else(|e| panic!("sfsync.external_key({table}, {key}): {e}"));
        row.get(0)
    }

    fn until_value<T: FromSqlOwned + PartialEq + Debug>(&mut self, sql: &str, expected: T) {
        let what = format!("`{sql}` = {expected:?}");
        until(&what, WAIT, || {
            let row = self.query_opt(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
            match row.map(|r| r.get::<_, T>(0)) {
                Some(v) if v == expected => Ok(()),
                Some(v) => Err(format!("{v:?}")),
                None => Err("no row".to_string()),
            }
        })
    }

    fn until_true(&mut self, what: &str, sql: &str) {
        let check = format!("SELECT COALESCE(({sql}), false)");
        until(what, WAIT, || scalar::<bool>(self, &check));
    }

    fn until_worker(&mut self) -> i32 {
        until("the sfsync worker of this database", WAIT, || {
            self.query_one("SELECT sfsync.worker_pid()", &[])
                .map_err(|e| e.to_string())?
                .get::<_, Option<i32>>(0)
                .ok_or_else(|| "no worker".to_string())
        })
    }

    fn until_worker_replaced(&mut self, old: i32) -> i32 {
        until(&format!("a worker other than pid {old}"), WAIT, || {
            let pid: Option<i32> = self.query_one("SELECT sfsync.worker_pid()", &[]).map_err(|e| e.to_string())?.get(0);
            match pid {
                Some(p) if p != old => Ok(p),
                other => Err(format!("worker {other:?}")),
            }
        })
    }

    fn set_system(&mut self, settings: &[(&str, &str)]) {
        for (name, value) in settings {
            let sql = format!("ALTER SYSTEM SET {name} = {value}");
            self.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        self.batch_execute("SELECT pg_reload_conf()").unwrap();
    }
}
