//! The throwaway place a benchmark runs in: a fresh directory (removed at the
//! end) holding one queue per scenario, each with its own config, and the
//! `queuectl` processes started against it. A PostgreSQL queue is a scratch
//! database on the server (dropped with the queue), its host-local files in
//! the directory. Nothing here can reach the user's queue: every process gets
//! `QUEUECTL_DB`/`QUEUECTL_CONFIG`/`QUEUECTL_STATE_DIR` pointing inside the
//! sandbox or at the scratch database, and none inherits a systemd notify
//! socket or journal stream.

use queuectl::config::{Config, Durability};
use queuectl::error::{Error, IoContext, Result};
use queuectl::paths::StateDir;
use queuectl::store::postgres::ScratchDatabase;
use queuectl::store::sqlite::SqliteStore;
use queuectl::store::{Database, Store};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Variables a benchmark child must not inherit: systemd's (a worker would
/// talk to the user's service manager or journal) and queuectl's own (they
/// would point it at the user's queue or change its logging).
const SCRUBBED_VARS: [&str; 11] = [
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "QUEUECTL_LOG",
    "QUEUECTL_UNITS_MANAGED",
    "NO_COLOR",
];

/// A unique directory under `parent`, deleted with everything in it on drop.
pub struct Sandbox {
    root: PathBuf,
    exe: PathBuf,
    durability: Durability,
}

