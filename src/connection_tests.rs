//! `#[pg_test]`s of connections: who may add one, where it may point, secret files, and
//! what a dump keeps (docs/secrets.md). No Salesforce: every call here is refused before
//! any request is made.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// Runs `sql` in a subtransaction; returns "SQLSTATE: message" of its error.
    fn error_of(sql: &str) -> String {
        Spi::run(&format!(
            "DO $$ BEGIN {sql}; PERFORM set_config('sfsync_test.err', 'none', true);
             EXCEPTION WHEN OTHERS THEN PERFORM set_config('sfsync_test.err', SQLSTATE || ': ' || SQLERRM, true); END $$"
        ))
        .unwrap();
        Spi::get_one::<String>("SELECT current_setting('sfsync_test.err')").unwrap().unwrap()
    }

    const ADD_CONNECTION: &str = "sfsync.add_connection(text, text, text, text, text, text, text, text, text, text, text, text, text)";

    /// sfsync_admin as the privileges section creates it, and a member of it.
    fn admin_role(name: &str) {
        Spi::run(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sfsync_admin') THEN CREATE ROLE sfsync_admin NOLOGIN; END IF; END $$;
             CREATE ROLE {name} LOGIN; GRANT sfsync_admin TO {name}; GRANT EXECUTE ON FUNCTION {ADD_CONNECTION} TO sfsync_admin;"
        ))
        .unwrap();
    }

    #[pg_test]
    fn a_plain_role_cannot_add_a_connection() {
        Spi::run("CREATE ROLE sfsync_plain LOGIN").unwrap();
        Spi::run("SET LOCAL ROLE sfsync_plain").unwrap();
        let call = "PERFORM sfsync.add_connection('x', 'https://login.salesforce.com', 'id', 'not-a-secret')";
        assert_eq!(error_of(call), "42501: permission denied for function add_connection", "EXECUTE is not PUBLIC's");
        Spi::run("RESET ROLE").unwrap();
        // A stray GRANT to PUBLIC does not open it: the function checks again.
        Spi::run(&format!("GRANT EXECUTE ON FUNCTION {ADD_CONNECTION} TO PUBLIC")).unwrap();
        Spi::run("SET LOCAL ROLE sfsync_plain").unwrap();
        assert_eq!(
            error_of(call),
            "42501: permission denied: sfsync.add_connection needs membership in sfsync_admin (GRANT sfsync_admin TO sfsync_plain)"
        );
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM sfsync.connections").unwrap(), Some(0), "nothing stored");
    }

    #[pg_test]
    fn login_urls_are_https_to_salesforce_unless_allowed() {
        let add = |url: &str| error_of(&format!("PERFORM sfsync.add_connection('x', '{url}', 'id', 'not-a-secret')"));
        let e = add("http://sf.example.com");
        assert!(e.starts_with("22023: ") && e.contains("http:// to host \"sf.example.com\"; use https://"), "{e}");
        let e = add("https://sf.example.com");
        assert_eq!(
            e,
            "22023: login_url host \"sf.example.com\" is not a Salesforce domain (*.salesforce.com, *.force.com, *.cloudforce.com) \
             nor an allowed host; a superuser can allow it with sfsync.allowed_login_hosts (postgresql.conf or ALTER SYSTEM, then reload)"
        );
        let e = add("https://login.salesforce.com@evil.example");
        assert!(e.contains("\"evil.example\""), "the host that would be called is named: {e}");
        let e = add("ftp://login.salesforce.com");
        assert!(e.contains("use https://"), "{e}");
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM sfsync.connections").unwrap(), Some(0));
    }

    #[pg_test]
    fn only_a_superuser_sets_the_allowed_login_hosts() {
        Spi::run("CREATE ROLE sfsync_plain LOGIN").unwrap();
        Spi::run("SET LOCAL ROLE sfsync_plain").unwrap();
        let e = error_of("SET sfsync.allowed_login_hosts = 'evil.example'");
        assert!(e.starts_with("42501: "), "{e}");
    }

    #[pg_test]
    fn secret_files_need_the_right_to_read_server_files() {
        admin_role("sfsync_admin_user");
        Spi::run("SET LOCAL ROLE sfsync_admin_user").unwrap();
        let e = error_of("PERFORM sfsync.add_connection('x', 'https://login.salesforce.com', 'id', client_secret_file => '/etc/hostname')");
        assert_eq!(
            e,
            "42501: permission denied to read secret files: role \"sfsync_admin_user\" needs to be a superuser or a member of pg_read_server_files, as COPY FROM a file does"
        );
        let e = error_of(
            "PERFORM sfsync.add_connection('x', 'https://login.salesforce.com', 'id', client_secret => 's', client_secret_file => '/x')",
        );
        assert_eq!(e, "22023: give client_secret or client_secret_file, not both");
        let e = error_of("PERFORM sfsync.add_connection('x', 'https://login.salesforce.com', 'id', client_secret_file => 'relative')");
        assert_eq!(e, "22023: client_secret_file: \"relative\" is not an absolute path");
    }

    #[pg_test]
    fn secrets_are_not_part_of_a_dump() {
        let registered = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'sfsync' AND c = 'sfsync.connection_secrets'::regclass",
        )
        .unwrap();
        assert_eq!(registered, Some(0));
        let connections = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'sfsync' AND c = 'sfsync.connections'::regclass",
        )
        .unwrap();
        assert_eq!(connections, Some(1), "connections themselves are dumped");
    }
}
