//! The dashboard under a real systemd (the contained user manager of
//! `support::systemd`): `queuectl units install --user` installs
//! queuectl-web.socket and queuectl-web.service; only the socket is started,
//! the first HTTP request starts the service (socket activation), the
//! service runs with its sandbox in force, reads the queue as it changes,
//! and stops cleanly. Skips with a reason where the harness cannot run,
//! never when CI=true. Also: what `units install` writes for every kind of
//! manager passes `systemd-analyze verify` (offline).

use crate::support::systemd::PrivateSystemd;
use crate::support::{binary, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SERVICE: &str = "queuectl-web.service";
const SOCKET: &str = "queuectl-web.socket";

/// A private user manager with a queue the dashboard units are pointed at.
struct WebUnits {
    sd: PrivateSystemd,
    port: u16,
}

impl WebUnits {
    fn start() -> Option<WebUnits> {
        // Not under /tmp: the service has PrivateTmp=yes, and the manager's
        // notify socket, the queue and the config must be visible to it.
        let sd = PrivateSystemd::start_in(Path::new(env!("CARGO_TARGET_TMPDIR")), &[])?;
        std::fs::create_dir_all(sd.dir().join("queue")).unwrap();
        std::fs::write(sd.dir().join("queue/config.toml"), "").unwrap();
        Some(WebUnits {
            sd,
            port: free_port(),
        })
    }

    fn db(&self) -> PathBuf {
        self.sd.dir().join("queue/queue.db")
    }

    /// The CLI inside the namespace, on this queue.
    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = self.sd.command(binary().to_str().unwrap());
        cmd.env("QUEUECTL_DB", self.db())
            .env("QUEUECTL_CONFIG", self.sd.dir().join("queue/config.toml"))
            .args(args);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args).output().unwrap();
        assert!(out.status.success(), "queuectl {args:?}: {}", show(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn systemctl_ok(&self, args: &[&str]) {
        let out = self.sd.systemctl(args);
        assert!(
            out.status.success(),
            "systemctl --user {args:?}: {}\n--- journal ---\n{}",
            show(&out),
            self.sd.unit_log(SERVICE)
        );
    }

    fn property(&self, unit: &str, name: &str) -> String {
        let out = self.sd.systemctl(&["show", "--value", "-p", name, unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `GET path` on the socket systemd listens on: (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).unwrap_or_else(|e| {
            panic!(
                "GET {path}: {e}\n--- journal ---\n{}",
                self.sd.unit_log(SERVICE)
            )
        })
    }
}

fn show(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port nothing listens on right now, for the socket unit.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A plain HTTP/1.1 GET; the read waits as long as systemd takes to start
/// the service (the connection sits in the socket's backlog meanwhile).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The fields of /proc/PID/status the sandbox sets.
fn sandbox_of(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| {
            ["NoNewPrivs:", "CapBnd:", "CapEff:", "Seccomp:"]
                .iter()
                .any(|f| l.starts_with(f))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_first_request_starts_the_socket_activated_dashboard_and_stop_exits_cleanly() {
    let Some(w) = WebUnits::start() else {
        return;
    };
    // A queue with a job, and no connection left open: no -shm/-wal files.
    w.ok(&["enqueue", r#"{"id":"first","command":"true"}"#]);
    assert!(!w.db().with_extension("db-shm").exists());

    w.ok(&["units", "install", "--user"]);
    let unit_dir = w.sd.unit_dir();
    for name in [SOCKET, SERVICE] {
        assert!(unit_dir.join(name).exists(), "{name} installed");
    }
    std::fs::create_dir_all(unit_dir.join("queuectl-web.socket.d")).unwrap();
    std::fs::write(
        unit_dir.join("queuectl-web.socket.d/90-test.conf"),
        format!(
            "[Socket]\nListenStream=\nListenStream=127.0.0.1:{}\n",
            w.port
        ),
    )
    .unwrap();
    w.systemctl_ok(&["daemon-reload"]);
    // Every line of the units and of the drop-ins the install wrote is
    // valid (verify prints a warning for any it would ignore).
    let verify =
        w.sd.command("systemd-analyze")
            .args(["--user", "verify", "--man=no", SOCKET, SERVICE])
            .output()
            .unwrap();
    assert!(
        verify.status.success() && verify.stdout.is_empty() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        show(&verify)
    );
    w.systemctl_ok(&["start", SOCKET]);
    assert_eq!(w.property(SOCKET, "ActiveState"), "active");
    assert_eq!(
        w.property(SERVICE, "ActiveState"),
        "inactive",
        "only the socket was started"
    );

    // The first connection starts the service, which answers it.
    let (status, body) = w.get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    wait_until("the service is active (READY=1 arrived)", WAIT, || {
        w.property(SERVICE, "ActiveState") == "active"
    });
    assert_eq!(w.property(SERVICE, "NRestarts"), "0");

    // Its sandbox is in force: no new privileges, no capabilities, seccomp.
    let pid = w.property(SERVICE, "MainPID");
    let sandbox = sandbox_of(&pid);
    for line in [
        "NoNewPrivs:\t1",
        "CapBnd:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "Seccomp:\t2",
    ] {
        assert!(sandbox.contains(line), "{line:?} in\n{sandbox}");
    }

    // It reads the queue (each of its threads' connections, opened while
    // no -shm existed) ...
    for _ in 0..8 {
        let (status, body) = w.get("/api/jobs/first");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"first\""), "{body}");
    }
    // Every page and endpoint works inside the sandbox (/api/status asks
    // the manager about workers too).
    for path in [
        "/",
        "/jobs",
        "/jobs/first",
        "/dlq",
        "/workers",
        "/queues",
        "/schedules",
        "/metrics",
        "/api/status",
        "/api/overview",
        "/api/jobs",
        "/api/workers",
        "/api/queues",
        "/api/schedules",
        "/api/dlq",
    ] {
        let (status, body) = w.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    let (_, metrics) = w.get("/metrics");
    assert!(
        metrics.contains("queuectl_jobs{") && metrics.contains("state=\"pending\""),
        "{metrics}"
    );
    // ... and sees later commits while another connection keeps them in the
    // WAL. A read-only queue directory (ProtectSystem=strict without the
    // install's ReadWritePaths=) left SQLite only `immutable`, which ignores
    // the WAL: "second" stayed 404.
    let holder = rusqlite::Connection::open(w.db()).unwrap();
    let _: i64 = holder
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert!(w.db().with_extension("db-shm").exists());
    w.ok(&["enqueue", r#"{"id":"second","command":"true"}"#]);
    for _ in 0..8 {
        let (status, body) = w.get("/api/jobs/second");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"second\""), "{body}");
    }

    // A stop: SIGTERM, and the server exits by itself, with status 0.
    w.systemctl_ok(&["stop", SERVICE]);
    assert_eq!(w.property(SERVICE, "ActiveState"), "inactive");
    assert_eq!(w.property(SERVICE, "Result"), "success");
    assert_eq!(
        w.property(SERVICE, "ExecMainCode"),
        "1",
        "exited, not killed by a signal"
    );
    assert_eq!(w.property(SERVICE, "ExecMainStatus"), "0");
    // The socket stays, and the next request starts the service again.
    assert_eq!(w.property(SOCKET, "ActiveState"), "active");
    assert_eq!(w.get("/healthz").0, 200);
    drop(holder);
}

/// What `units install` writes for each kind of manager (the system's,
/// root's user manager, a normal user's), drop-ins included, is what
/// systemd takes without a warning. Offline: no manager is started.
#[test]
fn every_file_units_install_writes_passes_systemd_analyze_verify() {
    use queuectl::store::Database;
    use queuectl::systemd::units::{Manager, install_set};
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::support::skip_unless_ci("systemd-analyze not found (apt-get install systemd)");
        return;
    }
    // The usual places, and a queue in a home with its config in /tmp (each
    // adds its own lines to the dashboard's sandbox).
    let queues = [
        ("/etc/q/config.toml", "/var/lib/q 100%/queue.db"),
        ("/tmp/q/config.toml", "/home/ann/q/queue.db"),
    ];
    let managers = [
        (Manager::System, false),
        (Manager::User { privileged: true }, true),
        (Manager::User { privileged: false }, true),
    ];
    for ((manager, user), (config, db)) in managers
        .into_iter()
        .flat_map(|m| queues.map(move |q| (m, q)))
    {
        let db = Database::Sqlite(db.into());
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("units");
        let runtime = dir.path().join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        let files = install_set(&binary(), Some((Path::new(config), &db)), manager).unwrap();
        for (name, text) in &files {
            let path = units.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut verify = Command::new("systemd-analyze");
        if user {
            verify.arg("--user");
        }
        // SYSTEMD_UNIT_PATH: these units, drop-ins included, by name
        // (the trailing ':' keeps the default path for sockets.target, ...).
        let out = verify
            .args([
                "verify",
                "--man=no",
                SOCKET,
                SERVICE,
                "queuectl-worker@1.service",
            ])
            .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{manager:?}, {db}: {}",
            show(&out)
        );
    }
}
