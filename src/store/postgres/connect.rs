//! Reaching a PostgreSQL server: the address (`address`), the password
//! (`password`), TLS (`tls`), libpq's defaults, and how failures read
//! (`map_error`: unreachable, which a worker waits out, or a real error).
//!
//! The client is the synchronous `postgres` crate, not an async one: the
//! worker is one synchronous, single-threaded loop, and the crate gives it
//! blocking `LISTEN` through `Client::notifications()`
//! (`blocking_iter`/`timeout_iter`), so wake-ups need no runtime of ours.
//! (It runs a private current-thread tokio runtime per connection inside.)
//!
//! Never shown anywhere: the password and the address as given. Messages use
//! the target's `Display` (`postgresql://user@host:port/dbname`).

mod address;
mod password;
mod tls;

pub use address::PgTarget;

use crate::error::{Error, Result};
use postgres::error::SqlState;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tls::{Roots, SslMode};

/// libpq's default when the address sets no `connect_timeout` would be to
/// wait forever; a worker must rather hear "unreachable" and retry.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalives on an idle connection (a worker waiting in LISTEN): a peer gone
/// without a word (network cut, host powered off) is noticed within
/// idle + interval × count = 25 s, inside the default 30 s lease.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_KEEPALIVES_COUNT: u32 = 3;
/// Data sent but not acknowledged for this long closes the connection (the
/// statement then fails as unreachable instead of hanging for the kernel's
/// ~15 minutes of retransmissions).
const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
const APPLICATION_NAME: &str = "queuectl";
/// libpq's default socket directories (Debian's first), tried before
/// `localhost` when neither the address nor `$PGHOST` names a host.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/run/postgresql", "/var/run/postgresql"];

/// libpq's trusted roots when `sslrootcert` is not given, under the home
/// directory.
const DEFAULT_ROOT_CERT: &str = ".postgresql/root.crt";

/// libpq's environment variables: each fills its keyword when the address
/// leaves it out.
const LIBPQ_ENV: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

/// The process environment, or in tests a made-up one (so no test reads the
/// real home directory or needs to change this process's variables).
pub(super) struct Env<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    fn process() -> Env<'static> {
        Env {
            var: &|name| std::env::var(name).ok(),
        }
    }

    #[cfg(test)]
    fn from_fn(var: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env { var }
    }

    /// A variable's value; empty counts as unset, as in libpq.
    fn var(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }

    /// `$HOME`, else the passwd entry's home.
    fn home(&self) -> Option<std::path::PathBuf> {
        self.var("HOME").map(Into::into).or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|user| user.dir)
        })
    }
}

/// The user name libpq would use: this process's effective user's.
fn os_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// One server to try, as libpq lists them (`host=a,b`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostAttempt {
    /// A name, an IP address or a socket directory; `None` with `hostaddr`.
    host: Option<String>,
    hostaddr: Option<String>,
    port: u16,
}

impl HostAttempt {
    fn is_socket(&self) -> bool {
        self.host.as_deref().is_some_and(|h| h.starts_with('/'))
    }

    /// What pgpass matches and messages show (no secret in it).
    fn name(&self) -> &str {
        self.host
            .as_deref()
            .or(self.hostaddr.as_deref())
            .unwrap_or_default()
    }
}

/// Everything `connect` needs, with libpq's defaults filled in.
#[derive(Debug)]
struct Plan {
    target: PgTarget,
    user: String,
    dbname: String,
    hosts: Vec<HostAttempt>,
    sslmode: SslMode,
    roots: Roots,
}

