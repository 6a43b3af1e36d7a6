//! queuectl's PostgreSQL connections (`store::postgres::connect`) against
//! the test server: where the password comes from, TLS modes, libpq's
//! defaults, and how failures read.
//!
//! Each case connects in a child process (this test binary again, running
//! only `connect_child`) whose environment holds exactly the variables the
//! case gives, with `HOME` in a temp dir: so what is tested is a process's
//! real environment, as a worker has it, and the real `~/.pgpass` is never
//! read.

use crate::support::TestEnv;
use crate::support::postgres::PgServer;
use queuectl::store::postgres::{PgTarget, connect, map_error};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The address the child connects to; its presence makes it a child.
const CHILD_ADDRESS: &str = "QUEUECTL_TEST_CONNECT_ADDRESS";

/// Runs in the child (see the module doc): connects, prints what it reached
/// or the error, and exits with the error's exit code.
#[test]
#[ignore = "the other tests of this module run it in a child process"]
fn connect_child() {
    let Ok(address) = std::env::var(CHILD_ADDRESS) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let target = PgTarget::parse(&address).unwrap_or_else(|e| fail(e));
    let mut client = connect(&target).unwrap_or_else(|e| fail(e));
    let row = client
        .query_one(
            "SELECT current_user::text, current_database()::text, \
             current_setting('application_name'), \
             coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .unwrap();
    let (user, db, app, ssl): (String, String, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    println!("CONNECTED user={user} db={db} app={app} ssl={ssl}");
    std::process::exit(0);
}

fn fail(e: queuectl::error::Error) -> ! {
    eprintln!("ERROR: {e}");
    println!("UNREACHABLE={}", e.is_unreachable());
    std::process::exit(e.exit_code().into())
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn of(out: std::process::Output) -> Outcome {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn connected(&self) -> Option<&str> {
        self.stdout
            .lines()
            // libtest may have written "test … ... " before it on the line.
            .find_map(|line| Some(line.split_once("CONNECTED ")?.1))
    }

    fn assert_connected(&self, expect: &str) {
        let got = self.connected().unwrap_or_else(|| panic!("{self}"));
        for part in expect.split(' ') {
            assert!(got.split(' ').any(|p| p == part), "{part}: {self}");
        }
    }

    fn assert_failed(&self, unreachable: bool, message: &str) {
        assert_eq!(self.code, 1, "{self}");
        assert!(
            self.stdout.contains(&format!("UNREACHABLE={unreachable}")),
            "{self}"
        );
        assert!(self.stderr.contains(message), "{message}: {self}");
    }

    fn assert_never_shows(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "{self}"
        );
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// `connect` of `address` in a child whose environment is `vars` plus
/// `HOME=home` and `PATH`, nothing else.
fn connect_in_child(address: &str, home: &Path, vars: &[(&str, OsString)]) -> Outcome {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pg_connect::connect_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env(CHILD_ADDRESS, address)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    Outcome::of(out)
}

fn password(server: &PgServer) -> String {
    std::fs::read_to_string(server.password_file())
        .unwrap()
        .trim_end()
        .to_owned()
}

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A conninfo over TCP to the test server without a password.
fn tcp(server: &PgServer, dbname: &str, extra: &str) -> String {
    format!(
        "hostaddr={} port={} user={} dbname={dbname} {extra}",
        server.host(),
        server.port(),
        server.user()
    )
}

#[test]
fn pgpass_is_used_when_private_and_ignored_with_a_warning_when_not() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    let home = tempfile::tempdir().unwrap();
    let secret = password(&server);
    let entry = format!("*:{}:*:{}:{secret}\n", server.port(), server.user());
    let address = server.url_without_password_to(db.name());

    // ~/.pgpass (HOME), then $PGPASSFILE.
    let dotfile = home.path().join(".pgpass");
    write_private(&dotfile, &entry, 0o600);
    let out = connect_in_child(&address, home.path(), &[]);
    out.assert_connected(&format!("user={} db={}", server.user(), db.name()));
    let elsewhere = home.path().join("elsewhere.pgpass");
    write_private(&elsewhere, &entry, 0o600);
    std::fs::remove_file(&dotfile).unwrap();
    let vars = [("PGPASSFILE", elsewhere.clone().into())];
    connect_in_child(&address, home.path(), &vars).assert_connected("app=queuectl");

    // Readable by others: ignored, with a warning naming the file only.
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = connect_in_child(&address, home.path(), &vars);
    out.assert_failed(false, "the server asks for a password and none was found");
    assert!(out.stderr.contains("group or world access"), "{out}");
    assert!(
        out.stderr.contains(&elsewhere.display().to_string()),
        "{out}"
    );
    out.assert_never_shows(&secret);
}

#[test]
fn a_password_file_by_path_or_as_a_systemd_credential() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    let home = tempfile::tempdir().unwrap();
    let address = server.url_without_password_to(db.name());
    let by_path = [(
        "QUEUECTL_DB_PASSWORD_FILE",
        server.password_file().as_os_str().to_owned(),
    )];
    connect_in_child(&address, home.path(), &by_path).assert_connected("ssl=true");

    let credentials = home.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    write_private(
        &credentials.join("db-password"),
        &format!("{}\n", password(&server)),
        0o400,
    );
    let by_name = [
        ("QUEUECTL_DB_PASSWORD_FILE", "db-password".into()),
        ("CREDENTIALS_DIRECTORY", credentials.clone().into()),
    ];
    connect_in_child(&address, home.path(), &by_name).assert_connected("ssl=true");

    // A named file that is missing is an error, not a silent fallback.
    let missing = [
        ("QUEUECTL_DB_PASSWORD_FILE", "other-name".into()),
        by_name[1].clone(),
    ];
    let out = connect_in_child(&address, home.path(), &missing);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("other-name"), "{out}");
}

#[test]
fn sslmodes_encrypt_and_verify_as_libpq_does() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    let home = tempfile::tempdir().unwrap();
    let pw = [("PGPASSWORD", OsString::from(password(&server)))];
    let ca = server.ca_file().display().to_string();
    let connect = |address: String| connect_in_child(&address, home.path(), &pw);

    connect(tcp(&server, db.name(), "sslmode=disable")).assert_connected("ssl=false");
    connect(tcp(&server, db.name(), "")).assert_connected("ssl=true");
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!(
            "{}?{}",
            server.url_without_password_to(db.name()),
            server.tls_query(mode)
        );
        connect(url).assert_connected("ssl=true");
    }
    // The certificate names localhost and the listen address; verify-full
    // refuses it for another name, verify-ca and require do not check names.
    let named = |mode: &str| {
        tcp(
            &server,
            db.name(),
            &format!("host=db.wrong.example sslmode={mode} sslrootcert={ca}"),
        )
    };
    connect(named("verify-full")).assert_failed(false, "not valid for name");
    connect(named("verify-ca")).assert_connected("ssl=true");
    connect(tcp(
        &server,
        db.name(),
        "host=db.wrong.example sslmode=require",
    ))
    .assert_connected("ssl=true");
    // Without the test CA (no sslrootcert; the system roots do not hold it).
    connect(tcp(
        &server,
        db.name(),
        "host=localhost sslmode=verify-full",
    ))
    .assert_failed(false, "invalid peer certificate");
    // SSL_CERT_FILE adds it to the system roots (rustls-native-certs).
    let with_ca = [pw[0].clone(), ("SSL_CERT_FILE", ca.clone().into())];
    let address = tcp(&server, db.name(), "host=localhost sslmode=verify-full");
    connect_in_child(&address, home.path(), &with_ca).assert_connected("ssl=true");
    // A unix socket never uses TLS, whatever the mode (as in libpq).
    let socket = format!(
        "host={} port={} user={} dbname={} sslmode=require",
        server.socket_dir().display(),
        server.port(),
        server.user(),
        db.name()
    );
    connect(socket).assert_connected("ssl=false");
}

