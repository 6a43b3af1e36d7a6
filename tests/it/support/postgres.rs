//! PostgreSQL for integration tests. [`PgServer::shared`] is the one server
//! `tests/postgres/with-server.sh` started for the whole run (its facts come
//! in `QUEUECTL_TEST_PG*`); [`PrivatePg::start`] runs
//! `tests/postgres/server.sh` for a test that needs a server of its own (one
//! listening only on a test network's bridge, one restarted mid-run), and
//! stops it on drop. Each test works in a database of its own
//! ([`PgServer::fresh_database`]), dropped with its connections on drop, so
//! tests sharing the server never see each other's rows.
//!
//! SQL goes through `psql`, a separate program, never through queuectl's own
//! store code, so the harness does not vouch for what it tests. Where there is
//! no server (`QUEUECTL_TEST_PG` unset, PostgreSQL not installed) the test
//! skips saying why, and panics instead under CI=true.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const SERVER_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/server.sh");

/// libpq settings from the caller's environment that would change what a
/// URL means (the URL names host, port, user, password and database).
const LIBPQ_ENV: &[&str] = &[
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGREQUIRESSL",
    "PGOPTIONS",
    "PGTARGETSESSIONATTRS",
];

/// A running PostgreSQL and how to reach it as its superuser
/// (`queuectl_admin`, password over TCP and the socket alike).
#[derive(Clone)]
pub struct PgServer {
    host: String,
    port: u16,
    user: String,
    password: String,
    password_file: PathBuf,
    passfile: PathBuf,
    socket_dir: PathBuf,
    ca_file: PathBuf,
    bindir: PathBuf,
    dir: PathBuf,
}

impl PgServer {
    /// The server of this test run (`with-server.sh`), or `None` after
    /// printing why there is none; panics instead under CI=true.
    pub fn shared() -> Option<PgServer> {
        if std::env::var_os("QUEUECTL_TEST_PG").is_none() {
            super::skip_unless_ci(
                "QUEUECTL_TEST_PG is not set: run the tests through \
                 `bash tests/postgres/with-server.sh cargo nextest run` for the PostgreSQL tests",
            );
            return None;
        }
        Some(Self::from_vars(|name| std::env::var(name).ok()))
    }

    /// Reads the `QUEUECTL_TEST_PG_*` facts (as server.sh prints them).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> PgServer {
        let get = |name: &str| {
            var(name).unwrap_or_else(|| panic!("{name} is not set (server.sh prints it)"))
        };
        let password_file = PathBuf::from(get("QUEUECTL_TEST_PG_PASSWORD_FILE"));
        let password = std::fs::read_to_string(&password_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", password_file.display()))
            .trim_end()
            .to_owned();
        PgServer {
            host: get("QUEUECTL_TEST_PG_HOST"),
            port: get("QUEUECTL_TEST_PG_PORT")
                .parse()
                .expect("QUEUECTL_TEST_PG_PORT is a port"),
            user: get("QUEUECTL_TEST_PG_USER"),
            password,
            password_file,
            passfile: get("QUEUECTL_TEST_PG_PASSFILE").into(),
            socket_dir: get("QUEUECTL_TEST_PG_SOCKET_DIR").into(),
            ca_file: get("QUEUECTL_TEST_PG_CA_FILE").into(),
            bindir: get("QUEUECTL_TEST_PG_BINDIR").into(),
            dir: get("QUEUECTL_TEST_PG_DIR").into(),
        }
    }

    /// The address it listens on (the URL's host; IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name, `queuectl_admin`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The superuser's password (a throwaway one), to check it is shown nowhere.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A file holding the superuser's password on one line (mode 0600).
    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// A `~/.pgpass`-format file for the superuser (mode 0600), for `PGPASSFILE`.
    pub fn passfile(&self) -> &Path {
        &self.passfile
    }

    /// The unix socket directory (`host=DIR port=PORT` in a conninfo).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The CA that signed the server's certificate, for `sslrootcert`. The
    /// certificate names localhost, 127.0.0.1, ::1 and every listen address.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// server.sh's directory for this server (data, socket, logs, keys).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PostgreSQL's `psql`.
    pub fn psql_path(&self) -> PathBuf {
        self.bindir.join("psql")
    }

