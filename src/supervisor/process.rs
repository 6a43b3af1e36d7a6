//! The process supervisor, for machines without systemd: each instance is a
//! detached `queuectl worker supervise --instance N` keeper that runs `worker
//! run --name N`, restarts it when it fails, and passes a stop signal on to
//! it. Keepers leave pid files in the state directory's `workers/`.

use super::{Instance, ScaleReport, Supervisor, keeper};
use crate::config::Durability;
use crate::error::{Error, IoContext, Result};
use crate::paths::StateDir;
use crate::store::{Database, OpenMode, Store};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a keeper re-runs queuectl: the same binary, config and database.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub db: Database,
    /// `worker start --queues`: the queues new workers serve (`a,b`), as
    /// `$QUEUECTL_QUEUES`; `None` leaves the environment's.
    pub queues: Option<String>,
}

impl Invocation {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        // The config by environment, not --config: it may not exist yet
        // (the defaults apply), which --config would refuse.
        cmd.env("QUEUECTL_CONFIG", &self.config)
            .arg("--db")
            .arg(self.db.public_address());
        if let Some(password) = self.db.inline_password() {
            cmd.env("PGPASSWORD", password);
        }
        if let Some(queues) = &self.queues {
            cmd.env("QUEUECTL_QUEUES", queues);
        }
        cmd
    }
}

pub struct ProcessSupervisor {
    pub state: StateDir,
    pub invocation: Invocation,
}

