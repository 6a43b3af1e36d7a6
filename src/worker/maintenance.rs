//! A worker's background duties, each on its own timer: rescuing jobs whose
//! lease expired, its own heartbeat, retention cleanup of finished jobs (rows
//! and log files), and forgetting workers long silent. `run_once` does one
//! pass and reports what it did; the worker loop only ticks it.

use crate::config::Config;
use crate::domain::RetryPolicy;
use crate::error::Result;
use crate::paths::StateDir;
use crate::store::{Holder, Store};
use jiff::{SignedDuration, Timestamp};
use std::time::{Duration, Instant};

const RETENTION_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub rescued: Vec<String>,
    pub purged: usize,
    pub forgotten_workers: usize,
}

pub struct Maintenance {
    worker: String,
    state: StateDir,
    policy: RetryPolicy,
    retention: Option<Duration>,
    every: Duration,
    forget_after: Duration,
    next_tick: Instant,
    next_retention: Instant,
}

impl Maintenance {
    pub fn new(worker: &str, config: &Config, state: StateDir) -> Maintenance {
        let now = Instant::now();
        Maintenance {
            worker: worker.to_owned(),
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
        }
    }

    /// How long until the next duty is due.
    pub fn until_due(&self, _now: Timestamp) -> Duration {
        self.next_tick
            .min(self.next_retention)
            .saturating_duration_since(Instant::now())
    }

    /// Runs the duties that are due; errors are logged, not fatal, since the
    /// next tick tries again.
    pub fn run_if_due(&mut self, store: &mut Store, now: Timestamp) {
        let instant = Instant::now();
        if instant < self.next_tick && instant < self.next_retention {
            return;
        }
        let with_retention = instant >= self.next_retention;
        match self.run(store, now, with_retention) {
            Ok(report) if report != Report::default() => tracing::info!(?report, "maintenance"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "maintenance failed"),
        }
        self.next_tick = instant + self.every;
        if with_retention {
            self.next_retention = instant + RETENTION_EVERY;
        }
    }

    /// Every duty, once.
    pub fn run_once(&mut self, store: &mut Store, now: Timestamp) -> Result<Report> {
        self.run(store, now, true)
    }

    fn run(&mut self, store: &mut Store, now: Timestamp, with_retention: bool) -> Result<Report> {
        // A dead worker's job may have left processes behind: end them
        // before the job can be claimed again.
        kill_leftovers_of(&store.held_jobs(Holder::ExpiredBy(now))?);
        let mut report = Report {
            rescued: store.rescue_expired(&self.policy, now)?,
            ..Report::default()
        };
        for id in &report.rescued {
            tracing::warn!(job_id = %id, "lease expired; job returned to the queue as a failed attempt");
        }
        store.worker_heartbeat(&self.worker, "alive", now)?;
        if with_retention {
            if let Some(retention) = self.retention {
                let cutoff =
                    now - SignedDuration::try_from(retention).unwrap_or(SignedDuration::MAX);
                report.purged = purge(store, &self.state, cutoff)?;
            }
            let silent = SignedDuration::try_from(self.forget_after).unwrap_or(SignedDuration::MAX);
            report.forgotten_workers = store.forget_silent_workers(now - silent)?;
        }
        Ok(report)
    }
}

/// Kills what the jobs of a dead worker left running, before they can be
/// claimed again, so that no job runs twice at once.
pub fn kill_leftovers_of(job_ids: &[String]) {
    for id in job_ids {
        let killed = crate::runner::kill_leftovers(id);
        if killed > 0 {
            tracing::warn!(job_id = %id, killed, "killed processes left by a dead worker's job");
        }
    }
}

/// Deletes finished jobs older than `before` and their log files; returns
/// how many. Shared by retention and `queuectl purge`.
pub fn purge(store: &mut Store, state: &StateDir, before: Timestamp) -> Result<usize> {
    let ids = store.purge(before)?;
    for id in &ids {
        match std::fs::remove_file(state.job_log(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(job_id = %id, error = %e, "cannot remove job log");
            }
            _ => {}
        }
    }
    Ok(ids.len())
}
