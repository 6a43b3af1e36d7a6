//! Enqueueing, user actions (cancel, restart, `dlq retry`, purge) and the workers
//! table. Every time is the database's (`queuectl_now_ms()`).

use super::listen::notify_work;
use super::session::{Sql, TxResult};
use super::unique::{key_free, key_holder, one_per_key, retrying_key_races};
use crate::domain::job::Schedule;
use crate::domain::{JobEdit, JobId, JobState, NewJob};
use crate::error::Error;
use crate::store::selection::{Acted, BulkAction, CHUNK, Found, IdsChunk};
use crate::store::{
    Job, JobDefaults, WorkerInfo, duplicate_id, encode_env, millis, not_editable, parse_state,
    to_millis,
};
use jiff::Timestamp;
use postgres::GenericClient;
use std::collections::HashSet;
use std::time::Duration;

/// Inserts all `jobs`, none with a unique key (`unique.rs` takes those), in
/// one statement (all or none) that also notifies idle workers: a delayed
/// job may fall due before their planned wake-up.
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
        let (at, delay) = schedule_millis(job.schedule);
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
    let queues: Vec<&str> = jobs.iter().map(|(_, j)| j.queue.as_str()).collect();
    let inserted = sql.query(
        concat!(
            "WITH added AS (
                 INSERT INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds,
                     env, cwd, created_at, updated_at, env_file, queue)
                 SELECT id, command, 'pending', priority,
                     COALESCE(run_at, LEAST(queuectl_now_ms() + delay_ms, $12)),
                     max_retries, timeout_seconds, env, cwd, queuectl_now_ms(), queuectl_now_ms(), env_file,
                     queue
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], $13::text[])
                     WITH ORDINALITY AS d(id, command, priority, run_at, delay_ms, max_retries,
                         timeout_seconds, env, cwd, env_file, queue, line)
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
            &queues,
        ],
    );
    match inserted {
        Ok(_) => Ok(ids),
        Err(e) if super::unique::violated_unique(&e) == Some(super::unique::ID_CONSTRAINT) => {
            Err(first_duplicate(sql, jobs, &ids)?.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Changes a job while it is still waiting (a claim that locked it first
/// leaves it processing, and this changes nothing), waking idle workers.
pub(super) fn edit(
    sql: &mut Sql<postgres::Transaction>,
    id: &str,
    edit: &JobEdit,
) -> TxResult<Job> {
    let (at, delay) = match edit.schedule {
        None => (None, None),
        Some(schedule) => schedule_millis(schedule),
    };
    let timeout = edit.timeout_seconds.map(i64::from);
    let retries = edit.max_retries.map(i64::from);
    let row = sql.query_one(
        concat!(
            "WITH edited AS (
                 UPDATE jobs SET command = COALESCE($2, command), priority = COALESCE($3, priority),
                     run_at = COALESCE($4, CASE WHEN $5::bigint IS NOT NULL
                         THEN LEAST(queuectl_now_ms() + $5, $8) END, run_at),
                     max_retries = COALESCE($6, max_retries),
                     timeout_seconds = COALESCE($7, timeout_seconds), updated_at = queuectl_now_ms(),
                     queue = COALESCE($9, queue)
                 WHERE id = $1 AND state IN ('pending', 'failed') RETURNING seq
             ), woken AS (",
            notify_work!(),
            " WHERE EXISTS (SELECT 1 FROM edited))
             SELECT (SELECT count(*) FROM edited), (SELECT count(*) FROM woken)"
        ),
        &[
            &id,
            &edit.command,
            &edit.priority,
            &at,
            &delay,
            &retries,
            &timeout,
            &to_millis(Timestamp::MAX),
            &edit.queue.as_ref().map(|q| q.as_str()),
        ],
    )?;
    let edited: i64 = row.try_get(0)?;
    if edited == 0 {
        let row = sql.query_opt("SELECT state FROM jobs WHERE id = $1", &[&id])?;
        let state = match row {
            Some(row) => Some(parse_state(row.try_get(0)?)?),
            None => None,
        };
        return Err(not_editable(id, state).into());
    }
    super::reads::get(sql, id)
}

/// A schedule as the statements take it: an absolute time, or a delay from
/// the database's now (capped so that now + delay stays a valid time).
pub(super) fn schedule_millis(schedule: Schedule) -> (Option<i64>, Option<i64>) {
    match schedule {
        Schedule::Now => (None, Some(0)),
        Schedule::At(at) => (Some(to_millis(at)), None),
        Schedule::After(delay) => (None, Some(millis(delay).min(to_millis(Timestamp::MAX)))),
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

/// The end of a bulk statement: the jobs changed, and the wake-up.
macro_rules! done_and_woken {
    ($wake:literal) => {
        concat!(
            " RETURNING id, state, worker
             ), woken AS (",
            notify_work!(),
            " WHERE ",
            $wake,
            " AND EXISTS (SELECT 1 FROM done))
             SELECT id, state, worker, (SELECT count(*) FROM woken) FROM done"
        )
    };
}

/// An action's two statements: on named ids (`$1` ids, `$2` the states it
/// applies to) and on one chunk of a filter (`$1` states, `$2` the cutoff
/// time, `$3` the chunk size, `$4` the states it applies to). Each returns
/// the jobs changed (id, new state, worker) and wakes idle workers when
/// `$wake` and something changed. `$age` is the column a filter's age reads;
/// `$lock` how a chunk locks its rows.
macro_rules! bulk_statements {
    ($change:expr, age: $age:literal, lock: $lock:literal, wake: $wake:literal) => {
        BulkStatements {
            by_ids: concat!(
                "WITH done AS (",
                $change,
                " WHERE id = ANY($1) AND state = ANY($2)",
                done_and_woken!($wake)
            ),
            by_filter: concat!(
                "WITH done AS (",
                $change,
                " WHERE seq IN (
                     SELECT seq FROM jobs WHERE state = ANY($1) AND ",
                $age,
                " < $2 AND NOT (state = 'processing' AND cancel_requested)
                     LIMIT $3 ",
                $lock,
                ") AND state = ANY($4)",
                done_and_woken!($wake)
            ),
        }
    };
}

/// The statements of an action that puts finished jobs back to waiting:
/// as [`bulk_statements`], but each job's unique key must be free (no
/// unfinished job holds it), and of several chosen jobs of one key only the
/// newest is changed (the others then find it holding the key).
macro_rules! requeue_statements {
    ($change:expr, age: $age:literal, lock: $lock:literal) => {
        BulkStatements {
            by_ids: concat!(
                "WITH chosen AS (
                     SELECT seq, unique_key FROM jobs WHERE id = ANY($1) AND state = ANY($2) AND ",
                key_free!(),
                "), done AS (",
                $change,
                " WHERE seq IN (SELECT c.seq FROM chosen c WHERE ",
                one_per_key!(),
                ") AND state = ANY($2)",
                done_and_woken!("true")
            ),
            by_filter: concat!(
                "WITH chosen AS (
                     SELECT seq, unique_key FROM jobs WHERE state = ANY($1) AND ",
                $age,
                " < $2 AND NOT (state = 'processing' AND cancel_requested) AND ",
                key_free!(),
                " LIMIT $3 ",
                $lock,
                "), done AS (",
                $change,
                " WHERE seq IN (SELECT c.seq FROM chosen c WHERE ",
                one_per_key!(),
                ") AND state = ANY($4)",
                done_and_woken!("true")
            ),
        }
    };
}

pub(super) struct BulkStatements {
    pub by_ids: &'static str,
    pub by_filter: &'static str,
}

/// The statements of `action`. Purgers skip rows another purger holds; the
/// other actions wait for them (a job being claimed or finished is then
/// looked at again as it became).
pub(super) fn bulk_statements(action: BulkAction) -> BulkStatements {
    match action {
        BulkAction::Cancel => bulk_statements!(
            "UPDATE jobs SET
                 state = CASE state WHEN 'processing' THEN state ELSE 'cancelled' END,
                 cancel_requested = (state = 'processing'),
                 finished_at = CASE state WHEN 'processing' THEN finished_at ELSE queuectl_now_ms() END,
                 last_error = CASE state WHEN 'processing' THEN last_error
                     ELSE COALESCE(last_error, 'cancelled by user') END,
                 updated_at = queuectl_now_ms()",
            age: "created_at", lock: "FOR UPDATE", wake: "false"
        ),
        BulkAction::Restart | BulkAction::RetryDead => requeue_statements!(
            "UPDATE jobs SET state = 'pending', failures = 0, run_at = queuectl_now_ms(),
                 updated_at = queuectl_now_ms(), finished_at = NULL, cancel_requested = false",
            age: "finished_at", lock: "FOR UPDATE"
        ),
        BulkAction::Purge => bulk_statements!(
            "DELETE FROM jobs",
            age: "finished_at", lock: "FOR UPDATE SKIP LOCKED", wake: "false"
        ),
    }
}

fn acted(rows: &[postgres::Row]) -> TxResult<Vec<Acted>> {
    rows.iter()
        .map(|r| Ok(Acted::from_row(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// One transaction of an action on named `ids`: the jobs changed, and the
/// state of those found but left alone.
pub(super) fn act_on_ids(
    sql: &mut Sql<postgres::Transaction>,
    action: BulkAction,
    ids: &[String],
) -> TxResult<IdsChunk> {
    let applies = state_names(action.applies_to());
    let statement = bulk_statements(action).by_ids;
    let rows = retrying_key_races(sql, true, |sql| sql.query(statement, &[&ids, &applies]))?;
    let done = acted(&rows)?;
    let requeues = action.adds_work();
    let found = sql
        .query(
            concat!(
                "SELECT id, state, unique_key, CASE WHEN $2 THEN ",
                key_holder!(),
                " END FROM jobs WHERE id = ANY($1)"
            ),
            &[&ids, &requeues],
        )?
        .iter()
        .map(|r| {
            Ok(Found::from_row(
                r.try_get(0)?,
                parse_state(r.try_get(1)?)?,
                r.try_get(2)?,
                r.try_get(3)?,
            ))
        })
        .collect::<TxResult<_>>()?;
    Ok((done, found))
}

/// One chunk of an action on the jobs in `states` whose age column is at
/// or before `cutoff_ms`.
pub(super) fn act_on_filter<C: GenericClient>(
    sql: &mut Sql<C>,
    action: BulkAction,
    states: &[JobState],
    cutoff_ms: i64,
) -> TxResult<Vec<Acted>> {
    let chunk = CHUNK as i64;
    let (states, applies) = (state_names(states), state_names(action.applies_to()));
    let statement = bulk_statements(action).by_filter;
    let rows = retrying_key_races(sql, false, |sql| {
        sql.query(statement, &[&states, &cutoff_ms, &chunk, &applies])
    })?;
    acted(&rows)
}

fn state_names(states: &[JobState]) -> Vec<&'static str> {
    states.iter().map(|s| s.as_str()).collect()
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