impl Plan {
    fn new(
        target: &PgTarget,
        env: &Env<'_>,
        socket_exists: &dyn Fn(&Path) -> bool,
    ) -> Result<Plan> {
        let mut target = target.clone();
        for (key, var) in LIBPQ_ENV {
            if target.get(key).is_some() {
                continue;
            }
            if let Some(value) = env.var(var) {
                // Checked alone, so the message can say where it came from.
                let one = PgTarget::parse(&format!("{key}={}", address::quote_conninfo(&value)))
                    .map_err(|e| Error::Invalid(format!("${var}: {e}")))?;
                target.set_default(key, one.get(key).unwrap_or_default());
            }
        }
        let user = match target.get("user") {
            Some(user) => user.to_owned(),
            None => os_user().ok_or_else(|| {
                Error::Invalid(
                    "no PostgreSQL user name: this user has no passwd entry; give user= or $PGUSER"
                        .into(),
                )
            })?,
        };
        let dbname = target.get("dbname").unwrap_or(&user).to_owned();
        let hosts = host_attempts(&target, socket_exists)?;
        let mut sslmode = SslMode::parse(target.get("sslmode").unwrap_or("prefer"))
            .ok_or_else(|| Error::Invalid("invalid value for `sslmode`".into()))?;
        let roots = match target.get("sslrootcert") {
            Some(value) => Roots::from_param(Some(value)),
            // libpq's default file when it exists, else the system's roots.
            None => env
                .home()
                .map(|home| home.join(DEFAULT_ROOT_CERT))
                .filter(|path| path.is_file())
                .map_or(Roots::System, Roots::File),
        };
        // libpq: `require` with a root certificate file verifies the chain.
        if sslmode == SslMode::Require && matches!(roots, Roots::File(_)) {
            sslmode = SslMode::VerifyCa;
        }
        Ok(Plan {
            target,
            user,
            dbname,
            hosts,
            sslmode,
            roots,
        })
    }

