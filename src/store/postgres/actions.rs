//! Enqueueing, user actions (cancel, `dlq retry`, purge) and the workers
//! table. Every time is the database's (`queuectl_now_ms()`).

use super::listen::notify_work;
use super::session::{Sql, TxResult};
use crate::domain::job::Schedule;
use crate::domain::{JobId, JobState, NewJob};
use crate::error::Error;
use crate::store::{
    CancelResult, JobDefaults, PURGE_CHUNK, WorkerInfo, check_retryable, duplicate_id, encode_env,
    millis, nothing_to_cancel, parse_state, to_millis,
};
use jiff::Timestamp;
use postgres::GenericClient;
use postgres::error::SqlState;
use std::collections::HashSet;
use std::time::Duration;

/// Inserts all `jobs` in one statement (all or none) that also notifies
/// idle workers: a delayed job may fall due before their planned wake-up.
pub(super) fn enqueue<C: GenericClient>(
    sql: &mut Sql<C>,
    jobs: &[(usize, NewJob)],
    defaults: &JobDefaults,
) -> TxResult<Vec<JobId>> {
    // Ids only need to be unique: this host's clock is fine for them.
    let now = Timestamp::now();
    let ids: Vec<JobId> = jobs
        .iter()
        .map(|(_, job)| job.id.clone().unwrap_or_else(|| JobId::generate(now)))
        .collect();
    let (mut run_at, mut delay_ms) = (Vec::new(), Vec::new());
    for (_, job) in jobs {
        let (at, delay) = match job.schedule {
            Schedule::Now => (None, Some(0)),
            Schedule::At(at) => (Some(to_millis(at)), None),
            // Capped so that now + delay stays a valid time.
            Schedule::After(delay) => (None, Some(millis(delay).min(to_millis(Timestamp::MAX)))),
        };
        run_at.push(at);
        delay_ms.push(delay);
    }
    let id_texts: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    let commands: Vec<&str> = jobs.iter().map(|(_, j)| j.command.as_str()).collect();
    let priorities: Vec<i64> = jobs.iter().map(|(_, j)| j.priority).collect();
    let max_retries: Vec<i64> = jobs
        .iter()
        .map(|(_, j)| i64::from(j.max_retries.unwrap_or(defaults.max_retries)))
        .collect();
    let timeouts: Vec<i64> = jobs
        .iter()
        .map(|(_, j)| i64::from(j.timeout_seconds.unwrap_or(defaults.timeout_seconds)))
        .collect();
    let envs: Vec<Option<String>> = jobs.iter().map(|(_, j)| encode_env(&j.env)).collect();
    let cwds: Vec<Option<&str>> = jobs.iter().map(|(_, j)| j.cwd.as_deref()).collect();
    let env_files: Vec<Option<&str>> = jobs.iter().map(|(_, j)| j.env_file.as_deref()).collect();
    let inserted = sql.query(
        concat!(
            "WITH added AS (
                 INSERT INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds,
                     env, cwd, created_at, updated_at, env_file)
                 SELECT id, command, 'pending', priority,
                     COALESCE(run_at, LEAST(queuectl_now_ms() + delay_ms, $12)),
                     max_retries, timeout_seconds, env, cwd, queuectl_now_ms(), queuectl_now_ms(), env_file
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[])
                     WITH ORDINALITY AS d(id, command, priority, run_at, delay_ms, max_retries,
                         timeout_seconds, env, cwd, env_file, line)
                 ORDER BY line
                 RETURNING 1
             ), woken AS (",
            notify_work!(),
            " WHERE $11)
             SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM woken)"
        ),
        &[
            &id_texts,
            &commands,
            &priorities,
            &run_at,
            &delay_ms,
            &max_retries,
            &timeouts,
            &envs,
            &cwds,
            &env_files,
            &!jobs.is_empty(),
            &to_millis(Timestamp::MAX),
        ],
    );
    match inserted {
        Ok(_) => Ok(ids),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(first_duplicate(sql, jobs, &ids)?.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Which job of a batch the database refused as a duplicate: the first
/// whose id exists or appeared earlier in the batch.
fn first_duplicate<C: GenericClient>(
    sql: &mut Sql<C>,
    jobs: &[(usize, NewJob)],
    ids: &[JobId],
) -> TxResult<Error> {
    let texts: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    let existing: HashSet<String> = sql
        .query("SELECT id FROM jobs WHERE id = ANY($1)", &[&texts])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut seen = HashSet::new();
    let batch = jobs.len() > 1;
    for ((line, _), id) in jobs.iter().zip(ids) {
        if existing.contains(id.as_str()) || !seen.insert(id.as_str()) {
            return Ok(duplicate_id(id, batch.then_some(*line)));
        }
    }
    // Gone again by now (purged in between): still a duplicate at the time.
    Ok(duplicate_id(&ids[0], batch.then_some(jobs[0].0)))
}

pub(super) fn cancel(sql: &mut Sql<postgres::Transaction>, id: &str) -> TxResult<CancelResult> {
    let row = sql.query_opt(
        "SELECT seq, state, worker FROM jobs WHERE id = $1 FOR UPDATE",
        &[&id],
    )?;
    let Some(row) = row else {
        return Err(Error::NotFound(id.to_owned()).into());
    };
    let seq: i64 = row.try_get(0)?;
    match parse_state(row.try_get(1)?)? {
        JobState::Pending | JobState::Failed => {
            sql.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = queuectl_now_ms(),
                     updated_at = queuectl_now_ms(), last_error = COALESCE(last_error, 'cancelled by user')
                 WHERE seq = $1",
                &[&seq],
            )?;
            Ok(CancelResult::Cancelled)
        }
        JobState::Processing => {
            sql.execute(
                "UPDATE jobs SET cancel_requested = true, updated_at = queuectl_now_ms() WHERE seq = $1",
                &[&seq],
            )?;
            Ok(CancelResult::Requested {
                worker: row.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        }
        done => Err(nothing_to_cancel(id, done).into()),
    }
}

/// Moves dead jobs back to pending (and wakes idle workers for them).
pub(super) fn retry_dead(
    sql: &mut Sql<postgres::Transaction>,
    id: Option<&str>,
) -> TxResult<Vec<String>> {
    if let Some(id) = id {
        let row = sql.query_opt("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", &[&id])?;
        let state = match row {
            Some(row) => Some(parse_state(row.try_get(0)?)?),
            None => None,
        };
        check_retryable(id, state)?;
    }
    let rows = sql.query(
        concat!(
            "WITH moved AS (
                 UPDATE jobs SET state = 'pending', failures = 0, run_at = queuectl_now_ms(),
                     updated_at = queuectl_now_ms(), finished_at = NULL
                 WHERE state = 'dead' AND ($1::text IS NULL OR id = $1) RETURNING id
             ), woken AS (",
            notify_work!(),
            " WHERE EXISTS (SELECT 1 FROM moved))
             SELECT id, (SELECT count(*) FROM woken) FROM moved"
        ),
        &[&id],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// One purge transaction: up to [`PURGE_CHUNK`] jobs finished more than
/// `older_than` ago, skipping rows another purger holds.
pub(super) fn purge_chunk<C: GenericClient>(
    sql: &mut Sql<C>,
    older_than: Duration,
) -> TxResult<Vec<String>> {
    let rows = sql.query(
        "DELETE FROM jobs WHERE seq IN (
             SELECT seq FROM jobs
             WHERE finished_at IS NOT NULL AND finished_at < queuectl_now_ms() - $1
             LIMIT $2 FOR UPDATE SKIP LOCKED
         ) RETURNING id",
        &[&millis(older_than), &PURGE_CHUNK],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub(super) fn register_worker<C: GenericClient>(
    sql: &mut Sql<C>,
    worker: &WorkerInfo,
) -> TxResult<()> {
    sql.execute(
        "INSERT INTO workers (name, pid, host, started_at, heartbeat_at, status, unit, slots)
         VALUES ($1, $2, $3, queuectl_now_ms(), queuectl_now_ms(), $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, host = excluded.host,
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
             status = excluded.status, unit = excluded.unit, slots = excluded.slots",
        &[
            &worker.name,
            &i64::from(worker.pid),
            &worker.host,
            &worker.status,
            &worker.unit,
            &i64::from(worker.slots),
        ],
    )?;
    Ok(())
}

pub(super) fn worker_heartbeat<C: GenericClient>(
    sql: &mut Sql<C>,
    name: &str,
    status: &str,
) -> TxResult<()> {
    sql.execute(
        "UPDATE workers SET heartbeat_at = queuectl_now_ms(), status = $2 WHERE name = $1",
        &[&name, &status],
    )?;
    Ok(())
}

pub(super) fn unregister_worker<C: GenericClient>(sql: &mut Sql<C>, name: &str) -> TxResult<()> {
    sql.execute("DELETE FROM workers WHERE name = $1", &[&name])?;
    Ok(())
}

pub(super) fn forget_silent_workers<C: GenericClient>(
    sql: &mut Sql<C>,
    silent_for: Duration,
) -> TxResult<usize> {
    let n = sql.execute(
        "DELETE FROM workers WHERE heartbeat_at < queuectl_now_ms() - $1",
        &[&millis(silent_for)],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
