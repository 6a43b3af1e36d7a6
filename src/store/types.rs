//! The values that cross the store's boundary.

use crate::domain::{AttemptOutcome, EnqueueOutcome, JobId, JobState};
use crate::output::{Destination, OutputReport};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Settings a new job takes from the config when its submission leaves them out.
#[derive(Clone, Copy, Debug)]
pub struct JobDefaults {
    pub max_retries: u32,
    pub timeout_seconds: u32,
}

/// What [`Backend::enqueue`](super::Backend::enqueue) did with one job: the
/// id of the job that now stands for it (the holder's when an unfinished job
/// held its unique key) and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    pub outcome: EnqueueOutcome,
}

impl Enqueued {
    pub fn created(id: &JobId) -> Enqueued {
        Enqueued {
            id: id.to_string(),
            outcome: EnqueueOutcome::Created,
        }
    }
}

/// A job's `env` as read back: the variables, or the fact that the stored
/// value cannot be decoded (a job is never run with a guessed environment).
pub type StoredEnv = Result<BTreeMap<String, String>, CorruptEnv>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the job's stored env cannot be decoded (corrupt database row)")]
pub struct CorruptEnv;

/// A job as stored. `env` values are never serialized: only the names.
#[derive(Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub command: String,
    pub state: JobState,
    pub priority: i64,
    pub run_at: Timestamp,
    pub max_retries: u32,
    pub timeout_seconds: u32,
    #[serde(flatten, serialize_with = "env_names")]
    pub env: StoredEnv,
    /// Where the worker reads more variables when an attempt starts.
    pub env_file: Option<String>,
    pub cwd: Option<String>,
    /// Runs started, ever.
    pub attempts: u32,
    /// Failed runs counted against `max_retries` (reset by `dlq retry`).
    pub failures: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub worker: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    /// The named queue it belongs to (`default` unless given).
    pub queue: String,
    /// Dependencies not yet completed: above 0, the job is blocked.
    pub deps_left: u32,
    /// At most one unfinished job holds a key.
    pub unique_key: Option<String>,
    /// The schedule that enqueued it.
    pub schedule: Option<String>,
}

/// Jobs as `list` shows them: newest first, and how many match in all.
#[derive(Clone, Debug, Serialize)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub total: u64,
}

/// `env_keys`: the names only, never the values; `null` plus `env_error`
/// when the stored env is corrupt.
fn env_names<S: serde::Serializer>(env: &StoredEnv, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(None)?;
    match env {
        Ok(vars) => map.serialize_entry("env_keys", &vars.keys().collect::<BTreeSet<_>>())?,
        Err(corrupt) => {
            map.serialize_entry("env_keys", &None::<()>)?;
            map.serialize_entry("env_error", &corrupt.to_string())?;
        }
    }
    map.end()
}

/// Env values may hold secrets: `Debug` shows the names only.
fn env_names_debug(env: &StoredEnv) -> Result<Vec<&String>, CorruptEnv> {
    env.as_ref()
        .map(|vars| vars.keys().collect())
        .map_err(|&e| e)
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("command", &self.command)
            .field("state", &self.state)
            .field("env", &env_names_debug(&self.env))
            .field("env_file", &self.env_file)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub worker: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    #[serde(serialize_with = "outcome_name")]
    pub outcome: Option<AttemptOutcome>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    /// Where this attempt's output went.
    pub output: Destination,
    /// Some of its output could not be stored (a full disk, ...).
    pub output_truncated: bool,
    /// The host it ran on, and its own cgroup if it had one.
    pub host: Option<String>,
    pub cgroup: Option<String>,
    /// The last few KiB of its output (`output::OUTPUT_TAIL_BYTES`), kept in
    /// the queue so any host can show them; `None` when none was recorded
    /// (it never started, its worker died, or it ran before tails were kept).
    pub output_tail: Option<String>,
}

impl Attempt {
    pub fn duration(&self) -> Option<Duration> {
        let end = self.finished_at?;
        Duration::try_from(end.duration_since(self.started_at)).ok()
    }
}

fn outcome_name<S: serde::Serializer>(
    outcome: &Option<AttemptOutcome>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match outcome {
        Some(o) => s.serialize_str(o.as_str()),
        None => s.serialize_none(),
    }
}