/// Poll interval while waiting for a process we did not start to exit.
const EXIT_POLL: Duration = Duration::from_millis(20);
const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl ProcessSupervisor {
    fn pid_file(&self, instance: u32) -> PathBuf {
        self.state.workers().join(format!("{instance}.pid"))
    }

    fn log_file(&self, instance: u32) -> PathBuf {
        self.state.workers().join(format!("{instance}.log"))
    }

    /// Instances with a pid file, and the keeper's pid if it is alive; plus
    /// any live keeper of this queue that has no pid file (one left by an
    /// older queuectl, or started by hand), so none runs unseen.
    fn known(&self) -> Result<Vec<(u32, Option<u32>)>> {
        let dir = self.state.workers();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
        };
        let mut found = vec![];
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(instance) = name
                .strip_suffix(".pid")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            found.push((instance, read_live_pid(&entry.path())));
        }
        for (instance, pid) in self.live_keepers() {
            if !found.iter().any(|(_, known)| *known == Some(pid)) {
                found.push((instance, Some(pid)));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Keepers of this queue that are alive, found by their command line.
    fn live_keepers(&self) -> Vec<(u32, u32)> {
        let Ok(proc) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        let db = self.invocation.db.public_address();
        let db = db.as_encoded_bytes();
        proc.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let after = |flag: &[u8]| args.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
                let keeper = args.windows(2).any(|w| w == [&b"worker"[..], b"supervise"]);
                if !keeper
                    || after(b"--db") != Some(db)
                    || !process_alive(pid)
                    || on_another_host(pid)
                {
                    return None;
                }
                let instance = std::str::from_utf8(after(b"--instance")?)
                    .ok()?
                    .parse()
                    .ok()?;
                Some((instance, pid))
            })
            .collect()
    }

    /// Serializes `worker start/stop` on this queue: two at once would
    /// both start the same instances.
    fn start_stop_lock(&self) -> Result<Flock<std::fs::File>> {
        let (sharing, _) = crate::files::private_dir(&self.state.workers())
            .context(|| format!("cannot create {}", self.state.workers().display()))?;
        Ok(
            lock(&self.state.workers().join("start-stop.lock"), sharing, true)?
                .expect("a waiting lock is always taken"),
        )
    }

    /// Whether the keeper `pid` runs its worker with other queues than a
    /// keeper started now would (`$QUEUECTL_QUEUES`, from `--queues` or
    /// inherited). One whose environment cannot be read is left alone.
    fn serves_other_queues(&self, pid: u32) -> bool {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            return false;
        };
        let running = environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(b"QUEUECTL_QUEUES="))
            .map(|value| String::from_utf8_lossy(value).into_owned());
        let wanted = self
            .invocation
            .queues
            .clone()
            .or_else(|| std::env::var("QUEUECTL_QUEUES").ok());
        // Unset and blank both mean every queue.
        let every = |queues: Option<String>| queues.filter(|q| !q.trim().is_empty());
        every(running) != every(wanted)
    }

    fn spawn_keeper(&self, instance: u32) -> Result<u32> {
        let log_path = self.log_file(instance);
        let log = crate::files::append_private(&log_path)
            .context(|| format!("cannot open {}", log_path.display()))?;
        let mut cmd = self.invocation.command();
        cmd.args(["worker", "supervise", "--instance", &instance.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context(|| "dup log".into())?)
            .stderr(log);
        // Detached from our terminal: a Ctrl-C here does not reach it.
        crate::runner::in_new_session(&mut cmd);
        let mut child = cmd
            .spawn()
            .context(|| "cannot start a worker keeper".into())?;
        let pid = child.id();
        self.await_ready(instance, &mut child).inspect_err(|_| {
            // A keeper whose start failed would go on restarting its worker
            // unseen: stop it (and so its worker) before reporting.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            if wait_for_exit(pid, Some(Instant::now() + READY_TIMEOUT)).is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
            let _ = crate::files::remove_nofollow(&self.pid_file(instance));
        })?;
        Ok(pid)
    }

    /// Waits until the keeper wrote its pid file and its worker registered.
    fn await_ready(&self, instance: u32, child: &mut std::process::Child) -> Result<()> {
        let log_path = self.log_file(instance);
        let pid = child.id();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Supervisor(format!(
                    "worker {instance} exited at start ({status}); see {}",
                    log_path.display()
                )));
            }
            if read_live_pid(&self.pid_file(instance)) == Some(pid)
                && worker_registered(&self.state, instance, pid)?
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Supervisor(format!(
                    "worker {instance} did not become ready within {}s; see {}",
                    READY_TIMEOUT.as_secs(),
                    log_path.display()
                )));
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    fn stop_instances(
        &self,
        targets: &[(u32, Option<u32>)],
        timeout: Option<Duration>,
    ) -> Result<Vec<String>> {
        for (_, pid) in targets {
            if let Some(pid) = pid {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
            }
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        // Every instance is waited for (and killed at the deadline), even
        // after one was late: stopping at the first would leave the rest.
        let mut late = vec![];
        for (instance, pid) in targets {
            if let Some(pid) = pid
                && let Err(e) = wait_for_exit(*pid, deadline)
            {
                late.push(e.to_string());
            }
            let _ = crate::files::remove_nofollow(&self.pid_file(*instance));
        }
        if !late.is_empty() {
            return Err(Error::Supervisor(late.join("; ")));
        }
        let mut names: Vec<String> = targets.iter().map(|(i, _)| i.to_string()).collect();
        names.dedup();
        Ok(names)
    }
}

impl Supervisor for ProcessSupervisor {
    fn describe(&self) -> String {
        "process supervisor".into()
    }

    fn scale(&self, count: u32, stop_timeout: Option<Duration>) -> Result<ScaleReport> {
        if count > 0 {
            super::check_queue(&self.state.db)?;
        }
        let _serialized = self.start_stop_lock()?;
        let known = self.known()?;
        let mut report = ScaleReport::default();
        for instance in 1..=count {
            let alive = known
                .iter()
                .find_map(|(i, pid)| pid.filter(|_| *i == instance));
            match alive {
                Some(pid) if self.serves_other_queues(pid) => {
                    // As systemd's restart: its running jobs finish first
                    // (a stop), then it serves the queues asked for now.
                    self.stop_instances(&[(instance, Some(pid))], stop_timeout)?;
                    self.spawn_keeper(instance)?;
                    report.restarted.push(instance.to_string());
                }
                Some(_) => report.already_running.push(instance.to_string()),
                None => {
                    self.spawn_keeper(instance)?;
                    report.started.push(instance.to_string());
                }
            }
        }
        let surplus: Vec<_> = known.into_iter().filter(|(i, _)| *i > count).collect();
        report.stopped = self.stop_instances(&surplus, stop_timeout)?;
        Ok(report)
    }