impl Sandbox {
    pub fn create(parent: &Path, exe: PathBuf, durability: Durability) -> Result<Sandbox> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = parent.join(format!("queuectl-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&root)
            .context(|| format!("cannot create bench directory {}", root.display()))?;
        Ok(Sandbox {
            root,
            exe,
            durability,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// A path inside the sandbox (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A fresh, empty SQLite queue named `name` with the benchmark's config.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        self.queue_at(name, None)
    }

    /// A fresh queue named `name` in the scratch database `scratch`, which
    /// the queue drops when it goes.
    pub fn queue_in(&self, name: &str, scratch: ScratchDatabase) -> Result<Queue> {
        self.queue_at(name, Some(scratch))
    }

    fn queue_at(&self, name: &str, scratch: Option<ScratchDatabase>) -> Result<Queue> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
        let durability = self.durability.as_str();
        // Job output to files (never the journal), workers as plain processes.
        let config_text =
            format!("output = \"file\"\nsupervisor = \"process\"\ndurability = \"{durability}\"\n");
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, &config_text)
            .context(|| format!("cannot write {}", config_path.display()))?;
        let config = Config::parse(&config_text).map_err(Error::Invalid)?;
        let state = match &scratch {
            Some(scratch) => StateDir::in_dir(
                &Database::Postgres(scratch.target().clone()),
                &dir.join("state"),
            ),
            None => StateDir::for_path(&dir.join("state/queue.db")),
        };
        Ok(Queue {
            state,
            config_path,
            config,
            dir,
            exe: self.exe.clone(),
            _scratch: scratch,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One benchmark queue: its database, config and the commands bound to them.
pub struct Queue {
    pub dir: PathBuf,
    pub state: StateDir,
    pub config_path: PathBuf,
    pub config: Config,
    exe: PathBuf,
    /// Dropped after the fields above, with the queue.
    _scratch: Option<ScratchDatabase>,
}

impl Queue {
    /// `queuectl ARGS` against this queue, with output discarded.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env("QUEUECTL_DB", self.state.db.public_address())
            .env("QUEUECTL_CONFIG", &self.config_path)
            .env("QUEUECTL_STATE_DIR", self.state.root())
            .env("XDG_CONFIG_HOME", self.dir.join("xdg-config"))
            .env("XDG_STATE_HOME", self.dir.join("xdg-state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for var in SCRUBBED_VARS {
            cmd.env_remove(var);
        }
        // Never in argv: the scratch database's password (the user's).
        if let Some(password) = self.state.db.inline_password() {
            cmd.env("PGPASSWORD", password);
        }
        cmd
    }

    /// The benchmark queue's SQLite file (for raw baselines beside it).
    pub fn db_path(&self) -> PathBuf {
        self.state
            .db
            .sqlite_path()
            .expect("benchmark queues are SQLite files")
            .to_owned()
    }

    /// The store, opened in this process as a worker would open it.
    pub fn store(&self) -> Result<Store> {
        Store::open(&self.state.db, self.config.durability)
    }

    /// The SQLite store itself, for what only it offers (fixture helpers).
    pub fn sqlite_store(&self) -> Result<SqliteStore> {
        SqliteStore::open(&self.db_path(), self.config.durability)
    }

    /// Starts `queuectl worker run --name NAME`, with `--concurrency SLOTS`
    /// when more than the default one slot; its log goes to
    /// `worker-NAME.log` in the queue's directory.
    pub fn spawn_worker(&self, name: &str, slots: usize) -> Result<WorkerProcess> {
        let log_path = self.dir.join(format!("worker-{name}.log"));
        let log = std::fs::File::create(&log_path)
            .context(|| format!("cannot create {}", log_path.display()))?;
        let slots = slots.to_string();
        let mut args = vec!["worker", "run", "--name", name];
        if slots != "1" {
            args.extend(["--concurrency", &slots]);
        }
        let mut cmd = self.command(&args);
        cmd.stderr(log);
        // If the benchmark dies, its workers die with it.
        queuectl::runner::killed_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| Error::io("cannot start a benchmark worker", e))?;
        Ok(WorkerProcess {
            child,
            name: name.to_owned(),
            log_path,
        })
    }

    /// Starts `count` workers of `slots` slots each and waits until every
    /// one has registered (it is then idle, waiting for a wake-up).
    pub fn spawn_workers(
        &self,
        prefix: &str,
        count: usize,
        slots: usize,
    ) -> Result<Vec<WorkerProcess>> {
        let workers: Vec<WorkerProcess> = (1..=count)
            .map(|i| self.spawn_worker(&format!("{prefix}{i}"), slots))
            .collect::<Result<_>>()?;
        let mut store = self.store()?;
        // On PostgreSQL a worker registers as `<host>/<name>`.
        let host = queuectl::worker::hostname();
        let names: Vec<String> = workers
            .iter()
            .map(|w| queuectl::worker::registered_name(&self.state.db, &host, &w.name))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let registered = store.workers()?;
            if names
                .iter()
                .all(|name| registered.iter().any(|r| r.name == *name))
            {
                break;
            }
            for w in &workers {
                w.check_alive()?;
            }
            if Instant::now() > deadline {
                return Err(Error::Supervisor(
                    "benchmark workers did not register within 30s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Let them reach their idle wait.
        std::thread::sleep(Duration::from_millis(50));
        Ok(workers)
    }
}

/// A worker process started by the benchmark; stopped (and if need be
/// killed) when dropped.
pub struct WorkerProcess {
    child: Child,
    pub name: String,
    log_path: PathBuf,
}

impl WorkerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error (with the end of the worker's log) if the worker has exited.
    pub fn check_alive(&self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // Signal 0 on a zombie succeeds, so look at its state instead.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some("Z" | "X") | None) {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(Error::Supervisor(format!(
                "benchmark worker {} exited: {tail}",
                self.name
            )));
        }
        Ok(())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion and returns its wall time, from just before the
/// spawn to the reaped exit. Fails unless it exited 0.
pub fn time_process(cmd: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| Error::io(format!("cannot run {:?}", cmd.get_program()), e))?;
    let took = started.elapsed();
    if !status.success() {
        return Err(Error::Supervisor(format!(
            "{:?} {:?} failed: {status}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>()
        )));
    }
    Ok(took)
}

/// Polls the queue until `done` says so, failing after `timeout` or if a
/// worker died.
pub fn wait_for(
    store: &mut Store,
    workers: &[WorkerProcess],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&mut Store) -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut checks = 0u32;
    loop {
        if done(store)? {
            return Ok(());
        }
        checks += 1;
        if checks % 100 == 0 {
            for w in workers {
                w.check_alive()?;
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Supervisor(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
