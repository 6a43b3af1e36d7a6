//! The worker's side on SQLite: claims, finishes and lease renewals, a fixed number of
//! statements per batch whatever its size (multi-row `VALUES` lists), never
//! a statement per job.
//!
//! Per statement SQLite pays a fixed cost (a statement journal, cursors,
//! bindings, a reset) on top of the rows' own work; with one statement per
//! job that fixed part was most of a claim + finish. Rows of a batch are
//! padded up to a power of two (at most [`CHUNK`], larger batches go in
//! chunks), so each statement has a handful of shapes, each prepared once
//! and then taken from the connection's statement cache.
//!
//! Writes say `OR ROLLBACK`: a failed constraint ends the whole transaction
//! anyway (the caller's [`write`](super::SqliteStore::write) returns the
//! error), and it spares SQLite the statement journal a multi-row write or
//! one that fires a trigger otherwise keeps.

use super::deps::{Propagated, propagate_in};
use super::queues;
use crate::domain::RetryPolicy;
use crate::store::{
    AttemptResult, ClaimRequest, Claimed, Finish, Finished, Lease, LeaseStatus, attempt_cgroup,
    decode_env, lease_statuses, millis, to_millis, transition,
};
use jiff::Timestamp;
use rusqlite::types::{Null, ToSql};
use rusqlite::{Transaction, params, params_from_iter};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The most rows one statement takes.
pub(super) const CHUNK: usize = 64;
/// Padded row counts: 1, 2, 4, ... [`CHUNK`].
const SHAPES: usize = CHUNK.trailing_zeros() as usize + 1;

/// The due jobs a claim takes, in claim order, at time `?3`, at most `?4`.
/// INDEXED BY pins the plan: without statistics the planner would pick the
/// state index and sort.
pub(super) const DUE_JOBS: &str = "SELECT seq FROM jobs INDEXED BY jobs_claim
     WHERE state IN ('pending', 'failed') AND deps_left = 0 AND run_at <= ?3
     ORDER BY priority DESC, run_at, seq LIMIT ?4";

/// The claim of one job (`one`) or several: `seq IN (…)` collects the seqs
/// in a temporary table first; for one job `seq = (…)` needs none.
pub(super) fn claim_sql(one: bool) -> String {
    claim_where(&format!(
        "seq {} ({DUE_JOBS})",
        if one { "=" } else { "IN" }
    ))
}

/// The claim of the jobs whose seqs `?4` lists (a JSON array), chosen
/// within the queues' limits by [`claim_within_limits`].
fn claim_chosen_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        claim_where(
            "seq IN (SELECT value FROM json_each(?4)) AND state IN ('pending', 'failed')
",
        )
    })
}

/// The claim's `UPDATE` of the jobs `condition` selects (`?1` worker,
/// `?2` lease expiry, `?3` now).
fn claim_where(condition: &str) -> String {
    format!(
        "UPDATE OR ROLLBACK jobs SET state = 'processing', worker = ?1, lease_token = random(),
             lease_expires_at = ?2, attempts = attempts + 1, cancel_requested = 0, updated_at = ?3
         WHERE {condition}
         RETURNING seq, id, command, env, cwd, timeout_seconds, attempts, failures, max_retries,
             env_file, lease_token, priority, run_at"
    )
}

/// Claims up to `limit` due jobs for `request.worker`, in claim order (two
/// statements: the jobs, then their attempts), each under a lease token of
/// its own. When no queue is limited or paused and the worker serves every
/// queue, that is the whole claim; otherwise [`claim_within_limits`]
/// chooses the jobs first.
pub(super) fn claim_in(
    tx: &Transaction,
    request: &ClaimRequest,
    limit: usize,
    now: Timestamp,
) -> rusqlite::Result<Vec<Claimed>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    claim_with(tx, request, limit, &queues::limits(tx)?, now)
}

