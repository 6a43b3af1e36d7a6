//! What both backends decide the same way, outside SQL: messages, which
//! attempts a rescue may finish, and how results are shaped.

use super::Holder;
use super::types::*;
use crate::domain::{AttemptOutcome, InputError, JobId, JobState};
use crate::error::Error;
use jiff::Timestamp;

/// Finished jobs are purged in transactions of this many rows, so workers
/// are never kept waiting behind a large purge.
pub(crate) const PURGE_CHUNK: i64 = 1000;

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

pub(crate) fn nothing_to_cancel(id: &str, state: JobState) -> Error {
    Error::Conflict(format!("job '{id}' is already {state}; nothing to cancel"))
}

/// `dlq retry ID` applies to a dead job only.
pub(crate) fn check_retryable(id: &str, state: Option<JobState>) -> Result<(), Error> {
    match state {
        None => Err(Error::NotFound(id.to_owned())),
        Some(JobState::Dead) => Ok(()),
        Some(other) => Err(Error::Conflict(format!(
            "job '{id}' is {other}, not in the dead letter queue"
        ))),
    }
}

pub(crate) fn target_not_empty(jobs: i64) -> Error {
    Error::Conflict(format!(
        "the target queue already holds {jobs} job(s); copy only into an empty queue"
    ))
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
