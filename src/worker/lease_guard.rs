//! The last line of defence against two runs of one job: a thread that
//! kills the running job when its lease is about to run out without a
//! successful renewal, even while the worker loop is blocked (a database
//! call hanging on a cut network until the socket gives up).
//!
//! The loop itself kills the job when renewals fail (`supervise`); this
//! guard covers the case where the loop cannot get there in time. It is one
//! thread per worker, armed per job with a deadline that each successful
//! renewal pushes back.

use super::lock;
use crate::runner::RunningJob;
use nix::sys::signal::Signal;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// The running jobs, by pid: when each must be killed, and which were.
#[derive(Default)]
struct State {
    armed: HashMap<u32, (Instant, RunningJob)>,
    fired: HashSet<u32>,
    /// When the guard thread will look again by itself (`None`: only when
    /// woken). Arming a later deadline than this need not wake it: waking
    /// it on every job cost a tenth of a busy worker's CPU.
    wakes_at: Option<Instant>,
    stop: bool,
}

type Shared = super::Shared<State>;

pub struct LeaseGuard {
    shared: Shared,
}

impl LeaseGuard {
    pub fn start() -> LeaseGuard {
        let shared: Shared = Arc::default();
        let watched = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("lease-guard".into())
            .spawn(move || watch(&watched))
            .expect("cannot start the lease guard thread");
        LeaseGuard { shared }
    }

    /// Kill `job` at `deadline` unless re-armed with a later one or
    /// disarmed first.
    pub fn arm(&self, deadline: Instant, job: &RunningJob) {
        let mut state = lock(&self.shared);
        // A job the guard killed stays marked until disarmed, however
        // often it is armed again: its attempt is not the worker's to record.
        if state.fired.contains(&job.pid()) {
            return;
        }
        state.armed.insert(job.pid(), (deadline, job.clone()));
        if state.wakes_at.is_none_or(|at| deadline < at) {
            self.shared.1.notify_one();
        }
    }

    /// Stops guarding the job with this pid; true when the guard had to
    /// kill it.
    pub fn disarm(&self, pid: u32) -> bool {
        let mut state = lock(&self.shared);
        state.armed.remove(&pid);
        state.fired.remove(&pid)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_one();
    }
}

fn watch(shared: &Shared) {
    let mut state = lock(shared);
    loop {
        if state.stop {
            return;
        }
        let now = Instant::now();
        let due: Vec<u32> = state
            .armed
            .iter()
            .filter(|(_, (deadline, _))| now >= *deadline)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in due {
            if let Some((_, job)) = state.armed.remove(&pid) {
                tracing::error!(
                    pid,
                    "lease about to run out without a renewal (the worker is stuck on the database): killing the job so it never runs twice"
                );
                job.signal(Signal::SIGKILL);
                state.fired.insert(pid);
            }
        }
        let next = state.armed.values().map(|(deadline, _)| *deadline).min();
        state.wakes_at = next;
        state = match next {
            None => shared
                .1
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            Some(deadline) => {
                shared
                    .1
                    .wait_timeout(state, deadline.saturating_duration_since(now))
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::FileSink;
    use crate::runner::{self, JobCommand, JobExit};
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::time::Duration;

    fn start_sleeper(dir: &std::path::Path) -> (RunningJob, mpsc::Receiver<JobExit>) {
        let (tx, rx) = mpsc::channel::<JobExit>();
        let env = BTreeMap::new();
        let job = JobCommand {
            job_id: "guarded",
            attempt: 1,
            token: "00000000000000aa",
            cgroup: None,
            command: "sleep 30",
            env: &env,
            cwd: None,
        };
        let sink = Box::new(FileSink::lazy(&dir.join("guarded.log"), 1));
        (runner::spawn(&job, sink, tx).unwrap(), rx)
    }

    #[test]
    fn a_job_whose_deadline_passes_is_killed_though_nobody_else_acts() {
        let dir = tempfile::tempdir().unwrap();
        let guard = LeaseGuard::start();
        let (job, exits) = start_sleeper(dir.path());
        guard.arm(Instant::now() + Duration::from_millis(100), &job);
        let exit = exits
            .recv_timeout(Duration::from_secs(20))
            .expect("the guard kills the job");
        assert_eq!(exit.signal, Some(libc::SIGKILL));
        // A renewal that comes through afterwards re-arms it: the guard
        // still says it killed the job.
        guard.arm(Instant::now() + Duration::from_secs(60), &job);
        assert!(guard.disarm(job.pid()), "the guard says it fired");
        assert!(!guard.disarm(job.pid()), "and only once");
    }

    #[test]
    fn renewals_push_the_deadline_back_and_disarming_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let guard = LeaseGuard::start();
        let (job, exits) = start_sleeper(dir.path());
        guard.arm(Instant::now() + Duration::from_millis(50), &job);
        guard.arm(Instant::now() + Duration::from_secs(60), &job);
        // Past the first deadline, the job still runs.
        assert!(exits.recv_timeout(Duration::from_millis(300)).is_err());
        assert!(!guard.disarm(job.pid()));
        job.signal(nix::sys::signal::Signal::SIGTERM);
        let exit = exits.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(
            exit.signal,
            Some(libc::SIGTERM),
            "the job ended by our hand, not the guard's"
        );
    }

    #[test]
    fn each_job_has_its_own_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let guard = LeaseGuard::start();
        let (late, late_exits) = start_sleeper(dir.path());
        let (due, due_exits) = start_sleeper(dir.path());
        guard.arm(Instant::now() + Duration::from_secs(60), &late);
        guard.arm(Instant::now() + Duration::from_millis(50), &due);
        let exit = due_exits.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(exit.signal, Some(libc::SIGKILL));
        assert!(guard.disarm(due.pid()));
        assert!(
            late_exits.recv_timeout(Duration::from_millis(300)).is_err(),
            "the other job runs on"
        );
        assert!(!guard.disarm(late.pid()));
        late.signal(nix::sys::signal::Signal::SIGKILL);
        late_exits.recv_timeout(Duration::from_secs(20)).unwrap();
    }
}