/// [`claim_in`] with the queues' `limits` read already in this transaction.
fn claim_with(
    tx: &Transaction,
    request: &ClaimRequest,
    limit: usize,
    limits: &[queues::Limit],
    now: Timestamp,
) -> rusqlite::Result<Vec<Claimed>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let claimed = if limits.is_empty() && request.queues.is_none() {
        let sql = claim_sql(limit == 1);
        take_jobs(tx, &sql, request, &(limit as i64), now)?
    } else {
        claim_within_limits(tx, request, limit, limits, now)?
    };
    record_attempts(tx, request, &claimed, now)?;
    Ok(claimed)
}

/// A worker's transaction: records the attempts in `done` ([`finish_in`]),
/// then claims for `next` if given, reading the queues' limits once for both.
pub(super) fn finish_and_claim(
    tx: &Transaction,
    done: &[Finish],
    policy: &RetryPolicy,
    next: Option<(&ClaimRequest, usize)>,
    now: Timestamp,
) -> rusqlite::Result<Finished> {
    let (held, left, propagated) = finish_in(tx, done, policy, now)?;
    let limits = if left.is_empty() && next.is_none() {
        Vec::new()
    } else {
        queues::limits(tx)?
    };
    // A place in a limited queue, or dependents that became ready.
    let freed = propagated.ready
        || limits
            .iter()
            .any(|l| l.parallel.is_some() && left.contains(&l.name));
    let claimed = match next {
        Some((request, limit)) => claim_with(tx, request, limit, &limits, now)?,
        None => Vec::new(),
    };
    Ok(Finished {
        held,
        claimed,
        freed,
    })
}

/// Chooses and claims up to `limit` due jobs of the queues `request`
/// serves, none of a paused queue and no more of a limited queue than it
/// has room for (its `parallel` less its jobs processing: exact, since
/// SQLite has one writer). Candidates come in claim order; when a full
/// queue's jobs took places in them, the full queues are left out and the
/// rest is asked for again (at most once per limited queue), so a short
/// claim still means nothing more is due for this worker.
fn claim_within_limits(
    tx: &Transaction,
    request: &ClaimRequest,
    limit: usize,
    limits: &[queues::Limit],
    now: Timestamp,
) -> rusqlite::Result<Vec<Claimed>> {
    let mut excluded: Vec<String> = limits
        .iter()
        .filter(|l| l.paused)
        .map(|l| l.name.clone())
        .collect();
    let mut room: HashMap<String, i64> = HashMap::new();
    let mut claimed = Vec::new();
    loop {
        let want = limit - claimed.len();
        let candidates = due_candidates(tx, request.queues.as_deref(), &excluded, want, now)?;
        let mut chosen: Vec<i64> = Vec::new();
        let mut full: Vec<String> = Vec::new();
        for (seq, queue) in &candidates {
            if let Some(parallel) = limits
                .iter()
                .find(|l| &l.name == queue)
                .and_then(|l| l.parallel)
            {
                let left = match room.get_mut(queue) {
                    Some(left) => left,
                    None => {
                        let running = queues::running(tx, queue)?;
                        room.entry(queue.clone())
                            .or_insert(i64::from(parallel) - running)
                    }
                };
                if *left <= 0 {
                    if !full.contains(queue) {
                        full.push(queue.clone());
                    }
                    continue;
                }
                *left -= 1;
            }
            chosen.push(*seq);
        }
        if !chosen.is_empty() {
            let seqs = serde_json::to_string(&chosen).expect("integers serialize");
            claimed.extend(take_jobs(tx, claim_chosen_sql(), request, &seqs, now)?);
        }
        if candidates.len() < want || full.is_empty() || claimed.len() == limit {
            return Ok(claimed);
        }
        excluded.extend(full);
    }
}