    /// tokio-postgres's settings for one host, password included.
    fn config(&self, host: &HostAttempt, password: Option<&str>) -> Result<postgres::Config> {
        let passed: Vec<String> = self
            .target
            .passed_on()
            .map(|(key, value)| format!("{key}={}", address::quote_conninfo(value)))
            .collect();
        // Parsed when the target was; this cannot fail on a checked target.
        let mut config = postgres::Config::from_str(&passed.join(" "))
            .map_err(|_| Error::Invalid("invalid PostgreSQL address".into()))?;
        config.user(&self.user).dbname(&self.dbname).port(host.port);
        // With only `hostaddr`, it is also the name TLS checks (and
        // pgpass matches), as in libpq.
        config.host(host.name());
        if let Some(addr) = &host.hostaddr {
            let addr = addr
                .parse()
                .map_err(|_| Error::Invalid("invalid value for `hostaddr`".into()))?;
            config.hostaddr(addr);
        }
        if let Some(password) = password {
            config.password(password);
        }
        // Unix sockets never use TLS (as in libpq): the kernel is the channel.
        config.ssl_mode(if host.is_socket() {
            postgres::config::SslMode::Disable
        } else {
            self.sslmode.negotiation()
        });
        let given = |key| self.target.get(key).is_some();
        if !given("connect_timeout") {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if !given("application_name") {
            config.application_name(
                self.target
                    .get("fallback_application_name")
                    .unwrap_or(APPLICATION_NAME),
            );
        }
        if !given("keepalives_idle") {
            config.keepalives_idle(DEFAULT_KEEPALIVES_IDLE);
        }
        if !given("keepalives_interval") {
            config.keepalives_interval(DEFAULT_KEEPALIVES_INTERVAL);
        }
        if !given("keepalives_count") {
            config.keepalives_retries(DEFAULT_KEEPALIVES_COUNT);
        }
        // libpq gives it in milliseconds (tokio-postgres's own parser would
        // read seconds); 0 leaves the system default.
        match self.target.get("tcp_user_timeout").map(str::parse::<u64>) {
            None => {
                config.tcp_user_timeout(DEFAULT_TCP_USER_TIMEOUT);
            }
            Some(Ok(0)) => {}
            Some(Ok(ms)) => {
                config.tcp_user_timeout(Duration::from_millis(ms));
            }
            Some(Err(_)) => {
                return Err(Error::Invalid(
                    "invalid value for `tcp_user_timeout`".into(),
                ));
            }
        }
        Ok(config)
    }
}

/// The hosts to try in order: the address's (or `$PGHOST`'s) list paired
/// with `hostaddr` and `port`; with none, the first default socket
/// directory where a server listens, else `localhost`.
fn host_attempts(
    target: &PgTarget,
    socket_exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<HostAttempt>> {
    let hosts = target.list("host");
    let hostaddrs = target.list("hostaddr");
    let ports = target.list("port");
    let count = hosts.len().max(hostaddrs.len()).max(1);
    let mut attempts = Vec::with_capacity(count);
    for i in 0..count {
        let port = match ports.get(i).or(ports.first()).copied().unwrap_or("") {
            "" => 5432,
            port => port
                .parse()
                .map_err(|_| Error::Invalid("invalid value for `port`".into()))?,
        };
        let pick = |list: &[&str]| list.get(i).filter(|v| !v.is_empty()).map(|v| v.to_string());
        let mut host = pick(&hosts);
        let hostaddr = pick(&hostaddrs);
        if host.is_none() && hostaddr.is_none() {
            host = Some(default_host(port, socket_exists));
        }
        attempts.push(HostAttempt {
            host,
            hostaddr,
            port,
        });
    }
    if target.get("load_balance_hosts") == Some("random") {
        use rand::seq::SliceRandom;
        attempts.shuffle(&mut rand::rng());
    }
    Ok(attempts)
}

fn default_host(port: u16, socket_exists: &dyn Fn(&Path) -> bool) -> String {
    DEFAULT_SOCKET_DIRS
        .iter()
        .find(|dir| socket_exists(&Path::new(dir).join(format!(".s.PGSQL.{port}"))))
        .map_or_else(|| "localhost".to_owned(), |dir| (*dir).to_owned())
}

/// Connects to `target` as libpq would: each listed host in turn, the
/// password from the first source that has one (see `password`), TLS as
/// `sslmode` says, `connect_timeout` 10 s unless given, TCP keepalives on,
/// `application_name=queuectl`. A server that cannot be reached now is
/// `Error::Unreachable`; one that refuses us (authentication, no such
/// database, a certificate that does not verify) is `Error::Postgres`.
pub fn connect(target: &PgTarget) -> Result<postgres::Client> {
    connect_with(target, &Env::process())
}

fn connect_with(target: &PgTarget, env: &Env<'_>) -> Result<postgres::Client> {
    let plan = Plan::new(target, env, &|path| path.exists())?;
    let tls = tls::connector(plan.sslmode, &plan.roots).map_err(|message| Error::Postgres {
        target: target.to_string(),
        message,
    })?;
    let several = plan.hosts.len() > 1;
    let mut unreachable = Vec::new();
    for host in &plan.hosts {
        let lookup = password::Lookup {
            host: host.name(),
            port: host.port,
            dbname: &plan.dbname,
            user: &plan.user,
            passfile: plan.target.get("passfile"),
        };
        let password = password::resolve(plan.target.inline_password(), &lookup, env)?;
        let config = plan.config(host, password.as_deref())?;
        match config.connect(tls.clone()) {
            Ok(client) => return Ok(client),
            // As in libpq, only a host that cannot be reached passes the
            // turn to the next; one that answers "no" (authentication, no
            // such database) ends the attempt.
            Err(e) => match map_error(target, e) {
                Error::Unreachable { reason, .. } if several => {
                    unreachable.push(format!("{}:{}: {reason}", host.name(), host.port));
                }
                error => return Err(error),
            },
        }
    }
    Err(Error::Unreachable {
        target: target.to_string(),
        reason: unreachable.join("; "),
    })
}

/// Server error classes that mean "not now" rather than "no": connection
/// exceptions (08), shutting down or starting (57P01–57P03), too many
/// connections (53300).
fn is_transient(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
}

/// How a failure from the `postgres` crate reads, for the connect and for
/// every statement the backend runs: the connection is gone or cannot be
/// made (closed, I/O, timeout, refused, server shutting down or starting) →
/// `Error::Unreachable`; anything else → `Error::Postgres` with the server's
/// message. `target` names the database in the message (without password).
pub fn map_error(target: &PgTarget, e: postgres::Error) -> Error {
    let target = target.to_string();
    if let Some(db) = e.as_db_error() {
        let message = db.message().to_owned();
        return if is_transient(db.code()) {
            Error::Unreachable {
                target,
                reason: message,
            }
        } else {
            Error::Postgres { target, message }
        };
    }
    // tokio-postgres keeps its error kinds private; its `Display` is the
    // kind alone (the cause is `source()`).
    let kind = e.to_string();
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    let reason = match &cause {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.clone(),
    };
    let unreachable = e.is_closed()
        || match kind.as_str() {
            "error connecting to server" | "error communicating with the server" => true,
            "timeout waiting for server" => true,
            // The TCP connection broke during the handshake (vs. a
            // certificate refused, or a server without TLS: those are
            // errors of configuration, not of reachability).
            "error performing TLS handshake" => tls_failure_is_io(&e),
            _ => false,
        };
    if unreachable {
        return Error::Unreachable { target, reason };
    }
    if cause.as_deref() == Some("password missing") {
        return Error::Postgres {
            target,
            message: format!(
                "the server asks for a password and none was found (in the address, $PGPASSWORD, \
                 ${}, or a pgpass file)",
                password::PASSWORD_FILE_VAR
            ),
        };
    }
    Error::Postgres {
        target,
        message: reason,
    }
}

/// Whether a TLS handshake failed on the connection rather than on TLS
/// itself (rustls' own errors travel inside `io::Error`s too).
fn tls_failure_is_io(e: &postgres::Error) -> bool {
    let Some(io) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>())
    else {
        return false;
    };
    let rustls_inside = io
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    !rustls_inside
        && matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::TimedOut
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The plan for `text` in an environment of `vars` only (HOME a
    /// directory that does not exist unless given) where the sockets
    /// `sockets` exist.
    fn plan(text: &str, vars: &[(&str, &str)], sockets: &[&str]) -> Result<Plan> {
        let mut vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.entry("HOME".into())
            .or_insert_with(|| "/nonexistent/queuectl-test-home".into());
        let var = move |name: &str| vars.get(name).cloned();
        let exists = |path: &Path| sockets.iter().any(|s| Path::new(s) == path);
        Plan::new(
            &PgTarget::parse(text).unwrap(),
            &Env::from_fn(&var),
            &exists,
        )
    }

    fn attempt(host: &str, port: u16) -> HostAttempt {
        HostAttempt {
            host: Some(host.into()),
            hostaddr: None,
            port,
        }
    }

    #[test]
    fn defaults_come_from_the_environment_then_libpq() {
        let p = plan("postgresql://", &[("PGUSER", "alice")], &[]).unwrap();
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("alice", "alice"));
        assert_eq!(p.hosts, [attempt("localhost", 5432)]);
        assert_eq!(p.sslmode, SslMode::Prefer);
        assert_eq!(p.roots, Roots::System);

        let env = [
            ("PGUSER", "alice"),
            ("PGDATABASE", "jobs"),
            ("PGHOST", "db1,db2"),
            ("PGPORT", "6000"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
        ];
        let p = plan("dbname=other", &env, &[]).unwrap();
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("alice", "other"));
        assert_eq!(p.hosts, [attempt("db1", 6000), attempt("db2", 6000)]);
        assert_eq!(p.sslmode, SslMode::VerifyFull);
        assert_eq!(p.roots, Roots::File("/etc/ca.pem".into()));

        // Only what the address leaves out.
        let p = plan("postgresql://bob@h:7000/q?sslmode=disable", &env, &[]).unwrap();
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("bob", "q"));
        assert_eq!(p.hosts, [attempt("h", 7000)]);
        assert_eq!(p.sslmode, SslMode::Disable);
    }

