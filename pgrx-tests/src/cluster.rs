//! Throwaway PostgreSQL 15 clusters for end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::emulator::Emulator;
use crate::util::{env_flag, free_port, is_root, keep_artifacts, make_temp_dir, run, tail};
use crate::wait::until;

const PG_MAJOR: &str = "15";
/// The superuser every harness cluster has (initdb -U postgres), whatever the OS user.
pub const SUPERUSER: &str = "postgres";

/// Options for [`Cluster::start`].
#[derive(Clone, Debug, Default)]
pub struct ClusterOpts {
    /// Extra settings written to postgresql.conf, e.g. `("sfsync.poll_interval", "200ms")`.
    /// Values are written quoted, so pass them unquoted.
    pub gucs: Vec<(String, String)>,
    /// Put `sfsync` in `shared_preload_libraries`. `None`: yes, unless `SFSYNC_E2E_NO_PRELOAD=1`.
    pub preload: Option<bool>,
}

impl ClusterOpts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one setting (builder style).
    pub fn guc(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.gucs.push((name.into(), value.into()));
        self
    }

    /// Forces `shared_preload_libraries = 'sfsync'` on or off.
    pub fn preload(mut self, on: bool) -> Self {
        self.preload = Some(on);
        self
    }
}

/// A running (or stopped) throwaway cluster: data in `<dir>/data`, unix socket in `<dir>`,
/// server log in `<dir>/postgres.log`. Listens on no TCP address. Dropping it stops the
/// server (immediate mode) and removes the directory unless `SFSYNC_E2E_KEEP=1`.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    running: bool,
}

