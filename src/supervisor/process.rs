//! The process supervisor, for machines without systemd: each instance is a
//! detached `queuectl worker supervise --instance N` keeper that runs `worker
//! run --name N`, restarts it when it fails, and passes a stop signal on to
//! it. Keepers leave pid files in the state directory's `workers/`.

use super::{Instance, ScaleReport, Supervisor};
use crate::config::Durability;
use crate::error::{Error, IoContext, Result};
use crate::paths::StateDir;
use crate::store::{OpenMode, Store};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a keeper re-runs queuectl: the same binary, config and database.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub db: PathBuf,
}

impl Invocation {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db);
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

    /// Instances with a pid file, and the keeper's pid if it is alive.
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
        found.sort();
        Ok(found)
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
        // SAFETY: setsid is async-signal-safe. A new session detaches the
        // keeper from our terminal, so a Ctrl-C here does not reach it.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .context(|| "cannot start a worker keeper".into())?;
        let pid = child.id();
        // Ready once the keeper wrote its pid file and its worker registered.
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
                return Ok(pid);
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
        for (instance, pid) in targets {
            if let Some(pid) = pid {
                wait_for_exit(*pid, deadline)?;
            }
            let _ = std::fs::remove_file(self.pid_file(*instance));
        }
        Ok(targets.iter().map(|(i, _)| i.to_string()).collect())
    }
}

impl Supervisor for ProcessSupervisor {
    fn describe(&self) -> String {
        "process supervisor".into()
    }

    fn scale(&self, count: u32, stop_timeout: Option<Duration>) -> Result<ScaleReport> {
        let known = self.known()?;
        let mut report = ScaleReport::default();
        for instance in 1..=count {
            let alive = known.iter().any(|(i, pid)| *i == instance && pid.is_some());
            if alive {
                report.already_running.push(instance.to_string());
            } else {
                self.spawn_keeper(instance)?;
                report.started.push(instance.to_string());
            }
        }
        let surplus: Vec<_> = known.into_iter().filter(|(i, _)| *i > count).collect();
        report.stopped = self.stop_instances(&surplus, stop_timeout)?;
        Ok(report)
    }

    fn stop_all(&self, stop_timeout: Option<Duration>) -> Result<Vec<String>> {
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
                state: if pid.is_some() { "active" } else { "inactive" }.into(),
                status: None,
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

/// Whether instance's worker, a child of `keeper`, has registered in the queue.
fn worker_registered(state: &StateDir, instance: u32, keeper: u32) -> Result<bool> {
    // The worker creates the queue: until it has, nothing is registered.
    let store = match Store::open_as(&state.db, Durability::Normal, OpenMode::ReadOnly) {
        Err(Error::NoQueue(_)) => return Ok(false),
        other => other?,
    };
    Ok(store
        .workers()?
        .iter()
        .any(|w| w.name == instance.to_string() && parent_of(w.pid) == Some(keeper)))
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn wait_for_exit(pid: u32, deadline: Option<Instant>) -> Result<()> {
    while process_alive(pid) {
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Err(Error::Supervisor(format!(
                "worker keeper {pid} did not stop in time; killed it"
            )));
        }
        std::thread::sleep(EXIT_POLL);
    }
    Ok(())
}

/// The keeper: runs one worker instance, restarting it when it fails, until
/// a stop signal arrives (which it passes on, then waits for the worker).
pub fn keep(invocation: &Invocation, state: &StateDir, instance: u32) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

    let pid_file = state.workers().join(format!("{instance}.pid"));
    crate::files::private_dir(&state.workers())
        .context(|| format!("cannot create {}", state.workers().display()))?;
    crate::paths::write_atomically(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;

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
        let mut child = match invocation
            .command()
            .args(["worker", "run", "--name", &instance.to_string()])
            .spawn()
        {
            Ok(child) => child,
            Err(e) => break Err(Error::io("cannot start worker", e)),
        };
        child_pid.store(child.id() as i32, Ordering::SeqCst);
        // A signal that arrived between the check above and the store is passed on now.
        if stopping.load(Ordering::SeqCst) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let status = child.wait();
        child_pid.store(0, Ordering::SeqCst);
        match status {
            Ok(status) if status.success() => break Ok(()),
            Ok(status) => {
                eprintln!("queuectl keeper {instance}: worker exited with {status}; restarting")
            }
            Err(e) => break Err(Error::io("cannot wait for worker", e)),
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
        let _ = std::fs::remove_file(&pid_file);
    }
    result
}
