//! Tests only: a fresh queue on each backend, and the store's operations at
//! a pinned time (`claim_at(request, at(5))`), so tests read like a timeline.

use super::*;
use crate::domain::{NewJob, RetryPolicy};
use crate::output::Destination;
use crate::store::{Database, Store};
use jiff::Timestamp;

pub const DEFAULTS: JobDefaults = JobDefaults {
    max_retries: 2,
    timeout_seconds: 0,
};

pub fn policy() -> RetryPolicy {
    RetryPolicy {
        backoff_base: 2.0,
        backoff_max: Duration::from_secs(3600),
    }
}

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

pub fn request(worker: &str) -> ClaimRequest {
    ClaimRequest {
        worker: worker.into(),
        lease: Duration::from_secs(30),
        output: Destination::File,
        host: "localhost".into(),
        cgroups: None,
        queues: None,
    }
}

pub fn enqueue(store: &mut impl AtClock, json: &str, now: Timestamp) -> String {
    let job = crate::domain::spec::parse_job(json).unwrap();
    store.enqueue_at(&[(1, job)], &DEFAULTS, now).unwrap()[0]
        .id
        .clone()
}

/// A new, empty queue on one backend; removed when dropped.
pub struct TestQueue {
    pub database: Database,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<super::postgres::testing::TestDatabase>,
}

impl TestQueue {
    pub fn sqlite() -> TestQueue {
        let dir = tempfile::tempdir().unwrap();
        TestQueue {
            database: Database::Sqlite(dir.path().join("q.db")),
            _dir: Some(dir),
            _postgres: None,
        }
    }

    /// A fresh database on the test server (`$QUEUECTL_TEST_PG`), or `None`
    /// (printing why) when there is none; with `CI=true` there must be one.
    pub fn postgres() -> Option<TestQueue> {
        let db = super::postgres::testing::TestDatabase::create()?;
        Some(TestQueue {
            database: db.database(),
            _dir: None,
            _postgres: Some(db),
        })
    }

    /// Another new, empty queue on the same backend (a copy's target).
    pub fn another(&self) -> TestQueue {
        match &self.database {
            Database::Sqlite(_) => TestQueue::sqlite(),
            Database::Postgres(_) => {
                TestQueue::postgres().expect("the test server serves one queue, so another")
            }
        }
    }

    /// Opens (creating on first use) the queue.
    pub fn open(&self) -> Store {
        Store::open(&self.database, crate::config::Durability::Full).unwrap()
    }
}

/// The store's operations at a pinned time.
pub trait AtClock {
    fn at(&mut self, now: Timestamp) -> &mut dyn Backend;

    fn enqueue_at(
        &mut self,
        jobs: &[(usize, NewJob)],
        defaults: &JobDefaults,
        now: Timestamp,
    ) -> Result<Vec<Enqueued>> {
        self.at(now).enqueue(jobs, defaults)
    }

    fn claim_at(&mut self, request: &ClaimRequest, now: Timestamp) -> Result<Option<Claimed>> {
        self.at(now).claim_one(request)
    }

    fn finish_at(
        &mut self,
        lease: &Lease,
        result: &AttemptResult,
        policy: &RetryPolicy,
        now: Timestamp,
        next: Option<&ClaimRequest>,
    ) -> Result<(bool, Option<Claimed>)> {
        self.at(now).finish_one(lease, result, policy, next)
    }

    fn renew_at(
        &mut self,
        lease: &Lease,
        duration: Duration,
        now: Timestamp,
    ) -> Result<LeaseStatus> {
        self.at(now).renew_lease(lease, duration)
    }

    fn cancel_at(&mut self, id: &str, now: Timestamp) -> Result<CancelResult> {
        self.at(now).cancel(id)
    }

    fn retry_dead_at(&mut self, id: Option<&str>, now: Timestamp) -> Result<Vec<String>> {
        self.at(now).retry_dead(id)
    }

    fn held_expired_at(&mut self, now: Timestamp) -> Result<Vec<HeldAttempt>> {
        self.at(now).held_attempts(Holder::Expired)
    }

    fn rescue_expired_at(
        &mut self,
        ended: &[HeldAttempt],
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        self.at(now).rescue(Holder::Expired, ended, policy)
    }

    fn rescue_held_by_at(
        &mut self,
        worker: &str,
        ended: &[HeldAttempt],
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        self.at(now).rescue(Holder::Worker(worker), ended, policy)
    }

    /// Purges what finished before `before`.
    fn purge_before(&mut self, before: Timestamp) -> Result<Vec<String>> {
        self.at(before).purge(Duration::ZERO)
    }
}

impl AtClock for Store {
    fn at(&mut self, now: Timestamp) -> &mut dyn Backend {
        self.pin_clock(Some(now)).unwrap();
        &mut **self
    }
}

impl AtClock for super::sqlite::SqliteStore {
    fn at(&mut self, now: Timestamp) -> &mut dyn Backend {
        self.pin_clock(Some(now)).unwrap();
        self
    }
}

/// Each of `claimed` finished with `result`, for a batch finish.
pub fn finishes<'a>(claimed: &'a [Claimed], result: &'a AttemptResult) -> Vec<Finish<'a>> {
    claimed
        .iter()
        .map(|job| Finish {
            lease: &job.lease,
            result,
        })
        .collect()
}

