//! Attempt containment: finding every process of one attempt, and nothing
//! else, so it can be ended when the attempt ends or its worker is gone.
//!
//! Two handles, both unique to one attempt: its cgroup (under systemd with
//! `Delegate=yes`, a sub-cgroup of the worker's unit that the job joins
//! before it execs; killed whole with `cgroup.kill`), and its token
//! (`QUEUECTL_ATTEMPT_TOKEN`, the claim's random lease token), found by
//! scanning `/proc` for processes that kept it in their environment. Never
//! the job id: users choose those, and two queues can share one. This module
//! never decides when to kill: the worker and the rescuer do.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable carrying the attempt's token.
pub const TOKEN_VAR: &str = "QUEUECTL_ATTEMPT_TOKEN";

/// Where the cgroup2 hierarchy is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long a kill waits for the attempt's processes to be gone. SIGKILLed
/// processes exit in microseconds unless stuck in the kernel (D state).
const EMPTY_WAIT: Duration = Duration::from_secs(5);

/// A scan that keeps finding processes (they fork as fast as we kill) gives
/// up after this many rounds.
const SCAN_ROUNDS: usize = 100;

/// Set by `queuectl-worker@.service` next to `Delegate=yes`, which is how
/// the worker knows its cgroup is its own (systemd 252's user manager marks
/// a delegated cgroup with no xattr). A unit of one's own with `Delegate=yes`
/// sets it too.
pub const DELEGATED_VAR: &str = "QUEUECTL_DELEGATED_CGROUP";

/// The worker's own cgroup when it may create attempt cgroups under it:
/// systemd delegated it (the unit sets `QUEUECTL_DELEGATED_CGROUP=1` beside
/// `Delegate=yes`, and the worker is in a service's own cgroup), it is
/// writable, and no controller is enabled for its children (cgroup v2 then
/// allows the worker to stay in it while attempts run in child cgroups).
/// `None` elsewhere: a bare `worker run`, the process backend, cgroup v1.
/// Never touches a cgroup that is not delegated.
pub fn delegated_cgroup() -> Option<String> {
    if std::env::var_os(DELEGATED_VAR).is_none_or(|v| v != "1") {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.ends_with(".service"))?;
    let dir = cgroup_dir(path);
    let subtree = std::fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
    if !subtree.trim().is_empty() {
        tracing::warn!(
            cgroup = path,
            controllers = subtree.trim(),
            "the worker's cgroup enables controllers for its children; attempts are not put in cgroups of their own"
        );
        return None;
    }
    if let Err(e) = nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK) {
        tracing::warn!(cgroup = path, error = %e, "the worker's cgroup is delegated but not writable; attempts are not put in cgroups of their own");
        return None;
    }
    Some(path.to_owned())
}

fn cgroup_dir(path: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join(path.trim_start_matches('/'))
}

/// One attempt's cgroup.
#[derive(Clone, Debug)]
pub struct AttemptCgroup {
    dir: PathBuf,
}

impl AttemptCgroup {
    /// The cgroup named `path` (as `/proc/<pid>/cgroup` names it).
    pub fn at(path: &str) -> AttemptCgroup {
        AttemptCgroup {
            dir: cgroup_dir(path),
        }
    }

    /// Creates it and opens its directory, for the child to start in.
    pub fn create(path: &str) -> io::Result<(AttemptCgroup, File)> {
        let cgroup = AttemptCgroup::at(path);
        match std::fs::create_dir(&cgroup.dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create cgroup {}: {e}", cgroup.dir.display()),
                ));
            }
            _ => {}
        }
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&cgroup.dir)
            .inspect_err(|_| cgroup.remove())?;
        Ok((cgroup, dir))
    }

    fn exists(&self) -> bool {
        self.dir.exists()
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }

    fn populated(&self) -> bool {
        match std::fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(events) => events.lines().any(|line| line == "populated 1"),
            Err(_) => false,
        }
    }

    /// SIGKILLs every process in it, without waiting.
    pub fn signal_kill(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_err() {
            // Kernels before 5.14 have no cgroup.kill.
            for pid in self.pids() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Kills every process in it and waits until none is left (a process
    /// forked during the kill is caught by the next round). Returns false
    /// if some are still there after [`EMPTY_WAIT`].
    pub fn kill_all(&self) -> bool {
        let deadline = Instant::now() + EMPTY_WAIT;
        let mut pause = Duration::from_micros(100);
        while self.populated() {
            if Instant::now() >= deadline {
                return false;
            }
            self.signal_kill();
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        true
    }

    /// Kills what is left and removes the cgroup.
    pub fn kill_and_remove(&self) -> bool {
        if !self.exists() {
            return true;
        }
        let empty = self.kill_all();
        self.remove();
        empty
    }

    fn remove(&self) {
        match std::fs::remove_dir(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(cgroup = %self.dir.display(), error = %e, "cannot remove an attempt's cgroup");
            }
            _ => {}
        }
    }
}

/// Kills every process that carries `QUEUECTL_ATTEMPT_TOKEN=<token>` in its
/// environment, scanning again until a scan finds none (killing a parent
/// does not stop a child it just forked). Returns how many were killed.
pub fn kill_by_token(token: &str) -> usize {
    let needle = format!("{TOKEN_VAR}={token}");
    let mut killed = 0;
    for _ in 0..SCAN_ROUNDS {
        let found = processes_with(needle.as_bytes());
        if found.is_empty() {
            break;
        }
        for pid in &found {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        killed += found.len();
    }
    killed
}

/// Processes with `entry` among their environment variables (a zombie's
/// environment reads as empty).
fn processes_with(entry: &[u8]) -> Vec<Pid> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let me = std::process::id();
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == entry))
        })
        .map(|pid| Pid::from_raw(pid as i32))
        .collect()
}
