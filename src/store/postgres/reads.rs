//! Reads for the CLI: jobs, history, counts and metrics. Each is one
//! statement outside any transaction (no locks taken).

use super::rows::{self, attempt_columns, job_columns};
use super::session::{Sql, TxResult};
use crate::domain::JobState;
use crate::error::Error;
use crate::store::{
    Attempt, Job, JobPage, ListFilter, Metrics, WorkerRow, distinct_states, from_millis, job_list,
    newest_first, p95_offset, parse_state,
};
use postgres::GenericClient;
use std::collections::BTreeMap;

pub(super) fn get<C: GenericClient>(sql: &mut Sql<C>, id: &str) -> TxResult<Job> {
    let row = sql.query_opt(
        concat!("SELECT ", job_columns!(), " FROM jobs j WHERE j.id = $1"),
        &[&id],
    )?;
    match row {
        Some(row) => rows::job(&row),
        None => Err(Error::NotFound(id.to_owned()).into()),
    }
}

pub(super) fn attempts<C: GenericClient>(sql: &mut Sql<C>, id: &str) -> TxResult<Vec<Attempt>> {
    sql.query(
        concat!(
            "SELECT ",
            attempt_columns!(),
            " FROM attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = $1 ORDER BY a.number"
        ),
        &[&id],
    )?
    .iter()
    .map(rows::attempt)
    .collect()
}

/// The newest jobs first (one range of the (state, seq) index per state,
/// merged), and how many match: an index-only count.
pub(super) fn list<C: GenericClient>(
    sql: &mut Sql<C>,
    filter: &ListFilter,
    limit: Option<u32>,
) -> TxResult<JobPage> {
    let states = &filter.states;
    // LIMIT NULL is no limit.
    let rows = limit.map(i64::from);
    let seq_and_job = |r: &postgres::Row| Ok((r.try_get::<_, i64>(23)?, rows::job(r)?));
    let (per_state, total) = if filter.blocked {
        // Pending jobs are few; the blocked ones among them by seq.
        let jobs = sql.query(
            concat!(
                "SELECT ",
                job_columns!(),
                ", j.seq FROM jobs j WHERE j.state = 'pending' AND j.deps_left > 0
                     AND ($1::text IS NULL OR j.queue = $1)
                 ORDER BY j.seq DESC LIMIT $2"
            ),
            &[&filter.queue, &rows],
        )?;
        let total: i64 = sql
            .query_one(
                "SELECT count(*) FROM jobs WHERE state = 'pending' AND deps_left > 0
                     AND ($1::text IS NULL OR queue = $1)",
                &[&filter.queue],
            )?
            .try_get(0)?;
        let page = jobs.iter().map(seq_and_job).collect::<TxResult<Vec<_>>>()?;
        (vec![page], total)
    } else if let Some(queue) = &filter.queue {
        // One queue: its range of jobs_queue (queue, seq) newest first
        // (the claim and due indexes hold only waiting jobs), states
        // checked per job.
        let names: Vec<&str> = distinct_states(states).iter().map(|s| s.as_str()).collect();
        let jobs = sql.query(
            concat!(
                "SELECT ",
                job_columns!(),
                ", j.seq FROM jobs j WHERE j.queue = $1 AND (cardinality($2::text[]) = 0 OR j.state = ANY($2))
                 ORDER BY j.seq DESC LIMIT $3"
            ),
            &[queue, &names, &rows],
        )?;
        let total: i64 = sql
            .query_one(
                "SELECT count(*) FROM jobs WHERE queue = $1 AND (cardinality($2::text[]) = 0 OR state = ANY($2))",
                &[queue, &names],
            )?
            .try_get(0)?;
        let page = jobs.iter().map(seq_and_job).collect::<TxResult<Vec<_>>>()?;
        (vec![page], total)
    } else if states.is_empty() {
        let jobs = sql.query(
            concat!(
                "SELECT ",
                job_columns!(),
                ", j.seq FROM jobs j ORDER BY j.seq DESC LIMIT $1"
            ),
            &[&rows],
        )?;
        let total: i64 = sql
            .query_one("SELECT count(*) FROM jobs", &[])?
            .try_get(0)?;
        let page = jobs.iter().map(seq_and_job).collect::<TxResult<Vec<_>>>()?;
        (vec![page], total)
    } else {
        let states = distinct_states(states);
        let mut per_state = Vec::new();
        for state in &states {
            let jobs = sql.query(
                concat!(
                    "SELECT ",
                    job_columns!(),
                    ", j.seq FROM jobs j WHERE j.state = $1 ORDER BY j.seq DESC LIMIT $2"
                ),
                &[&state.as_str(), &rows],
            )?;
            per_state.push(jobs.iter().map(seq_and_job).collect::<TxResult<Vec<_>>>()?);
        }
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let total: i64 = sql
            .query_one("SELECT count(*) FROM jobs WHERE state = ANY($1)", &[&names])?
            .try_get(0)?;
        (per_state, total)
    };
    Ok(JobPage {
        jobs: newest_first(per_state, limit),
        total: total.max(0) as u64,
    })
}