#[test]
fn libpq_environment_and_defaults_fill_what_the_address_leaves_out() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    let home = tempfile::tempdir().unwrap();
    let mut vars = vec![
        ("PGHOST", server.socket_dir().as_os_str().to_owned()),
        ("PGPORT", server.port().to_string().into()),
        ("PGUSER", server.user().into()),
        ("PGDATABASE", db.name().into()),
        ("PGPASSFILE", server.passfile().as_os_str().to_owned()),
    ];
    let out = connect_in_child("application_name=mine", home.path(), &vars);
    out.assert_connected(&format!(
        "user={} db={} app=mine ssl=false",
        server.user(),
        db.name()
    ));
    // Without PGDATABASE the database is the user's name, as in libpq.
    vars.retain(|(k, _)| *k != "PGDATABASE");
    let out = connect_in_child("sslmode=disable", home.path(), &vars);
    out.assert_failed(
        false,
        &format!("database \"{}\" does not exist", server.user()),
    );
    // Several hosts: the first refuses, the second serves.
    let port = refused_port();
    let address = format!(
        "host=127.0.0.1,{} port={port},{} user={} dbname={}",
        server.socket_dir().display(),
        server.port(),
        server.user(),
        db.name()
    );
    connect_in_child(&address, home.path(), &vars).assert_connected("ssl=false");
    // One that answers "no" ends the attempt (as in libpq), and when none
    // can be reached, each says why.
    let address = format!(
        "host={},127.0.0.1 port={},{port} user={} dbname=no_such_database",
        server.socket_dir().display(),
        server.port(),
        server.user(),
    );
    let out = connect_in_child(&address, home.path(), &vars);
    out.assert_failed(false, "database \"no_such_database\" does not exist");
    let other = refused_port();
    let address = format!("host=127.0.0.1,localhost port={port},{other} user=u");
    let out = connect_in_child(&address, home.path(), &vars);
    out.assert_failed(
        true,
        &format!("127.0.0.1:{port}: error connecting to server"),
    );
    assert!(
        out.stderr.contains(&format!("; localhost:{other}: ")),
        "{out}"
    );
}

