//! Enqueueing, user actions (cancel, restart, `dlq retry`, purge) and the workers
//! table. Every time is the database's (`queuectl_now_ms()`).

use super::deps;
use super::listen::notify_work;
use super::session::{Sql, TxResult};
use super::unique::{key_free, key_holder, one_per_key, retrying_key_races};
use crate::domain::job::Schedule;
use crate::domain::{JobEdit, JobId, JobState, NewJob};
use crate::error::Error;
use crate::store::deps::{BatchPlan, batch_ids, dependency_ended, ended_dependency};
use crate::store::selection::{Acted, BulkAction, CHUNK, FilterChunk, Found, IdsChunk};
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
/// A batch whose jobs wait for others (`after`) must run in a transaction:
/// it first locks the stored jobs it names, and records the edges after
/// the insert.
pub(super) fn enqueue<C: GenericClient>(
    sql: &mut Sql<C>,
    jobs: &[(usize, NewJob)],
    defaults: &JobDefaults,
) -> TxResult<Vec<JobId>> {
    // Ids only need to be unique: this host's clock is fine for them.
    let now = Timestamp::now();
    let ids = batch_ids(jobs, now);
    let plan = BatchPlan::new(jobs, &ids)?;
    let rows = plan.rows_locking(|stored| deps::lock_stored(sql, stored))?;
    // Inserted in dependency order (the order of the arrays).
    let order = &plan.order;
    let (mut run_at, mut delay_ms) = (Vec::new(), Vec::new());
    for &i in order {
        let (at, delay) = schedule_millis(jobs[i].1.schedule);
        run_at.push(at);
        delay_ms.push(delay);
    }
    let each = |f: &dyn Fn(usize) -> i64| -> Vec<i64> { order.iter().map(|&i| f(i)).collect() };
    let id_texts: Vec<&str> = order.iter().map(|&i| ids[i].as_str()).collect();
    let commands: Vec<&str> = order.iter().map(|&i| jobs[i].1.command.as_str()).collect();
    let priorities = each(&|i| jobs[i].1.priority);
    let max_retries = each(&|i| i64::from(jobs[i].1.max_retries.unwrap_or(defaults.max_retries)));
    let timeouts = each(&|i| {
        i64::from(
            jobs[i]
                .1
                .timeout_seconds
                .unwrap_or(defaults.timeout_seconds),
        )
    });
    let envs: Vec<Option<String>> = order.iter().map(|&i| encode_env(&jobs[i].1.env)).collect();
    let cwds: Vec<Option<&str>> = order.iter().map(|&i| jobs[i].1.cwd.as_deref()).collect();
    let env_files: Vec<Option<&str>> = order
        .iter()
        .map(|&i| jobs[i].1.env_file.as_deref())
        .collect();
    let states: Vec<&str> = order.iter().map(|&i| rows[i].state().as_str()).collect();
    let deps_left = each(&|i| i64::from(rows[i].deps_left));
    let dependents = each(&|i| i64::from(rows[i].dependents));
    let reasons: Vec<Option<&str>> = order.iter().map(|&i| rows[i].reason()).collect();
    let queues: Vec<&str> = order.iter().map(|&i| jobs[i].1.queue.as_str()).collect();
    let inserted = sql.query(
        concat!(
            "WITH added AS (
                 INSERT INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds,
                     env, cwd, created_at, updated_at, env_file, deps_left, dependents, finished_at, last_error,
                     queue)
                 SELECT id, command, state, priority,
                     COALESCE(run_at, LEAST(queuectl_now_ms() + delay_ms, $12)),
                     max_retries, timeout_seconds, env, cwd, queuectl_now_ms(), queuectl_now_ms(), env_file,
                     deps_left, dependents, CASE WHEN state = 'cancelled' THEN queuectl_now_ms() END, last_error,
                     queue
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[],
                     $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::text[])
                     WITH ORDINALITY AS d(id, command, priority, run_at, delay_ms, max_retries,
                         timeout_seconds, env, cwd, env_file, state, deps_left, dependents, last_error,
                         queue, line)
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
            &states,
            &deps_left,
            &dependents,
            &reasons,
            &queues,
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(e) if super::unique::violated_unique(&e) == Some(super::unique::ID_CONSTRAINT) => {
            return Err(first_duplicate(sql, jobs, &ids)?.into());
        }
        Err(e) => return Err(e.into()),
    }
    if plan.has_dependencies() {
        deps::link(sql, plan.edges(), &plan.cancelled(&rows))?;
    }
    Ok(ids)
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

