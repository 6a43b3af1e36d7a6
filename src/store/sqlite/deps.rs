//! Dependencies on SQLite: the edges (`job_deps`) and the counters a new job
//! and its dependencies keep (`deps_left`, `dependents`), and what a
//! dependency's end does to the jobs waiting for it. Every function runs
//! inside the caller's write transaction; SQLite has one writer, so what a
//! statement reads stays true until it commits.
//!
//! A claim never looks at edges: a job waits while `deps_left > 0`, which
//! keeps it out of the claim's partial indexes (`jobs_claim`, `jobs_due`).

use crate::domain::JobState;
use crate::store::deps::{Dependencies, Linked, copied_links};
use crate::store::{JobRecord, parse_state};
use rusqlite::{Connection, Transaction, params};
use std::collections::HashMap;

/// Adds each of `stored` (id, new edges to it) to its job's `dependents`,
/// returning the state of those that exist.
pub(super) fn lock_stored(
    tx: &Transaction,
    stored: &[(String, i64)],
) -> rusqlite::Result<HashMap<String, JobState>> {
    if stored.is_empty() {
        return Ok(HashMap::new());
    }
    let named: serde_json::Map<String, serde_json::Value> = stored
        .iter()
        .map(|(id, n)| (id.clone(), (*n).into()))
        .collect();
    let rows: Vec<(String, String)> = tx
        .prepare_cached(
            "UPDATE OR ROLLBACK jobs SET dependents = dependents + d.value
             FROM json_each(?1) d WHERE jobs.id = d.key
             RETURNING id, state",
        )?
        .query_map([serde_json::Value::Object(named).to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(id, state)| {
            let state = parse_state(&state).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
            })?;
            Ok((id, state))
        })
        .collect()
}

/// Records the edges (dependent id, dependency id) of a batch just
/// inserted, and which dependency cancelled each of `cancelled` (job id,
/// dependency id).
pub(super) fn link_in(
    tx: &Transaction,
    edges: (Vec<&str>, Vec<&str>),
    cancelled: &[(&str, &str)],
) -> rusqlite::Result<()> {
    let pairs = |pairs: Vec<(&str, &str)>| serde_json::to_string(&pairs).expect("strings");
    tx.prepare_cached(
        "INSERT OR ROLLBACK INTO job_deps (job_seq, dep_seq)
         SELECT j.seq, x.seq FROM json_each(?1) e
         JOIN jobs j ON j.id = e.value ->> 0 JOIN jobs x ON x.id = e.value ->> 1",
    )?
    .execute([pairs(edges.0.into_iter().zip(edges.1).collect())])?;
    if !cancelled.is_empty() {
        tx.prepare_cached(
            "UPDATE OR ROLLBACK jobs SET cancelled_by = x.seq
             FROM json_each(?1) e JOIN jobs x ON x.id = e.value ->> 1
             WHERE jobs.id = e.value ->> 0",
        )?
        .execute([pairs(cancelled.to_vec())])?;
    }
    Ok(())
}

/// What the end of some dependencies did to the jobs waiting for them.
#[derive(Debug, Default)]
pub(super) struct Propagated {
    /// Some job no longer waits for anything: idle workers should look.
    pub ready: bool,
    /// Jobs cancelled because a dependency ended dead or cancelled.
    pub cancelled: Vec<String>,
}

fn seq_list(seqs: &[i64]) -> String {
    serde_json::to_string(seqs).expect("numbers serialize")
}

/// Moves on the jobs waiting for `completed` (one dependency fewer each)
/// and for `ended` (dead or cancelled: their pending dependents are
/// cancelled, transitively, each naming the dependency that ended).
pub(super) fn propagate_in(
    tx: &Transaction,
    completed: &[i64],
    ended: &[i64],
    now_ms: i64,
) -> rusqlite::Result<Propagated> {
    let mut done = Propagated::default();
    if !completed.is_empty() {
        done.ready = release_in(tx, completed, now_ms)?;
    }
    if !ended.is_empty() {
        done.cancelled = cancel_dependents_in(tx, ended, now_ms)?;
    }
    Ok(done)
}

