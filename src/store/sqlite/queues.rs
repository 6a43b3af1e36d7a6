//! Named queues on SQLite: the `queues` table (a row only for a queue with
//! a limit or paused), what the claim reads of it, and `queue list`'s
//! counts (from the counter tables, never by reading jobs). Limits are
//! enforced by the claim (`claims.rs`) under the write lock, so every count
//! it takes is exact.

use crate::domain::{QueueChange, QueueName};
use crate::store::{QueueRow, to_millis};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// A queue that is limited or paused, as the claim sees it.
#[derive(Clone, Debug)]
pub(super) struct Limit {
    pub name: String,
    pub parallel: Option<u32>,
    pub paused: bool,
}

/// The queues that restrict claims (usually none: the claim's fast path).
pub(super) fn limits(tx: &Connection) -> rusqlite::Result<Vec<Limit>> {
    tx.prepare_cached(
        "SELECT name, parallel, paused FROM queues WHERE parallel IS NOT NULL OR paused",
    )?
    .query_map([], |r| {
        Ok(Limit {
            name: r.get(0)?,
            parallel: r.get(1)?,
            paused: r.get(2)?,
        })
    })?
    .collect()
}

/// Jobs of `queue` processing now (a range of the state index: the running
/// jobs only).
pub(super) fn running(tx: &Connection, queue: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT count(*) FROM jobs WHERE state = 'processing' AND queue = ?1")?
        .query_row([queue], |r| r.get(0))
}

/// Applies `change` to `name`'s row, dropping a row left without a limit
/// and not paused (no row means unlimited and running).
pub(super) fn configure(
    tx: &Transaction,
    name: &QueueName,
    change: &QueueChange,
    now: Timestamp,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO queues (name, parallel, paused, updated_at) VALUES (?1, ?3, COALESCE(?4, 0), ?5)
         ON CONFLICT (name) DO UPDATE SET
             parallel = CASE WHEN ?2 THEN excluded.parallel ELSE queues.parallel END,
             paused = COALESCE(?4, queues.paused), updated_at = excluded.updated_at",
    )?
    .execute(params![
        name.as_str(),
        change.parallel.is_some(),
        change.parallel.flatten(),
        change.paused,
        to_millis(now)
    ])?;
    tx.prepare_cached("DELETE FROM queues WHERE name = ?1 AND parallel IS NULL AND NOT paused")?
        .execute([name.as_str()])?;
    Ok(())
}

/// `queue list`'s rows from the counters migrations 9 and 11 keep (never
/// `jobs`: as cheap with a million unfinished jobs as with none); `?1`
/// names one queue or is NULL for all.
pub(super) const QUEUE_ROWS: &str = "WITH counts AS (
         SELECT queue AS name,
             sum(CASE WHEN state IN ('pending', 'failed') THEN n ELSE 0 END) AS waiting,
             sum(CASE WHEN state = 'processing' THEN n ELSE 0 END) AS running
         FROM queue_counts WHERE state IN ('pending', 'failed', 'processing') AND n > 0
         GROUP BY queue
     ), names AS (SELECT name FROM counts UNION SELECT name FROM queues)
     SELECT n.name, q.parallel, COALESCE(q.paused, 0), COALESCE(c.waiting, 0),
         COALESCE(c.running, 0),
         COALESCE((SELECT b.n FROM blocked_counts b WHERE b.queue = n.name), 0)
     FROM names n LEFT JOIN queues q ON q.name = n.name LEFT JOIN counts c ON c.name = n.name
     WHERE ?1 IS NULL OR n.name = ?1
     ORDER BY n.name";

/// Every queue with a row or unfinished jobs, by name; `only` one of them.
pub(super) fn rows(tx: &Connection, only: Option<&str>) -> rusqlite::Result<Vec<QueueRow>> {
    tx.prepare_cached(QUEUE_ROWS)?
        .query_map([only], |r| {
            Ok(QueueRow {
                name: r.get(0)?,
                parallel: r.get(1)?,
                paused: r.get(2)?,
                waiting: r.get::<_, i64>(3)?.max(0) as u64,
                running: r.get::<_, i64>(4)?.max(0) as u64,
                blocked: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?
        .collect()
}

/// One queue's row (a queue nobody configured and no job names is
/// unlimited, running and empty).
pub(super) fn row(tx: &Connection, name: &QueueName) -> rusqlite::Result<QueueRow> {
    let found = rows(tx, Some(name.as_str()))?.into_iter().next();
    Ok(found.unwrap_or_else(|| QueueRow::empty(name.as_str())))
}

/// When the next job `mine` may claim falls due, or the next lease runs
/// out: the earliest due time of each queue it serves that is neither
/// paused nor full (a loose scan of `jobs_due`: one seek per distinct
/// queue, then its earliest `run_at`), and the earliest lease expiry.
pub(super) fn next_event_at(
    tx: &Connection,
    mine: Option<&[String]>,
) -> rusqlite::Result<Option<i64>> {
    let mine = mine.map(|queues| serde_json::to_string(queues).expect("strings serialize"));
    tx.prepare_cached(
        "WITH RECURSIVE waiting(name) AS (
             SELECT min(queue) FROM jobs INDEXED BY jobs_due
                 WHERE state IN ('pending', 'failed') AND deps_left = 0
             UNION ALL
             SELECT (SELECT min(queue) FROM jobs INDEXED BY jobs_due
                     WHERE state IN ('pending', 'failed') AND deps_left = 0 AND queue > waiting.name)
             FROM waiting WHERE waiting.name IS NOT NULL
         )
         SELECT min(t) FROM (
             SELECT (SELECT min(run_at) FROM jobs INDEXED BY jobs_due
                     WHERE state IN ('pending', 'failed') AND deps_left = 0 AND queue = w.name) AS t
             FROM waiting w
             WHERE w.name IS NOT NULL
               AND (?1 IS NULL OR w.name IN (SELECT value FROM json_each(?1)))
               AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = w.name AND (q.paused
                   OR q.parallel <= (SELECT count(*) FROM jobs r
                                     WHERE r.state = 'processing' AND r.queue = q.name)))
             UNION ALL
             -- Lease expiry is strict (<): look just after it.
             SELECT min(lease_expires_at) + 1 FROM jobs WHERE state = 'processing')",
    )?
    .query_row([mine], |r| r.get(0))
    .optional()
    .map(Option::flatten)
}

/// `copy`: the settings of the queues that have any (limited or paused).
pub(super) fn import_settings(tx: &Transaction, queues: &[QueueRow]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO queues (name, parallel, paused, updated_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let now = to_millis(Timestamp::now());
    for queue in queues.iter().filter(|q| q.has_settings()) {
        insert.execute(params![queue.name, queue.parallel, queue.paused, now])?;
    }
    Ok(())
}
