//! The worker's side: claims, finishes, lease renewals and rescues, each a
//! fixed number of statements per batch (arrays in, `unnest` in SQL), never
//! one round trip per job.
//!
//! A claim is one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)` on the
//! partial claim index: concurrent claimers skip each other's rows instead
//! of queueing behind them, and each claimed job gets its own random lease
//! token (drawn here, assigned by claim order). Every later change to a
//! processing job matches `lease_token`, so a worker that lost its lease
//! changes nothing, as on SQLite.

use super::deps;
use super::listen::notify_work;
use super::rows::count;
use super::session::{Sql, TxResult};
use crate::domain::{JobState, RetryPolicy};
use crate::store::{
    AttemptResult, ClaimRequest, Claimed, Finish, HeldAttempt, Holder, Lease, LeaseStatus,
    attempt_cgroup, attempt_token, decode_env, lease_statuses, millis, rescue_with, transition,
};
use jiff::Timestamp;
use postgres::GenericClient;
use postgres::types::ToSql;
use std::time::Duration;

/// The most jobs one claim takes (a larger `limit` claims this many).
const MAX_CLAIM: usize = 10_000;

/// Up to `$2` due jobs in claim order, locked, skipping those another
/// claimer holds, none of a queue `$9` names (found full) nor of a paused
/// queue (`cfg`: the queues with a limit or paused, usually none).
///
/// `every_queue`: an ordered scan of the partial index `jobs_claim` (`$8`
/// is NULL). `named_queues` (`worker run --queues`, `$8` the names): an
/// ordered range of `jobs_claim_queue` per queue, `$2` from each, merged:
/// a worker of a small queue never reads past a large one's backlog.
macro_rules! candidates {
    (every_queue) => {
        concat!(
            "WITH cfg AS (SELECT name, parallel, paused FROM queues WHERE parallel IS NOT NULL OR paused), ",
            "candidates AS (
                 SELECT j.seq, j.queue, j.priority, j.run_at FROM jobs j
                 WHERE j.state IN ('pending', 'failed') AND j.deps_left = 0
                   AND j.run_at <= queuectl_now_ms()
                   AND ($8::text[] IS NULL OR j.queue = ANY($8)) AND j.queue <> ALL($9::text[])
                   AND NOT EXISTS (SELECT 1 FROM cfg WHERE cfg.name = j.queue AND cfg.paused)
                 ORDER BY j.priority DESC, j.run_at, j.seq
                 LIMIT $2
                 FOR UPDATE OF j SKIP LOCKED
             )"
        )
    };
    (named_queues) => {
        concat!(
            "WITH cfg AS (SELECT name, parallel, paused FROM queues WHERE parallel IS NOT NULL OR paused), ",
            "candidates AS (
                 SELECT c.seq, c.queue, c.priority, c.run_at
                 FROM unnest($8::text[]) AS mine(queue)
                 CROSS JOIN LATERAL (
                     SELECT j.seq, j.queue, j.priority, j.run_at FROM jobs j
                     -- A range, not `=`: with `=` the planner drops `queue` from the
                     -- order and may scan jobs_claim past other queues' jobs.
                     WHERE j.queue >= mine.queue AND j.queue <= mine.queue
                       AND j.state IN ('pending', 'failed') AND j.deps_left = 0
                       AND j.run_at <= queuectl_now_ms()
                     ORDER BY j.queue, j.priority DESC, j.run_at, j.seq
                     LIMIT $2
                     FOR UPDATE OF j SKIP LOCKED
                 ) c
                 WHERE mine.queue <> ALL($9::text[])
                   AND NOT EXISTS (SELECT 1 FROM cfg WHERE cfg.name = mine.queue AND cfg.paused)
                 ORDER BY c.priority DESC, c.run_at, c.seq
                 LIMIT $2
             )"
        )
    };
}

#[cfg(test)]
pub(super) use candidates;

