//! What makes a process-backend keeper (`worker supervise`) contain its
//! worker the way systemd contains a unit: it is a child subreaper, so
//! whatever its worker's jobs leave behind becomes its child and is killed
//! before the worker restarts; and it holds a watchdog, so a frozen worker is
//! killed (with its jobs) before its lease can expire and another worker
//! runs the job again. It decides nothing about jobs and never opens the queue.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the keeper looks at its worker (exit, watchdog).
const TICK: Duration = Duration::from_millis(50);

/// The watchdog timeout for a worker whose leases last `lease`.
///
/// The timing argument: a worker renews its lease every `lease / 3` from
/// the loop that also pings the watchdog, so when it freezes at `t`, its
/// lease runs until at least `t + 2/3 lease`, and its last ping was at or
/// before `t`. The keeper kills it no later than `t + timeout + TICK`, then
/// its descendants (microseconds for SIGKILLed processes). With `timeout =
/// lease / 2`, that leaves `lease / 6 - TICK` to spare (116 ms for the
/// shortest lease, 1 s; 4.95 s for the default 30 s), and the worker pings
/// every `lease / 4`.
pub fn watchdog_timeout(lease: Duration) -> Duration {
    lease / 2
}

/// Marks this process a child subreaper: orphans below it become its
/// children instead of init's.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// The keeper's end of its worker's `NOTIFY_SOCKET`.
pub struct Watchdog {
    socket: UnixDatagram,
    path: PathBuf,
    timeout: Duration,
    /// When the worker last said READY=1 or WATCHDOG=1; `None` until it is
    /// ready (a worker still opening the queue runs no job).
    last_ping: Option<Instant>,
}

impl Watchdog {
    /// Binds the socket at `path` (replacing a stale one), with `mode`.
    pub fn bind(path: &Path, mode: u32, timeout: Duration) -> std::io::Result<Watchdog> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        // The kernel attaches each sender's pid: only the worker's count.
        setsockopt(&socket, sockopt::PassCred, &true)?;
        socket.set_read_timeout(Some(TICK))?;
        Ok(Watchdog {
            socket,
            path: path.to_owned(),
            timeout,
            last_ping: None,
        })
    }

    /// The environment that makes the worker ping: `NOTIFY_SOCKET` and
    /// `WATCHDOG_USEC`, as systemd would set them.
    pub fn worker_env(&self) -> [(&'static str, String); 2] {
        [
            ("NOTIFY_SOCKET", self.path.display().to_string()),
            ("WATCHDOG_USEC", self.timeout.as_micros().to_string()),
        ]
    }

    /// A new worker starts unwatched until it is ready.
    pub fn reset(&mut self) {
        self.last_ping = None;
    }

    /// Waits up to one tick for messages; returns false when `worker` is
    /// ready and has been silent for longer than the timeout. Messages from
    /// any other process (a job that found the socket) are ignored.
    pub fn alive(&mut self, worker: Pid) -> bool {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        let mut flags = MsgFlags::empty(); // the first wait is bounded by SO_RCVTIMEO
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)
            else {
                break;
            };
            let from_worker = msg.cmsgs().into_iter().flatten().any(|c| {
                matches!(c, ControlMessageOwned::ScmCredentials(cred) if cred.pid() == worker.as_raw())
            });
            let len = msg.bytes;
            if from_worker
                && buf[..len]
                    .split(|b| *b == b'\n')
                    .any(|line| line == b"WATCHDOG=1" || line == b"READY=1")
            {
                self.last_ping = Some(Instant::now());
            }
            flags = MsgFlags::MSG_DONTWAIT;
        }
        self.last_ping.is_none_or(|at| at.elapsed() <= self.timeout)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reaps every exited child; returns the worker's status once it is among them.
pub fn reap_children(worker: Pid) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(status) if status.pid() == Some(worker) => found = Some(status),
            Ok(_) => {} // an orphan of a job, reparented to us
        }
    }
}

/// SIGKILLs every descendant of this process and reaps them, until none is
/// left (killing a process hands its children to us, the subreaper, so it
/// takes a round per generation). Returns how many were killed.
pub fn kill_descendants() -> usize {
    let me = std::process::id();
    let mut killed = 0;
    loop {
        for child in children_of(me) {
            if kill(Pid::from_raw(child as i32), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return killed,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
            _ => {}
        }
    }
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| super::process::parent_of(*pid) == Some(parent))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_workers_own_pings_keep_it_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.notify");
        let mut watchdog = Watchdog::bind(&path, 0o600, Duration::from_millis(100)).unwrap();
        let me = Pid::this();
        let sender = UnixDatagram::unbound().unwrap();
        let ping = |what: &str| sender.send_to(what.as_bytes(), &path).unwrap();
        ping("READY=1\nSTATUS=idle");
        assert!(watchdog.alive(me));
        assert!(watchdog.last_ping.is_some(), "ready: watched from now on");
        // Pings from a process that is not the worker (here: the worker is
        // pid 1) do not count: the watchdog runs out.
        let started = Instant::now();
        loop {
            ping("WATCHDOG=1");
            if !watchdog.alive(Pid::from_raw(1)) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never ran out");
        }
        ping("WATCHDOG=1");
        assert!(watchdog.alive(me), "the worker's own ping counts");
    }

    #[test]
    fn a_frozen_worker_is_killed_before_its_lease_can_expire() {
        for seconds in [1, 2, 5, 30, 300, 3600] {
            let lease = Duration::from_secs(seconds);
            let timeout = watchdog_timeout(lease);
            // Frozen at t: the lease lasts until t + 2/3 lease at least.
            let lease_left = lease * 2 / 3;
            let killed_by = timeout + TICK;
            assert!(
                killed_by + lease / 10 < lease_left,
                "lease {lease:?}: killed by {killed_by:?}, lease left {lease_left:?}"
            );
            // The worker pings twice per timeout: once per lease / 4.
            assert!(timeout / 2 < lease / 3);
        }
    }
}