/// Who is claiming, for how long, and where the attempt's output will go.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub worker: String,
    pub lease: Duration,
    pub output: Destination,
    /// The host the attempt runs on: leftovers are only killed there.
    pub host: String,
    /// The cgroup (as `/proc/self/cgroup` names it) under which each attempt
    /// gets its own, when the worker's cgroup is delegated to it.
    pub cgroups: Option<String>,
    /// Only jobs of these queues (`worker run --queues`); `None`: every queue.
    pub queues: Option<Vec<String>>,
}

/// Which jobs `list` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only jobs in these states (every state when empty).
    pub states: Vec<JobState>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs waiting for others (pending, with dependencies not yet
    /// completed); `states` is then ignored.
    pub blocked: bool,
}

impl ListFilter {
    pub fn states(states: &[JobState]) -> ListFilter {
        ListFilter {
            states: states.to_vec(),
            ..ListFilter::default()
        }
    }
}

/// A queue as `queue list` shows it: its settings (none stored: unlimited
/// and running) and its unfinished jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueRow {
    pub name: String,
    /// The most of its jobs running at once; `None`: no limit.
    pub parallel: Option<u32>,
    pub paused: bool,
    /// Pending or failed jobs waiting for a worker (due or not).
    pub waiting: u64,
    pub running: u64,
    /// Waiting jobs that wait for dependencies too.
    pub blocked: u64,
}

impl QueueRow {
    /// Limited or paused: what the `queues` table keeps a row for.
    pub fn has_settings(&self) -> bool {
        self.parallel.is_some() || self.paused
    }

    /// A queue nobody configured and no unfinished job names: unlimited,
    /// running, empty.
    pub fn empty(name: &str) -> QueueRow {
        QueueRow {
            name: name.to_owned(),
            parallel: None,
            paused: false,
            waiting: 0,
            running: 0,
            blocked: 0,
        }
    }
}

/// The cgroup an attempt with `token` runs in, under the worker's `cgroups`.
pub fn attempt_cgroup(cgroups: &str, token: &str) -> String {
    format!("{}/attempt-{token}", cgroups.trim_end_matches('/'))
}

/// Proof that a worker holds a job: every later change names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub seq: i64,
    pub token: i64,
    /// This attempt's number (1 for the first run).
    pub attempt: u32,
    /// Failures before this attempt.
    pub failures: u32,
    pub max_retries: u32,
    pub worker: String,
}

impl Lease {
    /// The attempt's token: the claim's random lease token, which no other
    /// attempt, queue or user shares. Every process of the attempt starts
    /// with it as `QUEUECTL_ATTEMPT_TOKEN`, so leftovers are found by it and
    /// never by the user-chosen job id.
    pub fn attempt_token(&self) -> String {
        attempt_token(self.token)
    }
}

pub(crate) fn attempt_token(lease_token: i64) -> String {
    format!("{:016x}", lease_token as u64)
}

/// What a rescuer needs to end an attempt whose worker is gone: where it
/// ran, its token, and its cgroup if it had one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAttempt {
    pub job_id: String,
    /// The lease it holds, so a rescue finishes only this very attempt.
    pub(crate) lease_token: i64,
    pub token: String,
    /// `None` for attempts recorded before hosts were (nothing is killed).
    pub host: Option<String>,
    pub cgroup: Option<String>,
}

impl HeldAttempt {
    pub(crate) fn new(
        job_id: String,
        lease_token: i64,
        host: Option<String>,
        cgroup: Option<String>,
    ) -> HeldAttempt {
        HeldAttempt {
            job_id,
            lease_token,
            token: attempt_token(lease_token),
            host,
            cgroup,
        }
    }
}

/// A job handed to a worker.
#[derive(Clone)]
pub struct Claimed {
    pub id: String,
    pub command: String,
    pub env: StoredEnv,
    pub env_file: Option<String>,
    pub cwd: Option<String>,
    pub timeout_seconds: u32,
    pub lease: Lease,
    /// The attempt's own cgroup, when the worker contains attempts in cgroups.
    pub cgroup: Option<String>,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("command", &self.command)
            .field("env", &env_names_debug(&self.env))
            .field("env_file", &self.env_file)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended, as recorded in its history row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    /// What became of its output; `None` keeps what the claim recorded (an
    /// attempt that never started, or one rescued after its worker died).
    pub output: Option<OutputReport>,
    /// The end of its output (`output::OutputTail`); `None` when it never ran
    /// here to the end (never started, rescued).
    pub output_tail: Option<String>,
}

