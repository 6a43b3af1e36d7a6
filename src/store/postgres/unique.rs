//! Unique keys on PostgreSQL: enqueueing jobs that carry a key, and which
//! constraint refused a write.
//!
//! The partial unique index `jobs_unique` decides, so it is race-free
//! whatever the number of enqueuers on however many hosts: each keyed job is
//! one `INSERT … ON CONFLICT` on that index. A conflicting insert still in
//! flight in another transaction makes this one wait for it to end. When
//! nothing was inserted, a new statement (a fresh snapshot) reads the holder;
//! if that holder finished in between, the insert is tried again.

use super::actions::schedule_millis;
use super::listen::notify_work;
use super::session::{Sql, TxResult};
use crate::domain::unique::key_held;
use crate::domain::{EnqueueOutcome, JobId, NewJob, OnDuplicate};
use crate::error::Error;
use crate::store::{Enqueued, JobDefaults, duplicate_id, encode_env, to_millis};
use jiff::Timestamp;
use postgres::GenericClient;
use postgres::error::SqlState;

/// The unique index's constraint, and the one on job ids.
pub(super) const UNIQUE_KEY_CONSTRAINT: &str = "jobs_unique";
pub(super) const ID_CONSTRAINT: &str = "jobs_id_key";

/// The condition (on `jobs`) that a job's key is free: no unfinished job
/// holds it. Restarts add it, so they leave a job whose key was taken again
/// alone instead of failing on the index.
macro_rules! key_free {
    () => {
        "(jobs.unique_key IS NULL OR NOT EXISTS (
             SELECT 1 FROM jobs holder WHERE holder.unique_key = jobs.unique_key
                 AND holder.state IN ('pending', 'processing', 'failed')))"
    };
}
pub(super) use key_free;

/// Of the rows of a restart's `chosen` (seq, unique_key), the newest per
/// key: two finished jobs of one key restarted at once would both pass
/// [`key_free`], and the second would fail on the index.
macro_rules! one_per_key {
    () => {
        "(c.unique_key IS NULL OR NOT EXISTS (
             SELECT 1 FROM chosen d WHERE d.unique_key = c.unique_key AND d.seq > c.seq))"
    };
}
pub(super) use one_per_key;

/// The unfinished job other than `jobs`' row that holds its key (the
/// restart actions report it as the reason they left a job alone).
macro_rules! key_holder {
    () => {
        "(SELECT holder.id FROM jobs holder WHERE holder.unique_key = jobs.unique_key
             AND holder.state IN ('pending', 'processing', 'failed') AND holder.seq <> jobs.seq)"
    };
}
pub(super) use key_holder;

/// How often a restart statement runs again after meeting a key that an
/// enqueue committed after the statement's snapshot (its check could not
/// see it; the index refused).
const KEY_RACE_RETRIES: usize = 5;

/// Runs `statement` (a restart) again when it failed on `jobs_unique`: an
/// enqueue took a key after the statement looked. The new run sees the
/// holder and leaves that job alone. In a transaction (`savepoint`) the
/// failed statement is rolled back to a savepoint first.
pub(super) fn retrying_key_races<C: GenericClient, T>(
    sql: &mut Sql<C>,
    savepoint: bool,
    mut statement: impl FnMut(&mut Sql<C>) -> Result<T, postgres::Error>,
) -> TxResult<T> {
    let mut races = 0;
    loop {
        if savepoint {
            sql.batch("SAVEPOINT key_race")?;
        }
        match statement(sql) {
            Err(e)
                if races < KEY_RACE_RETRIES
                    && violated_unique(&e) == Some(UNIQUE_KEY_CONSTRAINT) =>
            {
                races += 1;
                if savepoint {
                    sql.batch("ROLLBACK TO SAVEPOINT key_race")?;
                }
            }
            other => {
                let value = other?;
                if savepoint {
                    sql.batch("RELEASE SAVEPOINT key_race")?;
                }
                return Ok(value);
            }
        }
    }
}

/// How often a keyed insert is tried again when its holder finished between
/// the insert that met it and the read of it.
const HOLDER_GONE_RETRIES: usize = 3;

/// One job's insert; `$on_conflict` is what meeting the key's holder does.
/// Returns the job's id and whether it was inserted (not an update).
macro_rules! insert_one {
    ($on_conflict:literal) => {
        concat!(
            "INSERT INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds,
                 env, cwd, created_at, updated_at, env_file, unique_key, queue)
             VALUES ($1, $2, 'pending', $3,
                 COALESCE($4::bigint, LEAST(queuectl_now_ms() + $5::bigint, $12::bigint)),
                 $6, $7, $8, $9, queuectl_now_ms(), queuectl_now_ms(), $10, $11, $13)
             ON CONFLICT (unique_key)
                 WHERE unique_key IS NOT NULL AND state IN ('pending', 'processing', 'failed') ",
            $on_conflict,
            " RETURNING id, xmax = 0"
        )
    };
}