    #[test]
    fn the_os_user_when_nothing_names_one() {
        let p = plan("dbname=q", &[], &[]).unwrap();
        assert_eq!(Some(p.user), os_user());
    }

    #[test]
    fn without_a_host_the_default_socket_directory_where_a_server_listens() {
        let p = plan(
            "port=5433",
            &[("PGUSER", "u")],
            &["/var/run/postgresql/.s.PGSQL.5433"],
        )
        .unwrap();
        assert_eq!(p.hosts, [attempt("/var/run/postgresql", 5433)]);
        let both = [
            "/run/postgresql/.s.PGSQL.5432",
            "/var/run/postgresql/.s.PGSQL.5432",
        ];
        let p = plan("dbname=q", &[("PGUSER", "u")], &both).unwrap();
        assert_eq!(p.hosts, [attempt("/run/postgresql", 5432)]);
        // A socket on another port is not this server's.
        let p = plan("port=5433", &[("PGUSER", "u")], &both).unwrap();
        assert_eq!(p.hosts, [attempt("localhost", 5433)]);
    }

    #[test]
    fn hosts_pair_with_hostaddrs_and_ports() {
        let p = plan(
            "host=a,b hostaddr=10.0.0.1,10.0.0.2 port=1,2 user=u",
            &[],
            &[],
        )
        .unwrap();
        let expected: Vec<HostAttempt> = [("a", "10.0.0.1", 1), ("b", "10.0.0.2", 2)]
            .into_iter()
            .map(|(h, a, port)| HostAttempt {
                host: Some(h.into()),
                hostaddr: Some(a.into()),
                port,
            })
            .collect();
        assert_eq!(p.hosts, expected);
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_in_libpq() {
        let p = plan(
            "host=h user=u sslmode=require sslrootcert=/ca.pem",
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(p.sslmode, SslMode::VerifyCa);
        let p = plan("host=h user=u sslmode=require", &[], &[]).unwrap();
        assert_eq!(p.sslmode, SslMode::Require);
    }

    #[test]
    fn the_home_directorys_root_certificate_is_used_when_there_as_in_libpq() {
        let home = tempfile::tempdir().unwrap();
        let at = home.path().to_str().unwrap();
        let p = plan("host=h user=u sslmode=require", &[("HOME", at)], &[]).unwrap();
        assert_eq!((p.sslmode, p.roots), (SslMode::Require, Roots::System));
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        let root = home.path().join(DEFAULT_ROOT_CERT);
        std::fs::write(&root, "").unwrap();
        let p = plan("host=h user=u sslmode=require", &[("HOME", at)], &[]).unwrap();
        assert_eq!((p.sslmode, p.roots), (SslMode::VerifyCa, Roots::File(root)));
        let p = plan("host=h user=u sslrootcert=system", &[("HOME", at)], &[]).unwrap();
        assert_eq!(p.roots, Roots::System);
    }

    #[test]
    fn a_bad_environment_value_is_named_by_its_variable() {
        let err = plan("host=h user=u", &[("PGSSLMODE", "sometimes")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("$PGSSLMODE") && !err.contains("sometimes"),
            "{err}"
        );
    }

    #[test]
    fn tokio_postgres_gets_libpq_units_and_queuectl_defaults() {
        let p = plan("host=h user=u tcp_user_timeout=1500", &[], &[]).unwrap();
        let c = p.config(&p.hosts[0], Some("pw")).unwrap();
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_millis(1500)));
        assert_eq!(c.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        assert_eq!(c.get_application_name(), Some("queuectl"));
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), DEFAULT_KEEPALIVES_IDLE);
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Prefer);
        assert_eq!(c.get_password(), Some(&b"pw"[..]));

        let p = plan(
            "host=/tmp/s user=u connect_timeout=3 application_name=mine keepalives=0 sslmode=require",
            &[],
            &[],
        )
        .unwrap();
        let c = p.config(&p.hosts[0], None).unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(c.get_application_name(), Some("mine"));
        assert!(!c.get_keepalives());
        assert_eq!(c.get_tcp_user_timeout(), Some(&DEFAULT_TCP_USER_TIMEOUT));
        assert_eq!(
            c.get_ssl_mode(),
            postgres::config::SslMode::Disable,
            "socket"
        );
    }
}