    fn stop_all(&self, stop_timeout: Option<Duration>) -> Result<Vec<String>> {
        // No keeper ever ran without making workers/ (a mistyped path, say):
        // there is nothing to stop, and nothing to create.
        if !self.state.workers().exists() {
            return Ok(vec![]);
        }
        let _serialized = self.start_stop_lock()?;
        let known = self.known()?;
        self.stop_instances(&known, stop_timeout)
    }

    fn instances(&self) -> Result<Vec<Instance>> {
        Ok(self
            .known()?
            .into_iter()
            .map(|(instance, pid)| Instance {
                name: instance.to_string(),
                pid,
                state: if pid.is_some() { "running" } else { "stopped" }.into(),
                status: None,
                unit: None,
            })
            .collect())
    }
}

/// The pid in `path` if that process is alive (not a zombie) and is queuectl.
fn read_live_pid(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    process_alive(pid).then_some(pid)
}

pub fn process_alive(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) S ..."; a zombie has exited already.
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    // Guard against pid reuse: the process must be a queuectl.
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("queuectl"))
        .unwrap_or(false)
}

/// Whether `pid` runs under another host name (another UTS namespace: a
/// container sharing this pid namespace): its keepers of a shared queue are
/// that host's, never ours to count or stop. Unknown (another user's
/// process) counts as ours.
fn on_another_host(pid: u32) -> bool {
    let uts = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/uts")).ok();
    match (uts(&pid.to_string()), uts("self")) {
        (Some(theirs), Some(ours)) => theirs != ours,
        _ => false,
    }
}

/// Whether instance's worker, a child of `keeper`, has registered in the queue.
fn worker_registered(state: &StateDir, instance: u32, keeper: u32) -> Result<bool> {
    // The worker creates the queue: until it has, nothing is registered.
    let mut store = match Store::open_as(&state.db, Durability::Normal, OpenMode::ReadOnly) {
        Err(Error::NoQueue(_)) => return Ok(false),
        other => other?,
    };
    let host = crate::worker::hostname();
    let name = crate::worker::registered_name(&state.db, &host, &instance.to_string());
    Ok(store
        .workers()?
        .iter()
        .any(|w| w.name == name && w.host == host && parent_of(w.pid) == Some(keeper)))
}

pub(super) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for a keeper to exit; at the deadline kills it with its worker
/// (the keeper leads its own session and process group, which its worker
/// shares; the worker's jobs die with the worker, by their parent-death
/// signal).
fn wait_for_exit(pid: u32, deadline: Option<Instant>) -> Result<()> {
    while process_alive(pid) {
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Err(Error::Supervisor(format!(
                "worker keeper {pid} did not stop in time; killed it with its worker and jobs"
            )));
        }
        std::thread::sleep(EXIT_POLL);
    }
    Ok(())
}