/// One dependency fewer for each job waiting for one of `deps` (which
/// completed, or were purged): aggregated, since a job may wait for
/// several of them. Cancelled jobs are counted too, so that a revived one
/// waits for exactly what is still unfinished. Returns whether a pending
/// job is now free to run.
pub(super) fn release_in(tx: &Transaction, deps: &[i64], now_ms: i64) -> rusqlite::Result<bool> {
    if deps.is_empty() {
        return Ok(false);
    }
    let ready: Vec<bool> = tx
        .prepare_cached(
            "UPDATE OR ROLLBACK jobs SET deps_left = max(jobs.deps_left - d.n, 0), updated_at = ?2
             FROM (SELECT job_seq, count(*) AS n FROM job_deps
                   WHERE dep_seq IN (SELECT value FROM json_each(?1)) GROUP BY job_seq) d
             WHERE jobs.seq = d.job_seq AND jobs.state IN ('pending', 'cancelled') AND jobs.deps_left > 0
             RETURNING jobs.deps_left = 0 AND jobs.state = 'pending'",
        )?
        .query_map(params![seq_list(deps), now_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ready.contains(&true))
}

/// Cancels the pending jobs waiting for `ended` (dead or cancelled), and
/// theirs, transitively; each records the dependency that cancelled it
/// (`cancelled_by`, its restart revives it) and why. Returns their ids.
pub(super) fn cancel_dependents_in(
    tx: &Transaction,
    ended: &[i64],
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    tx.prepare_cached(
        "WITH RECURSIVE doomed(seq, cause_seq, reason) AS (
             SELECT d.job_seq, x.seq, 'dependency ' || x.id || ' is ' || x.state
             FROM job_deps d JOIN jobs x ON x.seq = d.dep_seq
             JOIN jobs j ON j.seq = d.job_seq AND j.state = 'pending'
             WHERE d.dep_seq IN (SELECT value FROM json_each(?1))
             UNION
             SELECT d.job_seq, doomed.seq, 'dependency ' || p.id || ' is cancelled'
             FROM doomed JOIN job_deps d ON d.dep_seq = doomed.seq JOIN jobs p ON p.seq = doomed.seq
             JOIN jobs j ON j.seq = d.job_seq AND j.state = 'pending'
         )
         UPDATE OR ROLLBACK jobs SET state = 'cancelled', finished_at = ?2, updated_at = ?2,
             cancelled_by = dm.cause_seq, last_error = dm.reason
         FROM (SELECT seq, min(cause_seq) AS cause_seq, reason FROM doomed GROUP BY seq) dm
         WHERE jobs.seq = dm.seq AND jobs.state = 'pending'
         RETURNING jobs.id",
    )?
    .query_map(params![seq_list(ended), now_ms], |r| r.get(0))?
    .collect()
}

/// Before `completed` jobs run again (a restart): their dependents that
/// never ran wait for them again (waiting or cancelled ones, counted as
/// [`release_in`] counts them).
pub(super) fn hold_back_in(
    tx: &Transaction,
    completed: &[i64],
    now_ms: i64,
) -> rusqlite::Result<()> {
    if completed.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE OR ROLLBACK jobs SET deps_left = jobs.deps_left + d.n, updated_at = ?2
         FROM (SELECT job_seq, count(*) AS n FROM job_deps
               WHERE dep_seq IN (SELECT value FROM json_each(?1)) GROUP BY job_seq) d
         WHERE jobs.seq = d.job_seq AND jobs.state IN ('pending', 'cancelled') AND jobs.attempts = 0",
    )?
    .execute(params![seq_list(completed), now_ms])?;
    Ok(())
}

