//! `queuectl copy`: every job with every column (the raw `env` text, the
//! lease of a processing job) and its attempts, out and in; in, also the
//! queue settings and schedule rows.

use super::rows::{self, attempt_columns, job_columns};
use super::session::{Sql, TxResult};
use crate::store::deps::copied_links;
use crate::store::schedules::ScheduleRow;
use crate::store::{JobRecord, QueueRow, refuse_filled_target, to_millis};
use std::collections::HashMap;

/// Jobs per import statement, so the arrays stay a few MB.
const IMPORT_CHUNK: usize = 1000;

/// Reads everything in one snapshot (a repeatable-read transaction).
pub(super) fn export(sql: &mut Sql<postgres::Transaction>) -> TxResult<Vec<JobRecord>> {
    sql.batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
    let jobs = sql.query(
        concat!(
            "SELECT ",
            job_columns!(),
            ", j.env, j.lease_token, (SELECT c.id FROM jobs c WHERE c.seq = j.cancelled_by)
             FROM jobs j ORDER BY j.seq"
        ),
        &[],
    )?;
    let mut records = jobs
        .iter()
        .map(|r| {
            Ok(JobRecord {
                job: rows::job(r)?,
                env_text: r.try_get(23)?,
                lease_token: r.try_get(24)?,
                attempts: Vec::new(),
                after: Vec::new(),
                cancelled_by: r.try_get(25)?,
            })
        })
        .collect::<TxResult<Vec<_>>>()?;
    // All attempts in one read, in the jobs' order.
    let attempts = sql.query(
        concat!(
            "SELECT ",
            attempt_columns!(),
            ", j.id FROM attempts a JOIN jobs j ON j.seq = a.job_seq ORDER BY j.seq, a.number"
        ),
        &[],
    )?;
    let position: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.job.id.clone(), i))
        .collect();
    for row in &attempts {
        let job_id: &str = row.try_get(13)?;
        if let Some(&i) = position.get(job_id) {
            records[i].attempts.push(rows::attempt(row)?);
        }
    }
    let edges = sql.query(
        "SELECT j.id, x.id FROM job_deps d JOIN jobs j ON j.seq = d.job_seq
         JOIN jobs x ON x.seq = d.dep_seq ORDER BY d.job_seq, d.dep_seq",
        &[],
    )?;
    for row in &edges {
        if let Some(&i) = position.get(row.try_get::<_, &str>(0)?) {
            records[i].after.push(row.try_get(1)?);
        }
    }
    Ok(records)
}

/// Inserts exported jobs as they were, in enqueue order (so `seq` keeps
/// their order; the identity goes on after the last one).
pub(super) fn import(
    sql: &mut Sql<postgres::Transaction>,
    records: &[JobRecord],
    queues: &[QueueRow],
    schedules: &[ScheduleRow],
) -> TxResult<()> {
    let held = sql.query_one(
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM queues), (SELECT count(*) FROM schedules)",
        &[],
    )?;
    refuse_filled_target(held.try_get(0)?, held.try_get(1)?, held.try_get(2)?)?;
    for chunk in records.chunks(IMPORT_CHUNK) {
        import_jobs(sql, chunk)?;
        import_attempts(sql, chunk)?;
    }
    import_links(sql, records)?;
    import_settings(sql, queues)?;
    import_schedules(sql, schedules)
}

/// The settings of the queues that have any (limited or paused).
fn import_settings(sql: &mut Sql<postgres::Transaction>, queues: &[QueueRow]) -> TxResult<()> {
    for queue in queues.iter().filter(|q| q.has_settings()) {
        sql.execute(
            "INSERT INTO queues (name, parallel, paused, updated_at) VALUES ($1, $2, $3, queuectl_now_ms())",
            &[&queue.name, &queue.parallel.map(i64::from), &queue.paused],
        )?;
    }
    Ok(())
}

