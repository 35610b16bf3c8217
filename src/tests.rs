//! `#[pg_test]`s: SQL and trigger behaviour inside one (rolled back) transaction. No
//! Salesforce here: mappings are inserted directly, as sync_table would leave them.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// A synced `contacts` table as sync_table leaves it, without calling Salesforce.
    fn fixture() -> i32 {
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

    fn outbox() -> Vec<(String, String, Option<Vec<String>>)> {
        Spi::connect(|c| {
            c.select("SELECT op, pk, changed FROM sfsync.outbox ORDER BY id", None, &[])
                .unwrap()
                .map(|r| (r.get::<String>(1).unwrap().unwrap(), r.get::<String>(2).unwrap().unwrap(), r.get::<Vec<String>>(3).unwrap()))
                .collect()
        })
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
        Spi::run("CREATE ROLE sfsync_app; GRANT ALL ON contacts TO sfsync_app; GRANT USAGE ON SEQUENCE contacts_id_seq TO sfsync_app").unwrap();
        Spi::run("SET LOCAL ROLE sfsync_app").unwrap();
        Spi::run("INSERT INTO contacts (last_name) VALUES ('Doe')").unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(outbox().len(), 1);
    }

    #[pg_test]
    fn update_of_unmapped_columns_captures_nothing() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe')").unwrap();
        Spi::run("UPDATE contacts SET notes = 'private', last_name = 'Doe' WHERE id = 1").unwrap();
        assert_eq!(outbox().len(), 1, "only the insert");
    }

    #[pg_test]
    fn key_change_is_delete_plus_insert() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (1, 'Doe', '003000000000001AAA')").unwrap();
        Spi::run("UPDATE contacts SET id = 2 WHERE id = 1").unwrap();
        let rows = outbox();
        assert_eq!(rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect::<Vec<_>>(), vec![("insert", "1"), ("delete", "1"), ("insert", "2")]);
    }

    #[pg_test]
    fn delete_keeps_the_salesforce_id() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (1, 'Doe', '003000000000001AAA')").unwrap();
        Spi::run("DELETE FROM contacts").unwrap();
        let sfid = Spi::get_one::<String>("SELECT sfid FROM sfsync.outbox WHERE op = 'delete'").unwrap();
        assert_eq!(sfid.as_deref(), Some("003000000000001AAA"));
    }

    #[pg_test(error = "TRUNCATE of synced table contacts is refused by sfsync")]
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
    fn dropping_a_synced_table_removes_its_mapping() {
        fixture();
        Spi::run("DROP TABLE contacts").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM sfsync.mappings").unwrap(), Some(0));
    }
}
