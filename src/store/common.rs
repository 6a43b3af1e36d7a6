//! What both backends decide the same way, outside SQL: messages, which
//! attempts a rescue may finish, and how results are shaped.

use super::types::*;
use super::{Finish, Holder};
use crate::domain::policy::next_state;
use crate::domain::{AttemptOutcome, InputError, JobId, JobState, RetryPolicy};
use crate::error::Error;
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Enqueueing an id that exists; `line` is the job's input line in a batch.
pub(crate) fn duplicate_id(id: &JobId, line: Option<usize>) -> Error {
    let mut err = InputError {
        line: None,
        field: Some("id".into()),
        message: format!("job '{id}' already exists"),
    };
    if let Some(line) = line {
        err = err.at_line(line);
    }
    err.into()
}

/// `edit` found no waiting job `id`: it is missing, or in `state`.
pub fn not_editable(id: &str, state: Option<JobState>) -> Error {
    match state {
        None => Error::NotFound(id.to_owned()),
        Some(state) => Error::Conflict(format!(
            "job '{id}' is {state}; only a waiting job (pending, or failed and waiting for its retry) can be edited"
        )),
    }
}

/// Each of `states` once (a list reads one index range per state).
pub(crate) fn distinct_states(states: &[JobState]) -> Vec<JobState> {
    let mut distinct = states.to_vec();
    distinct.sort();
    distinct.dedup();
    distinct
}

/// The newest `limit` of jobs read newest first per state, each with its
/// `seq`: one index range per state merged here, since `state IN (...)
/// ORDER BY seq` would sort every matching row to find the newest.
pub(crate) fn newest_first(per_state: Vec<Vec<(i64, Job)>>, limit: Option<u32>) -> Vec<Job> {
    let mut jobs: Vec<(i64, Job)> = per_state.into_iter().flatten().collect();
    jobs.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    jobs.truncate(limit.map_or(usize::MAX, |n| n as usize));
    jobs.into_iter().map(|(_, job)| job).collect()
}

/// `copy` refuses a target holding jobs, queue settings or schedules
/// (counted in the import's transaction).
pub(crate) fn refuse_filled_target(jobs: i64, queues: i64, schedules: i64) -> Result<(), Error> {
    if jobs + queues + schedules == 0 {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "the target queue already holds {jobs} job(s), {queues} queue setting(s) and {schedules} schedule(s); copy only into an empty queue"
    )))
}

/// Of the processing jobs a rescue found (id, lease, lease expiry), those
/// whose processes the caller ended: a job claimed again since has a new
/// lease token and is left alone.
pub(crate) fn rescuable<T>(
    held: Vec<(String, Lease, T)>,
    ended: &[HeldAttempt],
) -> impl Iterator<Item = (String, Lease, T)> {
    let tokens: Vec<i64> = ended.iter().map(|a| a.lease_token).collect();
    held.into_iter()
        .filter(move |(_, lease, _)| tokens.contains(&lease.token))
}

/// Finishes, through `finish` (a backend's batch finish), the rescuable
/// attempts of `held` (id, lease, lease expiry in ms) as `holder` says they
/// ended; returns the ids of those whose lease was still held.
pub(crate) fn rescue_with<E>(
    held: Vec<(String, Lease, i64)>,
    ended: &[HeldAttempt],
    holder: Holder,
    finish: impl FnOnce(&[Finish]) -> Result<Vec<bool>, E>,
) -> Result<Vec<String>, E> {
    let chosen: Vec<(String, Lease, AttemptResult)> = rescuable(held, ended)
        .map(|(id, lease, expires_at)| {
            let result = rescue_result(holder, &lease, super::from_millis(expires_at));
            (id, lease, result)
        })
        .collect();
    let done: Vec<Finish> = chosen
        .iter()
        .map(|(_, lease, result)| Finish { lease, result })
        .collect();
    let held = finish(&done)?;
    Ok(chosen
        .into_iter()
        .zip(held)
        .filter_map(|((id, _, _), held)| held.then_some(id))
        .collect())
}