/// An action's three statements. Two pick the jobs and lock them: named
/// ones (`$1` ids, `$2` the states it applies to) in seq order, or one
/// chunk of a filter (`$1` states, `$2` the cutoff time, `$3` the chunk
/// size; `$age` is the column a filter's age reads, `$lock` how a chunk
/// locks its rows), each returning (seq, state, dependents). The third
/// changes the jobs picked (`$1` their seqs, `$2` the states it applies
/// to), returning (id, new state, worker, seq, dependents), and wakes idle
/// workers when `$wake` and something changed. `free` is a condition a job
/// must meet when picked and when changed, `one` one the picked rows
/// (`chosen c`) must meet among themselves.
macro_rules! bulk_statements {
    ($change:expr, age: $age:literal, lock: $lock:literal, wake: $wake:literal,
     free: [$($free:tt)*], one: [$($one:tt)*]) => {
        BulkStatements {
            pick_ids: concat!(
                "WITH chosen AS (
                     SELECT seq, state, dependents, unique_key FROM jobs
                     WHERE id = ANY($1) AND state = ANY($2) AND ",
                $($free)*,
                " ORDER BY seq FOR UPDATE
                 ) SELECT c.seq, c.state, c.dependents FROM chosen c WHERE ",
                $($one)*
            ),
            pick_filter: concat!(
                "WITH chosen AS (
                     SELECT seq, state, dependents, unique_key FROM jobs WHERE state = ANY($1) AND ",
                $age,
                " < $2 AND NOT (state = 'processing' AND cancel_requested) AND ",
                $($free)*,
                " LIMIT $3 ",
                $lock,
                ") SELECT c.seq, c.state, c.dependents FROM chosen c WHERE ",
                $($one)*
            ),
            change: concat!(
                "WITH done AS (",
                $change,
                " WHERE seq = ANY($1) AND state = ANY($2) AND ",
                $($free)*,
                " RETURNING id, state, worker, seq, dependents
                 ), woken AS (",
                notify_work!(),
                " WHERE ",
                $wake,
                " AND EXISTS (SELECT 1 FROM done))
                 SELECT id, state, worker, seq, dependents, (SELECT count(*) FROM woken) FROM done"
            ),
        }
    };
}

pub(super) struct BulkStatements {
    pub pick_ids: &'static str,
    pub pick_filter: &'static str,
    pub change: &'static str,
}

/// The statements of `action`. Purgers skip rows another purger holds; the
/// other actions wait for them (a job being claimed or finished is then
/// looked at again as it became). The actions that put finished jobs back
/// to waiting need each job's unique key free (no unfinished job holds it)
/// and, of several chosen jobs of one key, change only the newest (the
/// others then find it holding the key); and none of its dependencies
/// ended dead or cancelled (it would wait forever).
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
            age: "created_at", lock: "FOR UPDATE", wake: "false", free: ["true"], one: ["true"]
        ),
        BulkAction::Restart | BulkAction::RetryDead => bulk_statements!(
            "UPDATE jobs SET state = 'pending', failures = 0, run_at = queuectl_now_ms(),
                 updated_at = queuectl_now_ms(), finished_at = NULL, cancel_requested = false",
            age: "finished_at", lock: "FOR UPDATE", wake: "true",
            free: [key_free!(), " AND NOT ", dependency_ended!()], one: [one_per_key!()]
        ),
        BulkAction::Purge => bulk_statements!(
            "DELETE FROM jobs",
            age: "finished_at", lock: "FOR UPDATE SKIP LOCKED", wake: "false",
            free: ["true"], one: ["true"]
        ),
    }
}

/// One transaction of an action on named `ids`: the jobs changed, those
/// found but left alone, and the jobs changed with them.
pub(super) fn act_on_ids(
    sql: &mut Sql<postgres::Transaction>,
    action: BulkAction,
    ids: &[String],
) -> TxResult<IdsChunk> {
    let applies = state_names(action.applies_to());
    let picked = sql.query(bulk_statements(action).pick_ids, &[&ids, &applies])?;
    let (done, cascaded) = act_on_picked(sql, action, &picked)?;
    let requeues = action.adds_work();
    let found = sql.query(
        concat!(
            "SELECT id, state, unique_key, CASE WHEN $2 THEN ",
            key_holder!(),
            " END, CASE WHEN $2 AND state = ANY($3) AND ",
            dependency_ended!(),
            " THEN ",
            ended_dependency!("id"),
            " END, CASE WHEN $2 AND state = ANY($3) AND ",
            dependency_ended!(),
            " THEN ",
            ended_dependency!("state"),
            " END FROM jobs WHERE id = ANY($1)"
        ),
        &[&ids, &requeues, &applies],
    )?;
    Ok((done, found_rows(&found)?, cascaded))
}

