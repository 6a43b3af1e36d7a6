//! The `schedules` table on PostgreSQL, shared by every host. The
//! fallback's compare-and-set is an `UPDATE … WHERE next_elapse_at =
//! :seen`: a second worker's update of the same row waits for the first's
//! row lock, then re-checks the condition on the new row version (READ
//! COMMITTED) and matches nothing, so only the first enqueues, in the same
//! transaction as its update.

use super::session::{Sql, TxError, TxResult};
use super::unique;
use crate::domain::NewJob;
use crate::domain::schedule::Overlap;
use crate::store::schedules::{
    DueRow, FireOutcome, Fired, LIST_SQL, NewSchedule, ScheduleRow, StoredRow, elapse_job,
    fire_outcome, no_such_schedule, overlap_of, schedule_exists,
};
use crate::store::{JobDefaults, from_millis};
use postgres::error::SqlState;
use postgres::{GenericClient, Row};
use std::time::Duration;

fn stored(r: &Row) -> Result<StoredRow, postgres::Error> {
    Ok(StoredRow {
        name: r.try_get(0)?,
        on_calendar: r.try_get(1)?,
        time_zone: r.try_get(2)?,
        job: r.try_get(3)?,
        overlap: r.try_get(4)?,
        persistent: r.try_get(5)?,
        randomized_delay_ms: r.try_get(6)?,
        driver: r.try_get(7)?,
        host: r.try_get(8)?,
        managed: r.try_get(9)?,
        next_elapse_at: r.try_get(10)?,
        last_job_id: r.try_get(11)?,
        last_job_state: r.try_get(12)?,
        last_fired_at: r.try_get(13)?,
        created_at: r.try_get(14)?,
        updated_at: r.try_get(15)?,
    })
}

fn now_ms<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<i64> {
    Ok(sql.query_one("SELECT queuectl_now_ms()", &[])?.try_get(0)?)
}

pub(super) fn add(
    sql: &mut Sql<postgres::Transaction>,
    schedule: &NewSchedule,
    replace: bool,
) -> TxResult<()> {
    let name = schedule.name.as_str();
    let computed = schedule.computed_columns(from_millis(now_ms(sql)?))?;
    let params: [&(dyn postgres::types::ToSql + Sync); 11] = [
        &name,
        &computed.on_calendar,
        &schedule.time_zone,
        &computed.job,
        &schedule.overlap.as_str(),
        &schedule.persistent,
        &computed.randomized_delay_ms,
        &schedule.driver.as_str(),
        &schedule.host,
        &schedule.managed,
        &computed.next_elapse_at,
    ];
    let inserted = if replace {
        sql.execute(
            "INSERT INTO schedules (name, on_calendar, time_zone, job, overlap, persistent, randomized_delay_ms,
                 driver, host, managed, next_elapse_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, queuectl_now_ms(), queuectl_now_ms())
             ON CONFLICT (name) DO UPDATE SET on_calendar = excluded.on_calendar, time_zone = excluded.time_zone,
                 job = excluded.job, overlap = excluded.overlap, persistent = excluded.persistent,
                 randomized_delay_ms = excluded.randomized_delay_ms, driver = excluded.driver, host = excluded.host,
                 managed = excluded.managed, next_elapse_at = excluded.next_elapse_at, updated_at = excluded.updated_at",
            &params,
        )
    } else {
        sql.execute(
            "INSERT INTO schedules (name, on_calendar, time_zone, job, overlap, persistent, randomized_delay_ms,
                 driver, host, managed, next_elapse_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, queuectl_now_ms(), queuectl_now_ms())",
            &params,
        )
    };
    match inserted {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(TxError::App(schedule_exists(name)))
        }
        other => {
            other?;
            Ok(())
        }
    }
}

pub(super) fn remove<C: GenericClient>(sql: &mut Sql<C>, name: &str) -> TxResult<bool> {
    Ok(sql.execute("DELETE FROM schedules WHERE name = $1", &[&name])? > 0)
}

pub(super) fn list<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<Vec<ScheduleRow>> {
    sql.query(LIST_SQL, &[])?
        .iter()
        .map(|r| Ok(stored(r)?.decode()?))
        .collect()
}

