//! The last line of defence against two runs of one job: a thread that
//! kills the running job when its lease is about to run out without a
//! successful renewal, even while the worker loop is blocked (a database
//! call hanging on a cut network until the socket gives up).
//!
//! The loop itself kills the job when renewals fail (`supervise`); this
//! guard covers the case where the loop cannot get there in time. It is one
//! thread per worker, armed per job with a deadline that each successful
//! renewal pushes back.

use crate::runner::RunningJob;
use nix::sys::signal::Signal;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Default)]
struct State {
    armed: Option<(Instant, RunningJob)>,
    fired: bool,
    stop: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct LeaseGuard {
    shared: Shared,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock leaves plain data behind: go on.
    shared
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        state.armed = Some((deadline, job.clone()));
        state.fired = false;
        self.shared.1.notify_one();
    }

    /// Stops guarding; true when the guard had to kill the job.
    pub fn disarm(&self) -> bool {
        let mut state = lock(&self.shared);
        state.armed = None;
        std::mem::take(&mut state.fired)
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
        let wait = match &state.armed {
            None => None,
            Some((deadline, job)) => {
                let now = Instant::now();
                if now >= *deadline {
                    tracing::error!(
                        pid = job.pid(),
                        "lease about to run out without a renewal (the worker is stuck on the database): killing the job so it never runs twice"
                    );
                    job.signal(Signal::SIGKILL);
                    state.armed = None;
                    state.fired = true;
                    continue;
                }
                Some(*deadline - now)
            }
        };
        state = match wait {
            None => shared
                .1
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            Some(wait) => {
                shared
                    .1
                    .wait_timeout(state, wait)
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
        let sink = Box::new(FileSink::lazy(&dir.join("guarded.log")));
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
        assert!(guard.disarm(), "the guard says it fired");
        assert!(!guard.disarm(), "and only once");
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
        assert!(!guard.disarm());
        job.signal(nix::sys::signal::Signal::SIGTERM);
        let exit = exits.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(
            exit.signal,
            Some(libc::SIGTERM),
            "the job ended by our hand, not the guard's"
        );
    }
}
