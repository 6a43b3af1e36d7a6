//! Test environment: a temp dir holding the queue, the config and any
//! processes a test started; `Drop` stops them, so a failing test leaves
//! nothing running.

#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `$QUEUECTL_BIN` (so packagers can test what they
/// built), else the one cargo built.
pub fn binary() -> PathBuf {
    std::env::var_os("QUEUECTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_queuectl")))
}

/// Every subcommand as `--help` lists them, walked down from `queuectl`:
/// its words (`[]` for queuectl itself, `["worker", "start"]`) and whether
/// it is a group of subcommands (`worker`, `dlq`, ...).
pub fn subcommands() -> Vec<(Vec<String>, bool)> {
    fn walk(words: Vec<String>, found: &mut Vec<(Vec<String>, bool)>) {
        let out = Command::new(binary())
            .args(&words)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let Some((_, commands)) = help.split_once("Commands:\n") else {
            found.push((words, false));
            return;
        };
        found.push((words.clone(), true));
        for line in commands.lines().take_while(|l| !l.is_empty()) {
            // "  name   about"; a wrapped about continues deeper indented.
            if let Some(name) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
                let name = name.split_whitespace().next().unwrap();
                if name != "help" {
                    let mut sub = words.clone();
                    sub.push(name.to_owned());
                    walk(sub, found);
                }
            }
        }
    }
    let mut found = vec![];
    walk(vec![], &mut found);
    found
}

/// Polls `condition` until it holds, failing the test with `what` at the deadline.
pub fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(
        wait_until_or(timeout, condition),
        "timed out after {timeout:?} waiting until {what}"
    );
}

/// Polls `condition` until it holds (true) or `timeout` passes (false), for
/// tests that explain a failure with what they saw last.
pub fn wait_until_or(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Names the backend the CLI tests' queues use: `postgres` runs them on a
/// fresh database of the shared test server (tests/postgres/with-server.sh).
pub const BACKEND_ENV: &str = "QUEUECTL_TEST_BACKEND";

pub const TEST_CONFIG: &str = "lease_seconds = 2\nkill_grace_seconds = 1\nbackoff_base = 2\nbackoff_max_seconds = 0\nsupervisor = \"process\"\n";

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
    started_supervised: bool,
    /// The queue's database when it lives in PostgreSQL (dropped with the
    /// environment, after its processes are stopped).
    postgres: Option<postgres::TestDatabase>,
}

impl TestEnv {
    /// A fresh queue with test-friendly settings: short leases and no
    /// backoff wait unless a test sets one. On the backend
    /// `$QUEUECTL_TEST_BACKEND` names (SQLite unless `postgres`).
    pub fn new() -> TestEnv {
        Self::with_config(TEST_CONFIG)
    }

    /// A fresh queue with `config`, on the backend `$QUEUECTL_TEST_BACKEND`
    /// names. Asking for PostgreSQL without a test server fails the test:
    /// the run asked for it explicitly.
    pub fn with_config(config: &str) -> TestEnv {
        match std::env::var(BACKEND_ENV).as_deref() {
            Ok("postgres") => Self::postgres_with_config(config).unwrap_or_else(|| {
                panic!("{BACKEND_ENV}=postgres, but there is no PostgreSQL test server")
            }),
            Ok("sqlite") | Err(_) => Self::sqlite_with_config(config),
            Ok(other) => panic!("{BACKEND_ENV}={other}: expected sqlite or postgres"),
        }
    }

    /// A fresh SQLite queue, whatever `$QUEUECTL_TEST_BACKEND` says.
    pub fn sqlite() -> TestEnv {
        Self::sqlite_with_config(TEST_CONFIG)
    }

    /// A fresh queue in a new database of the shared PostgreSQL test server,
    /// whatever `$QUEUECTL_TEST_BACKEND` says; `None` (printing why) where
    /// there is no server, a panic instead under CI=true.
    pub fn postgres() -> Option<TestEnv> {
        Self::postgres_with_config(TEST_CONFIG)
    }