/// Each lease's status after a renewal that returned `renewed` (seq, lease
/// token, cancel requested) for the leases still held.
pub(crate) fn lease_statuses<'a>(
    leases: &'a [&Lease],
    renewed: &'a [(i64, i64, bool)],
) -> impl Iterator<Item = LeaseStatus> + 'a {
    leases.iter().map(move |lease| {
        let cancel = renewed
            .iter()
            .find(|&&(seq, token, _)| (seq, token) == (lease.seq, lease.token))
            .map(|&(_, _, cancel)| cancel);
        LeaseStatus::from_renewal(cancel)
    })
}

/// How a rescued attempt is recorded.
pub(crate) fn rescue_result(holder: Holder, lease: &Lease, expired_at: Timestamp) -> AttemptResult {
    let error = match holder {
        Holder::Expired => format!(
            "lease expired at {expired_at}: worker '{}' stopped renewing it (killed, frozen or lost)",
            lease.worker
        ),
        Holder::Worker(_) => format!("worker '{}' restarted while running this job", lease.worker),
    };
    AttemptResult::new(AttemptOutcome::LeaseExpired).with_error(error)
}

/// The row offset of the 95th percentile among `n` sorted values.
pub(crate) fn p95_offset(n: i64) -> i64 {
    (((n as f64) * 0.95).ceil() as i64 - 1).max(0)
}

/// Where a finished attempt takes its job, as both engines record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    pub state: JobState,
    /// The next due time; `None` keeps the one it ran at (a finished job).
    pub run_at: Option<Timestamp>,
    pub failures: u32,
    /// Whether the job is now finished (it gets a `finished_at`).
    pub finished: bool,
    /// The job's `last_error` (`None` keeps the one it has).
    pub job_error: Option<String>,
}

/// The job's side of [`next_state`] for an attempt that ended with
/// `result` under `lease`. A job whose cancel was requested ends
/// `cancelled`; when its attempt ended on its own before the worker could
/// stop it, the job says so (the attempt keeps its real outcome and error).
pub(crate) fn transition(
    lease: &Lease,
    result: &AttemptResult,
    cancel_requested: bool,
    policy: &RetryPolicy,
    now: Timestamp,
) -> Transition {
    let next = next_state(
        result.outcome,
        cancel_requested,
        lease.failures,
        lease.max_retries,
        policy,
        now,
    );
    let job_error = match (cancel_requested, result.outcome) {
        (true, outcome) if outcome != AttemptOutcome::Cancelled => Some(format!(
            "cancelled by user; the running attempt ended first ({})",
            outcome.as_str()
        )),
        _ => result.error.clone(),
    };
    let finished = next.state.is_terminal();
    Transition {
        state: next.state,
        run_at: (!finished).then_some(next.run_at),
        failures: next.failures,
        finished,
        job_error,
    }
}

/// A job's `env` column: absent means no variables; text that is not a JSON
/// object of strings is corruption, reported, never read as "no variables".
pub(crate) fn decode_env(column: Option<String>) -> StoredEnv {
    match column {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(&text).map_err(|_| CorruptEnv),
    }
}

/// A new job's `env` column: `NULL` for no variables.
pub(crate) fn encode_env(env: &BTreeMap<String, String>) -> Option<String> {
    (!env.is_empty()).then(|| serde_json::to_string(env).expect("a map of strings serializes"))
}

pub(crate) fn parse_state(text: &str) -> Result<JobState, Error> {
    text.parse()
        .map_err(|e: String| Error::Invalid(format!("corrupt job row: {e}")))
}

/// An error inside a write transaction: the engine's errors (which may be
/// retried: busy, a serialization failure, a deadlock) or the store's own,
/// which roll back and are returned as they are.
pub(crate) enum TxError<E> {
    Sql(E),
    App(Error),
}

impl<E> From<Error> for TxError<E> {
    fn from(e: Error) -> TxError<E> {
        TxError::App(e)
    }
}

impl<E> TxError<E> {
    /// A job of a batch (its input `line`; none alone) refused because its
    /// unique key is held: the refusal names the line and says that the
    /// batch was not enqueued. Other errors are kept as they are.
    pub(crate) fn in_batch(self, line: Option<usize>) -> TxError<E> {
        match self {
            TxError::App(Error::Conflict(why)) => TxError::App(Error::Conflict(
                crate::domain::unique::refused_in_batch(why, line),
            )),
            other => other,
        }
    }
}
