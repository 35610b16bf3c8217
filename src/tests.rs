//! `#[pg_test]`s: SQL and trigger behaviour inside one (rolled back) transaction. No
//! Salesforce here: mappings are inserted directly, as sync_table would leave them.

#[pgrx::pg_schema]
pub(crate) mod tests {
    use pgrx::prelude::*;

    /// A synced `contacts` table as sync_table leaves it, without calling Salesforce.
    pub(crate) fn fixture() -> i32 {
        Spi::run(
            "CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL, email text, notes text,
                                    sfid varchar(18) UNIQUE);
             INSERT INTO sfsync.connections (name, login_url, client_id, auth_flow) VALUES ('default', 'http://127.0.0.1:1', 'x', 'client_credentials');",
        )
        .unwrap();
        let id = Spi::get_one::<i32>(
            "INSERT INTO sfsync.mappings (tbl, sobject, connection, pk_column, pk_type, external_id, columns)
             VALUES ('contacts', 'Contact', 'default', 'id', 'bigint', 'Postgres_Id__c',
                     '[{\"column\":\"last_name\",\"field\":\"LastName\",\"sf_type\":\"string\",\"pg_type\":\"text\",\"createable\":true,\"updateable\":true},
                       {\"column\":\"email\",\"field\":\"Email\",\"sf_type\":\"email\",\"pg_type\":\"text\",\"createable\":true,\"updateable\":true}]')
             RETURNING id",
        )
        .unwrap()
        .unwrap();
        Spi::run(&format!(
            "CREATE TRIGGER sfsync_capture AFTER INSERT OR UPDATE OR DELETE ON contacts
             FOR EACH ROW EXECUTE FUNCTION sfsync.capture('{id}', 'id', 'last_name', 'email');
             CREATE TRIGGER sfsync_no_truncate BEFORE TRUNCATE ON contacts FOR EACH STATEMENT EXECUTE FUNCTION sfsync.refuse_truncate();"
        ))
        .unwrap();
        id
    }

    pub(crate) fn outbox() -> Vec<(String, String, Option<Vec<String>>)> {
        Spi::connect(|c| {
            c.select("SELECT op, pk, changed FROM sfsync.outbox ORDER BY id", None, &[])
                .unwrap()
                .map(|r| (r.get::<String>(1).unwrap().unwrap(), r.get::<String>(2).unwrap().unwrap(), r.get::<Vec<String>>(3).unwrap()))
                .collect()
        })
    }

    #[pg_test]
    fn planner_settings_changed_for_a_statement_are_put_back() {
        Spi::run("SET enable_sort = off").unwrap();
        let inside = crate::spi_util::with_settings(&[("enable_sort", "on"), ("enable_hashjoin", "off")], || {
            Ok(Spi::get_one::<String>("SELECT current_setting('enable_sort') || current_setting('enable_hashjoin')").unwrap())
        })
        .unwrap();
        assert_eq!(inside.as_deref(), Some("onoff"));
        let after = Spi::get_one::<String>("SELECT current_setting('enable_sort') || current_setting('enable_hashjoin')").unwrap();
        assert_eq!(after.as_deref(), Some("offon"), "the session's own values again");
    }

    #[pg_test]
    fn insert_update_delete_are_captured() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name, email, notes) VALUES (1, 'Doe', 'd@x', 'n')").unwrap();
        Spi::run("UPDATE contacts SET email = 'e@x' WHERE id = 1").unwrap();
        Spi::run("DELETE FROM contacts WHERE id = 1").unwrap();
        let rows = outbox();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("insert", "1"));
        assert_eq!(rows[0].2, None, "an insert sends every mapped column");
        assert_eq!(rows[1].0, "update");
        assert_eq!(rows[1].2, Some(vec!["email".to_string()]), "only the changed mapped column");
        assert_eq!(rows[2].0, "delete");
        assert!(rows[2].2.is_none());
    }

    #[pg_test]
    fn capture_runs_for_roles_without_rights_on_the_outbox() {
        fixture();
        Spi::run("CREATE ROLE sfsync_app; GRANT ALL ON contacts TO sfsync_app; GRANT USAGE ON SEQUENCE contacts_id_seq TO sfsync_app")
            .unwrap();
        Spi::run("SET LOCAL ROLE sfsync_app").unwrap();
        Spi::run("INSERT INTO contacts (last_name) VALUES ('Doe')").unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(outbox().len(), 1);
    }

    #[pg_test]
    fn a_capture_trigger_made_by_hand_on_another_table_queues_nothing() {
        let id = fixture();
        Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (7, 'Doe', '003000000000001AAA')").unwrap();
        // Not by a role on its own table (capture is not executable by PUBLIC): with the
        // mapping's id it would queue a delete of contact 7's Salesforce record.
        Spi::run("CREATE ROLE sfsync_forger; CREATE TABLE decoy (id bigint PRIMARY KEY, last_name text, sfid text)").unwrap();
        Spi::run("ALTER TABLE decoy OWNER TO sfsync_forger").unwrap();
        let trigger =
            format!("CREATE TRIGGER t AFTER INSERT OR DELETE ON decoy FOR EACH ROW EXECUTE FUNCTION sfsync.capture('{id}', 'id')");
        Spi::run("SET LOCAL ROLE sfsync_forger").unwrap();
        let e = error_of(&trigger);
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(e, "42501: permission denied for function sfsync.capture");
        Spi::run(&trigger).unwrap(); // made by a superuser, it still cannot capture for the mapping
        Spi::run("SET LOCAL ROLE sfsync_forger").unwrap();
        let e = error_of("INSERT INTO decoy VALUES (7, 'Doe', '003000000000001AAA')");
        Spi::run("RESET ROLE").unwrap();
        assert!(e.contains(&format!("this table is not the one of mapping {id}")), "{e}");
        assert_eq!(outbox().len(), 1, "only the real table's insert");
    }

    #[pg_test]
    fn update_of_unmapped_columns_captures_nothing() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe')").unwrap();
        Spi::run("UPDATE contacts SET notes = 'private', last_name = 'Doe' WHERE id = 1").unwrap();
        assert_eq!(outbox().len(), 1, "only the insert");
    }

    #[pg_test]
    fn key_change_of_a_linked_row_re_keys_its_record() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (1, 'Doe', '003000000000001AAA')").unwrap();
        Spi::run("UPDATE contacts SET id = 2 WHERE id = 1").unwrap();
        // What was queued under the old key follows the row; no delete of the record.
        let rows = outbox();
        assert_eq!(rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect::<Vec<_>>(), vec![("insert", "2"), ("update", "2")]);
        let changed = Spi::get_one::<Vec<String>>("SELECT changed FROM sfsync.outbox WHERE op = 'update'").unwrap();
        assert_eq!(changed, Some(vec!["id".to_string()]), "the key column marks the re-key");
    }

    #[pg_test]
    fn key_change_of_an_unlinked_row_is_delete_plus_insert() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe')").unwrap();
        Spi::run("UPDATE contacts SET id = 2 WHERE id = 1").unwrap();
        let rows = outbox();
        assert_eq!(
            rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect::<Vec<_>>(),
            vec![("insert", "1"), ("delete", "1"), ("insert", "2")]
        );
    }

    #[pg_test]
    fn delete_keeps_the_salesforce_id() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (1, 'Doe', '003000000000001AAA')").unwrap();
        Spi::run("DELETE FROM contacts").unwrap();
        let sfid = Spi::get_one::<String>("SELECT sfid FROM sfsync.outbox WHERE op = 'delete'").unwrap();
        assert_eq!(sfid.as_deref(), Some("003000000000001AAA"));
    }

    #[pg_test(error = "TRUNCATE of synced table public.contacts is refused by sfsync")]
    fn truncate_is_refused() {
        fixture();
        Spi::run("TRUNCATE contacts").unwrap();
    }

    #[pg_test]
    fn sync_writes_are_not_captured() {
        fixture();
        {
            let _g = crate::capture::Applying::start();
            assert_eq!(Spi::get_one::<bool>("SELECT sfsync.is_applying()").unwrap(), Some(true));
            Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'From Salesforce')").unwrap();
        }
        assert_eq!(Spi::get_one::<bool>("SELECT sfsync.is_applying()").unwrap(), Some(false));
        Spi::run("UPDATE contacts SET last_name = 'Local' WHERE id = 1").unwrap();
        let rows = outbox();
        assert_eq!(rows.len(), 1, "only the local update: {rows:?}");
        assert_eq!(rows[0].0, "update");
    }

    #[pg_test]
    fn writes_of_user_triggers_under_the_syncs_own_are_captured() {
        fixture();
        // A user trigger that fills email when a row arrives, by an UPDATE of its own.
        Spi::run(
            "CREATE FUNCTION fill_email() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN UPDATE contacts SET email = lower(NEW.last_name) || '@example.com' WHERE id = NEW.id; RETURN NULL; END $$;
             CREATE TRIGGER fill_email AFTER INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION fill_email();",
        )
        .unwrap();
        {
            let _g = crate::capture::Applying::start();
            Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (1, 'Doe', '003000000000001AAA')").unwrap();
        }
        let rows = outbox();
        assert_eq!(rows, vec![("update".to_string(), "1".to_string(), Some(vec!["email".to_string()]))], "only the trigger's write");
    }

    #[pg_test]
    fn secrets_are_not_readable_by_other_roles() {
        fixture();
        Spi::run("INSERT INTO sfsync.connection_secrets (connection, client_secret) VALUES ('default', 's3cret')").unwrap();
        Spi::run("CREATE ROLE sfsync_reader LOGIN").unwrap();
        Spi::run("SET LOCAL ROLE sfsync_reader").unwrap();
        let denied = std::panic::catch_unwind(|| Spi::get_one::<String>("SELECT client_secret FROM sfsync.connection_secrets"));
        assert!(denied.is_err() || denied.unwrap().is_err(), "a plain role must not read secrets");
    }

    #[pg_test]
    fn status_view_lists_mappings_and_depth() {
        fixture();
        Spi::run("INSERT INTO contacts (last_name) SELECT 'n' || g FROM generate_series(1, 5) g").unwrap();
        let depth = Spi::get_one::<i64>("SELECT outbox_depth FROM sfsync.status WHERE \"table\" = 'contacts'::regclass").unwrap();
        assert_eq!(depth, Some(5));
    }

    #[pg_test]
    fn status_shows_no_stream_without_a_worker_and_none_for_push_only_tables() {
        fixture();
        // What a stopped worker left behind is not shown as the current state.
        Spi::run("INSERT INTO sfsync.connection_state (connection, stream, stream_since) VALUES ('default', 'live', now())").unwrap();
        let stream = || Spi::get_one::<String>("SELECT change_stream FROM sfsync.status WHERE \"table\" = 'contacts'::regclass").unwrap();
        assert_eq!(stream().as_deref(), Some("off"));
        Spi::run("UPDATE sfsync.mappings SET direction = 'push'").unwrap();
        assert_eq!(stream(), None, "a push-only table has no change stream");
    }

    #[pg_test(error = "table public.pairs has a composite primary key (a, b); sfsync needs a single-column primary key")]
    fn composite_keys_are_refused() {
        Spi::run("CREATE TABLE pairs (a int, b int, PRIMARY KEY (a, b))").unwrap();
        Spi::run("SELECT sfsync.sync_table('pairs', 'Account')").unwrap();
    }

    #[pg_test(error = "direction: \"sideways\" is not one of bidirectional, pull, push")]
    fn bad_direction_is_named() {
        Spi::run("CREATE TABLE t1 (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT sfsync.sync_table('t1', 'Account', direction => 'sideways')").unwrap();
    }

    #[pg_test(error = "connection \"nope\" does not exist (see sfsync.add_connection)")]
    fn unknown_connection_is_named() {
        Spi::run("CREATE TABLE t2 (id int PRIMARY KEY, name text)").unwrap();
        Spi::run("SELECT sfsync.sync_table('t2', 'Account', connection => 'nope')").unwrap();
    }

    /// A newer library on the old catalog (before ALTER EXTENSION UPDATE) says so and what to
    /// run, to write-through and the SQL functions alike, instead of failing on a column.
    #[pg_test]
    fn an_outdated_catalog_is_named() {
        fixture();
        Spi::run("UPDATE pg_catalog.pg_extension SET extversion = '0.0.9' WHERE extname = 'sfsync'").unwrap();
        let e = crate::sync::load_mappings(None).unwrap_err().to_string();
        let lib = env!("CARGO_PKG_VERSION");
        assert_eq!(
            e,
            format!(
                "sfsync: the extension in this database is version 0.0.9 but the installed library is {lib}; run ALTER EXTENSION sfsync UPDATE"
            )
        );
    }

    #[pg_test(error = "auth_flow: unknown flow \"magic\"; use one of jwt, client_credentials, refresh_token, password")]
    fn unknown_auth_flow_is_named() {
        Spi::run("SELECT sfsync.add_connection('x', 'https://login.salesforce.com', 'id', 'secret', auth_flow => 'magic')").unwrap();
    }

    #[pg_test]
    fn unsync_keeps_data_and_stops_capture() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe')").unwrap();
        Spi::run("SELECT sfsync.unsync_table('contacts')").unwrap();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (2, 'Roe')").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM contacts").unwrap(), Some(2));
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM sfsync.outbox").unwrap(), Some(0));
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM sfsync.mappings").unwrap(), Some(0));
        Spi::run("TRUNCATE contacts").unwrap();
    }

    #[pg_test]
    fn a_capture_trigger_whose_mapping_is_gone_queues_nothing_and_fails_nothing() {
        let id = fixture();
        Spi::run(&format!("DELETE FROM sfsync.mappings WHERE id = {id}")).unwrap(); // the trigger stays
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe')").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM contacts").unwrap(), Some(1));
        assert!(outbox().is_empty());
    }

    #[pg_test]
    fn dropping_a_synced_table_removes_its_mapping() {
        fixture();
        Spi::run("DROP TABLE contacts").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM sfsync.mappings").unwrap(), Some(0));
    }

    pub(crate) fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap()
    }

    // (retry / discard / archive: in api/outbox.rs)

    // ---- write-through (no Salesforce here: only what fails before or without it) --------------

    /// The fixture switched to write-through, on a connection nobody listens to.
    fn write_through_fixture() {
        let id = fixture();
        Spi::run(&format!(
            "UPDATE sfsync.mappings SET mode = 'write_through' WHERE id = {id};
             INSERT INTO sfsync.connection_secrets (connection, client_secret) VALUES ('default', 'not-a-real-secret');
             DROP TRIGGER sfsync_capture ON contacts;
             CREATE TRIGGER sfsync_write_through BEFORE INSERT OR UPDATE OR DELETE ON contacts
                 FOR EACH ROW EXECUTE FUNCTION sfsync.write_through('{id}');"
        ))
        .unwrap();
    }

    /// Runs `sql` in a subtransaction; returns "SQLSTATE: message" of its error.
    fn error_of(sql: &str) -> String {
        Spi::run(&format!(
            "DO $$ BEGIN {sql}; PERFORM set_config('sfsync_test.err', 'none', true);
             EXCEPTION WHEN OTHERS THEN PERFORM set_config('sfsync_test.err', SQLSTATE || ': ' || SQLERRM, true); END $$"
        ))
        .unwrap();
        Spi::get_one::<String>("SELECT current_setting('sfsync_test.err')").unwrap().unwrap()
    }

    #[pg_test]
    fn write_through_fails_the_statement_when_salesforce_is_unreachable() {
        write_through_fixture();
        let err = error_of("INSERT INTO contacts (id, last_name) VALUES (7, 'Doe')");
        assert!(err.starts_with("08006: sfsync: the insert of contacts key 7 could not be sent to Salesforce:"), "{err}");
        assert!(!err.contains("not-a-real-secret"), "no secret in errors: {err}");
        assert_eq!(count("SELECT count(*) FROM contacts"), 0, "nothing written locally");
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0, "no outbox entry in write-through mode");
    }

    #[pg_test]
    fn write_through_runs_for_roles_without_rights_on_the_catalog() {
        write_through_fixture();
        Spi::run("CREATE ROLE sfsync_wt_app; GRANT ALL ON contacts TO sfsync_wt_app").unwrap();
        Spi::run("SET LOCAL ROLE sfsync_wt_app").unwrap();
        // Past the mapping and the stored credentials (SECURITY DEFINER), up to the call itself.
        let err = error_of("INSERT INTO contacts (id, last_name) VALUES (7, 'Doe')");
        Spi::run("RESET ROLE").unwrap();
        assert!(err.starts_with("08006: sfsync: the insert of contacts key 7 could not be sent"), "{err}");
    }

    #[pg_test]
    fn write_through_sends_nothing_for_the_syncs_own_writes_and_unmapped_changes() {
        write_through_fixture();
        {
            let _applying = crate::capture::Applying::start();
            Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (1, 'From Salesforce', '003000000000001AAA')").unwrap();
        }
        // No mapped column changed: no call, so no failure either.
        Spi::run("UPDATE contacts SET notes = 'local only' WHERE id = 1").unwrap();
        assert_eq!(count("SELECT count(*) FROM contacts WHERE notes = 'local only'"), 1);
        let err = error_of("UPDATE contacts SET email = 'x@example.com' WHERE id = 1");
        assert!(err.contains("the update of contacts key 1 could not be sent"), "{err}");
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0);
    }

    #[pg_test(
        error = "mode => 'write_through' sends local changes to Salesforce; it needs direction => 'bidirectional' or 'push', not 'pull'"
    )]
    fn write_through_of_a_pull_only_table_is_refused() {
        Spi::run("CREATE TABLE t4 (id int PRIMARY KEY, name text)").unwrap();
        Spi::run("SELECT sfsync.sync_table('t4', 'Account', direction => 'pull', mode => 'write_through')").unwrap();
    }

    #[pg_test(error = "mode: \"sync\" is not one of async, write_through, shadow")]
    fn unknown_mode_is_named() {
        Spi::run("CREATE TABLE t5 (id int PRIMARY KEY, name text)").unwrap();
        Spi::run("SELECT sfsync.sync_table('t5', 'Account', mode => 'sync')").unwrap();
    }

    #[pg_test(
        error = "filter: unexpected \")\" at position 11; a filter is one condition, as it would follow WHERE: balanced parentheses and no further clause (ORDER BY, LIMIT …)"
    )]
    fn a_filter_that_escapes_its_parentheses_is_refused_before_salesforce_is_asked() {
        // No connection exists: the refusal comes from the local parse, not from Salesforce.
        Spi::run("CREATE TABLE t6 (id int PRIMARY KEY, name text)").unwrap();
        Spi::run("SELECT sfsync.sync_table('t6', 'Account', filter => $$Name = 'x') OR (Name != ''$$)").unwrap();
    }

    #[pg_test]
    fn a_temporary_table_is_refused() {
        Spi::run("CREATE TEMP TABLE scratch (id int PRIMARY KEY, name text)").unwrap();
        let e = error_of("SELECT sfsync.sync_table('scratch', 'Account')");
        assert!(e.contains(".scratch is a temporary table; sfsync syncs permanent tables only"), "{e}");
        let n = Spi::get_one::<i64>("SELECT count(*) FROM sfsync.mappings").unwrap().unwrap_or(0);
        assert_eq!(n, 0, "no mapping is left behind");
    }

    #[pg_test]
    fn views_foreign_and_partitioned_tables_are_refused_by_name() {
        Spi::run(
            "CREATE TABLE base (id int PRIMARY KEY, name text);
             CREATE VIEW v_base AS SELECT * FROM base;
             CREATE MATERIALIZED VIEW mv_base AS SELECT * FROM base;
             CREATE TABLE parted (id int PRIMARY KEY, name text) PARTITION BY RANGE (id);
             CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
             CREATE FOREIGN DATA WRAPPER sfsync_test_fdw;
             CREATE SERVER sfsync_test_server FOREIGN DATA WRAPPER sfsync_test_fdw;
             CREATE FOREIGN TABLE remote (id int, name text) SERVER sfsync_test_server;",
        )
        .unwrap();
        for (tbl, says) in [
            ("v_base", ".v_base is a view; sfsync syncs tables only"),
            ("mv_base", ".mv_base is a materialized view; sfsync syncs tables only"),
            ("parted", ".parted is a partitioned table; sfsync needs a unique sfid column"),
            ("remote", ".remote is a foreign table; sfsync syncs local tables only"),
        ] {
            let e = error_of(&format!("SELECT sfsync.sync_table('{tbl}', 'Account')"));
            assert!(e.starts_with("22023: ") && e.contains(says), "{tbl}: {e}");
        }
        let n = Spi::get_one::<i64>("SELECT count(*) FROM sfsync.mappings").unwrap().unwrap_or(0);
        assert_eq!(n, 0, "no mapping is left behind");
        let sfid =
            Spi::get_one::<i64>("SELECT count(*) FROM pg_attribute WHERE attname = 'sfid' AND attrelid = 'parted'::regclass").unwrap();
        assert_eq!(sfid, Some(0), "the partitioned table is left as it was");
    }

    #[pg_test]
    fn a_refused_filter_leaves_no_mapping() {
        Spi::run("CREATE TABLE t7 (id int PRIMARY KEY, name text)").unwrap();
        let e = error_of("SELECT sfsync.sync_table('t7', 'Account', filter => 'Name = ''x'' LIMIT 1')");
        assert!(e.contains("unexpected \"LIMIT\" at position 12"), "{e}");
        let n = Spi::get_one::<i64>("SELECT count(*) FROM sfsync.mappings").unwrap().unwrap_or(0);
        assert_eq!(n, 0);
    }

    // ---- on_delete => 'review' -------------------------------------------------------------

    /// `contacts` with on_delete => 'review', triggers as sync_table installs them; row 1 is
    /// linked to a Salesforce record.
    fn review_fixture() -> i32 {
        let id = fixture();
        Spi::run(&format!(
            "UPDATE sfsync.mappings SET on_delete = 'review' WHERE id = {id};
             DROP TRIGGER sfsync_capture ON contacts;
             CREATE TRIGGER sfsync_capture AFTER INSERT OR UPDATE ON contacts
             FOR EACH ROW EXECUTE FUNCTION sfsync.capture('{id}', 'id', 'last_name', 'email');
             CREATE TRIGGER sfsync_hold_delete AFTER DELETE ON contacts FOR EACH ROW EXECUTE FUNCTION sfsync.hold_delete('{id}', 'id');
             INSERT INTO contacts (id, last_name, email, sfid) VALUES (1, 'Doe', 'd@x', '003000000000001AAA');
             DELETE FROM sfsync.outbox;"
        ))
        .unwrap();
        id
    }

    fn held_id() -> i64 {
        count("SELECT max(id) FROM sfsync.delete_review")
    }

    #[pg_test]
    fn a_local_delete_is_held_for_review_not_sent() {
        review_fixture();
        Spi::run("DELETE FROM contacts WHERE id = 1").unwrap();
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0, "nothing queued for Salesforce");
        assert_eq!(
            count(
                "SELECT count(*) FROM sfsync.delete_review WHERE origin = 'postgres' AND key = '1' AND sfid = '003000000000001AAA'
                   AND \"row\" ->> 'last_name' = 'Doe' AND \"table\" = 'contacts'::regclass AND decided_at IS NULL"
            ),
            1
        );
    }

    #[pg_test]
    fn approving_a_local_delete_queues_it_for_the_push() {
        review_fixture();
        Spi::run("DELETE FROM contacts WHERE id = 1").unwrap();
        let id = held_id();
        assert_eq!(Spi::get_one::<bool>(&format!("SELECT sfsync.approve_delete({id})")).unwrap(), Some(true));
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE op = 'delete' AND pk = '1' AND sfid = '003000000000001AAA'"), 1);
        assert_eq!(count("SELECT count(*) FROM sfsync.delete_review WHERE decision = 'approved' AND decided_at IS NOT NULL"), 1);
        assert_eq!(Spi::get_one::<bool>(&format!("SELECT sfsync.reject_delete({id})")).unwrap(), Some(false), "already decided");
    }

    #[pg_test]
    fn rejecting_a_local_delete_restores_the_row() {
        review_fixture();
        Spi::run("DELETE FROM contacts WHERE id = 1").unwrap();
        assert_eq!(count("SELECT sfsync.reject_deletes('contacts')"), 1);
        assert_eq!(count("SELECT count(*) FROM contacts WHERE id = 1 AND last_name = 'Doe' AND sfid = '003000000000001AAA'"), 1);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0, "the restore is not captured");
        assert_eq!(count("SELECT count(*) FROM sfsync.delete_review WHERE decision = 'rejected'"), 1);
    }

    fn held_from_salesforce(mapping: i32) -> i64 {
        Spi::get_one::<i64>(&format!(
            "INSERT INTO sfsync.delete_review (mapping_id, \"table\", key, sfid, origin, \"row\")
             SELECT {mapping}, 'contacts', '1', sfid, 'salesforce', to_jsonb(c) FROM contacts c WHERE id = 1 RETURNING id"
        ))
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn approving_a_salesforce_delete_deletes_the_row_without_capturing_it() {
        let mapping = review_fixture();
        let id = held_from_salesforce(mapping);
        assert_eq!(Spi::get_one::<bool>(&format!("SELECT sfsync.approve_delete({id})")).unwrap(), Some(true));
        assert_eq!(count("SELECT count(*) FROM contacts"), 0);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0);
        assert_eq!(count("SELECT count(*) FROM sfsync.delete_review"), 1, "not held again");
    }

    #[pg_test]
    fn rejecting_a_salesforce_delete_keeps_the_row_unlinked() {
        let mapping = review_fixture();
        held_from_salesforce(mapping);
        assert_eq!(count("SELECT sfsync.reject_deletes('contacts')"), 1);
        assert_eq!(count("SELECT count(*) FROM contacts WHERE id = 1 AND sfid IS NULL"), 1);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0);
        assert_eq!(count("SELECT sfsync.approve_deletes('contacts')"), 0, "nothing left to decide");
    }

    #[pg_test(error = "held delete 999 does not exist (see sfsync.delete_review)")]
    fn deciding_an_unknown_delete_is_named() {
        review_fixture();
        Spi::run("SELECT sfsync.approve_delete(999)").unwrap();
    }

    #[pg_test(error = "table public.plain is not synced")]
    fn deciding_deletes_of_an_unsynced_table_is_named() {
        Spi::run("CREATE TABLE plain (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT sfsync.approve_deletes('plain')").unwrap();
    }

    #[pg_test]
    fn the_conflict_and_review_tables_are_not_readable_by_other_roles() {
        Spi::run("CREATE ROLE sfsync_reader").unwrap();
        for t in ["sfsync.conflicts", "sfsync.delete_review"] {
            let ok = Spi::get_one::<bool>(&format!("SELECT has_table_privilege('sfsync_reader', '{t}', 'SELECT')")).unwrap();
            assert_eq!(ok, Some(false), "{t}");
        }
    }

    #[pg_test(error = "conflict: \"newest\" is not one of salesforce_wins, postgres_wins, last_modified_wins")]
    fn unknown_conflict_policy_is_named() {
        Spi::run("CREATE TABLE t6 (id int PRIMARY KEY, name text)").unwrap();
        Spi::run("SELECT sfsync.sync_table('t6', 'Account', conflict => 'newest')").unwrap();
    }

    fn change_event(kind: &str, id: &str, changed: &[&str], fields: serde_json::Value) -> salesforce::cdc::ChangeEvent {
        let mut payload = fields.as_object().cloned().unwrap_or_default();
        payload.insert(
            "ChangeEventHeader".into(),
            serde_json::json!({"entityName": "Contact", "recordIds": [id], "changeType": kind, "changedFields": changed, "nulledFields": []}),
        );
        let msg = serde_json::json!({"channel": "/data/ContactChangeEvent", "data": {"event": {"replayId": 1}, "payload": payload}});
        salesforce::cdc::parse_event(&msg).unwrap()
    }

    #[pg_test]
    fn change_events_apply_the_changed_columns_only_and_are_not_captured() {
        fixture();
        Spi::run(
            "SET LOCAL session_replication_role = replica;
             INSERT INTO contacts (id, last_name, email, notes, sfid) VALUES
                 (101, 'Lovelace', 'ada@example.com', 'n', '003000000000001AAA'),
                 (102, 'Turing', 'alan@example.com', NULL, '003000000000002AAA');
             SET LOCAL session_replication_role = origin;",
        )
        .unwrap();
        let m = crate::sync::load_mappings(None).unwrap();
        let events = [
            change_event("UPDATE", "003000000000001AAA", &["Email", "LastModifiedDate"], serde_json::json!({"Email": "ada@new.example"})),
            change_event("CREATE", "003000000000003AAA", &[], serde_json::json!({"LastName": "Hopper", "Email": "grace@example.com"})),
            change_event("DELETE", "003000000000002AAA", &[], serde_json::json!({})),
        ];
        let poll = crate::sync::source::events::apply_mapping(&m[0], &m, &events).unwrap();
        assert!(!poll, "everything applied directly");
        let row = |sql: &str| Spi::get_one::<String>(sql).unwrap();
        assert_eq!(
            row("SELECT concat_ws('|', last_name, email) FROM contacts WHERE id = 101").as_deref(),
            Some("Lovelace|ada@new.example")
        );
        assert_eq!(
            row("SELECT concat_ws('|', last_name, email) FROM contacts WHERE sfid = '003000000000003AAA'").as_deref(),
            Some("Hopper|grace@example.com")
        );
        assert_eq!(count("SELECT count(*) FROM contacts WHERE id = 102"), 0, "deleted");
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0, "the sync's writes are not captured");

        // A local change pending: the update goes through the conflict check with the event's
        // changed fields. LastName changed only in Salesforce: applied. Email changed only
        // here (not in changedFields): no conflict, the local value stays and is still queued.
        Spi::run("UPDATE contacts SET email = 'local@example.com' WHERE id = 101").unwrap();
        let e = [change_event("UPDATE", "003000000000001AAA", &["LastName"], serde_json::json!({"LastName": "King"}))];
        assert!(!crate::sync::source::events::apply_mapping(&m[0], &m, &e).unwrap(), "applied from the event");
        assert_eq!(row("SELECT concat_ws('|', last_name, email) FROM contacts WHERE id = 101").as_deref(), Some("King|local@example.com"));
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE pk = '101'"), 1, "the local change still waits");
        assert_eq!(count("SELECT count(*) FROM sfsync.conflicts"), 0);
    }
}