/// The claim of the jobs of a `picked` CTE (seq, priority, run_at), which
/// precedes it: worker `$1`, lease `$3` ms, tokens `$4`, cgroups `$5`,
/// output `$6`, host `$7`; each claimed job also gets its attempt row.
macro_rules! claim_picked {
    () => {
        ", numbered AS (
             SELECT seq, row_number() OVER (ORDER BY priority DESC, run_at, seq) AS n FROM picked
         ), claimed AS (
             UPDATE jobs j SET state = 'processing', worker = $1, lease_token = ($4::bigint[])[p.n],
                 lease_expires_at = queuectl_now_ms() + $3, attempts = j.attempts + 1,
                 cancel_requested = false, updated_at = queuectl_now_ms()
             FROM numbered p WHERE j.seq = p.seq
             RETURNING p.n, j.seq, j.id, j.command, j.env, j.cwd, j.timeout_seconds, j.attempts,
                 j.failures, j.max_retries, j.env_file, j.lease_token, j.priority, j.run_at
         ), recorded AS (
             INSERT INTO attempts (job_seq, number, worker, started_at, output, host, cgroup)
             SELECT seq, attempts, $1, queuectl_now_ms(), $6, $7, ($5::text[])[n] FROM claimed
         )"
    };
}

/// The columns a claim statement returns for each job it took.
macro_rules! claimed_columns {
    () => {
        "n, seq, id, command, env, cwd, timeout_seconds, attempts, failures, max_retries, env_file,
         lease_token, priority, run_at"
    };
}

/// Claims up to `limit` due jobs for `request.worker`, in claim order, and
/// records an attempt for each. Runs in a transaction: jobs of limited
/// queues need more than one statement (see [`claim_free`]).
pub(super) fn claim<C: GenericClient>(
    sql: &mut Sql<C>,
    request: &ClaimRequest,
    limit: usize,
) -> TxResult<Vec<Claimed>> {
    let first = claim_free(sql, request, limit, &[])?;
    let mut claimed = first.claimed;
    claimed.extend(claim_held(
        sql,
        request,
        limit - claimed.len(),
        first.held,
        first.exhausted,
    )?);
    Ok(in_claim_order(claimed))
}

/// The jobs of several claim statements, in claim order.
pub(super) fn in_claim_order(mut claimed: Vec<Ordered>) -> Vec<Claimed> {
    claimed.sort_unstable_by_key(|c| c.order);
    claimed.into_iter().map(|c| c.job).collect()
}

/// What the first statement of a claim did.
pub(super) struct FreeClaim {
    /// The jobs it claimed: of queues without a limit.
    pub claimed: Vec<Ordered>,
    /// Due jobs of limited queues it locked but left (seq, queue): only
    /// holders of their queue's lock may claim them (see [`claim_held`]).
    pub held: Vec<(i64, String)>,
    /// Fewer jobs were due than asked for.
    pub exhausted: bool,
}

/// The claim's first statement, and when no queue is limited the only one:
/// locks up to `limit` due jobs (see [`candidates`]) and claims those of
/// queues without a `parallel` limit; the others come back as held.
pub(super) fn claim_free<C: GenericClient>(
    sql: &mut Sql<C>,
    request: &ClaimRequest,
    limit: usize,
    excluded: &[String],
) -> TxResult<FreeClaim> {
    let limit = limit.min(MAX_CLAIM);
    if limit == 0 {
        return Ok(FreeClaim {
            claimed: Vec::new(),
            held: Vec::new(),
            exhausted: false,
        });
    }
    // The statement over the candidates `$which` selects.
    macro_rules! claim_free_sql {
        ($which:tt) => {
            concat!(
                candidates!($which),
                ", picked AS (
                     SELECT seq, priority, run_at FROM candidates c
                     WHERE NOT EXISTS (SELECT 1 FROM cfg WHERE cfg.name = c.queue AND cfg.parallel IS NOT NULL)
                 )",
                claim_picked!(),
                "SELECT ",
                claimed_columns!(),
                ", NULL::text AS held FROM claimed
                 UNION ALL
                 SELECT NULL, seq, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                     queue
                 FROM candidates WHERE seq NOT IN (SELECT seq FROM picked)"
            )
        };
    }
    let claim = ClaimArgs::new(request, limit);
    let rows = sql.query(
        match request.queues {
            None => claim_free_sql!(every_queue),
            Some(_) => claim_free_sql!(named_queues),
        },
        &claim.params(&[&request.queues, &excluded]),
    )?;
    let mut held = Vec::new();
    let mut taken = Vec::new();
    for row in &rows {
        match row.try_get::<_, Option<String>>(14)? {
            Some(queue) => held.push((row.try_get(1)?, queue)),
            None => taken.push(row),
        }
    }
    Ok(FreeClaim {
        claimed: claimed_from(taken, request, &claim.cgroups)?,
        exhausted: rows.len() < limit,
        held,
    })
}

