//! A worker's background duties, each on its own timer: rescuing jobs whose
//! lease expired, its own heartbeat, retention cleanup of finished jobs (rows
//! and log files), forgetting workers long silent, and firing the schedules
//! driven by the workers (the store decides which worker fires an elapse). `run_once` does one
//! pass and reports what it did; the worker loop only ticks it.

use crate::config::Config;
use crate::domain::RetryPolicy;
use crate::error::Result;
use crate::paths::StateDir;
use crate::runner::contain::{self, AttemptCgroup};
use crate::store::schedules::{FireOutcome, Fired};
use crate::store::{BulkAction, BulkOutcome, HeldAttempt, Holder, JobDefaults, Selection, Store};
use std::time::{Duration, Instant};

const RETENTION_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub rescued: Vec<String>,
    pub purged: usize,
    pub forgotten_workers: usize,
    pub fired: Vec<Fired>,
}

pub struct Maintenance {
    worker: String,
    host: String,
    state: StateDir,
    policy: RetryPolicy,
    retention: Option<Duration>,
    every: Duration,
    forget_after: Duration,
    next_tick: Instant,
    next_retention: Instant,
    /// When the workers' schedules are looked at next: the next elapse,
    /// or the next tick (a schedule added meanwhile).
    next_schedules: Instant,
    defaults: JobDefaults,
    /// An elapse missed by longer than this fires only if persistent.
    catch_up_after: Duration,
}

impl Maintenance {
    pub fn new(worker: &str, host: &str, config: &Config, state: StateDir) -> Maintenance {
        let now = Instant::now();
        Maintenance {
            worker: worker.to_owned(),
            host: host.to_owned(),
            state,
            policy: config.retry_policy(),
            retention: (config.retention_seconds > 0)
                .then(|| Duration::from_secs(config.retention_seconds)),
            // Rescue and heartbeat three times per lease, so a dead worker's
            // job waits at most a third of a lease past its expiry.
            every: (config.lease() / 3).max(Duration::from_millis(100)),
            forget_after: (config.lease() * 10).max(Duration::from_secs(3600)),
            next_tick: now,
            next_retention: now,
            next_schedules: now,
            defaults: JobDefaults {
                max_retries: config.max_retries,
                timeout_seconds: config.timeout_seconds,
            },
            catch_up_after: config.lease(),
        }
    }

    /// Brings the schedules' pass forward to `until` from now (the next
    /// elapse, as the store says).
    pub fn schedules_due_in(&mut self, until: Duration) {
        self.next_schedules = self.next_schedules.min(Instant::now() + until);
    }

    /// How long until the next duty is due.
    pub fn until_due(&self) -> Duration {
        self.next_tick
            .min(self.next_retention)
            .min(self.next_schedules)
            .saturating_duration_since(Instant::now())
    }

    /// Runs the duties that are due; errors are logged, not fatal, since the
    /// next tick tries again.
    /// `status` is the worker's current status text, which its heartbeat
    /// records for `queuectl status` on every host.
    pub fn run_if_due(&mut self, store: &mut Store, status: &str) {
        let instant = Instant::now();
        if instant >= self.next_schedules {
            self.fire_schedules(store);
        }
        if instant < self.next_tick && instant < self.next_retention {
            return;
        }
        let with_retention = instant >= self.next_retention;
        match self.run(store, status, with_retention) {
            Ok(report) if report != Report::default() => tracing::info!(
                rescued = %report.rescued.join(", "),
                purged = report.purged,
                forgotten_workers = report.forgotten_workers,
                "maintenance"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "maintenance failed"),
        }
        self.next_tick = instant + self.every;
        if with_retention {
            self.next_retention = instant + RETENTION_EVERY;
        }
    }

    /// Every duty, once.
    pub fn run_once(&mut self, store: &mut Store) -> Result<Report> {
        let mut report = self.run(store, "idle", true)?;
        report.fired = self.fire_due(store)?;
        Ok(report)
    }

    /// The schedules' pass, then the next one planned: at the next elapse,
    /// at the latest a tick from now.
    fn fire_schedules(&mut self, store: &mut Store) {
        let until = match self.fire_due(store) {
            Ok(fired) => {
                for fire in &fired {
                    log_fire(fire);
                }
                match store.next_schedule_in() {
                    Ok(Some(until)) => until.min(self.every),
                    _ => self.every,
                }
            }
            // Not again at once: a row that keeps failing stays due.
            Err(e) => {
                tracing::warn!(error = %e, "firing the schedules failed");
                self.every
            }
        };
        self.next_schedules = Instant::now() + until;
    }

