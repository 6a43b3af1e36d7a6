//! The `schedules` table on SQLite. One writer at a time, so the fallback's
//! compare-and-set (`… WHERE next_elapse_at = :seen`) is decided by the
//! write lock: of two workers that saw one elapse, the second changes
//! nothing and enqueues nothing.

use super::{SqliteStore, TxError, enqueue_in};
use crate::domain::schedule::Overlap;
use crate::error::Result;
use crate::store::schedules::{
    DueRow, FireOutcome, Fired, LIST_SQL, NEVER, NewSchedule, ScheduleRow, StoredRow, elapse_job,
    fire_outcome, no_such_schedule, overlap_of, row_failed, schedule_exists,
};
use crate::store::{JobDefaults, from_millis, to_millis};
use jiff::Timestamp;
use rusqlite::{ErrorCode, OptionalExtension, Row, params};
use std::time::Duration;

fn row_from(r: &Row) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        name: r.get(0)?,
        on_calendar: r.get(1)?,
        time_zone: r.get(2)?,
        job: r.get(3)?,
        overlap: r.get(4)?,
        persistent: r.get(5)?,
        randomized_delay_ms: r.get(6)?,
        driver: r.get(7)?,
        host: r.get(8)?,
        managed: r.get(9)?,
        next_elapse_at: r.get(10)?,
        last_job_id: r.get(11)?,
        last_job_state: r.get(12)?,
        last_fired_at: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
    })
}

/// Enqueues `job` for schedule `name` by its overlap policy (the job's
/// unique key) and marks a new job as the schedule's, in the caller's
/// transaction.
fn enqueue_for(
    tx: &rusqlite::Transaction,
    name: &str,
    overlap: Overlap,
    job: crate::domain::NewJob,
    defaults: &JobDefaults,
    now: Timestamp,
) -> Result<FireOutcome, TxError> {
    let key = job.unique.as_ref().map(|u| u.key.to_string());
    let enqueued = match enqueue_in(tx, &[(1, job)], defaults, now) {
        Ok(mut enqueued) => Ok(enqueued.remove(0)),
        Err(TxError::App(e)) => Err(e),
        Err(sql) => return Err(sql),
    };
    let holder = || {
        tx.prepare_cached(
            "SELECT id FROM jobs WHERE unique_key = ?1
               AND (state = 'pending' OR state = 'processing' OR state = 'failed')",
        )
        .and_then(|mut stmt| stmt.query_row([&key], |r| r.get(0)).optional())
        .map_err(|e| crate::error::Error::Invalid(format!("cannot read the key's holder: {e}")))
    };
    let outcome = fire_outcome(enqueued, overlap, holder)?;
    if let FireOutcome::Enqueued { id } = &outcome {
        tx.prepare_cached("UPDATE jobs SET schedule = ?1 WHERE id = ?2")?
            .execute(params![name, id])?;
    }
    Ok(outcome)
}

/// Records the job that stands for a fire.
fn record_fire(
    tx: &rusqlite::Transaction,
    name: &str,
    outcome: &FireOutcome,
    now: Timestamp,
) -> Result<(), TxError> {
    tx.prepare_cached(
        "UPDATE schedules SET last_job_id = COALESCE(?2, last_job_id), last_fired_at = ?3, updated_at = ?3
         WHERE name = ?1",
    )?
    .execute(params![name, outcome.job_id(), to_millis(now)])?;
    Ok(())
}