/// The keeper: runs one worker instance, restarting it when it fails, until
/// a stop signal arrives (which it passes on, then waits for the worker).
/// It contains its worker like systemd contains a unit (see `keeper`): as a
/// child subreaper it kills whatever the worker's jobs left before starting
/// it again, and its watchdog kills a frozen worker before the worker's
/// lease can expire. Only one keeper per instance runs (a lock file).
pub fn keep(
    invocation: &Invocation,
    state: &StateDir,
    instance: u32,
    lease: Duration,
) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

    let (sharing, _) = crate::files::private_dir(&state.workers())
        .context(|| format!("cannot create {}", state.workers().display()))?;
    let _only_keeper = lock(
        &state.workers().join(format!("{instance}.lock")),
        sharing,
        false,
    )?
    .ok_or_else(|| Error::Supervisor(format!("worker {instance} already has a keeper")))?;
    keeper::become_subreaper()
        .map_err(|e| Error::io("cannot become a child subreaper", e.into()))?;
    let pid_file = state.workers().join(format!("{instance}.pid"));
    crate::paths::write_atomically(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    let notify_path = state.workers().join(format!("{instance}.notify"));
    let mut watchdog = match keeper::Watchdog::bind(
        &notify_path,
        sharing.file_mode(),
        keeper::watchdog_timeout(lease),
    ) {
        Ok(watchdog) => Some(watchdog),
        Err(e) => {
            eprintln!(
                "queuectl keeper {instance}: no watchdog ({}: {e}); a frozen worker is not detected",
                notify_path.display()
            );
            None
        }
    };

    let stopping = Arc::new(AtomicBool::new(false));
    let child_pid = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    {
        let (stopping, child_pid) = (Arc::clone(&stopping), Arc::clone(&child_pid));
        std::thread::spawn(move || {
            for signal in signals.forever() {
                stopping.store(true, Ordering::SeqCst);
                let pid = child_pid.load(Ordering::SeqCst);
                if pid > 0 {
                    let sig = Signal::try_from(signal).unwrap_or(Signal::SIGTERM);
                    let _ = kill(Pid::from_raw(pid), sig);
                }
            }
        });
    }

    let mut recent_failures: Vec<Instant> = vec![];
    let result = loop {
        if stopping.load(Ordering::SeqCst) {
            break Ok(());
        }
        let mut command = invocation.command();
        command.args(["worker", "run", "--name", &instance.to_string()]);
        if let Some(watchdog) = &mut watchdog {
            watchdog.reset();
            command.envs(watchdog.worker_env());
        }
        let worker = match command.spawn() {
            // Reaped below with waitpid, with the orphans that come to us.
            Ok(child) => Pid::from_raw(child.id() as i32),
            Err(e) => break Err(Error::io("cannot start worker", e)),
        };
        child_pid.store(worker.as_raw(), Ordering::SeqCst);
        // A signal that arrived between the check above and the store is passed on now.
        if stopping.load(Ordering::SeqCst) {
            let _ = kill(worker, Signal::SIGTERM);
        }
        let status = loop {
            if let Some(status) = keeper::reap_children(worker) {
                break status;
            }
            let alive = match &mut watchdog {
                Some(watchdog) => watchdog.alive(worker),
                None => {
                    std::thread::sleep(EXIT_POLL);
                    true
                }
            };
            if !alive {
                eprintln!(
                    "queuectl keeper {instance}: worker {worker} stopped pinging its watchdog (frozen?); killing it and its jobs"
                );
                let _ = kill(worker, Signal::SIGKILL);
            }
        };
        child_pid.store(0, Ordering::SeqCst);
        // Whatever the worker's jobs left behind is ours now: end it before
        // a new worker can rescue and re-run those jobs.
        let killed = keeper::kill_descendants();
        if killed > 0 {
            eprintln!("queuectl keeper {instance}: killed {killed} process(es) the worker left");
        }
        match status {
            WaitStatus::Exited(_, 0) => break Ok(()),
            other => {
                eprintln!("queuectl keeper {instance}: worker exited ({other:?}); restarting")
            }
        }
        // Like systemd's start limit: back off when it keeps failing.
        let now = Instant::now();
        recent_failures.retain(|t| now.duration_since(*t) < Duration::from_secs(30));
        recent_failures.push(now);
        let pause = if recent_failures.len() >= 5 {
            Duration::from_secs(10)
        } else {
            Duration::from_millis(500)
        };
        let until = Instant::now() + pause;
        while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
            std::thread::sleep(EXIT_POLL);
        }
    };
    if read_live_pid(&pid_file).is_none_or(|pid| pid == std::process::id()) {
        let _ = crate::files::remove_nofollow(&pid_file);
    }
    result
}

/// Takes an exclusive lock on `path` (created private to `sharing`),
/// waiting for it when `wait`, else returning `None` if someone holds it.
/// Released when the returned value is dropped or the process exits.
pub fn lock(
    path: &Path,
    sharing: crate::files::Sharing,
    wait: bool,
) -> Result<Option<Flock<std::fs::File>>> {
    crate::files::private_file(path, sharing)
        .context(|| format!("cannot create {}", path.display()))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .context(|| format!("cannot open {}", path.display()))?;
    let how = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    match Flock::lock(file, how) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) if !wait => Ok(None),
        Err((_, e)) => Err(Error::io(
            format!("cannot lock {}", path.display()),
            e.into(),
        )),
    }
}