impl AttemptResult {
    pub fn new(outcome: AttemptOutcome) -> AttemptResult {
        AttemptResult {
            outcome,
            exit_code: None,
            signal: None,
            error: None,
            output: None,
            output_tail: None,
        }
    }

    pub fn with_error(mut self, error: impl Into<String>) -> AttemptResult {
        self.error = Some(error.into());
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    Held,
    CancelRequested,
    /// Someone else finished or rescued the job: stop it and record nothing.
    Lost,
}

impl LeaseStatus {
    /// A renewal's answer: the job's `cancel_requested`, or nothing when the
    /// lease is no longer the caller's.
    pub fn from_renewal(cancel_requested: Option<bool>) -> LeaseStatus {
        match cancel_requested {
            None => LeaseStatus::Lost,
            Some(true) => LeaseStatus::CancelRequested,
            Some(false) => LeaseStatus::Held,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelResult {
    Cancelled,
    Requested { worker: String },
}

#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub name: String,
    pub pid: u32,
    pub host: String,
    pub status: String,
    /// The systemd unit it runs as (`queuectl-worker@3.service`), if any.
    pub unit: Option<String>,
    /// How many jobs it runs at once.
    pub slots: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerRow {
    pub name: String,
    pub pid: u32,
    pub host: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    pub status: String,
    pub unit: Option<String>,
    pub slots: u32,
    /// The jobs it is running, one per busy slot, in id order.
    pub jobs: Vec<String>,
}

/// The ids of a worker's running jobs from the comma-joined list the
/// workers query builds (job ids hold no commas).
pub(crate) fn job_list(joined: Option<String>) -> Vec<String> {
    let mut jobs: Vec<String> = joined
        .iter()
        .flat_map(|j| j.split(','))
        .map(str::to_owned)
        .collect();
    jobs.sort();
    jobs
}

#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub total: u64,
    pub counts: BTreeMap<JobState, u64>,
    /// completed / (completed + dead); none until a job finished.
    pub success_rate: Option<f64>,
    /// Mean runs per finished (completed or dead) job.
    pub avg_attempts: Option<f64>,
    pub avg_duration_ms: Option<f64>,
    pub p95_duration_ms: Option<i64>,
    pub finished_last_minute: u64,
    pub finished_last_hour: u64,
}

impl Metrics {
    /// From what a backend read: `finished` counts completed and dead jobs.
    pub fn new(
        counts: BTreeMap<JobState, u64>,
        finished: i64,
        avg_attempts: Option<f64>,
        avg_duration_ms: Option<f64>,
        p95_duration_ms: Option<i64>,
        finished_last_minute: i64,
        finished_last_hour: i64,
    ) -> Metrics {
        let completed = counts.get(&JobState::Completed).copied().unwrap_or(0);
        Metrics {
            total: counts.values().sum(),
            success_rate: (finished > 0).then(|| completed as f64 / finished as f64),
            avg_attempts,
            avg_duration_ms,
            p95_duration_ms,
            finished_last_minute: finished_last_minute.max(0) as u64,
            finished_last_hour: finished_last_hour.max(0) as u64,
            counts,
        }
    }
}

/// One job as `queuectl copy` moves it between queues: every column, the
/// stored `env` as its raw text (copied, never decoded or shown), and its
/// attempt history.
#[derive(Clone)]
pub struct JobRecord {
    pub job: Job,
    pub env_text: Option<String>,
    pub lease_token: Option<i64>,
    pub attempts: Vec<Attempt>,
    /// The ids of the jobs it waits for (its edges), in enqueue order.
    pub after: Vec<String>,
    /// The dependency whose end cancelled it (its restart revives it).
    pub cancelled_by: Option<String>,
}

impl std::fmt::Debug for JobRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRecord")
            .field("job", &self.job)
            .field("attempts", &self.attempts.len())
            .finish_non_exhaustive()
    }
}
