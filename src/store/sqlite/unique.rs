//! Unique keys on SQLite: what an enqueue does when an unfinished job holds
//! its key, and which constraint refused an insert.
//!
//! Every write runs under `BEGIN IMMEDIATE` (one writer at a time), so the
//! holder read here is exact until the transaction ends: no second writer can
//! take or free the key in between. The partial unique index `jobs_unique`
//! still refuses a second holder, whatever path a row takes.

use super::TxError;
use crate::domain::unique::key_held;
use crate::domain::{EnqueueOutcome, JobId, JobState, OnDuplicate, Unique};
use crate::error::Error;
use crate::store::Enqueued;
use rusqlite::{ErrorCode, OptionalExtension, Transaction, params};

/// The condition (on `jobs`) that a job's key is free: no unfinished job
/// holds it. Restarts add it, so they leave a job whose key was taken again
/// alone. The state test is spelled as `jobs_unique`'s, so SQLite reads
/// that index.
pub(super) const KEY_FREE: &str = "AND (jobs.unique_key IS NULL OR NOT EXISTS (
     SELECT 1 FROM jobs holder WHERE holder.unique_key = jobs.unique_key
         AND holder.unique_key IS NOT NULL
         AND (holder.state = 'pending' OR holder.state = 'processing' OR holder.state = 'failed')))";

/// The unfinished job other than `jobs`' row that holds its key (restarts
/// report it as the reason they left a job alone).
pub(super) const KEY_HOLDER: &str = "(SELECT holder.id FROM jobs holder
     WHERE holder.unique_key = jobs.unique_key AND holder.unique_key IS NOT NULL
         AND (holder.state = 'pending' OR holder.state = 'processing' OR holder.state = 'failed')
         AND holder.seq <> jobs.seq)";

/// The finished jobs in `states` that finished before `?1` and whose key
/// an unfinished job holds, or that wait for a dependency that ended dead
/// or cancelled: what a restart by filter left alone. Returns (id, state,
/// unique_key, holder, ended dependency's id and state), oldest first.
pub(super) fn held_back(states: &[JobState]) -> String {
    format!(
        "SELECT id, state, unique_key, holder, ended_id, ended_state FROM (
             SELECT seq, id, state, unique_key, {KEY_HOLDER} AS holder,
                 CASE WHEN {ended} THEN {ended_id} END AS ended_id,
                 CASE WHEN {ended} THEN {ended_state} END AS ended_state
             FROM jobs WHERE +state IN ({}) AND finished_at < ?1
         ) WHERE holder IS NOT NULL OR ended_id IS NOT NULL ORDER BY seq",
        crate::store::selection::sql_states(states),
        ended = crate::store::deps::dependency_ended!(),
        ended_id = crate::store::deps::ended_dependency!("id"),
        ended_state = crate::store::deps::ended_dependency!("state"),
    )
}

/// The columns a `replace` copies from the new job onto its waiting holder.
pub(super) struct Replacement<'a> {
    pub command: &'a str,
    pub priority: i64,
    pub run_at: i64,
    pub max_retries: u32,
    pub timeout_seconds: u32,
    pub env: Option<String>,
    pub env_file: Option<&'a str>,
    pub cwd: Option<&'a str>,
    pub queue: &'a str,
    pub now: i64,
}

/// Before a job with `unique` is inserted: `None` when no unfinished job
/// holds its key (insert it), else what its policy made of the holder.
pub(super) fn meet_holder(
    tx: &Transaction,
    unique: &Unique,
    new: &Replacement,
) -> Result<Option<Enqueued>, TxError> {
    let holder: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT id, state FROM jobs
             WHERE unique_key = ?1 AND unique_key IS NOT NULL
               AND (state = 'pending' OR state = 'processing' OR state = 'failed')",
        )?
        .query_row([unique.key.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((holder, state)) = holder else {
        return Ok(None);
    };
    let key = unique.key.as_str();
    let outcome = match unique.on_duplicate {
        OnDuplicate::Reject => return Err(Error::Conflict(key_held(key, &holder, false)).into()),
        OnDuplicate::Skip => EnqueueOutcome::Existing,
        OnDuplicate::Replace if state == "processing" => {
            return Err(Error::Conflict(key_held(key, &holder, true)).into());
        }
        OnDuplicate::Replace => {
            // A new submission: pending, with the new job's retry budget
            // (no failures, no last error); its attempt history stays.
            tx.prepare_cached(
                "UPDATE jobs SET command = ?2, priority = ?3, run_at = ?4, max_retries = ?5,
                     timeout_seconds = ?6, env = ?7, env_file = ?8, cwd = ?9, updated_at = ?10,
                     queue = ?11, state = 'pending', failures = 0, last_error = NULL
                 WHERE id = ?1 AND (state = 'pending' OR state = 'failed')",
            )?
            .execute(params![
                holder,
                new.command,
                new.priority,
                new.run_at,
                new.max_retries,
                new.timeout_seconds,
                new.env,
                new.env_file,
                new.cwd,
                new.now,
                new.queue,
            ])?;
            EnqueueOutcome::Replaced
        }
    };
    Ok(Some(Enqueued {
        id: holder,
        outcome,
    }))
}

/// Why an insert of job `id` (input `line` in a batch, key `key`) was
/// refused, told apart by the constraint SQLite names: the id is taken, the
/// key is held, or something else (a CHECK: a bug, reported as the
/// database's error).
pub(super) fn insert_refusal(
    e: rusqlite::Error,
    id: &JobId,
    line: Option<usize>,
    key: Option<&str>,
) -> TxError {
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, Some(message))
            if f.code == ErrorCode::ConstraintViolation =>
        {
            message
        }
        _ => return e.into(),
    };
    if message.ends_with("jobs.id") {
        return crate::store::duplicate_id(id, line).into();
    }
    match key {
        Some(key) if message.ends_with("jobs.unique_key") => Error::Conflict(format!(
            "unique key '{}' is held by an unfinished job",
            crate::domain::echo::shown(key)
        ))
        .into(),
        _ => e.into(),
    }
}
