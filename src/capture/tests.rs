//! `#[pg_test]`s of when captured changes reach the outbox (`pending`): in row order, at the
//! end of the statement or COPY, and only with the subtransaction they were captured in; written
//! straight into the outbox's heap and indexes (`direct`) with the catalog's defaults, and
//! through SQL when the outbox has grown something the direct write would skip.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{count, fixture, outbox};
    use pgrx::prelude::*;

    #[pg_test]
    fn a_statements_changes_are_queued_in_row_order_with_their_values_before() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name, email) SELECT g, 'Doe ' || g, 'd' || g || '@x' FROM generate_series(1, 3) g")
            .unwrap();
        Spi::run("UPDATE contacts SET email = 'new' || id || '@x' WHERE id IN (3, 1)").unwrap();
        let rows = outbox();
        let ops: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        assert_eq!(&ops[..3], &[("insert", "1"), ("insert", "2"), ("insert", "3")]);
        assert_eq!(rows[3..].iter().map(|r| r.2.clone()).collect::<Vec<_>>(), vec![Some(vec!["email".to_string()]); 2]);
        let base = Spi::get_one::<String>(
            "SELECT string_agg(pk || '=' || (base->>'email'), ',' ORDER BY pk) FROM sfsync.outbox WHERE op = 'update'",
        );
        assert_eq!(base.unwrap().as_deref(), Some("1=d1@x,3=d3@x"), "each update's own value before");
    }

    #[pg_test]
    fn a_column_name_with_quotes_and_backslashes_is_queued_as_it_is() {
        let id = fixture();
        Spi::run(&format!(
            r#"ALTER TABLE contacts ADD COLUMN "ti""t\le" text;
               UPDATE sfsync.mappings SET columns = columns || '[{{"column":"ti\"t\\le","field":"Title","sf_type":"string","pg_type":"text","createable":true,"updateable":true}}]'
                WHERE id = {id};
               DROP TRIGGER sfsync_capture ON contacts;
               CREATE TRIGGER sfsync_capture AFTER INSERT OR UPDATE OR DELETE ON contacts
                   FOR EACH ROW EXECUTE FUNCTION sfsync.capture('{id}', 'id', 'last_name', 'email', 'ti"t\le');"#
        ))
        .unwrap();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'a'), (2, 'b')").unwrap();
        Spi::run(r#"UPDATE contacts SET "ti""t\le" = 'x', email = 'e'"#).unwrap();
        let rows = outbox();
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert_eq!(rows[2].2, Some(vec!["email".to_string(), r#"ti"t\le"#.to_string()]), "{rows:?}");
    }

    #[pg_test]
    fn changes_under_a_savepoint_rolled_back_are_dropped_and_the_rest_kept() {
        fixture();
        // A user trigger writing the row again inside a savepoint (a plpgsql EXCEPTION block),
        // which fails for one row: that row's own insert is the statement's, and stays.
        Spi::run(
            "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 BEGIN
                     UPDATE contacts SET email = NEW.last_name || '@x' WHERE id = NEW.id;
                     IF NEW.last_name = 'fail' THEN RAISE EXCEPTION 'boom'; END IF;
                 EXCEPTION WHEN others THEN NULL;
                 END;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER zz_touch AFTER INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION touch();",
        )
        .unwrap();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'ok'), (2, 'fail')").unwrap();
        let rows = outbox();
        let ops: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        assert_eq!(ops, vec![("insert", "1"), ("update", "1"), ("insert", "2")]);
        assert_eq!(count("SELECT count(*) FROM contacts WHERE email IS NOT NULL"), 1, "row 2's update was rolled back");
    }

    #[pg_test]
    fn a_copy_has_queued_every_row_when_it_returns() {
        fixture();
        let file = format!("/tmp/sfsync-pgtest-copy-{}.csv", std::process::id());
        Spi::run(&format!("COPY (SELECT g, 'Doe ' || g FROM generate_series(1, 2500) g) TO '{file}' (FORMAT csv)")).unwrap();
        Spi::run(&format!("COPY contacts (id, last_name) FROM '{file}' (FORMAT csv)")).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 2500);
        assert_eq!(count("SELECT count(DISTINCT pk) FROM sfsync.outbox WHERE op = 'insert'"), 2500);
    }

    #[pg_test]
    fn the_outbox_is_written_directly_with_the_catalogs_defaults() {
        let id = fixture();
        assert!(crate::capture::direct::applies(), "the installed outbox takes direct writes");
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'a')").unwrap();
        // A row made by the catalog's own defaults, in the same transaction.
        Spi::run(&format!("INSERT INTO sfsync.outbox (mapping_id, op, pk) VALUES ({id}, 'insert', 'ref')")).unwrap();
        assert_eq!(
            count(
                "SELECT count(DISTINCT (mapping_id, op, sfid, changed, base, txid, state, attempts, claimed_until, next_attempt_at))
                 FROM sfsync.outbox"
            ),
            1,
            "the captured entry and the catalog's differ"
        );
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE captured_at BETWEEN now() AND clock_timestamp()"), 2);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE id > 0 AND txid = pg_current_xact_id()"), 2);
    }

    #[pg_test]
    fn a_trigger_on_the_outbox_sees_every_change() {
        fixture();
        // The direct write would skip it: the changes go in through SQL instead.
        Spi::run(
            "CREATE TABLE seen (pk text);
             CREATE FUNCTION saw() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO seen VALUES (NEW.pk); RETURN NULL; END $$;
             CREATE TRIGGER saw AFTER INSERT ON sfsync.outbox FOR EACH ROW EXECUTE FUNCTION saw();",
        )
        .unwrap();
        assert!(!crate::capture::direct::applies());
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'a')").unwrap();
        Spi::run("INSERT INTO contacts (id, last_name) SELECT g, 'b' FROM generate_series(2, 4) g").unwrap();
        assert_eq!(outbox().len(), 4);
        assert_eq!(count("SELECT count(*) FROM seen s JOIN sfsync.outbox o USING (pk)"), 4);
    }

    #[pg_test]
    fn a_change_too_large_for_its_page_is_found_through_the_outbox_index() {
        let id = fixture();
        // 320 kB of hex: stored out of line, so the row written is not the row formed.
        Spi::run(
            "INSERT INTO contacts (id, last_name, email)
             SELECT 1, 'a', string_agg(md5(g::text), '') FROM generate_series(1, 10000) g",
        )
        .unwrap();
        Spi::run("UPDATE contacts SET email = 'short' WHERE id = 1").unwrap();
        Spi::run("SET LOCAL enable_seqscan = off").unwrap();
        let plan = Spi::get_one::<String>(&format!(
            "EXPLAIN SELECT base FROM sfsync.outbox WHERE mapping_id = {id} AND pk = '1' AND op = 'update'"
        ))
        .unwrap()
        .unwrap_or_default();
        assert!(plan.contains("outbox_record"), "{plan}");
        assert_eq!(
            count(&format!(
                "SELECT length(base->>'email')::bigint FROM sfsync.outbox WHERE mapping_id = {id} AND pk = '1' AND op = 'update'"
            )),
            320_000
        );
    }

    #[pg_test]
    fn columns_renamed_dropped_or_added_behind_syncs_back_are_seen_by_the_next_row() {
        let id = fixture();
        // The trigger has found its columns for this session.
        Spi::run("INSERT INTO contacts (id, last_name, email) VALUES (1, 'a', 'a@x')").unwrap();
        Spi::run("ALTER EVENT TRIGGER sfsync_follow_ddl DISABLE").unwrap();
        // email renamed, with the same trigger: its values are not email's any more.
        Spi::run("ALTER TABLE contacts RENAME COLUMN email TO mail").unwrap();
        Spi::run("UPDATE contacts SET mail = 'b@x' WHERE id = 1").unwrap();
        assert_eq!(outbox().len(), 1, "a change of no mapped column: nothing queued");
        assert_eq!(count(&format!("SELECT count(*) FROM sfsync.alert_log WHERE kind = 'out_of_step' AND mapping_id = {id}")), 1);
        // A column of that name again (one more column in the table): found, and queued.
        Spi::run("ALTER TABLE contacts ADD COLUMN email text").unwrap();
        Spi::run("UPDATE contacts SET email = 'c@x', last_name = 'b' WHERE id = 1").unwrap();
        let rows = outbox();
        assert_eq!(rows.last().unwrap().2, Some(vec!["last_name".to_string(), "email".to_string()]), "{rows:?}");
        // last_name dropped: the rest is still captured.
        Spi::run("ALTER TABLE contacts DROP COLUMN last_name").unwrap();
        Spi::run("UPDATE contacts SET email = 'd@x' WHERE id = 1").unwrap();
        assert_eq!(outbox().last().unwrap().2, Some(vec!["email".to_string()]));
        assert_eq!(
            count("SELECT (base->>'email' = 'c@x')::int::bigint FROM sfsync.outbox ORDER BY id DESC LIMIT 1"),
            1,
            "the value before, read from the right column"
        );
    }
}