/// Up to `want` due jobs (seq, queue) in claim order, of the queues `mine`
/// names (every queue when `None`), none of the `excluded` queues.
///
/// Every queue: one ordered scan of `jobs_claim`, skipping excluded
/// queues' jobs. Named queues: one ordered range of `jobs_claim_queue` per
/// queue, `want` from each, merged (`want` × queues rows at most).
fn due_candidates(
    tx: &Transaction,
    mine: Option<&[String]>,
    excluded: &[String],
    want: usize,
    now: Timestamp,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let now_ms = to_millis(now);
    let want_rows = i64::try_from(want).unwrap_or(i64::MAX);
    let Some(mine) = mine else {
        let excluded = serde_json::to_string(excluded).expect("strings serialize");
        return tx
            .prepare_cached(
                "SELECT seq, queue FROM jobs INDEXED BY jobs_claim
                 WHERE state IN ('pending', 'failed') AND deps_left = 0 AND run_at <= ?1
                   AND queue NOT IN (SELECT value FROM json_each(?2))
                 ORDER BY priority DESC, run_at, seq LIMIT ?3",
            )?
            .query_map(params![now_ms, excluded, want_rows], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect();
    };
    let mut merged: Vec<((i64, i64, i64), String)> = Vec::new();
    let mut per_queue = tx.prepare_cached(
        "SELECT seq, queue, priority, run_at FROM jobs INDEXED BY jobs_claim_queue
         WHERE queue = ?1 AND state IN ('pending', 'failed') AND deps_left = 0 AND run_at <= ?2
         ORDER BY priority DESC, run_at, seq LIMIT ?3",
    )?;
    for queue in mine.iter().filter(|q| !excluded.contains(q)) {
        let rows = per_queue.query_map(params![queue, now_ms, want_rows], |r| {
            Ok((
                (
                    -r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(0)?,
                ),
                r.get(1)?,
            ))
        })?;
        for row in rows {
            merged.push(row?);
        }
    }
    merged.sort_unstable_by_key(|(order, _)| *order);
    merged.truncate(want);
    Ok(merged
        .into_iter()
        .map(|((_, _, seq), queue)| (seq, queue))
        .collect())
}

/// Runs a claim statement ([`claim_where`]) with `which` as `?4` and
/// returns the jobs it took, in claim order.
fn take_jobs(
    tx: &Transaction,
    sql: &str,
    request: &ClaimRequest,
    which: &dyn ToSql,
    now: Timestamp,
) -> rusqlite::Result<Vec<Claimed>> {
    let now_ms = to_millis(now);
    let mut claimed = tx
        .prepare_cached(sql)?
        .query_map(
            params![
                request.worker,
                now_ms + millis(request.lease),
                now_ms,
                which
            ],
            |r| {
                let order: (i64, i64, i64) = (-r.get::<_, i64>(11)?, r.get(12)?, r.get(0)?);
                let lease = Lease {
                    seq: r.get(0)?,
                    token: r.get(10)?,
                    attempt: r.get(6)?,
                    failures: r.get(7)?,
                    max_retries: r.get(8)?,
                    worker: request.worker.clone(),
                };
                let cgroup = request
                    .cgroups
                    .as_deref()
                    .map(|under| attempt_cgroup(under, &lease.attempt_token()));
                let job = Claimed {
                    id: r.get(1)?,
                    command: r.get(2)?,
                    env: decode_env(r.get(3)?),
                    env_file: r.get(9)?,
                    cwd: r.get(4)?,
                    timeout_seconds: r.get(5)?,
                    lease,
                    cgroup,
                };
                Ok((order, job))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // RETURNING gives rows in no promised order.
    claimed.sort_unstable_by_key(|(order, _)| *order);
    Ok(claimed.into_iter().map(|(_, job)| job).collect())
}

/// Inserts the attempt row of each job claimed.
fn record_attempts(
    tx: &Transaction,
    request: &ClaimRequest,
    claimed: &[Claimed],
    now: Timestamp,
) -> rusqlite::Result<()> {
    let now_ms = to_millis(now);
    for chunk in claimed.chunks(CHUNK) {
        // One row as `VALUES`: SQLite checks an insert of one row's foreign
        // key before it writes anything, so it needs no statement journal.
        static RECORD: BatchSql = BatchSql::with_one_row(
            4,
            &["seq", "number", "cgroup"],
            "INSERT OR ROLLBACK INTO attempts (job_seq, number, worker, started_at, output, host, cgroup)
             SELECT d.seq, d.number, ?1, ?2, ?3, ?4, d.cgroup {from} WHERE d.seq IS NOT NULL",
            "INSERT OR ROLLBACK INTO attempts (job_seq, number, worker, started_at, output, host, cgroup)
             VALUES (d.seq, d.number, ?1, ?2, ?3, ?4, d.cgroup)",
        );
        let output = request.output.as_str();
        let mut args: Vec<&dyn ToSql> = vec![&request.worker, &now_ms, &output, &request.host];
        for job in chunk {
            args.extend([
                &job.lease.seq as &dyn ToSql,
                &job.lease.attempt,
                &job.cgroup,
            ]);
        }
        RECORD.execute(tx, args, chunk.len())?;
    }
    Ok(())
}

/// The one way a job leaves `processing`: records how the attempts in
/// `done` ended and moves their jobs on (two statements per [`CHUNK`]).
/// Only a job still `processing` under the lease given changes; the rest
/// change nothing. Returns, per attempt, whether its lease was still held;
/// the queues of the jobs that left `processing` (a place came free in
/// each); and what the jobs' ends did to the jobs waiting for them (one
/// statement per kind of end, only for jobs that have dependents). A job
/// whose cancel was requested ends `cancelled` (see [`transition`]); its
/// attempt keeps its own outcome.
pub(super) fn finish_in(
    tx: &Transaction,
    done: &[Finish],
    policy: &RetryPolicy,
    now: Timestamp,
) -> rusqlite::Result<(Vec<bool>, Vec<String>, Propagated)> {
    let mut held = Vec::with_capacity(done.len());
    let mut left: Vec<String> = Vec::new();
    let (mut completed, mut ended) = (Vec::new(), Vec::new());
    for chunk in done.chunks(CHUNK) {
        let moved = move_jobs(tx, chunk, policy, now)?;
        let chunk_held: Vec<bool> = chunk
            .iter()
            .map(|f| {
                moved
                    .iter()
                    .any(|m| (m.seq, m.attempt) == (f.lease.seq, i64::from(f.lease.attempt)))
            })
            .collect();
        let recorded: Vec<&Finish> = chunk
            .iter()
            .zip(&chunk_held)
            .filter_map(|(f, &held)| held.then_some(f))
            .collect();
        record_outcomes(tx, &recorded, now)?;
        held.extend(chunk_held);
        for m in moved {
            if m.dependents > 0 {
                match m.state.as_str() {
                    "completed" => completed.push(m.seq),
                    "dead" | "cancelled" => ended.push(m.seq),
                    _ => {}
                }
            }
            left.push(m.queue);
        }
    }
    let propagated = propagate_in(tx, &completed, &ended, to_millis(now))?;
    Ok((held, left, propagated))
}

/// The finish's move of each job (see [`move_jobs`]).
pub(super) static MOVE_JOBS: BatchSql = BatchSql::new(
    1,
    &[
        "seq",
        "token",
        "state",
        "run_at",
        "failures",
        "finished_at",
        "job_error",
        "cancelled_failures",
        "cancelled_error",
    ],
    "UPDATE OR ROLLBACK jobs SET
         state = CASE WHEN jobs.cancel_requested THEN 'cancelled' ELSE d.state END,
         run_at = CASE WHEN jobs.cancel_requested THEN jobs.run_at
                       ELSE COALESCE(d.run_at, jobs.run_at) END,
         failures = CASE WHEN jobs.cancel_requested THEN d.cancelled_failures ELSE d.failures END,
         finished_at = CASE WHEN jobs.cancel_requested THEN ?1 ELSE d.finished_at END,
         last_error = COALESCE(CASE WHEN jobs.cancel_requested THEN d.cancelled_error
                                    ELSE d.job_error END, jobs.last_error),
         worker = NULL, lease_token = NULL, lease_expires_at = NULL, cancel_requested = 0,
         updated_at = ?1
     {from} WHERE jobs.seq = d.seq AND jobs.state = 'processing' AND jobs.lease_token = d.token
     RETURNING seq, attempts, queue, state, dependents",
);

/// A job [`move_jobs`] moved on.
struct Moved {
    seq: i64,
    attempt: i64,
    queue: String,
    state: String,
    dependents: i64,
}

/// Moves the jobs of `chunk` still held under the lease given on; returns
/// those moved. (RETURNING sees the row after the change, its lease gone;
/// the attempt number tells two leases of one job apart.)
fn move_jobs(
    tx: &Transaction,
    chunk: &[Finish],
    policy: &RetryPolicy,
    now: Timestamp,
) -> rusqlite::Result<Vec<Moved>> {
    let now_ms = to_millis(now);
    let rows: Vec<JobMove> = chunk
        .iter()
        .map(|f| JobMove::new(f.lease, f.result, policy, now))
        .collect();
    let mut args: Vec<&dyn ToSql> = vec![&now_ms];
    for (f, row) in chunk.iter().zip(&rows) {
        args.extend([
            &f.lease.seq as &dyn ToSql,
            &f.lease.token,
            &row.state,
            &row.run_at,
            &row.failures,
            &row.finished_at,
            &row.job_error,
            &row.cancelled_failures,
            &row.cancelled_error,
        ]);
    }
    MOVE_JOBS.query(tx, args, chunk.len(), |r| {
        Ok(Moved {
            seq: r.get(0)?,
            attempt: r.get(1)?,
            queue: r.get(2)?,
            state: r.get(3)?,
            dependents: r.get(4)?,
        })
    })
}

/// Where one finished attempt takes its job: computed for a job whose
/// cancel was requested and one whose was not; the row decides.
struct JobMove {
    state: &'static str,
    run_at: Option<i64>,
    failures: u32,
    finished_at: Option<i64>,
    job_error: Option<String>,
    cancelled_failures: u32,
    cancelled_error: Option<String>,
}

impl JobMove {
    fn new(lease: &Lease, result: &AttemptResult, policy: &RetryPolicy, now: Timestamp) -> JobMove {
        let next = transition(lease, result, false, policy, now);
        let cancelled = transition(lease, result, true, policy, now);
        JobMove {
            state: next.state.as_str(),
            run_at: next.run_at.map(to_millis),
            failures: next.failures,
            finished_at: next.finished.then(|| to_millis(now)),
            job_error: next.job_error,
            cancelled_failures: cancelled.failures,
            cancelled_error: cancelled.job_error,
        }
    }
}

/// Records the outcome of each attempt in `done` (their leases were held).
fn record_outcomes(tx: &Transaction, done: &[&Finish], now: Timestamp) -> rusqlite::Result<()> {
    static RECORD: BatchSql = BatchSql::new(
        1,
        &[
            "seq",
            "number",
            "outcome",
            "exit_code",
            "signal",
            "error",
            "output",
            "truncated",
            "tail",
        ],
        "UPDATE OR ROLLBACK attempts SET finished_at = ?1, outcome = d.outcome,
             exit_code = d.exit_code, signal = d.signal, error = d.error,
             output = COALESCE(d.output, attempts.output),
             output_truncated = COALESCE(d.truncated, attempts.output_truncated),
             output_tail = d.tail
         {from} WHERE attempts.job_seq = d.seq AND attempts.number = d.number",
    );
    if done.is_empty() {
        return Ok(());
    }
    let now_ms = to_millis(now);
    let texts: Vec<(&str, Option<&str>, Option<bool>)> = done
        .iter()
        .map(|f| {
            let output = f.result.output;
            (
                f.result.outcome.as_str(),
                output.map(|o| o.destination.as_str()),
                output.map(|o| o.truncated),
            )
        })
        .collect();
    let mut args: Vec<&dyn ToSql> = vec![&now_ms];
    for (f, (outcome, output, truncated)) in done.iter().zip(&texts) {
        let result = f.result;
        args.extend([
            &f.lease.seq as &dyn ToSql,
            &f.lease.attempt,
            outcome,
            &result.exit_code,
            &result.signal,
            &result.error,
            output,
            truncated,
            &result.output_tail,
        ]);
    }
    RECORD.execute(tx, args, done.len())
}

/// Extends each lease still held to `duration` from now and refreshes the
/// worker's heartbeat (two statements per [`CHUNK`] of leases). Returns, per
/// lease, whether it is still the caller's and whether a user asked to
/// cancel its job.
pub(super) fn renew_in(
    tx: &Transaction,
    worker: &str,
    leases: &[&Lease],
    duration: Duration,
    now: Timestamp,
) -> rusqlite::Result<Vec<LeaseStatus>> {
    // RETURNING sees the row after the change: its lease token is the one
    // renewed (unchanged), which tells two leases of one job apart.
    static RENEW: BatchSql = BatchSql::new(
        2,
        &["seq", "token"],
        "UPDATE OR ROLLBACK jobs SET lease_expires_at = ?1, updated_at = ?2
         {from} WHERE jobs.seq = d.seq AND jobs.state = 'processing' AND jobs.lease_token = d.token
         RETURNING seq, lease_token, cancel_requested",
    );
    let now_ms = to_millis(now);
    let expires_at = now_ms + millis(duration);
    let mut statuses = Vec::with_capacity(leases.len());
    for chunk in leases.chunks(CHUNK) {
        let mut args: Vec<&dyn ToSql> = vec![&expires_at, &now_ms];
        for lease in chunk {
            args.extend([&lease.seq as &dyn ToSql, &lease.token]);
        }
        let renewed: Vec<(i64, i64, bool)> = RENEW.query(tx, args, chunk.len(), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        statuses.extend(lease_statuses(chunk, &renewed));
    }
    tx.prepare_cached("UPDATE workers SET heartbeat_at = ?1 WHERE name = ?2")?
        .execute(params![now_ms, worker])?;
    Ok(statuses)
}

/// A statement over rows given as parameters: `shared` parameters of its
/// own (`?1` ...), then each row's `columns`. The `template` names a row's
/// values `d.<column>` and has `{from}` where the rows are joined in.
///
/// Several rows become a `VALUES` list (`WITH d(…) AS (VALUES …)` and
/// `FROM d`), padded with NULL rows up to a power of two so that there are
/// few shapes, each prepared once per connection; the template's conditions
/// must match no NULL row. One row (a worker with one slot) is bound
/// directly (`d.<column>` becomes its parameter, no `FROM`): SQLite
/// materializes a joined `VALUES` list in temporary tables, which cost more
/// than the row's own work.
pub(super) struct BatchSql {
    shared: usize,
    columns: &'static [&'static str],
    template: &'static str,
    /// The template for one row, where it differs.
    one_row: Option<&'static str>,
    /// The text of each padded size, built once per process.
    texts: OnceLock<Vec<String>>,
}

impl BatchSql {
    const fn new(
        shared: usize,
        columns: &'static [&'static str],
        template: &'static str,
    ) -> BatchSql {
        BatchSql {
            shared,
            columns,
            template,
            one_row: None,
            texts: OnceLock::new(),
        }
    }

    /// A statement whose one-row form is `template` instead.
    const fn with_one_row(
        shared: usize,
        columns: &'static [&'static str],
        template: &'static str,
        one_row: &'static str,
    ) -> BatchSql {
        BatchSql {
            shared,
            columns,
            template,
            one_row: Some(one_row),
            texts: OnceLock::new(),
        }
    }

    /// The text for `rows` rows (1 to [`CHUNK`]) and how many rows it
    /// takes: the next power of two.
    pub(super) fn text(&self, rows: usize) -> (&str, usize) {
        debug_assert!((1..=CHUNK).contains(&rows));
        let shape = rows.next_power_of_two().trailing_zeros() as usize;
        let texts = self
            .texts
            .get_or_init(|| (0..SHAPES).map(|s| self.build(1 << s)).collect());
        (&texts[shape], 1 << shape)
    }

    fn build(&self, rows: usize) -> String {
        let param = |row: usize, column: usize| {
            format!("?{}", self.shared + 1 + row * self.columns.len() + column)
        };
        if rows == 1 {
            let template = self.one_row.unwrap_or(self.template);
            let sql = replace_row_refs(template, |name| {
                let column = self.columns.iter().position(|c| *c == name);
                param(0, column.expect("a template names only its columns"))
            });
            return sql.replace("{from}", "");
        }
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let row: Vec<String> = (0..self.columns.len()).map(|c| param(row, c)).collect();
                format!("({})", row.join(", "))
            })
            .collect();
        format!(
            "WITH d({}) AS (VALUES {}) {}",
            self.columns.join(", "),
            values.join(", "),
            self.template.replace("{from}", "FROM d")
        )
    }

    /// Binds `args` (the shared parameters, then `rows` rows), NULL rows
    /// padding the rest, and runs the statement.
    fn execute(
        &self,
        tx: &Transaction,
        args: Vec<&dyn ToSql>,
        rows: usize,
    ) -> rusqlite::Result<()> {
        let (sql, args) = self.padded(args, rows);
        tx.prepare_cached(sql)?.execute(params_from_iter(args))?;
        Ok(())
    }

    /// As [`execute`](Self::execute), returning the rows `map` makes.
    fn query<T>(
        &self,
        tx: &Transaction,
        args: Vec<&dyn ToSql>,
        rows: usize,
        map: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let (sql, args) = self.padded(args, rows);
        tx.prepare_cached(sql)?
            .query_map(params_from_iter(args), map)?
            .collect()
    }

    fn padded<'a>(&self, mut args: Vec<&'a dyn ToSql>, rows: usize) -> (&str, Vec<&'a dyn ToSql>) {
        debug_assert_eq!(args.len(), self.shared + rows * self.columns.len());
        let (sql, padded) = self.text(rows);
        let padding = (padded - rows) * self.columns.len();
        args.extend(std::iter::repeat_n(&Null as &dyn ToSql, padding));
        (sql, args)
    }
}