/// The finished jobs in `states` that finished before `cutoff_ms` and
/// whose key an unfinished job holds, or that wait for a dependency that
/// ended dead or cancelled: what a restart by filter left alone, oldest
/// first.
pub(super) fn held_back<C: GenericClient>(
    sql: &mut Sql<C>,
    states: &[JobState],
    cutoff_ms: i64,
) -> TxResult<Vec<Found>> {
    let rows = sql.query(
        concat!(
            "SELECT id, state, unique_key, holder, ended_id, ended_state FROM (
                 SELECT seq, id, state, unique_key, ",
            key_holder!(),
            " AS holder, CASE WHEN ",
            dependency_ended!(),
            " THEN ",
            ended_dependency!("id"),
            " END AS ended_id, CASE WHEN ",
            dependency_ended!(),
            " THEN ",
            ended_dependency!("state"),
            " END AS ended_state FROM jobs
                 WHERE state = ANY($1) AND finished_at < $2
             ) j WHERE holder IS NOT NULL OR ended_id IS NOT NULL ORDER BY seq"
        ),
        &[&state_names(states), &cutoff_ms],
    )?;
    found_rows(&rows)
}

/// Rows of (id, state, unique_key, holder, ended dependency's id and
/// state): jobs an action left alone.
fn found_rows(rows: &[postgres::Row]) -> TxResult<Vec<Found>> {
    rows.iter()
        .map(|r| {
            let ended = match (r.try_get(4)?, r.try_get::<_, Option<&str>>(5)?) {
                (Some(dep), Some(state)) => Some((dep, parse_state(state)?)),
                _ => None,
            };
            Ok(Found::from_row(
                r.try_get(0)?,
                parse_state(r.try_get(1)?)?,
                r.try_get(2)?,
                r.try_get(3)?,
                ended,
            ))
        })
        .collect()
}

/// One chunk of an action on the jobs in `states` whose age column is at
/// or before `cutoff_ms`.
pub(super) fn act_on_filter(
    sql: &mut Sql<postgres::Transaction>,
    action: BulkAction,
    states: &[JobState],
    cutoff_ms: i64,
) -> TxResult<FilterChunk> {
    let chunk = CHUNK as i64;
    let picked = sql.query(
        bulk_statements(action).pick_filter,
        &[&state_names(states), &cutoff_ms, &chunk],
    )?;
    act_on_picked(sql, action, &picked)
}

/// Acts on the jobs `picked` (seq, state, dependents; locked) and carries
/// the change to their dependents: a cancel cancels theirs, a restart
/// revives those its end cancelled (and a completed job's dependents that
/// never ran wait for it again), a purge of an unfinished job stops its
/// dependents waiting for it. Returns the jobs changed and those changed
/// with them.
fn act_on_picked(
    sql: &mut Sql<postgres::Transaction>,
    action: BulkAction,
    picked: &[postgres::Row],
) -> TxResult<FilterChunk> {
    if picked.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut seqs = Vec::with_capacity(picked.len());
    let (mut completed, mut unfinished) = (Vec::new(), Vec::new());
    for row in picked {
        let seq: i64 = row.try_get(0)?;
        seqs.push(seq);
        if row.try_get::<_, i64>(2)? > 0 {
            match row.try_get::<_, &str>(1)? {
                "completed" => completed.push(seq),
                _ => unfinished.push(seq),
            }
        }
    }
    match action {
        BulkAction::Restart | BulkAction::RetryDead => deps::hold_back(sql, &completed)?,
        BulkAction::Purge => deps::release(sql, &unfinished)?,
        BulkAction::Cancel => {}
    }
    if action.adds_work() {
        // The change reads whether a dependency ended: lock them so that a
        // finish ending one either commits first (and the change sees it)
        // or waits, then finds the job pending and cancels it.
        sql.query(
            "SELECT 1 FROM jobs WHERE seq IN (
                 SELECT dep_seq FROM job_deps WHERE job_seq = ANY($1))
             ORDER BY seq FOR SHARE",
            &[&seqs],
        )?;
    }
    let applies = state_names(action.applies_to());
    let change = bulk_statements(action).change;
    // An enqueue may take a key after the pick looked: the index refuses,
    // and the change runs again, leaving that job alone.
    let rows = retrying_key_races(sql, true, |sql| sql.query(change, &[&seqs, &applies]))?;
    let mut linked = Vec::new();
    for row in &rows {
        if row.try_get::<_, i64>(4)? > 0 && row.try_get::<_, &str>(1)? != "processing" {
            linked.push(row.try_get::<_, i64>(3)?);
        }
    }
    let cascaded = match action {
        BulkAction::Cancel => deps::cancel_dependents(sql, &linked)?,
        BulkAction::Restart | BulkAction::RetryDead => deps::revive(sql, &linked)?,
        BulkAction::Purge => Vec::new(),
    };
    let done = rows
        .iter()
        .map(|r| Ok(Acted::from_row(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<TxResult<_>>()?;
    Ok((done, cascaded))
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