/// Claims, of the `held` jobs (locked by [`claim_free`], or locked again
/// here), as many as their queues have room for, then goes on with the
/// queues that still have room until `limit` jobs are claimed or none is
/// due: at most one more pass per limited queue.
///
/// Room is `parallel` less the queue's jobs processing, counted after the
/// queue's row is locked (`FOR NO KEY UPDATE`, in name order): every claim
/// of that queue committed before the lock was granted is counted, and
/// none can commit while this transaction holds it. Running jobs are
/// counted, not kept in a counter row, so every way out of `processing`
/// (finish, rescue, a crash) frees its place without touching the row.
pub(super) fn claim_held<C: GenericClient>(
    sql: &mut Sql<C>,
    request: &ClaimRequest,
    limit: usize,
    mut held: Vec<(i64, String)>,
    mut exhausted: bool,
) -> TxResult<Vec<Ordered>> {
    let mut claimed: Vec<Ordered> = Vec::new();
    let mut excluded: Vec<String> = Vec::new();
    while !held.is_empty() && claimed.len() < limit {
        let got = claim_in_room(sql, request, limit - claimed.len(), &held)?;
        let full: Vec<String> = held
            .iter()
            .filter(|(seq, _)| !got.iter().any(|c| c.job.lease.seq == *seq))
            .map(|(_, queue)| queue.clone())
            .collect();
        claimed.extend(got);
        if exhausted || full.is_empty() || claimed.len() >= limit {
            break;
        }
        excluded.extend(full);
        excluded.sort();
        excluded.dedup();
        let next = claim_free(sql, request, limit - claimed.len(), &excluded)?;
        claimed.extend(next.claimed);
        held = next.held;
        exhausted = next.exhausted;
    }
    Ok(claimed)
}

/// Locks the rows of the held jobs' queues, then claims those jobs in
/// claim order, at most the room each queue has, none of a paused queue.
fn claim_in_room<C: GenericClient>(
    sql: &mut Sql<C>,
    request: &ClaimRequest,
    limit: usize,
    held: &[(i64, String)],
) -> TxResult<Vec<Ordered>> {
    let mut queues: Vec<&str> = held.iter().map(|(_, q)| q.as_str()).collect();
    queues.sort_unstable();
    queues.dedup();
    // Fresh settings under the lock (a `queue set` may have committed since).
    let settings = sql.query(
        "SELECT name, parallel, paused FROM queues WHERE name = ANY($1) ORDER BY name
         FOR NO KEY UPDATE",
        &[&queues],
    )?;
    let mut names: Vec<String> = Vec::new();
    let mut parallel: Vec<Option<i64>> = Vec::new();
    let mut paused: Vec<bool> = Vec::new();
    for row in &settings {
        names.push(row.try_get(0)?);
        parallel.push(row.try_get(1)?);
        paused.push(row.try_get(2)?);
    }
    let seqs: Vec<i64> = held.iter().map(|(seq, _)| *seq).collect();
    let claim = ClaimArgs::new(request, limit.min(MAX_CLAIM).min(held.len()));
    let rows = sql.query(
        concat!(
            "WITH settings AS (
                 SELECT * FROM unnest($8::text[], $9::bigint[], $10::boolean[]) AS s(name, parallel, paused)
             ), locked AS (
                 SELECT j.seq, j.queue, j.priority, j.run_at FROM jobs j
                 WHERE j.seq = ANY($11) AND j.state IN ('pending', 'failed') AND j.deps_left = 0
                 FOR UPDATE OF j SKIP LOCKED
             ), ranked AS (
                 SELECT l.seq, l.priority, l.run_at, COALESCE(s.paused, false) AS paused,
                     row_number() OVER (PARTITION BY l.queue ORDER BY l.priority DESC, l.run_at, l.seq) AS rn,
                     s.parallel - (SELECT count(*) FROM jobs r
                                   WHERE r.state = 'processing' AND r.queue = l.queue) AS room
                 FROM locked l LEFT JOIN settings s ON s.name = l.queue
             ), picked AS (
                 SELECT seq, priority, run_at FROM ranked
                 WHERE NOT paused AND (room IS NULL OR rn <= room)
                 ORDER BY priority DESC, run_at, seq LIMIT $2
             )",
            claim_picked!(),
            "SELECT ",
            claimed_columns!(),
            " FROM claimed"
        ),
        &claim.params(&[&names, &parallel, &paused, &seqs]),
    )?;
    claimed_from(rows.iter().collect(), request, &claim.cgroups)
}