/// `reject` and `skip` (and jobs without a key: NULL never conflicts).
const INSERT_OR_MEET: &str = insert_one!("DO NOTHING");
/// `replace`: a waiting holder takes the new job's settings, and as a new
/// submission is pending with the new job's retry budget (no failures, no
/// last error); its attempt history stays.
const INSERT_OR_REPLACE: &str = insert_one!(
    "DO UPDATE SET command = excluded.command, priority = excluded.priority,
         run_at = excluded.run_at, max_retries = excluded.max_retries,
         timeout_seconds = excluded.timeout_seconds, env = excluded.env,
         env_file = excluded.env_file, cwd = excluded.cwd, queue = excluded.queue,
         updated_at = excluded.updated_at, state = 'pending', failures = 0, last_error = NULL
     WHERE jobs.state IN ('pending', 'failed')"
);

/// Enqueues `jobs` (with or without unique keys) one statement each, in
/// the caller's transaction (all or none), then wakes idle workers: what
/// `enqueue` does for a batch with keys, and what a caller that enqueues
/// inside a transaction of its own uses.
pub(super) fn enqueue_in(
    sql: &mut Sql<postgres::Transaction>,
    jobs: &[(usize, NewJob)],
    defaults: &JobDefaults,
) -> TxResult<Vec<Enqueued>> {
    let batch = jobs.len() > 1;
    let mut enqueued = Vec::with_capacity(jobs.len());
    for (line, job) in jobs {
        // Ids only need to be unique: this host's clock is fine for them.
        let id = job
            .id
            .clone()
            .unwrap_or_else(|| JobId::generate(Timestamp::now()));
        let line = batch.then_some(*line);
        enqueued.push(enqueue_one(sql, job, &id, defaults, line).map_err(|e| e.in_batch(line))?);
    }
    sql.execute(notify_work!(), &[])?;
    Ok(enqueued)
}

fn enqueue_one<C: GenericClient>(
    sql: &mut Sql<C>,
    job: &NewJob,
    id: &JobId,
    defaults: &JobDefaults,
    line: Option<usize>,
) -> TxResult<Enqueued> {
    let (run_at, delay_ms) = schedule_millis(job.schedule);
    let max_retries = i64::from(job.max_retries.unwrap_or(defaults.max_retries));
    let timeout = i64::from(job.timeout_seconds.unwrap_or(defaults.timeout_seconds));
    let env = encode_env(&job.env);
    let key = job.unique.as_ref().map(|u| u.key.as_str());
    let policy = job.unique.as_ref().map(|u| u.on_duplicate);
    let statement = match policy {
        Some(OnDuplicate::Replace) => INSERT_OR_REPLACE,
        _ => INSERT_OR_MEET,
    };
    for _ in 0..=HOLDER_GONE_RETRIES {
        let row = sql
            .query_opt(
                statement,
                &[
                    &id.as_str(),
                    &job.command,
                    &job.priority,
                    &run_at,
                    &delay_ms,
                    &max_retries,
                    &timeout,
                    &env,
                    &job.cwd,
                    &job.env_file,
                    &key,
                    &to_millis(Timestamp::MAX),
                    &job.queue.as_str(),
                ],
            )
            .map_err(|e| insert_refusal(e, id, line))?;
        if let Some(row) = row {
            let inserted: bool = row.try_get(1)?;
            let outcome = if inserted {
                EnqueueOutcome::Created
            } else {
                EnqueueOutcome::Replaced
            };
            return Ok(Enqueued {
                id: row.try_get(0)?,
                outcome,
            });
        }
        let (Some(key), Some(policy)) = (key, policy) else {
            unreachable!("only a keyed insert meets a holder");
        };
        let holder = sql.query_opt(
            "SELECT id, state FROM jobs
             WHERE unique_key = $1 AND state IN ('pending', 'processing', 'failed')",
            &[&key],
        )?;
        let Some(holder) = holder else {
            continue; // It finished in between: try again.
        };
        let (holder, state): (String, String) = (holder.try_get(0)?, holder.try_get(1)?);
        return match policy {
            OnDuplicate::Skip => Ok(Enqueued {
                id: holder,
                outcome: EnqueueOutcome::Existing,
            }),
            OnDuplicate::Reject => Err(Error::Conflict(key_held(key, &holder, false)).into()),
            // Not updated: it was running when the insert met it.
            OnDuplicate::Replace => {
                Err(Error::Conflict(key_held(key, &holder, state == "processing")).into())
            }
        };
    }
    Err(Error::Conflict(format!(
        "unique key '{}' kept changing hands while this job was enqueued; try again",
        crate::domain::echo::shown(key.unwrap_or_default())
    ))
    .into())
}

/// The constraint a unique violation names, if `e` is one.
pub(super) fn violated_unique(e: &postgres::Error) -> Option<&str> {
    if e.code() != Some(&SqlState::UNIQUE_VIOLATION) {
        return None;
    }
    e.as_db_error().and_then(|db| db.constraint())
}

/// Why the insert of job `id` was refused: its id is taken (the key's
/// conflicts never get here: the insert's `ON CONFLICT` takes them); any
/// other error (a CHECK: a bug) as the database reported it.
fn insert_refusal(e: postgres::Error, id: &JobId, line: Option<usize>) -> super::session::TxError {
    match violated_unique(&e) {
        Some(ID_CONSTRAINT) => duplicate_id(id, line).into(),
        _ => e.into(),
    }
}