    /// Fires every workers-driven schedule that is due (once per elapse
    /// across all workers: the store decides) and wakes the workers here.
    fn fire_due(&mut self, store: &mut Store) -> Result<Vec<Fired>> {
        let fired = store.fire_due_schedules(self.catch_up_after, &self.defaults)?;
        if fired.iter().any(|f| f.outcome.job_id().is_some()) {
            crate::wakeup::wake_workers(&self.state.wake());
        }
        Ok(fired)
    }

    fn run(&mut self, store: &mut Store, status: &str, with_retention: bool) -> Result<Report> {
        // A dead or frozen worker's job may still be running: end it
        // before the job can be claimed again.
        let ended = end_attempts(&store.held_attempts(Holder::Expired)?, &self.host);
        let mut report = Report {
            rescued: store.rescue(Holder::Expired, &ended, &self.policy)?,
            ..Report::default()
        };
        for id in &report.rescued {
            tracing::warn!(job_id = %id, "lease expired; job returned to the queue as a failed attempt");
        }
        store.worker_heartbeat(&self.worker, status)?;
        if with_retention {
            if let Some(retention) = self.retention {
                let old = Selection::filter(BulkAction::Purge, &[], Some(retention))?;
                report.purged = purge(store, &self.state, &old)?.done.len();
            }
            report.forgotten_workers = store.forget_silent_workers(self.forget_after)?;
        }
        Ok(report)
    }
}

/// Ends the `attempts` of a dead or frozen worker before their jobs can be
/// claimed again, so that no job runs twice at once: on this host, kills
/// the attempt's cgroup and every process carrying its token. Attempts on
/// another host are that host's to kill (its keeper or systemd does).
/// Returns the attempts that are over and may be rescued; one whose
/// processes survived SIGKILL is left for the next pass.
pub fn end_attempts(attempts: &[HeldAttempt], host: &str) -> Vec<HeldAttempt> {
    let mut ended = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        if attempt.host.as_deref() == Some(host) {
            let cgroup = attempt.cgroup.as_deref().map(AttemptCgroup::at);
            if let Some(cgroup) = &cgroup
                && !cgroup.kill_and_remove()
            {
                tracing::error!(job_id = %attempt.job_id, "processes of an expired attempt survive SIGKILL; not rescuing it yet");
                continue;
            }
            let killed = contain::kill_by_token(&attempt.token);
            if killed > 0 {
                tracing::warn!(job_id = %attempt.job_id, killed, "killed processes left by a dead or frozen worker's attempt");
            }
        }
        ended.push(attempt.clone());
    }
    ended
}

/// Deletes the finished jobs `selection` names, with their history and log
/// files; returns what it did. Shared by retention and `queuectl purge`.
pub fn purge(store: &mut Store, state: &StateDir, selection: &Selection) -> Result<BulkOutcome> {
    let outcome = store.act(BulkAction::Purge, selection)?;
    for acted in &outcome.done {
        let id = &acted.id;
        let log = state.job_log(id);
        // The log's index too (see `output::log_index_path`).
        for path in [crate::output::log_index_path(&log), log] {
            match crate::files::remove_nofollow(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(job_id = %id, error = %e, path = %path.display(), "cannot remove job log");
                }
                _ => {}
            }
        }
    }
    Ok(outcome)
}

/// One fire, in words: the elapse as RFC 3339, the outcome and its job.
fn log_fire(fire: &Fired) {
    let elapse = fire
        .elapse
        .map_or_else(|| "now".to_owned(), |at| at.to_string());
    let (outcome, job) = match &fire.outcome {
        FireOutcome::Missed => {
            tracing::info!(schedule = %fire.schedule, %elapse, "schedule elapse missed");
            return;
        }
        FireOutcome::Enqueued { id } => ("enqueued", id),
        FireOutcome::Skipped { holder } => ("skipped", holder),
        FireOutcome::Replaced { id } => ("replaced", id),
    };
    tracing::info!(schedule = %fire.schedule, %elapse, outcome, job = %job, "schedule fired");
}