/// The parameters `$1`-`$7` every claim statement takes ([`claim_picked`]):
/// a lease token for each of up to `limit` jobs, and the cgroup each
/// attempt gets when the worker's is delegated.
struct ClaimArgs<'a> {
    request: &'a ClaimRequest,
    limit: i64,
    lease_ms: i64,
    tokens: Vec<i64>,
    cgroups: Vec<Option<String>>,
    output: &'static str,
}

impl<'a> ClaimArgs<'a> {
    fn new(request: &'a ClaimRequest, limit: usize) -> ClaimArgs<'a> {
        let tokens: Vec<i64> = (0..limit).map(|_| rand::random()).collect();
        let cgroups = tokens
            .iter()
            .map(|&token| {
                let under = request.cgroups.as_deref()?;
                Some(attempt_cgroup(under, &attempt_token(token)))
            })
            .collect();
        ClaimArgs {
            request,
            limit: limit as i64,
            lease_ms: millis(request.lease),
            tokens,
            cgroups,
            output: request.output.as_str(),
        }
    }

    /// `$1`-`$7`, then the statement's own from `$8`.
    fn params<'p>(&'p self, own: &[&'p (dyn ToSql + Sync)]) -> Vec<&'p (dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.request.worker,
            &self.limit,
            &self.lease_ms,
            &self.tokens,
            &self.cgroups,
            &self.output,
            &self.request.host,
        ];
        params.extend_from_slice(own);
        params
    }
}

/// A claimed job with its place in claim order (priority descending, due
/// time, seq), which holds across statements.
pub(super) struct Ordered {
    order: (i64, i64, i64),
    job: Claimed,
}

/// The jobs of a claim statement's rows ([`claimed_columns`]).
fn claimed_from(
    rows: Vec<&postgres::Row>,
    request: &ClaimRequest,
    cgroups: &[Option<String>],
) -> TxResult<Vec<Ordered>> {
    rows.into_iter()
        .map(|r| {
            let n: i64 = r.try_get(0)?;
            let seq: i64 = r.try_get(1)?;
            Ok(Ordered {
                order: (-r.try_get::<_, i64>(12)?, r.try_get(13)?, seq),
                job: Claimed {
                    id: r.try_get(2)?,
                    command: r.try_get(3)?,
                    env: decode_env(r.try_get(4)?),
                    cwd: r.try_get(5)?,
                    timeout_seconds: count(r, 6)?,
                    env_file: r.try_get(10)?,
                    lease: Lease {
                        seq,
                        token: r.try_get(11)?,
                        attempt: count(r, 7)?,
                        failures: count(r, 8)?,
                        max_retries: count(r, 9)?,
                        worker: request.worker.clone(),
                    },
                    cgroup: cgroups[(n - 1) as usize].clone(),
                },
            })
        })
        .collect()
}

/// The arrays one finish statement takes: per attempt, its lease, its
/// result, and where its job goes (computed by [`transition`] both for a
/// job whose cancel was requested and one whose was not; the row decides).
#[derive(Default)]
struct FinishBatch {
    seq: Vec<i64>,
    token: Vec<i64>,
    attempt: Vec<i64>,
    state: Vec<&'static str>,
    /// From the database's now; `None` keeps the due time it ran at.
    delay_ms: Vec<Option<i64>>,
    failures: Vec<i64>,
    finished: Vec<bool>,
    job_error: Vec<Option<String>>,
    cancelled_failures: Vec<i64>,
    cancelled_error: Vec<Option<String>>,
    outcome: Vec<&'static str>,
    exit_code: Vec<Option<i32>>,
    signal: Vec<Option<i32>>,
    error: Vec<Option<String>>,
    output: Vec<Option<&'static str>>,
    truncated: Vec<Option<bool>>,
    tail: Vec<Option<String>>,
}

impl FinishBatch {
    fn push(&mut self, lease: &Lease, result: &AttemptResult, policy: &RetryPolicy) {
        // Computed at the epoch, a due time is the delay from the
        // database's now, which the statement adds.
        let at = |cancel| transition(lease, result, cancel, policy, Timestamp::UNIX_EPOCH);
        let (next, cancelled) = (at(false), at(true));
        debug_assert_eq!(cancelled.state, JobState::Cancelled);
        self.seq.push(lease.seq);
        self.token.push(lease.token);
        self.attempt.push(i64::from(lease.attempt));
        self.state.push(next.state.as_str());
        self.delay_ms.push(next.run_at.map(|t| t.as_millisecond()));
        self.failures.push(i64::from(next.failures));
        self.finished.push(next.finished);
        self.job_error.push(next.job_error);
        self.cancelled_failures.push(i64::from(cancelled.failures));
        self.cancelled_error.push(cancelled.job_error);
        self.outcome.push(result.outcome.as_str());
        self.exit_code.push(result.exit_code);
        self.signal.push(result.signal);
        self.error.push(result.error.clone());
        self.output
            .push(result.output.map(|o| o.destination.as_str()));
        self.truncated.push(result.output.map(|o| o.truncated));
        self.tail.push(result.output_tail.clone());
    }
}

/// Records how attempts ended and moves their jobs on, in one statement:
/// only rows still `processing` under the given lease change. Returns, per
/// attempt, whether its lease was still held. Idle workers are woken when
/// a job went back to waiting (a retry, an interrupted attempt) or left a
/// place free in a queue with a `parallel` limit. The jobs waiting for
/// those that ended move on in statements of their own, only when some
/// have dependents: run it inside a transaction.
pub(super) fn finish<C: GenericClient>(
    sql: &mut Sql<C>,
    done: &[Finish],
    policy: &RetryPolicy,
) -> TxResult<Vec<bool>> {
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = FinishBatch::default();
    for attempt in done {
        b.push(attempt.lease, attempt.result, policy);
    }
    let rows = sql.query(
        concat!(
            "WITH done AS (
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[],
                     $6::bigint[], $7::boolean[], $8::text[], $9::bigint[], $10::text[], $11::text[],
                     $12::integer[], $13::integer[], $14::text[], $15::text[], $16::boolean[], $17::text[])
                 AS d(seq, token, attempt, state, delay_ms, failures, finished, job_error,
                     cancelled_failures, cancelled_error, outcome, exit_code, signal, error, output, truncated,
                     tail)
             ), moved AS (
                 UPDATE jobs j SET
                     state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE d.state END,
                     run_at = CASE WHEN j.cancel_requested OR d.delay_ms IS NULL THEN j.run_at
                                   ELSE queuectl_now_ms() + d.delay_ms END,
                     failures = CASE WHEN j.cancel_requested THEN d.cancelled_failures ELSE d.failures END,
                     finished_at = CASE WHEN j.cancel_requested OR d.finished THEN queuectl_now_ms() END,
                     last_error = COALESCE(CASE WHEN j.cancel_requested THEN d.cancelled_error
                                                ELSE d.job_error END, j.last_error),
                     worker = NULL, lease_token = NULL, lease_expires_at = NULL,
                     cancel_requested = false, updated_at = queuectl_now_ms()
                 FROM done d
                 WHERE j.seq = d.seq AND j.state = 'processing' AND j.lease_token = d.token
                 RETURNING j.seq, d.token, j.queue, j.state IN ('pending', 'failed') AS waiting,
                     j.state, j.dependents
             ), recorded AS (
                 UPDATE attempts a SET finished_at = queuectl_now_ms(), outcome = d.outcome,
                     exit_code = d.exit_code, signal = d.signal, error = d.error,
                     output = COALESCE(d.output, a.output),
                     output_truncated = COALESCE(d.truncated, a.output_truncated),
                     output_tail = d.tail
                 FROM done d JOIN moved m ON m.seq = d.seq AND m.token = d.token
                 WHERE a.job_seq = d.seq AND a.number = d.attempt
             ), woken AS (",
            notify_work!(),
            " WHERE EXISTS (SELECT 1 FROM moved WHERE waiting)
                 -- A place in a limited queue came free: its waiting jobs may run.
                 OR EXISTS (SELECT 1 FROM moved m JOIN queues q ON q.name = m.queue
                            WHERE q.parallel IS NOT NULL)
             )
             SELECT seq, token, (SELECT count(*) FROM woken), state, dependents FROM moved"
        ),
        &[
            &b.seq,
            &b.token,
            &b.attempt,
            &b.state,
            &b.delay_ms,
            &b.failures,
            &b.finished,
            &b.job_error,
            &b.cancelled_failures,
            &b.cancelled_error,
            &b.outcome,
            &b.exit_code,
            &b.signal,
            &b.error,
            &b.output,
            &b.truncated,
            &b.tail,
        ],
    )?;
    let held: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<TxResult<_>>()?;
    let (mut completed, mut ended) = (Vec::new(), Vec::new());
    for row in &rows {
        if row.try_get::<_, i64>(4)? == 0 {
            continue;
        }
        match row.try_get::<_, &str>(3)? {
            "completed" => completed.push(row.try_get(0)?),
            "dead" | "cancelled" => ended.push(row.try_get(0)?),
            _ => {}
        }
    }
    // A statement of its own: its snapshot sees the edges of jobs enqueued
    // while this finish waited for their dependency's row (see `deps`).
    deps::propagate(sql, &completed, &ended)?;
    Ok(done
        .iter()
        .map(|f| held.contains(&(f.lease.seq, f.lease.token)))
        .collect())
}

