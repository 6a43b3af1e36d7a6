//! Dependencies on PostgreSQL: the edges (`job_deps`) and the counters a new
//! job and its dependencies keep (`deps_left`, `dependents`), and what a
//! dependency's end does to the jobs waiting for it. Each function runs in
//! the caller's transaction.
//!
//! The race that matters: a dependency finishing while a job naming it is
//! enqueued. The enqueue adds to the dependency's `dependents` with an
//! `UPDATE` (rows locked in seq order), so one of the two waits for the
//! other's row lock. A finish that locked it first has committed it
//! `completed` when the enqueue re-reads it; an enqueue that locked it first
//! has committed its edge when the finish, having re-read `dependents > 0`,
//! runs [`propagate`] as a second statement, whose snapshot sees the edge
//! (inside the finish's own statement it would not).

use super::listen::notify_work;
use super::session::{Sql, TxResult};
use crate::domain::JobState;
use crate::store::deps::{Dependencies, Linked};
use crate::store::parse_state;
use postgres::GenericClient;
use std::collections::HashMap;

/// Adds each of `stored` (id, new edges to it) to its job's `dependents`,
/// returning the state of those that exist.
pub(super) fn lock_stored<C: GenericClient>(
    sql: &mut Sql<C>,
    stored: &[(String, i64)],
) -> TxResult<HashMap<String, JobState>> {
    if stored.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    let edges: Vec<i64> = stored.iter().map(|&(_, n)| n).collect();
    // In seq order, as every writer that locks several jobs does.
    sql.query(
        "SELECT seq FROM jobs WHERE id = ANY($1) ORDER BY seq FOR NO KEY UPDATE",
        &[&ids],
    )?;
    sql.query(
        "UPDATE jobs j SET dependents = j.dependents + d.n
         FROM unnest($1::text[], $2::bigint[]) AS d(id, n) WHERE j.id = d.id
         RETURNING j.id, j.state",
        &[&ids, &edges],
    )?
    .iter()
    .map(|r| Ok((r.try_get(0)?, parse_state(r.try_get(1)?)?)))
    .collect()
}

/// Records the edges (dependent id, dependency id) of a batch just
/// inserted, and which dependency cancelled each of `cancelled` (job id,
/// dependency id).
pub(super) fn link<C: GenericClient>(
    sql: &mut Sql<C>,
    edges: (Vec<&str>, Vec<&str>),
    cancelled: &[(&str, &str)],
) -> TxResult<()> {
    sql.execute(
        "INSERT INTO job_deps (job_seq, dep_seq)
         SELECT j.seq, x.seq FROM unnest($1::text[], $2::text[]) AS e(job, dep)
         JOIN jobs j ON j.id = e.job JOIN jobs x ON x.id = e.dep",
        &[&edges.0, &edges.1],
    )?;
    if !cancelled.is_empty() {
        let (jobs, causes): (Vec<&str>, Vec<&str>) = cancelled.iter().copied().unzip();
        sql.execute(
            "UPDATE jobs j SET cancelled_by = x.seq
             FROM unnest($1::text[], $2::text[]) AS e(job, dep) JOIN jobs x ON x.id = e.dep
             WHERE j.id = e.job",
            &[&jobs, &causes],
        )?;
    }
    Ok(())
}

/// Moves on the jobs waiting for `completed` (one dependency fewer each;
/// idle workers are notified when one may run now) and for `ended` (dead or
/// cancelled: their pending dependents are cancelled, transitively).
/// Returns the ids cancelled.
pub(super) fn propagate<C: GenericClient>(
    sql: &mut Sql<C>,
    completed: &[i64],
    ended: &[i64],
) -> TxResult<Vec<String>> {
    release(sql, completed)?;
    cancel_dependents(sql, ended)
}

/// One dependency fewer for each job waiting for one of `deps` (which
/// completed, or were purged), aggregated per job; cancelled jobs are
/// counted too, so that a revived one waits for exactly what is left.
/// Notifies idle workers when a pending job may run now.
pub(super) fn release<C: GenericClient>(sql: &mut Sql<C>, deps: &[i64]) -> TxResult<()> {
    if deps.is_empty() {
        return Ok(());
    }
    sql.query(
        concat!(
            "WITH released AS (
                 UPDATE jobs j SET deps_left = GREATEST(j.deps_left - d.n, 0), updated_at = queuectl_now_ms()
                 FROM (SELECT job_seq, count(*) AS n FROM job_deps WHERE dep_seq = ANY($1) GROUP BY job_seq) d
                 WHERE j.seq = d.job_seq AND j.state IN ('pending', 'cancelled') AND j.deps_left > 0
                 RETURNING j.deps_left = 0 AND j.state = 'pending' AS ready
             ), woken AS (",
            notify_work!(),
            " WHERE EXISTS (SELECT 1 FROM released WHERE ready))
             SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM woken)"
        ),
        &[&deps],
    )?;
    Ok(())
}