#[test]
fn a_wrong_password_fails_with_exit_1_and_is_never_shown() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    let home = tempfile::tempdir().unwrap();
    let wrong = format!("wrong-{:08x}", rand::random::<u32>());
    let inline = server
        .url_to(db.name())
        .replacen(&password(&server), &wrong, 1);
    for (address, vars) in [
        (inline, vec![]),
        (
            server.url_without_password_to(db.name()),
            vec![("PGPASSWORD", OsString::from(&wrong))],
        ),
    ] {
        let out = connect_in_child(&address, home.path(), &vars);
        out.assert_failed(false, "password authentication failed");
        out.assert_never_shows(&wrong);
        out.assert_never_shows(&password(&server));
    }
}

#[test]
fn a_refused_port_is_unreachable_and_a_missing_database_is_not() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let pw = [("PGPASSWORD", OsString::from(password(&server)))];
    let port = refused_port();
    let address = format!("postgresql://{}@127.0.0.1:{port}/postgres", server.user());
    let out = connect_in_child(&address, home.path(), &pw);
    out.assert_failed(
        true,
        &format!(
            "database postgresql://{}@127.0.0.1:{port}/postgres is unreachable",
            server.user()
        ),
    );
    let address = server.url_without_password_to("no_such_database");
    let out = connect_in_child(&address, home.path(), &pw);
    out.assert_failed(false, "database \"no_such_database\" does not exist");
}