/// Extends the leases still held and refreshes the worker's heartbeat, in
/// one statement.
pub(super) fn renew<C: GenericClient>(
    sql: &mut Sql<C>,
    worker: &str,
    leases: &[&Lease],
    duration: Duration,
) -> TxResult<Vec<LeaseStatus>> {
    let seqs: Vec<i64> = leases.iter().map(|l| l.seq).collect();
    let tokens: Vec<i64> = leases.iter().map(|l| l.token).collect();
    let rows = sql.query(
        "WITH beat AS (UPDATE workers SET heartbeat_at = queuectl_now_ms() WHERE name = $1)
         UPDATE jobs j SET lease_expires_at = queuectl_now_ms() + $2, updated_at = queuectl_now_ms()
         FROM unnest($3::bigint[], $4::bigint[]) AS d(seq, token)
         WHERE j.seq = d.seq AND j.state = 'processing' AND j.lease_token = d.token
         RETURNING j.seq, j.lease_token, j.cancel_requested",
        &[&worker, &millis(duration), &seqs, &tokens],
    )?;
    let renewed: Vec<(i64, i64, bool)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<TxResult<_>>()?;
    Ok(lease_statuses(leases, &renewed).collect())
}

/// The attempts a rescuer must end first.
pub(super) fn held_attempts<C: GenericClient>(
    sql: &mut Sql<C>,
    holder: Holder,
) -> TxResult<Vec<HeldAttempt>> {
    macro_rules! held {
        ($filter:literal) => {
            concat!(
                "SELECT j.id, j.lease_token, a.host, a.cgroup FROM jobs j
                 LEFT JOIN attempts a ON a.job_seq = j.seq AND a.number = j.attempts
                 WHERE j.state = 'processing' AND ",
                $filter,
                " ORDER BY j.seq"
            )
        };
    }
    let rows = match holder {
        Holder::Expired => sql.query(held!("j.lease_expires_at < queuectl_now_ms()"), &[])?,
        Holder::Worker(name) => sql.query(held!("j.worker = $1"), &[&name])?,
    };
    rows.iter()
        .map(|r| {
            Ok(HeldAttempt::new(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
            ))
        })
        .collect()
}