/// After `restarted` became pending again: the jobs their end had
/// cancelled (`cancelled_by`) are pending again too, level by level, each
/// as soon as none of its dependencies is dead or cancelled any more (one
/// that still is becomes its new `cancelled_by`). Returns the ids revived.
pub(super) fn revive_in(
    tx: &Transaction,
    restarted: &[i64],
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut revived = Vec::new();
    let mut level = restarted.to_vec();
    while !level.is_empty() {
        let rows: Vec<(String, i64, bool)> = tx
            .prepare_cached(
                "WITH waiting AS (
                     SELECT j.seq,
                         (SELECT x.seq FROM job_deps d JOIN jobs x ON x.seq = d.dep_seq
                          WHERE d.job_seq = j.seq AND x.state IN ('dead', 'cancelled')
                          ORDER BY x.seq LIMIT 1) AS ended
                     FROM jobs j INDEXED BY jobs_cancelled_by
                     WHERE j.cancelled_by IN (SELECT value FROM json_each(?1)) AND j.state = 'cancelled'
                 )
                 UPDATE OR ROLLBACK jobs SET
                     state = CASE WHEN w.ended IS NULL THEN 'pending' ELSE 'cancelled' END,
                     cancelled_by = w.ended,
                     last_error = CASE WHEN w.ended IS NULL THEN NULL
                         ELSE (SELECT 'dependency ' || x.id || ' is ' || x.state FROM jobs x WHERE x.seq = w.ended) END,
                     finished_at = CASE WHEN w.ended IS NULL THEN NULL ELSE jobs.finished_at END,
                     run_at = CASE WHEN w.ended IS NULL THEN ?2 ELSE jobs.run_at END,
                     failures = CASE WHEN w.ended IS NULL THEN 0 ELSE jobs.failures END,
                     updated_at = ?2
                 FROM waiting w WHERE jobs.seq = w.seq
                 RETURNING jobs.id, jobs.seq, jobs.state = 'pending'",
            )?
            .query_map(params![seq_list(&level), now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        level.clear();
        for (id, seq, pending) in rows {
            if pending {
                revived.push(id);
                level.push(seq);
            }
        }
    }
    Ok(revived)
}

/// The dependencies and dependents of job `id` with their states.
pub(super) fn dependencies(conn: &Connection, id: &str) -> rusqlite::Result<Dependencies> {
    let linked = |sql: &str| -> rusqlite::Result<Vec<Linked>> {
        let rows: Vec<(String, String)> = conn
            .prepare_cached(sql)?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, state)| {
                let state = parse_state(&state).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok(Linked { id, state })
            })
            .collect()
    };
    Ok(Dependencies {
        after: linked(
            "SELECT x.id, x.state FROM jobs j JOIN job_deps d ON d.job_seq = j.seq
             JOIN jobs x ON x.seq = d.dep_seq WHERE j.id = ?1 ORDER BY x.seq",
        )?,
        dependents: linked(
            "SELECT x.id, x.state FROM jobs j JOIN job_deps d ON d.dep_seq = j.seq
             JOIN jobs x ON x.seq = d.job_seq WHERE j.id = ?1 ORDER BY x.seq",
        )?,
    })
}

/// Every job's dependencies (ids, in enqueue order), by the job's id: what
/// `copy` carries.
pub(super) fn edges_by_job(conn: &Connection) -> rusqlite::Result<HashMap<String, Vec<String>>> {
    let mut after: HashMap<String, Vec<String>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, x.id FROM job_deps d JOIN jobs j ON j.seq = d.job_seq
         JOIN jobs x ON x.seq = d.dep_seq ORDER BY d.job_seq, d.dep_seq",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
    for row in rows {
        let (job, dep) = row?;
        after.entry(job).or_default().push(dep);
    }
    Ok(after)
}

/// After `copy` inserted `records`: their edges, the `dependents` counts
/// those make, and which dependency cancelled whom.
pub(super) fn import_links(tx: &Transaction, records: &[JobRecord]) -> rusqlite::Result<()> {
    let (edges, cancelled) = copied_links(records);
    link_in(tx, edges, &cancelled)?;
    tx.execute_batch(
        "UPDATE OR ROLLBACK jobs SET dependents = (SELECT count(*) FROM job_deps d WHERE d.dep_seq = jobs.seq)
         WHERE seq IN (SELECT dep_seq FROM job_deps)",
    )
}