    /// `postgresql://USER:PASSWORD@HOST:PORT/DATABASE` over TCP.
    pub fn url_to(&self, database: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgresql://{}:{}@{host}:{}/{database}",
            self.user, self.password, self.port
        )
    }

    /// [`url_to`](Self::url_to) without the password, for tests of where
    /// else it comes from (`PGPASSFILE`, a password file).
    pub fn url_without_password_to(&self, database: &str) -> String {
        self.url_to(database)
            .replacen(&format!(":{}@", self.password), "@", 1)
    }

    /// The superuser's URL to the `postgres` database.
    pub fn url(&self) -> String {
        self.url_to("postgres")
    }

    /// URL query parameters for TLS with this server's CA, e.g.
    /// `sslmode=verify-full&sslrootcert=/tmp/qpg-…/ca.crt`.
    pub fn tls_query(&self, sslmode: &str) -> String {
        format!("sslmode={sslmode}&sslrootcert={}", self.ca_file.display())
    }

    /// `psql` on `url`, quiet, unaligned, stopping at the first error; the
    /// caller adds `-c SQL` (or `-f`). See [`psql_in`](Self::psql_in) for a
    /// psql on a test host.
    pub fn psql(&self, url: &str) -> Command {
        self.psql_in(Command::new(self.psql_path()), url)
    }

    /// Like [`psql`](Self::psql), for a command that already runs
    /// [`psql_path`](Self::psql_path) somewhere else, e.g.
    /// `pg.psql_in(host.command(pg.psql_path()), &url)` on a test host.
    pub fn psql_in(&self, mut cmd: Command, url: &str) -> Command {
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url])
            .stdin(Stdio::null());
        for name in LIBPQ_ENV {
            cmd.env_remove(name);
        }
        cmd
    }

    /// Runs `sql` in `database` with `psql`, whatever the outcome.
    pub fn try_sql(&self, database: &str, sql: &str) -> Output {
        self.psql(&self.url_to(database))
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-c", sql])
            .output()
            .expect("run psql")
    }

    /// Runs `sql` in `database` and returns its output (rows one a line,
    /// columns separated by `|`), failing the test if it fails.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = self.try_sql(database, sql);
        assert!(
            out.status.success(),
            "psql -c {sql:?} in {database} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// A new, empty database that only this test uses, dropped (with any
    /// connections left to it) when the value is dropped.
    pub fn fresh_database(&self) -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // pid and counter make it unique among running tests; the random
        // part keeps it from meeting a leftover of a dead run with this pid.
        let name = format!(
            "qt_{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        self.sql("postgres", &format!("CREATE DATABASE \"{name}\""));
        TestDatabase {
            server: self.clone(),
            name,
        }
    }
}

/// A database of one test; see [`PgServer::fresh_database`].
pub struct TestDatabase {
    server: PgServer,
    name: String,
}

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// The URL for queuectl's `--db` (superuser, password in it, TCP; add
    /// `?`[`tls_query`](PgServer::tls_query) for TLS).
    pub fn url(&self) -> String {
        self.server.url_to(&self.name)
    }

    /// Runs `sql` in this database; see [`PgServer::sql`].
    pub fn sql(&self, sql: &str) -> String {
        self.server.sql(&self.name, sql)
    }

    pub fn try_sql(&self, sql: &str) -> Output {
        self.server.try_sql(&self.name, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let out = self.server.try_sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
        if !out.status.success() {
            eprintln!(
                "could not drop test database {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// A PostgreSQL of one test (server.sh), stopped and removed on drop; if the
/// test process dies outright, server.sh's watcher removes it within a
/// second. Derefs to its [`PgServer`].
pub struct PrivatePg {
    server: PgServer,
}

fn server_sh() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(SERVER_SH).stdin(Stdio::null());
    cmd
}

/// Runs `server.sh ARGS` and returns its stdout, failing the test with its
/// stderr (which includes the server's log) if it fails.
fn server_sh_ok(args: &[&OsStr]) -> String {
    let out = server_sh().args(args).output().expect("run server.sh");
    assert!(
        out.status.success(),
        "server.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether server.sh can start servers here (PostgreSQL 15 and openssl
/// installed, a `postgres` user when root). Prints why not and returns
/// false; panics instead under CI=true.
pub fn servers_can_run() -> bool {
    let check = server_sh().arg("check").output().expect("run server.sh");
    if !check.status.success() {
        super::skip_unless_ci(String::from_utf8_lossy(&check.stderr).trim());
    }
    check.status.success()
}

impl PrivatePg {
    /// Starts a server listening on `listen` only (comma-separated
    /// addresses, e.g. a [`TestNetwork`](super::hosts::TestNetwork)'s
    /// bridge address), or returns `None` after printing why this machine
    /// cannot (panics instead under CI=true). About a second.
    pub fn start(listen: &str) -> Option<PrivatePg> {
        if !servers_can_run() {
            return None;
        }
        let owner = std::process::id().to_string();
        let args = ["start", "--listen", listen, "--owner", &owner];
        let exports = parse_exports(&server_sh_ok(&args.map(OsStr::new)));
        let server = PgServer::from_vars(|name| {
            exports
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        });
        Some(PrivatePg { server })
    }

    /// Stops the server at once (as a crash would: no shutdown checkpoint,
    /// connections cut) and starts it again on the same port and data;
    /// returns once it accepts connections.
    pub fn restart(&self) {
        self.server_sh("restart");
    }

    /// Stops the server at once, keeping its data and port, for tests of a
    /// database that is gone for a while; [`up`](Self::up) brings it back.
    pub fn down(&self) {
        self.server_sh("down");
    }

    /// Starts a server that is [`down`](Self::down) again on the same port;
    /// returns once it accepts connections.
    pub fn up(&self) {
        self.server_sh("up");
    }

    fn server_sh(&self, command: &str) {
        server_sh_ok(&[command.as_ref(), self.server.dir().as_os_str()]);
    }
}

impl std::ops::Deref for PrivatePg {
    type Target = PgServer;
    fn deref(&self) -> &PgServer {
        &self.server
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let out = server_sh().arg("stop").arg(self.server.dir()).output();
        if !matches!(&out, Ok(out) if out.status.success()) {
            eprintln!(
                "server.sh stop {} failed: {out:?}",
                self.server.dir().display()
            );
        }
    }
}

/// `export NAME=VALUE` lines (VALUE as bash's `printf %q` writes printable
/// text: backslash escapes) into pairs.
fn parse_exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(name, quoted)| {
            let mut value = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                value.extend(if c == '\\' { chars.next() } else { Some(c) });
            }
            (name.to_owned(), value)
        })
        .collect()
}