/// Schedule rows as they were, every column.
fn import_schedules(sql: &mut Sql<postgres::Transaction>, rows: &[ScheduleRow]) -> TxResult<()> {
    for row in rows {
        let c = row.columns();
        sql.execute(
            "INSERT INTO schedules (name, on_calendar, time_zone, job, overlap, persistent, randomized_delay_ms,
                 driver, host, managed, next_elapse_at, last_job_id, last_fired_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &c.name,
                &c.on_calendar,
                &c.time_zone,
                &c.job,
                &c.overlap,
                &c.persistent,
                &c.randomized_delay_ms,
                &c.driver,
                &c.host,
                &c.managed,
                &c.next_elapse_at,
                &c.last_job_id,
                &c.last_fired_at,
                &c.created_at,
                &c.updated_at,
            ],
        )?;
    }
    Ok(())
}

fn import_jobs(sql: &mut Sql<postgres::Transaction>, records: &[JobRecord]) -> TxResult<()> {
    let column = |f: &dyn Fn(&JobRecord) -> i64| records.iter().map(f).collect::<Vec<i64>>();
    let text = |f: &dyn Fn(&JobRecord) -> Option<String>| {
        records.iter().map(f).collect::<Vec<Option<String>>>()
    };
    let jobs = records.iter().map(|r| &r.job);
    let ids: Vec<&str> = jobs.clone().map(|j| j.id.as_str()).collect();
    let commands: Vec<&str> = jobs.clone().map(|j| j.command.as_str()).collect();
    let states: Vec<&str> = jobs.clone().map(|j| j.state.as_str()).collect();
    let finished_at: Vec<Option<i64>> =
        jobs.clone().map(|j| j.finished_at.map(to_millis)).collect();
    let lease_expires_at: Vec<Option<i64>> = jobs
        .clone()
        .map(|j| j.lease_expires_at.map(to_millis))
        .collect();
    let cancel_requested: Vec<bool> = jobs.clone().map(|j| j.cancel_requested).collect();
    let lease_tokens: Vec<Option<i64>> = records.iter().map(|r| r.lease_token).collect();
    sql.execute(
        "INSERT INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds, env, cwd,
             attempts, failures, created_at, updated_at, finished_at, worker, lease_token, lease_expires_at,
             cancel_requested, last_error, env_file, queue, unique_key, schedule, deps_left)
         SELECT id, command, state, priority, run_at, max_retries, timeout_seconds, env, cwd,
             attempts, failures, created_at, updated_at, finished_at, worker, lease_token, lease_expires_at,
             cancel_requested, last_error, env_file, queue, unique_key, schedule, deps_left
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
             $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[],
             $13::bigint[], $14::bigint[], $15::text[], $16::bigint[], $17::bigint[], $18::boolean[],
             $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::bigint[])
             WITH ORDINALITY AS d(id, command, state, priority, run_at, max_retries, timeout_seconds,
                 env, cwd, attempts, failures, created_at, updated_at, finished_at, worker, lease_token,
                 lease_expires_at, cancel_requested, last_error, env_file, queue, unique_key, schedule,
                 deps_left, line)
         ORDER BY line",
        &[
            &ids,
            &commands,
            &states,
            &column(&|r| r.job.priority),
            &column(&|r| to_millis(r.job.run_at)),
            &column(&|r| i64::from(r.job.max_retries)),
            &column(&|r| i64::from(r.job.timeout_seconds)),
            &text(&|r| r.env_text.clone()),
            &text(&|r| r.job.cwd.clone()),
            &column(&|r| i64::from(r.job.attempts)),
            &column(&|r| i64::from(r.job.failures)),
            &column(&|r| to_millis(r.job.created_at)),
            &column(&|r| to_millis(r.job.updated_at)),
            &finished_at,
            &text(&|r| r.job.worker.clone()),
            &lease_tokens,
            &lease_expires_at,
            &cancel_requested,
            &text(&|r| r.job.last_error.clone()),
            &text(&|r| r.job.env_file.clone()),
            &text(&|r| Some(r.job.queue.clone())),
            &text(&|r| r.job.unique_key.clone()),
            &text(&|r| r.job.schedule.clone()),
            &column(&|r| i64::from(r.job.deps_left)),
        ],
    )?;
    Ok(())
}