    fn sqlite_with_config(config: &str) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        TestEnv {
            dir,
            children: vec![],
            started_supervised: false,
            postgres: None,
        }
    }

    fn postgres_with_config(config: &str) -> Option<TestEnv> {
        let database = postgres::PgServer::shared()?.fresh_database();
        let mut env = Self::sqlite_with_config(config);
        env.postgres = Some(database);
        Some(env)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The queue's SQLite file. Tests that need it (read the file, run SQL
    /// on it, check its modes) call [`skips_on_postgres`] first.
    pub fn db(&self) -> PathBuf {
        assert!(
            self.postgres.is_none(),
            "this test reads the queue's SQLite file: call env.skips_on_postgres(why) first"
        );
        self.sqlite_db()
    }

    fn sqlite_db(&self) -> PathBuf {
        self.path("state/queue.db")
    }

    /// The queue's address as `QUEUECTL_DB` and `--db` take it: the SQLite
    /// file, or the test database's URL (password included).
    pub fn db_address(&self) -> std::ffi::OsString {
        match &self.postgres {
            Some(database) => database.url().into(),
            None => self.sqlite_db().into(),
        }
    }

    /// The address as queuectl shows it (`config get db_path`): without
    /// the password.
    pub fn db_shown(&self) -> String {
        match &self.postgres {
            Some(database) => database.server().url_without_password_to(database.name()),
            None => self.sqlite_db().display().to_string(),
        }
    }

    /// The PostgreSQL database holding the queue, if it is there.
    pub fn postgres_db(&self) -> Option<&postgres::TestDatabase> {
        self.postgres.as_ref()
    }

    /// Whether a queue exists yet: the SQLite file, or any table in the
    /// test database (which starts empty).
    pub fn queue_exists(&self) -> bool {
        match &self.postgres {
            Some(database) => {
                database.sql(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
                ) != "0"
            }
            None => self.sqlite_db().exists(),
        }
    }

    /// The name a worker started as `--name NAME` registers under: on a
    /// PostgreSQL queue (shared by hosts) qualified by this host's name.
    pub fn worker_name(&self, name: &str) -> String {
        match &self.postgres {
            Some(_) => format!(
                "{}/{name}",
                nix::unistd::gethostname().unwrap().to_str().unwrap()
            ),
            None => name.to_owned(),
        }
    }

    /// Where a job's output file is: `logs/` beside the SQLite file, or in
    /// this host's directory for the PostgreSQL queue (named after its
    /// address) in `$QUEUECTL_STATE_DIR`.
    pub fn job_log(&self, id: &str) -> PathBuf {
        let state = self.path("state");
        let dir = match &self.postgres {
            None => state,
            Some(_) => std::fs::read_dir(&state)
                .expect("the queue's state directory")
                .map(|entry| entry.unwrap().path())
                .find(|path| {
                    path.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("postgresql-")
                })
                .expect("a directory for the PostgreSQL queue"),
        };
        dir.join("logs").join(format!("{id}.log"))
    }

    /// Everything the queue stores, as bytes to search: the SQLite file
    /// with its `-wal` and `-shm`, or a `pg_dump` of the test database.
    pub fn queue_contents(&self) -> Vec<u8> {
        match &self.postgres {
            Some(database) => {
                let pg_dump = database.server().psql_path().with_file_name("pg_dump");
                let out = Command::new(pg_dump)
                    .args(["--data-only", "-d", &database.url()])
                    .stdin(Stdio::null())
                    .output()
                    .expect("run pg_dump");
                assert!(
                    out.status.success(),
                    "pg_dump: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
            None => ["", "-wal", "-shm"]
                .iter()
                .flat_map(|suffix| {
                    let mut path = self.sqlite_db().into_os_string();
                    path.push(suffix);
                    std::fs::read(path).unwrap_or_default()
                })
                .collect(),
        }
    }

    /// For a test of something only an SQLite queue has (its file, its
    /// modes, SQL on it): on a PostgreSQL queue, prints why the test does
    /// not apply and returns true, so the test returns early.
    pub fn skips_on_postgres(&self, why: &str) -> bool {
        if self.postgres.is_some() {
            eprintln!("skipping on PostgreSQL: {why}");
            return true;
        }
        false
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// A queuectl command bound to this environment's queue and config, and
    /// cut off from any systemd of the machine running the tests.
    pub fn cmd(&self) -> Command {
        self.cmd_running(binary().as_os_str())
    }

    /// `program` (which runs queuectl) with the environment of [`cmd`].
    pub fn cmd_running(&self, program: &std::ffi::OsStr) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("QUEUECTL_DB", self.db_address())
            .env("QUEUECTL_CONFIG", self.config_path())
            // A PostgreSQL queue's local files (logs, wake sockets, pid
            // files): here, not in the machine's /var/lib/queuectl.
            .env("QUEUECTL_STATE_DIR", self.path("state"))
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("WATCHDOG_USEC")
            .env_remove("QUEUECTL_UNITS_MANAGED")
            .env_remove("NO_COLOR")
            .env_remove("QUEUECTL_QUEUES")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run queuectl")
    }

    /// Runs queuectl with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_ref())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs queuectl and returns stdout, failing the test if it did not succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "queuectl {args:?} failed with {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("valid JSON")
    }

    pub fn enqueue(&self, job: &str) -> String {
        self.ok(&["enqueue", job]).trim().to_owned()
    }

    pub fn job(&self, id: &str) -> Value {
        self.json(&["show", id])
    }

    pub fn state(&self, id: &str) -> String {
        self.job(id)["state"].as_str().unwrap().to_owned()
    }

    pub fn count(&self, state: &str) -> u64 {
        self.json(&["status"])["counts"][state].as_u64().unwrap()
    }

    /// Runs `sql` on the queue's SQLite file directly, as a damaged or
    /// foreign queue would look (the queue must exist).
    pub fn sql(&self, sql: &str) {
        let db = rusqlite::Connection::open(self.db()).expect("open the queue");
        db.execute_batch(sql).expect("run SQL on the queue");
    }

    /// Workers registered in the queue; none while there is no queue yet
    /// (a starting worker creates it; `status` says "no queue", exit 3).
    pub fn registered_workers(&self) -> usize {
        let out = self.run(&["--json", "status"]);
        if out.status.code() == Some(3) {
            return 0;
        }
        let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        status["workers"].as_array().map_or(0, Vec::len)
    }

    pub fn wait_for_state(&self, id: &str, state: &str, timeout: Duration) {
        wait_until(&format!("job {id} is {state}"), timeout, || {
            self.state(id) == state
        });
    }

    /// Starts `queuectl worker run --name NAME` in the background.
    pub fn spawn_worker(&mut self, name: &str) -> u32 {
        let log = std::fs::File::create(self.path(&format!("worker-{name}.log"))).unwrap();
        let child = self
            .cmd()
            .args(["worker", "run", "--name", name])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start worker");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Starts `queuectl worker run --name NAME` in a private mount namespace
    /// that the shell command `setup` prepares first (as root, e.g. mounting
    /// a tiny tmpfs), so that what it mounts is seen by this worker only.
    /// Returns `None` (printing why) where that cannot be done; panics
    /// instead under CI=true. See [`cmd_in_namespace_of`] for commands that
    /// need to see the same mounts.
    pub fn spawn_worker_in_namespace(&mut self, name: &str, setup: &str) -> Option<u32> {
        if !can_unshare_mounts() {
            return None;
        }
        let log = std::fs::File::create(self.path(&format!("worker-{name}.log"))).unwrap();
        let script = format!("{setup} && exec \"$0\" worker run --name \"$1\"");
        let child = self
            .cmd_in_private_mounts(&script)
            .arg(name)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start worker");
        Some(self.adopt(child))
    }

    /// `sh -c SCRIPT` in a new private mount namespace, with `$0` the
    /// queuectl binary; further args become `$1`, `$2`, ... Callers check
    /// [`can_unshare_mounts`] first.
    pub fn cmd_in_private_mounts(&self, script: &str) -> Command {
        let mut cmd = self.cmd_running("unshare".as_ref());
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ])
        .arg(binary());
        cmd
    }

    /// A queuectl command run as if on host `host`: in a new UTS namespace
    /// with that hostname (same files, same network). Returns `None`
    /// (printing why) where that cannot be done; panics instead under CI=true.
    pub fn cmd_on_host(&self, host: &str) -> Option<Command> {
        if !can_unshare_uts() {
            return None;
        }
        let mut cmd = self.cmd_running("unshare".as_ref());
        cmd.args(on_host_args(binary().as_os_str(), host));
        Some(cmd)
    }

    /// Starts `queuectl worker run --name NAME` as if on host `host` (see
    /// [`cmd_on_host`]).
    pub fn spawn_worker_on_host(&mut self, name: &str, host: &str) -> Option<u32> {
        let log = std::fs::File::create(self.path(&format!("worker-{name}.log"))).unwrap();
        let child = self
            .cmd_on_host(host)?
            .args(["worker", "run", "--name", name])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start worker");
        Some(self.adopt(child))
    }

    /// A queuectl command inside the mount namespace of process `pid` (a
    /// worker from [`spawn_worker_in_namespace`]).
    pub fn cmd_in_namespace_of(&self, pid: u32) -> Command {
        let mut cmd = self.cmd_running("nsenter".as_ref());
        cmd.arg(format!("--mount=/proc/{pid}/ns/mnt"))
            .arg("--")
            .arg(binary());
        cmd
    }

    /// Makes `child` this environment's to stop on drop; returns its pid.
    pub fn adopt(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits for a worker process started by [`spawn_worker`] to exit.
    pub fn wait_worker(&mut self, pid: u32, timeout: Duration) -> std::process::ExitStatus {
        let index = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .expect("our worker");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.children[index].try_wait().unwrap() {
                // Already reaped by try_wait; this returns the same status.
                let _ = self.children.remove(index).wait();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {pid} did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn worker_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("worker-{name}.log"))).unwrap_or_default()
    }

    /// Uses `worker start`, so Drop runs `worker stop`.
    pub fn mark_supervised(&mut self) {
        self.started_supervised = true;
    }
}

