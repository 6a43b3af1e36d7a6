//! Reading rows into the store's types. Column lists are macros so that
//! every statement stays a `&'static str` (prepared once per connection).

use super::session::{TxError, TxResult};
use crate::domain::AttemptOutcome;
use crate::error::Error;
use crate::output::Destination;
use crate::store::{Attempt, Job, decode_env, from_millis, parse_state};
use postgres::Row;

/// Columns of a full job row, in the order [`job`] reads them.
macro_rules! job_columns {
    () => {
        "j.id, j.command, j.state, j.priority, j.run_at, j.max_retries, j.timeout_seconds, j.env, j.cwd, \
         j.attempts, j.failures, j.created_at, j.updated_at, j.finished_at, j.worker, j.lease_expires_at, \
         j.cancel_requested, j.last_error, j.env_file, j.queue, j.deps_left, j.unique_key, j.schedule"
    };
}
pub(super) use job_columns;

/// Columns of an attempt row, in the order [`attempt`] reads them.
macro_rules! attempt_columns {
    () => {
        "a.number, a.worker, a.started_at, a.finished_at, a.outcome, a.exit_code, a.signal, a.error, \
         a.output, a.host, a.cgroup, a.output_truncated, a.output_tail"
    };
}
pub(super) use attempt_columns;

/// A counter stored as bigint that the store's types keep as `u32`.
pub(super) fn count(row: &Row, i: usize) -> TxResult<u32> {
    let value: i64 = row.try_get(i)?;
    u32::try_from(value).map_err(|_| {
        TxError::App(Error::Invalid(format!(
            "corrupt row: {} = {value}",
            row.columns()[i].name()
        )))
    })
}

fn millis_at(row: &Row, i: usize) -> TxResult<jiff::Timestamp> {
    Ok(from_millis(row.try_get(i)?))
}

fn optional_millis_at(row: &Row, i: usize) -> TxResult<Option<jiff::Timestamp>> {
    Ok(row.try_get::<_, Option<i64>>(i)?.map(from_millis))
}

pub(super) fn job(row: &Row) -> TxResult<Job> {
    Ok(Job {
        id: row.try_get(0)?,
        command: row.try_get(1)?,
        state: parse_state(row.try_get(2)?)?,
        priority: row.try_get(3)?,
        run_at: millis_at(row, 4)?,
        max_retries: count(row, 5)?,
        timeout_seconds: count(row, 6)?,
        env: decode_env(row.try_get(7)?),
        cwd: row.try_get(8)?,
        attempts: count(row, 9)?,
        failures: count(row, 10)?,
        created_at: millis_at(row, 11)?,
        updated_at: millis_at(row, 12)?,
        finished_at: optional_millis_at(row, 13)?,
        worker: row.try_get(14)?,
        lease_expires_at: optional_millis_at(row, 15)?,
        cancel_requested: row.try_get(16)?,
        last_error: row.try_get(17)?,
        env_file: row.try_get(18)?,
        queue: row.try_get(19)?,
        deps_left: count(row, 20)?,
        unique_key: row.try_get(21)?,
        schedule: row.try_get(22)?,
    })
}

pub(super) fn attempt(row: &Row) -> TxResult<Attempt> {
    let corrupt =
        |what: String| TxError::App(Error::Invalid(format!("corrupt attempt row: {what}")));
    let outcome: Option<String> = row.try_get(4)?;
    let outcome = match outcome {
        None => None,
        Some(text) => {
            Some(AttemptOutcome::parse(&text).ok_or_else(|| corrupt(format!("outcome '{text}'")))?)
        }
    };
    let output: String = row.try_get(8)?;
    Ok(Attempt {
        number: count(row, 0)?,
        worker: row.try_get(1)?,
        started_at: millis_at(row, 2)?,
        finished_at: optional_millis_at(row, 3)?,
        outcome,
        exit_code: row.try_get(5)?,
        signal: row.try_get(6)?,
        error: row.try_get(7)?,
        output: Destination::parse(&output).ok_or_else(|| corrupt(format!("output '{output}'")))?,
        host: row.try_get(9)?,
        cgroup: row.try_get(10)?,
        output_truncated: row.try_get(11)?,
        output_tail: row.try_get(12)?,
    })
}