/// After every job is in: the edges, the `dependents` counts those make,
/// and which dependency cancelled whom.
fn import_links(sql: &mut Sql<postgres::Transaction>, records: &[JobRecord]) -> TxResult<()> {
    let (edges, cancelled) = copied_links(records);
    super::deps::link(sql, edges, &cancelled)?;
    sql.execute(
        "UPDATE jobs j SET dependents = d.n
         FROM (SELECT dep_seq, count(*) AS n FROM job_deps GROUP BY dep_seq) d WHERE j.seq = d.dep_seq",
        &[],
    )?;
    Ok(())
}

fn import_attempts(sql: &mut Sql<postgres::Transaction>, records: &[JobRecord]) -> TxResult<()> {
    let all: Vec<(&str, &crate::store::Attempt)> = records
        .iter()
        .flat_map(|r| r.attempts.iter().map(move |a| (r.job.id.as_str(), a)))
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let job_ids: Vec<&str> = all.iter().map(|(id, _)| *id).collect();
    let number: Vec<i64> = all.iter().map(|(_, a)| i64::from(a.number)).collect();
    let worker: Vec<&str> = all.iter().map(|(_, a)| a.worker.as_str()).collect();
    let started_at: Vec<i64> = all.iter().map(|(_, a)| to_millis(a.started_at)).collect();
    let finished_at: Vec<Option<i64>> = all
        .iter()
        .map(|(_, a)| a.finished_at.map(to_millis))
        .collect();
    let outcome: Vec<Option<&str>> = all
        .iter()
        .map(|(_, a)| a.outcome.map(|o| o.as_str()))
        .collect();
    let exit_code: Vec<Option<i32>> = all.iter().map(|(_, a)| a.exit_code).collect();
    let signal: Vec<Option<i32>> = all.iter().map(|(_, a)| a.signal).collect();
    let error: Vec<Option<&str>> = all.iter().map(|(_, a)| a.error.as_deref()).collect();
    let output: Vec<&str> = all.iter().map(|(_, a)| a.output.as_str()).collect();
    let host: Vec<Option<&str>> = all.iter().map(|(_, a)| a.host.as_deref()).collect();
    let cgroup: Vec<Option<&str>> = all.iter().map(|(_, a)| a.cgroup.as_deref()).collect();
    let truncated: Vec<bool> = all.iter().map(|(_, a)| a.output_truncated).collect();
    let tail: Vec<Option<&str>> = all.iter().map(|(_, a)| a.output_tail.as_deref()).collect();
    sql.execute(
        "INSERT INTO attempts (job_seq, number, worker, started_at, finished_at, outcome, exit_code,
             signal, error, output, host, cgroup, output_truncated, output_tail)
         SELECT j.seq, d.number, d.worker, d.started_at, d.finished_at, d.outcome, d.exit_code,
             d.signal, d.error, d.output, d.host, d.cgroup, d.output_truncated, d.output_tail
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[],
             $7::integer[], $8::integer[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::boolean[], $14::text[])
             AS d(job_id, number, worker, started_at, finished_at, outcome, exit_code, signal, error,
                 output, host, cgroup, output_truncated, output_tail)
         JOIN jobs j ON j.id = d.job_id",
        &[
            &job_ids,
            &number,
            &worker,
            &started_at,
            &finished_at,
            &outcome,
            &exit_code,
            &signal,
            &error,
            &output,
            &host,
            &cgroup,
            &truncated,
            &tail,
        ],
    )?;
    Ok(())
}