/// `unshare` arguments that run `program` (then the caller's args) in a new
/// UTS namespace whose hostname is `host`: to a queue, a process on
/// another host.
pub fn on_host_args(program: &std::ffi::OsStr, host: &str) -> Vec<std::ffi::OsString> {
    let script = r#"echo "$1" > /proc/sys/kernel/hostname && shift && exec "$0" "$@""#;
    let mut args: Vec<std::ffi::OsString> =
        ["--uts", "--", "sh", "-c", script].map(Into::into).into();
    args.extend([program.to_owned(), host.into()]);
    args
}

/// Whether this process may create mount namespaces and mount in them
/// (root with `unshare` and `nsenter` installed). Prints why not and returns
/// false; panics instead under CI=true, where such tests must run.
pub fn can_unshare_mounts() -> bool {
    can_unshare("--mount", "mount in a private mount namespace")
}

/// Whether this process may give a command its own hostname (a UTS
/// namespace), as [`can_unshare_mounts`] answers.
pub fn can_unshare_uts() -> bool {
    can_unshare("--uts", "set a hostname in a private UTS namespace")
}

fn can_unshare(namespace: &str, needs: &str) -> bool {
    let why_not = if !nix::unistd::Uid::effective().is_root() {
        Some(format!("needs root to {needs}"))
    } else {
        match Command::new("unshare")
            .args([namespace, "--", "nsenter", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "unshare {namespace} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run unshare: {e}")),
        }
    };
    let Some(why_not) = why_not else {
        return true;
    };
    skip_unless_ci(&why_not);
    false
}

/// Debian's multi-threaded libfaketime, if installed. Tests preload it
/// (`LD_PRELOAD`, `FAKETIME`) rather than run the `faketime` wrapper, which
/// leaves a semaphore and a /dev/shm file named after its pid behind: once
/// a pid came round again, the wrapper failed with "sem_open: File exists".
pub fn libfaketime() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketimeMT.so.1"))
        .find(|lib| lib.exists())
}

/// Says why a test cannot run on this machine, so the caller can return
/// early; under CI=true, where every test must run, panics instead.
pub fn skip_unless_ci(why_not: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true, so not skipping: {why_not}");
    }
    eprintln!("skipping: {why_not}");
}

pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("send signal");
}

pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.started_supervised {
            let _ = self
                .cmd()
                .args(["worker", "stop", "--timeout", "10"])
                .output();
        }
        for child in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.children {
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
pub mod hosts;
pub mod notify;
pub mod postgres;
pub mod systemd;
pub mod web;

/// A finished command's status and both streams, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}