/// `sql` with each `d.<name>` (not part of a longer name) replaced by
/// `to(name)`.
fn replace_row_refs(sql: &str, to: impl Fn(&str) -> String) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("d.") {
        let starts_name = !rest[..at].ends_with(is_name);
        out.push_str(&rest[..at]);
        rest = &rest[at + 2..];
        if !starts_name {
            out.push_str("d.");
            continue;
        }
        let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        out.push_str(&to(&rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_is_bound_directly_and_several_are_a_padded_values_list() {
        let sql = BatchSql::new(
            1,
            &["seq", "cancelled"],
            "SELECT d.seq, d.cancelled, ?1, jobs.seq {from} WHERE d.seq = 1",
        );
        assert_eq!(
            sql.text(1),
            ("SELECT ?2, ?3, ?1, jobs.seq  WHERE ?2 = 1", 1)
        );
        let (three, rows) = sql.text(3);
        assert_eq!(rows, 4);
        assert_eq!(
            three,
            "WITH d(seq, cancelled) AS (VALUES (?2, ?3), (?4, ?5), (?6, ?7), (?8, ?9)) \
             SELECT d.seq, d.cancelled, ?1, jobs.seq FROM d WHERE d.seq = 1"
        );
        assert_eq!(sql.text(CHUNK).1, CHUNK);
    }
}