pub(super) fn job_ids<C: GenericClient>(
    sql: &mut Sql<C>,
    prefix: &str,
    state: Option<JobState>,
    limit: u32,
) -> TxResult<Vec<String>> {
    let rows = sql.query(
        "SELECT id FROM jobs WHERE starts_with(id, $1) AND ($2::text IS NULL OR state = $2)
         ORDER BY seq DESC LIMIT $3",
        &[&prefix, &state.map(JobState::as_str), &i64::from(limit)],
    )?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Jobs per state, every state present. Counted from the state index
/// (an index-only scan once vacuum has run), not kept in a counter row:
/// a counter every claim and finish updates is one row all workers on all
/// hosts would queue behind.
pub(super) fn counts<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<BTreeMap<JobState, u64>> {
    let mut counts: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|&s| (s, 0)).collect();
    for row in sql.query("SELECT state, count(*) FROM jobs GROUP BY state", &[])? {
        let n: i64 = row.try_get(1)?;
        counts.insert(parse_state(row.try_get(0)?)?, n.max(0) as u64);
    }
    Ok(counts)
}

pub(super) fn metrics<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<Metrics> {
    let counts = counts(sql)?;
    let row = sql.query_one(
        "SELECT avg(attempts)::float8, count(*) FROM jobs WHERE state IN ('completed', 'dead')",
        &[],
    )?;
    let (avg_attempts, finished): (Option<f64>, i64) = (row.try_get(0)?, row.try_get(1)?);
    macro_rules! durations {
        () => {
            "SELECT finished_at - started_at AS d FROM attempts
             WHERE outcome IN ('succeeded', 'failed', 'timed_out')"
        };
    }
    let row = sql.query_one(
        concat!(
            "SELECT avg(d)::float8, count(*) FROM (",
            durations!(),
            ") t"
        ),
        &[],
    )?;
    let (avg_duration_ms, timed): (Option<f64>, i64) = (row.try_get(0)?, row.try_get(1)?);
    let p95_duration_ms: Option<i64> = if timed == 0 {
        None
    } else {
        sql.query_opt(
            concat!(durations!(), " ORDER BY d LIMIT 1 OFFSET $1"),
            &[&p95_offset(timed)],
        )?
        .map(|r| r.try_get(0))
        .transpose()?
    };
    let row = sql.query_one(
        "SELECT count(*) FILTER (WHERE finished_at >= queuectl_now_ms() - 60000),
                count(*) FILTER (WHERE finished_at >= queuectl_now_ms() - 3600000)
         FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= queuectl_now_ms() - 3600000",
        &[],
    )?;
    Ok(Metrics::new(
        counts,
        finished,
        avg_attempts,
        avg_duration_ms,
        p95_duration_ms,
        row.try_get(0)?,
        row.try_get(1)?,
    ))
}

/// Registered workers of every host, each with the job it holds.
pub(super) fn workers<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<Vec<WorkerRow>> {
    sql.query(
        "SELECT w.name, w.pid, w.host, w.started_at, w.heartbeat_at, w.status, w.unit, w.slots,
             (SELECT string_agg(j.id, ',') FROM jobs j
              WHERE j.state = 'processing' AND j.worker = w.name)
         FROM workers w ORDER BY w.name",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(WorkerRow {
            name: r.try_get(0)?,
            pid: rows::count(r, 1)?,
            host: r.try_get(2)?,
            started_at: from_millis(r.try_get(3)?),
            heartbeat_at: from_millis(r.try_get(4)?),
            status: r.try_get(5)?,
            unit: r.try_get(6)?,
            slots: rows::count(r, 7)?,
            jobs: job_list(r.try_get(8)?),
        })
    })
    .collect()
}