/// Enqueues `job` for schedule `name` by its overlap policy (the job's
/// unique key) and marks a new job as the schedule's, in the caller's
/// transaction.
fn enqueue_for(
    sql: &mut Sql<postgres::Transaction>,
    name: &str,
    overlap: Overlap,
    job: NewJob,
    defaults: &JobDefaults,
) -> TxResult<FireOutcome> {
    let key = job.unique.as_ref().map(|u| u.key.to_string());
    // A refusal (a running holder under `replace`) runs no failing
    // statement: the transaction goes on.
    let enqueued = match unique::enqueue_in(sql, &[(1, job)], defaults) {
        Ok(mut enqueued) => Ok(enqueued.remove(0)),
        Err(TxError::App(e)) => Err(e),
        Err(other) => return Err(other),
    };
    let holder_of = |sql: &mut Sql<postgres::Transaction>| -> TxResult<Option<String>> {
        let row = sql.query_opt(
            "SELECT id FROM jobs WHERE unique_key = $1 AND state IN ('pending', 'processing', 'failed')",
            &[&key],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    };
    let holder = match (&enqueued, overlap) {
        (Err(crate::error::Error::Conflict(_)), Overlap::Replace) => holder_of(sql)?,
        _ => None,
    };
    let outcome = fire_outcome(enqueued, overlap, || Ok(holder))?;
    if let FireOutcome::Enqueued { id } = &outcome {
        sql.execute("UPDATE jobs SET schedule = $1 WHERE id = $2", &[&name, id])?;
    }
    Ok(outcome)
}

/// Records the job that stands for a fire.
fn record_fire<C: GenericClient>(
    sql: &mut Sql<C>,
    name: &str,
    outcome: &FireOutcome,
) -> TxResult<()> {
    sql.execute(
        "UPDATE schedules SET last_job_id = COALESCE($2, last_job_id), last_fired_at = queuectl_now_ms(),
             updated_at = queuectl_now_ms()
         WHERE name = $1",
        &[&name, &outcome.job_id()],
    )?;
    Ok(())
}

pub(super) fn fire_now(
    sql: &mut Sql<postgres::Transaction>,
    name: &str,
    defaults: &JobDefaults,
) -> TxResult<Fired> {
    let row = sql
        .query_opt(
            "SELECT job, overlap FROM schedules WHERE name = $1",
            &[&name],
        )?
        .ok_or_else(|| TxError::App(no_such_schedule(name)))?;
    let (job, overlap): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let overlap = overlap_of(&overlap)?;
    let job = elapse_job(name, &job, overlap, None)?;
    let outcome = enqueue_for(sql, name, overlap, job, defaults)?;
    record_fire(sql, name, &outcome)?;
    Ok(Fired {
        schedule: name.to_owned(),
        elapse: None,
        outcome,
    })
}

/// The workers-driven schedules due now, and the database's now.
pub(super) fn due<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<(Vec<DueRow>, i64)> {
    let now = now_ms(sql)?;
    let rows = sql
        .query(
            "SELECT name, next_elapse_at, on_calendar, time_zone, randomized_delay_ms, persistent, job, overlap
             FROM schedules WHERE driver = 'workers' AND next_elapse_at <= $1",
            &[&now],
        )?
        .iter()
        .map(|r| {
            Ok(DueRow {
                name: r.try_get(0)?,
                seen: r.try_get(1)?,
                on_calendar: r.try_get(2)?,
                time_zone: r.try_get(3)?,
                randomized_delay_ms: r.try_get(4)?,
                persistent: r.try_get(5)?,
                job: r.try_get(6)?,
                overlap: r.try_get(7)?,
            })
        })
        .collect::<TxResult<Vec<_>>>()?;
    Ok((rows, now))
}

/// One due row's fire: the compare-and-set, then (only if it changed the
/// row) the enqueue, in the caller's transaction.
pub(super) fn fire_due_row(
    sql: &mut Sql<postgres::Transaction>,
    row: &DueRow,
    now: i64,
    catch_up_after: Duration,
    defaults: &JobDefaults,
) -> TxResult<Option<Fired>> {
    let plan = row.plan(from_millis(now), catch_up_after);
    let advanced = sql.execute(
        "UPDATE schedules SET next_elapse_at = $2, updated_at = queuectl_now_ms()
         WHERE name = $1 AND next_elapse_at = $3",
        &[&row.name, &plan.next, &row.seen],
    )?;
    if advanced == 0 {
        return Ok(None); // another worker took this elapse
    }
    let outcome = match plan.job {
        None => FireOutcome::Missed,
        Some(job) => {
            let outcome = enqueue_for(sql, &row.name, plan.overlap, job, defaults)?;
            record_fire(sql, &row.name, &outcome)?;
            outcome
        }
    };
    Ok(Some(Fired {
        schedule: row.name.clone(),
        elapse: Some(from_millis(row.seen)),
        outcome,
    }))
}

pub(super) fn next_due_in<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<Option<Duration>> {
    let row = sql.query_one(
        "SELECT MIN(next_elapse_at) - queuectl_now_ms() FROM schedules
         WHERE driver = 'workers' AND next_elapse_at < $1",
        &[&crate::store::schedules::NEVER],
    )?;
    let left: Option<i64> = row.try_get(0)?;
    Ok(left.map(|ms| Duration::from_millis(ms.max(0) as u64)))
}