impl SqliteStore {
    pub(super) fn add_schedule_row(&mut self, schedule: &NewSchedule, replace: bool) -> Result<()> {
        let now = self.clock();
        let name = schedule.name.as_str();
        let computed = schedule.computed_columns(now)?;
        self.write(|tx| {
            let sql = if replace {
                "INSERT INTO schedules (name, on_calendar, time_zone, job, overlap, persistent, randomized_delay_ms,
                     driver, host, managed, next_elapse_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
                 ON CONFLICT (name) DO UPDATE SET on_calendar = excluded.on_calendar, time_zone = excluded.time_zone,
                     job = excluded.job, overlap = excluded.overlap, persistent = excluded.persistent,
                     randomized_delay_ms = excluded.randomized_delay_ms, driver = excluded.driver, host = excluded.host,
                     managed = excluded.managed, next_elapse_at = excluded.next_elapse_at, updated_at = excluded.updated_at"
            } else {
                "INSERT INTO schedules (name, on_calendar, time_zone, job, overlap, persistent, randomized_delay_ms,
                     driver, host, managed, next_elapse_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)"
            };
            let inserted = tx.prepare_cached(sql)?.execute(params![
                name,
                computed.on_calendar,
                schedule.time_zone,
                computed.job,
                schedule.overlap.as_str(),
                schedule.persistent,
                computed.randomized_delay_ms,
                schedule.driver.as_str(),
                schedule.host,
                schedule.managed,
                computed.next_elapse_at,
                to_millis(now),
            ]);
            match inserted {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == ErrorCode::ConstraintViolation =>
                {
                    Err(TxError::App(schedule_exists(name)))
                }
                other => {
                    other?;
                    Ok(())
                }
            }
        })
    }

    pub(super) fn remove_schedule_row(&mut self, name: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
                .execute([name])?
                > 0)
        })
    }

    pub(super) fn schedule_rows(&mut self) -> Result<Vec<ScheduleRow>> {
        self.read_all(LIST_SQL, [], row_from)?
            .into_iter()
            .map(StoredRow::decode)
            .collect()
    }

    pub(super) fn fire_now(&mut self, name: &str, defaults: &JobDefaults) -> Result<Fired> {
        let now = self.clock();
        self.write(|tx| {
            let row: Option<(String, String)> = tx
                .prepare_cached("SELECT job, overlap FROM schedules WHERE name = ?1")?
                .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (job, overlap) = row.ok_or_else(|| TxError::App(no_such_schedule(name)))?;
            let overlap = overlap_of(&overlap)?;
            let job = elapse_job(name, &job, overlap, None)?;
            let outcome = enqueue_for(tx, name, overlap, job, defaults, now)?;
            record_fire(tx, name, &outcome, now)?;
            Ok(Fired {
                schedule: name.to_owned(),
                elapse: None,
                outcome,
            })
        })
    }

    pub(super) fn fire_due(
        &mut self,
        catch_up_after: Duration,
        defaults: &JobDefaults,
    ) -> Result<Vec<Fired>> {
        let now = self.clock();
        let due: Vec<DueRow> = self.read_all(
            "SELECT name, next_elapse_at, on_calendar, time_zone, randomized_delay_ms, persistent, job, overlap
             FROM schedules WHERE driver = 'workers' AND next_elapse_at <= ?1",
            [to_millis(now)],
            |r| {
                Ok(DueRow {
                    name: r.get(0)?,
                    seen: r.get(1)?,
                    on_calendar: r.get(2)?,
                    time_zone: r.get(3)?,
                    randomized_delay_ms: r.get(4)?,
                    persistent: r.get(5)?,
                    job: r.get(6)?,
                    overlap: r.get(7)?,
                })
            },
        )?;
        let mut fired = Vec::new();
        for row in due {
            let plan = row.plan(now, catch_up_after);
            let outcome = self.write(|tx| {
                let advanced = tx
                    .prepare_cached(
                        "UPDATE schedules SET next_elapse_at = ?2, updated_at = ?3
                         WHERE name = ?1 AND next_elapse_at = ?4",
                    )?
                    .execute(params![row.name, plan.next, to_millis(now), row.seen])?;
                if advanced == 0 {
                    return Ok(None); // another worker took this elapse
                }
                let Some(job) = plan.job.clone() else {
                    return Ok(Some(FireOutcome::Missed));
                };
                let outcome = enqueue_for(tx, &row.name, plan.overlap, job, defaults, now)?;
                record_fire(tx, &row.name, &outcome, now)?;
                Ok(Some(outcome))
            });
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    row_failed(&row.name, e)?;
                    None
                }
            };
            if let Some(outcome) = outcome {
                fired.push(Fired {
                    schedule: row.name.clone(),
                    elapse: Some(from_millis(row.seen)),
                    outcome,
                });
            }
        }
        Ok(fired)
    }

    pub(super) fn next_schedule_due_in(&mut self) -> Result<Option<Duration>> {
        let now = to_millis(self.clock());
        let next: Option<i64> = self.read_one(
            "SELECT MIN(next_elapse_at) FROM schedules WHERE driver = 'workers' AND next_elapse_at < ?1",
            [NEVER],
            |r| r.get(0),
        )?;
        Ok(next.map(|at| Duration::from_millis(at.saturating_sub(now).max(0) as u64)))
    }
}

/// `copy`: schedule rows inserted as they were, every column.
pub(super) fn import_rows(
    tx: &rusqlite::Transaction,
    rows: &[ScheduleRow],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO schedules (name, on_calendar, time_zone, job, overlap, persistent, randomized_delay_ms,
             driver, host, managed, next_elapse_at, last_job_id, last_fired_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for row in rows {
        let c = row.columns();
        insert.execute(params![
            c.name,
            c.on_calendar,
            c.time_zone,
            c.job,
            c.overlap,
            c.persistent,
            c.randomized_delay_ms,
            c.driver,
            c.host,
            c.managed,
            c.next_elapse_at,
            c.last_job_id,
            c.last_fired_at,
            c.created_at,
            c.updated_at,
        ])?;
    }
    Ok(())
}