/// Finishes, as `lease_expired`, those of `ended` still held as `holder`
/// says under the same lease. Rows another rescuer (or their worker) is
/// changing right now are skipped, not waited for: many hosts may run
/// this at once, and the lease-token match makes each attempt end once.
pub(super) fn rescue(
    sql: &mut Sql<postgres::Transaction>,
    holder: Holder,
    ended: &[HeldAttempt],
    policy: &RetryPolicy,
) -> TxResult<Vec<String>> {
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    macro_rules! processing {
        ($filter:literal) => {
            concat!(
                "SELECT id, seq, lease_token, attempts, failures, max_retries, worker, lease_expires_at
                 FROM jobs WHERE state = 'processing' AND ",
                $filter,
                " ORDER BY seq FOR UPDATE SKIP LOCKED"
            )
        };
    }
    let rows = match holder {
        Holder::Expired => sql.query(processing!("lease_expires_at < queuectl_now_ms()"), &[])?,
        Holder::Worker(name) => sql.query(processing!("worker = $1"), &[&name])?,
    };
    let held = rows
        .iter()
        .map(|r| {
            let lease = Lease {
                seq: r.try_get(1)?,
                token: r.try_get(2)?,
                attempt: count(r, 3)?,
                failures: count(r, 4)?,
                max_retries: count(r, 5)?,
                worker: r.try_get(6)?,
            };
            Ok((r.try_get(0)?, lease, r.try_get::<_, i64>(7)?))
        })
        .collect::<TxResult<Vec<(String, Lease, i64)>>>()?;
    rescue_with(held, ended, holder, |done| finish(sql, done, policy))
}