impl Cluster {
    /// initdb + configure + `pg_ctl start -w`. Panics (with the server log) on failure.
    pub fn start(opts: ClusterOpts) -> Cluster {
        let bindir = pg_bindir();
        let dir = make_temp_dir("sfsync-e2e");
        if is_root() {
            // Postgres refuses to run as root: the cluster belongs to the OS user `postgres`.
            run(Command::new("chown").args(["postgres:", dir.to_str().unwrap()])).unwrap_or_else(|e| {
                panic!("chown of {} to postgres failed (does the OS user exist? run `make setup`): {e}", dir.display())
            });
        }
        let mut cluster = Cluster { dir, port: free_port(), bindir, running: false };
        let data = cluster.data_dir();

        cluster
            .pg_command("initdb")
            .args(["-D", data.to_str().unwrap()])
            .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
                }
            })
            .unwrap_or_else(|e| panic!("initdb failed in {}:\n{e}", data.display()));

        let preload = opts.preload.unwrap_or(!env_flag("SFSYNC_E2E_NO_PRELOAD"));
        let mut conf = String::from("\n# --- sfsync e2e harness ---\n");
        let mut set = |k: &str, v: &str| conf.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        set("listen_addresses", "");
        set("port", &cluster.port.to_string());
        set("unix_socket_directories", cluster.dir.to_str().unwrap());
        set("fsync", "off");
        // Not synchronous_commit = off: a backend crash would lose recently committed
        // transactions, and crash tests must see what a real server keeps.
        set("full_page_writes", "off");
        set("logging_collector", "off");
        set("log_line_prefix", "%m [%p] %q%u@%d ");
        set("lc_messages", "C");
        set("max_worker_processes", "16");
        set("shared_preload_libraries", if preload { "sfsync" } else { "" });
        for (k, v) in &opts.gucs {
            set(k, v);
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).expect("write postgresql.conf");

        cluster.start_server();
        cluster
    }

    /// Cluster directory (also the unix socket directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `PGDATA`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Unix socket directory (use as `host`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PostgreSQL binaries it runs (`initdb`, `psql`, `pgbench` ...).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Server log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// libpq-style connection string for `db`.
    pub fn conn_string(&self, db: &str) -> String {
        format!("host={} port={} user={SUPERUSER} dbname={db}", self.dir.display(), self.port)
    }

    /// Connects as superuser `postgres` through the unix socket. Panics on failure.
    pub fn connect(&self, db: &str) -> postgres::Client {
        self.try_connect(db).unwrap_or_else(|e| panic!("connect to {db}: {e}\n{}", tail(&self.log_contents(), 30)))
    }

    pub fn try_connect(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname(db)
            .application_name("sfsync-e2e")
            .connect_timeout(Duration::from_secs(10))
            .connect(postgres::NoTls)
    }

    /// Connects as role `user` (made by the test, with LOGIN; local connections are trusted).
    pub fn connect_as(&self, db: &str, user: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user(user)
            .dbname(db)
            .application_name("sfsync-e2e")
            .connect_timeout(Duration::from_secs(10))
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}\n{}", tail(&self.log_contents(), 30)))
    }

    /// `CREATE DATABASE name`.
    pub fn create_database(&self, name: &str) {
        let mut c = self.connect("postgres");
        c.batch_execute(&format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    }

    /// `CREATE DATABASE name`, `CREATE EXTENSION sfsync` in it, and a connection `default`
    /// to `emu` (client_credentials flow): what the tests and the bench sync through.
    pub fn create_sfsync_database(&self, name: &str, emu: &Emulator) {
        self.create_database(name);
        let mut db = self.connect(name);
        db.batch_execute("CREATE EXTENSION sfsync").unwrap_or_else(|e| panic!("CREATE EXTENSION sfsync in {name}: {e}"));
        let sql = emu.connect_sql("default");
        db.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs `sql` with `psql -X -A -t -v ON_ERROR_STOP=1` and returns its stdout. Panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        run(Command::new(self.bindir.join("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", self.dir.to_str().unwrap(), "-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db])
            .args(["-c", sql])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE"))
    }

    /// Runs the SQL script `path` with psql (stops at the first error); its stdout.
    pub fn psql_file(&self, db: &str, path: &Path) -> String {
        run(Command::new(self.bindir.join("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", self.dir.to_str().unwrap(), "-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db])
            .arg("-f")
            .arg(path)
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE"))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `pg_dump` of `db` with extra arguments (e.g. `--schema-only`); its stdout. Panics on error.
    pub fn pg_dump(&self, db: &str, args: &[&str]) -> String {
        run(Command::new(self.bindir.join("pg_dump"))
            .args(["-h", self.dir.to_str().unwrap(), "-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db])
            .args(args)
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE"))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `pg_ctl stop -m fast` then start again (the preloaded worker restarts with it).
    pub fn restart(&mut self) {
        self.stop();
        self.start_server();
    }

    /// `pg_ctl stop -m fast -w`. No-op when already stopped.
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"]).unwrap_or_else(|e| panic!("{e}"));
            self.running = false;
        }
    }

    /// Starts a stopped cluster again.
    pub fn start_again(&mut self) {
        if !self.running {
            self.start_server();
        }
    }

    /// `pg_ctl stop -m immediate` (crash-like stop, recovery on next start).
    pub fn crash(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "60"]);
            self.running = false;
        }
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// SIGKILL to a server process (backend or background worker): the postmaster treats it as
    /// a crash, resets all backends and restarts background workers.
    pub fn kill_backend(&self, pid: i32) {
        self.signal_backend(pid, "KILL");
    }

    /// Sends `signal` (`"TERM"`, `"INT"`, `"KILL"`, ...) to a server process.
    pub fn signal_backend(&self, pid: i32, signal: &str) {
        run(Command::new("kill").args(["-s", signal, &pid.to_string()])).unwrap_or_else(|e| panic!("kill -s {signal} {pid}: {e}"));
    }

    /// The server log so far.
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the server log contains `needle`; panics with the log tail after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        until(&format!("{needle:?} in the server log"), timeout, || {
            let log = self.log_contents();
            if log.contains(needle) {
                Ok(())
            } else {
                Err(format!("\n{}", tail(&log, 40)))
            }
        })
    }

    fn start_server(&mut self) {
        let log = self.log_path();
        let data = self.data_dir();
        self.pg_ctl(&["start", "-w", "-t", "60", "-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("pg_ctl start failed: {e}\n--- server log ---\n{}", tail(&self.log_contents(), 40)));
        self.running = true;
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<String, String> {
        let data = self.data_dir();
        let mut cmd = self.pg_command("pg_ctl");
        cmd.args(args);
        if !args.contains(&"-D") {
            cmd.args(["-D", data.to_str().unwrap()]);
        }
        run(&mut cmd)
    }

    /// A command for a Postgres server binary, run as `postgres` when we are root.
    fn pg_command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        let mut cmd = if is_root() {
            let mut c = if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]);
                c
            } else {
                let mut c = Command::new("sudo");
                c.args(["-n", "-u", "postgres", "--"]);
                c
            };
            c.arg(exe);
            c
        } else {
            Command::new(exe)
        };
        // The OS user postgres may not be able to enter our cwd.
        cmd.current_dir(&self.dir);
        cmd.env("LC_ALL", "C").env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- postgres log (last 60 lines, {}) ---\n{}", self.log_path().display(), tail(&self.log_contents(), 60));
        }
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
            self.running = false;
        }
        if keep_artifacts() {
            eprintln!(
                "SFSYNC_E2E_KEEP: cluster kept (stopped) in {} (port {}); start it with pg_ctl -D <dir>/data start",
                self.dir.display(),
                self.port
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `$PG_CONFIG --bindir` when PG_CONFIG is set (e.g. a private copy of PostgreSQL with its
/// own sfsync build), else `/usr/lib/postgresql/15/bin`, else `pg_config --bindir`.
fn pg_bindir() -> PathBuf {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{PG_MAJOR}/bin"));
    if std::env::var_os("PG_CONFIG").is_none() && debian.join("initdb").is_file() {
        return debian;
    }
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| "pg_config".into());
    let out =
        run(Command::new(&pg_config).arg("--bindir")).unwrap_or_else(|e| panic!("PostgreSQL {PG_MAJOR} not found (run `make setup`): {e}"));
    PathBuf::from(out.trim())
}