/// Cancels the pending jobs waiting for `ended` (dead or cancelled), and
/// theirs, transitively; each records the dependency that cancelled it
/// (`cancelled_by`: its restart revives it) and why. Returns their ids.
pub(super) fn cancel_dependents<C: GenericClient>(
    sql: &mut Sql<C>,
    ended: &[i64],
) -> TxResult<Vec<String>> {
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sql.query(
        "WITH RECURSIVE doomed(seq, cause_seq, reason) AS (
             SELECT d.job_seq, x.seq, 'dependency ' || x.id || ' is ' || x.state
             FROM job_deps d JOIN jobs x ON x.seq = d.dep_seq
             JOIN jobs j ON j.seq = d.job_seq AND j.state = 'pending'
             WHERE d.dep_seq = ANY($1)
             UNION
             SELECT d.job_seq, doomed.seq, 'dependency ' || p.id || ' is cancelled'
             FROM doomed JOIN job_deps d ON d.dep_seq = doomed.seq JOIN jobs p ON p.seq = doomed.seq
             JOIN jobs j ON j.seq = d.job_seq AND j.state = 'pending'
         )
         UPDATE jobs j SET state = 'cancelled', finished_at = queuectl_now_ms(),
             updated_at = queuectl_now_ms(), cancelled_by = dm.cause_seq, last_error = dm.reason
         FROM (SELECT DISTINCT ON (seq) seq, cause_seq, reason FROM doomed ORDER BY seq, cause_seq) dm
         WHERE j.seq = dm.seq AND j.state = 'pending'
         RETURNING j.id",
        &[&ended],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Before `completed` jobs run again (a restart): their dependents that
/// never ran wait for them again.
pub(super) fn hold_back<C: GenericClient>(sql: &mut Sql<C>, completed: &[i64]) -> TxResult<()> {
    if completed.is_empty() {
        return Ok(());
    }
    sql.execute(
        "UPDATE jobs j SET deps_left = j.deps_left + d.n, updated_at = queuectl_now_ms()
         FROM (SELECT job_seq, count(*) AS n FROM job_deps WHERE dep_seq = ANY($1) GROUP BY job_seq) d
         WHERE j.seq = d.job_seq AND j.state IN ('pending', 'cancelled') AND j.attempts = 0",
        &[&completed],
    )?;
    Ok(())
}

/// After `restarted` became pending again: the jobs their end had
/// cancelled (`cancelled_by`) are pending again too, level by level, each
/// as soon as none of its dependencies is dead or cancelled any more (one
/// that still is becomes its new `cancelled_by`). Returns the ids revived.
pub(super) fn revive<C: GenericClient>(
    sql: &mut Sql<C>,
    restarted: &[i64],
) -> TxResult<Vec<String>> {
    let mut revived = Vec::new();
    let mut level = restarted.to_vec();
    while !level.is_empty() {
        let rows = sql.query(
            "WITH waiting AS (
                 SELECT j.seq,
                     (SELECT x.seq FROM job_deps d JOIN jobs x ON x.seq = d.dep_seq
                      WHERE d.job_seq = j.seq AND x.state IN ('dead', 'cancelled')
                      ORDER BY x.seq LIMIT 1) AS ended
                 FROM jobs j WHERE j.cancelled_by = ANY($1) AND j.state = 'cancelled'
                 ORDER BY j.seq FOR NO KEY UPDATE
             )
             UPDATE jobs j SET
                 state = CASE WHEN w.ended IS NULL THEN 'pending' ELSE 'cancelled' END,
                 cancelled_by = w.ended,
                 last_error = CASE WHEN w.ended IS NULL THEN NULL
                     ELSE (SELECT 'dependency ' || x.id || ' is ' || x.state FROM jobs x WHERE x.seq = w.ended) END,
                 finished_at = CASE WHEN w.ended IS NULL THEN NULL ELSE j.finished_at END,
                 run_at = CASE WHEN w.ended IS NULL THEN queuectl_now_ms() ELSE j.run_at END,
                 failures = CASE WHEN w.ended IS NULL THEN 0 ELSE j.failures END,
                 updated_at = queuectl_now_ms()
             FROM waiting w WHERE j.seq = w.seq AND j.state = 'cancelled'
             RETURNING j.id, j.seq, j.state = 'pending'",
            &[&level],
        )?;
        level.clear();
        for row in &rows {
            if row.try_get(2)? {
                revived.push(row.try_get(0)?);
                level.push(row.try_get(1)?);
            }
        }
    }
    Ok(revived)
}

/// The dependencies and dependents of job `id` with their states.
pub(super) fn dependencies<C: GenericClient>(sql: &mut Sql<C>, id: &str) -> TxResult<Dependencies> {
    let rows = sql.query(
        "SELECT 'after', x.id, x.state, x.seq FROM jobs j JOIN job_deps d ON d.job_seq = j.seq
             JOIN jobs x ON x.seq = d.dep_seq WHERE j.id = $1
         UNION ALL
         SELECT 'dependent', x.id, x.state, x.seq FROM jobs j JOIN job_deps d ON d.dep_seq = j.seq
             JOIN jobs x ON x.seq = d.job_seq WHERE j.id = $1
         ORDER BY 4",
        &[&id],
    )?;
    let mut found = Dependencies::default();
    for row in &rows {
        let linked = Linked {
            id: row.try_get(1)?,
            state: parse_state(row.try_get(2)?)?,
        };
        match row.try_get::<_, &str>(0)? {
            "after" => found.after.push(linked),
            _ => found.dependents.push(linked),
        }
    }
    Ok(found)
}