/// Five jobs, one in each kind of state with every optional field used
/// somewhere: completed, failed (waiting out its backoff), processing (a
/// lease and a cgroup), pending (env, env_file, cwd, priority, a delay),
/// cancelled.
pub fn fill_with_every_kind_of_job(store: &mut Store) {
    use crate::domain::AttemptOutcome;
    for id in ["done", "retry", "running"] {
        enqueue(store, &format!(r#"{{"id":"{id}","command":"x"}}"#), at(0));
    }
    enqueue(
        store,
        r#"{"id":"waiting","command":"env","priority":4,"delay":"1h","cwd":"/tmp",
            "env":{"TOKEN":"s3cret"},"env_file":"creds"}"#,
        at(0),
    );
    enqueue(store, r#"{"id":"gone","command":"x"}"#, at(0));
    store.cancel_at("gone", at(1)).unwrap();
    let mut contained = request("w");
    contained.cgroups = Some("/w.service".into());
    let claimed = store.at(at(1)).claim(&contained, 3).unwrap();
    let mut ok = AttemptResult::new(AttemptOutcome::Succeeded);
    ok.exit_code = Some(0);
    ok.output = Some(crate::output::OutputReport {
        destination: Destination::Journal,
        truncated: true,
    });
    let mut failed = AttemptResult::new(AttemptOutcome::Failed).with_error("killed");
    failed.signal = Some(9);
    let done = [
        Finish {
            lease: &claimed[0].lease,
            result: &ok,
        },
        Finish {
            lease: &claimed[1].lease,
            result: &failed,
        },
    ];
    store.at(at(2)).finish(&done, &policy(), None).unwrap();
}

/// Exported jobs as comparable values: every column, the raw env text,
/// the lease, the attempts.
pub fn snapshot(records: &[JobRecord]) -> Vec<serde_json::Value> {
    records
        .iter()
        .map(|r| {
            serde_json::json!({
                "job": r.job,
                "env": r.env_text,
                "lease": r.lease_token,
                "attempts": r.attempts,
            })
        })
        .collect()
}

/// Jobs as a queue from before workflows (SQLite migration 8, PostgreSQL 5)
/// holds them, for the upgrade tests of both backends.
pub const PRE_WORKFLOW_JOBS: &str =
    "INSERT INTO jobs (id, command, state, priority, run_at, max_retries,
        timeout_seconds, created_at, updated_at, finished_at)
    VALUES ('low', 'true', 'pending', 0, 0, 3, 0, 0, 0, NULL),
           ('high', 'true', 'failed', 5, 0, 3, 0, 0, 0, NULL),
           ('later', 'true', 'pending', 9, 9000000000000, 3, 0, 0, 0, NULL),
           ('done', 'true', 'completed', 9, 0, 3, 0, 0, 0, 1)";

/// After the upgrade, [`PRE_WORKFLOW_JOBS`] keep their states, sit in the
/// default queue unblocked, and are claimed in the same order.
pub fn assert_pre_workflow_jobs_kept(store: &mut dyn Backend) {
    for (id, state) in [
        ("low", JobState::Pending),
        ("high", JobState::Failed),
        ("later", JobState::Pending),
        ("done", JobState::Completed),
    ] {
        let job = store.get(id).unwrap();
        assert_eq!(
            (job.state, job.queue.as_str(), job.deps_left),
            (state, "default", 0)
        );
    }
    let claimed: Vec<String> = store
        .claim(&request("w"), 10)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(claimed, ["high", "low"]);
}

/// Jobs and attempts as a queue from before the dashboard's counters
/// (SQLite migration 9, PostgreSQL 6) holds them, for the upgrade tests of
/// both backends.
pub const PRE_STATS_HISTORY: &str =
    "INSERT INTO jobs (id, command, state, priority, run_at, max_retries,
        timeout_seconds, created_at, updated_at, finished_at, queue)
    VALUES ('a1', 'true', 'completed', 0, 0, 3, 0, 0, 0, 5000, 'mail'),
           ('a2', 'true', 'dead', 0, 0, 0, 0, 0, 0, 9000, 'mail'),
           ('b1', 'true', 'pending', 0, 0, 3, 0, 0, 0, NULL, 'default');
    INSERT INTO attempts (job_seq, number, worker, started_at, finished_at, outcome, output)
    VALUES ((SELECT seq FROM jobs WHERE id = 'a1'), 1, 'w', 1000, 1500, 'failed', 'file'),
           ((SELECT seq FROM jobs WHERE id = 'a1'), 2, 'w', 2000, 5000, 'succeeded', 'file'),
           ((SELECT seq FROM jobs WHERE id = 'a2'), 1, 'w', 6000, 9000, 'timed_out', 'file');";

/// After the upgrade, [`PRE_STATS_HISTORY`] is counted: its jobs per queue
/// and state, its attempts per outcome with their run times; no waits (their
/// due times were never recorded).
pub fn assert_pre_stats_history_counted(store: &mut dyn Backend) {
    use crate::domain::AttemptOutcome::*;
    let overview = store.overview().unwrap();
    let counts: Vec<(&str, JobState, u64)> = overview
        .counts
        .iter()
        .map(|c| (c.queue.as_str(), c.state, c.jobs))
        .collect();
    assert_eq!(
        counts,
        [
            ("default", JobState::Pending, 1),
            ("mail", JobState::Completed, 1),
            ("mail", JobState::Dead, 1)
        ]
    );
    let stats = store.stats().unwrap();
    let attempts: Vec<(&str, crate::domain::AttemptOutcome, u64)> = stats
        .attempts
        .iter()
        .map(|a| (a.queue.as_str(), a.outcome, a.attempts))
        .collect();
    assert_eq!(
        attempts,
        [
            ("mail", Failed, 1),
            ("mail", Succeeded, 1),
            ("mail", TimedOut, 1)
        ]
    );
    assert_eq!(stats.duration.len(), 1);
    let duration = &stats.duration[0].histogram;
    assert_eq!((duration.count, duration.sum_seconds), (3, 6.5));
    assert!(stats.wait.is_empty());
}