#[test]
fn statement_failures_read_as_the_server_says_and_a_killed_session_as_unreachable() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    // The password is in the URL, so nothing of this process's environment
    // is consulted for it.
    let target = PgTarget::parse(&db.url()).unwrap();
    let mut client = connect(&target).unwrap();
    // As the harness writes it: postgresql://USER@HOST:PORT/DATABASE.
    let shown = server.url_without_password_to(db.name());

    let e = map_error(&target, client.simple_query("SELEC 1").unwrap_err());
    assert!(!e.is_unreachable(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("database {shown}: syntax error at or near \"SELEC\"")
    );

    // Ended by an administrator (as at a server shutdown); with a timeout
    // the call returns once the session is gone.
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        db.sql(&format!("SELECT pg_terminate_backend({pid}, 20000)")),
        "t"
    );
    let e = map_error(&target, client.simple_query("SELECT 1").unwrap_err());
    assert!(e.is_unreachable(), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("database {shown} is unreachable: ")),
        "{e}"
    );
    assert!(!e.to_string().contains(&password(&server)), "{e}");
}

/// `queuectl --db ADDRESS ARGS` with `vars` and HOME in the test's dir.
fn cli(env: &TestEnv, address: &str, vars: &[(&str, OsString)], args: &[&str]) -> Outcome {
    let out = env
        .cmd()
        .env("HOME", env.path("home"))
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env_remove("QUEUECTL_DB_PASSWORD_FILE")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args(["--db", address])
        .args(args)
        .output()
        .unwrap();
    Outcome::of(out)
}

#[test]
fn the_cli_reports_connection_failures_plainly_without_the_password() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    let env = TestEnv::sqlite();
    let secret = password(&server);
    // As the harness writes it: postgresql://USER@HOST:PORT/DATABASE.
    let shown = server.url_without_password_to(db.name());
    let said = |out: &Outcome, what: &str| {
        assert_eq!(out.code, 1, "{what}: {out}");
        let last = out.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("queuectl: database "), "{what}: {out}");
        out.assert_never_shows(&secret);
    };

    // The right password from PGPASSWORD: it works.
    let pw = [("PGPASSWORD", OsString::from(&secret))];
    let bare = server.url_without_password_to(db.name());
    let enqueue = |id: &str| format!(r#"{{"id":"{id}","command":"true"}}"#);
    let out = cli(&env, &bare, &pw, &["enqueue", &enqueue("a")]);
    assert_eq!(out.code, 0, "{out}");

    let wrong = format!("wrong-{:08x}", rand::random::<u32>());
    let out = cli(&env, &db.url().replacen(&secret, &wrong, 1), &[], &["list"]);
    said(&out, "a wrong password");
    out.assert_never_shows(&wrong);
    assert!(
        out.stderr
            .contains(&format!("database {shown}: password authentication failed")),
        "{out}"
    );

    let port = refused_port();
    let refused = format!("postgresql://{}@127.0.0.1:{port}/q", server.user());
    let out = cli(&env, &refused, &pw, &["list"]);
    said(&out, "a refused port");
    assert!(
        out.stderr.contains(&format!(
            "database postgresql://{}@127.0.0.1:{port}/q is unreachable: ",
            server.user()
        )),
        "{out}"
    );

    let wrong_name = format!(
        "{}?sslmode=verify-full&sslrootcert={}&host=db.wrong.example&hostaddr={}",
        bare,
        server.ca_file().display(),
        server.host()
    );
    let out = cli(&env, &wrong_name, &pw, &["list"]);
    said(&out, "a certificate for another name");
    assert!(out.stderr.contains("not valid for name"), "{out}");

    // A pgpass file others can read: ignored, saying so; then no password.
    std::fs::create_dir(env.path("home")).unwrap();
    let pgpass = env.path("home/.pgpass");
    write_private(&pgpass, &format!("*:*:*:*:{secret}\n"), 0o644);
    let out = cli(&env, &bare, &[], &["list"]);
    said(&out, "a pgpass open to others");
    assert!(out.stderr.contains("group or world access"), "{out}");
    assert!(
        out.stderr
            .contains("the server asks for a password and none was found"),
        "{out}"
    );
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = cli(&env, &bare, &[], &["enqueue", &enqueue("b")]);
    assert_eq!(out.code, 0, "{out}");
}

/// A loopback port nothing listens on (it was free a moment ago).
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