/// How long until the next job `request` may claim falls due, or the next
/// lease runs out: the earliest due time of each queue it serves that is
/// neither paused nor full (a loose scan of `jobs_due`, one probe per
/// distinct queue), and the earliest lease expiry.
pub(super) fn next_event_in<C: GenericClient>(
    sql: &mut Sql<C>,
    request: &ClaimRequest,
) -> TxResult<Option<Duration>> {
    let row = sql.query_one(
        "WITH RECURSIVE waiting(name) AS (
             (SELECT queue FROM jobs WHERE state IN ('pending', 'failed') AND deps_left = 0
              ORDER BY queue LIMIT 1)
             UNION ALL
             SELECT (SELECT queue FROM jobs
                     WHERE state IN ('pending', 'failed') AND deps_left = 0 AND queue > w.name
                     ORDER BY queue LIMIT 1)
             FROM waiting w WHERE w.name IS NOT NULL
         ), due AS (
             SELECT (SELECT min(run_at) FROM jobs
                     WHERE state IN ('pending', 'failed') AND deps_left = 0 AND queue = w.name) AS at
             FROM waiting w
             WHERE w.name IS NOT NULL AND ($1::text[] IS NULL OR w.name = ANY($1))
               AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = w.name AND (q.paused
                   OR q.parallel <= (SELECT count(*) FROM jobs r
                                     WHERE r.state = 'processing' AND r.queue = q.name)))
         )
         SELECT LEAST(
             (SELECT min(at) FROM due),
             -- Lease expiry is strict (<): look just after it.
             (SELECT min(lease_expires_at) + 1 FROM jobs WHERE state = 'processing')
         ) - queuectl_now_ms()",
        &[&request.queues],
    )?;
    let wait: Option<i64> = row.try_get(0)?;
    // Already past: zero.
    Ok(wait.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
}
