//! Named queues on PostgreSQL: the `queues` table (a row only for a queue
//! with a limit or paused) and `queue list`'s counts. The claim reads and
//! locks the rows (`claims.rs`); a change here takes the same row lock, so
//! it waits for claims of that queue in flight and they for it.

use super::listen::notify_work;
use super::session::{Sql, TxResult};
use crate::domain::{QueueChange, QueueName};
use crate::store::QueueRow;
use postgres::GenericClient;

/// Every queue with a row or unfinished jobs, by name; `only` one of them.
pub(super) fn rows<C: GenericClient>(
    sql: &mut Sql<C>,
    only: Option<&str>,
) -> TxResult<Vec<QueueRow>> {
    // Counts per queue and state from the (queue, state) index, as the
    // overview's; blocked jobs from their own partial index (migration 8,
    // whose predicate this repeats so the planner can use it).
    let rows = sql.query(
        "WITH counts AS (
             SELECT queue AS name,
                 count(*) FILTER (WHERE state IN ('pending', 'failed')) AS waiting,
                 count(*) FILTER (WHERE state = 'processing') AS running
             FROM jobs WHERE state IN ('pending', 'failed', 'processing') GROUP BY queue
         ), blocked AS (
             SELECT queue AS name, count(*) AS blocked
             FROM jobs WHERE state = 'pending' AND deps_left > 0 GROUP BY queue
         ), names AS (SELECT name FROM counts UNION SELECT name FROM queues)
         SELECT n.name, q.parallel, COALESCE(q.paused, false), COALESCE(c.waiting, 0),
             COALESCE(c.running, 0), COALESCE(b.blocked, 0)
         FROM names n LEFT JOIN queues q ON q.name = n.name LEFT JOIN counts c ON c.name = n.name
             LEFT JOIN blocked b ON b.name = n.name
         WHERE $1::text IS NULL OR n.name = $1
         ORDER BY n.name",
        &[&only],
    )?;
    rows.iter()
        .map(|r| {
            let parallel: Option<i64> = r.try_get(1)?;
            let count = |i: usize| -> TxResult<u64> { Ok(r.try_get::<_, i64>(i)?.max(0) as u64) };
            Ok(QueueRow {
                name: r.try_get(0)?,
                parallel: parallel.and_then(|n| u32::try_from(n).ok()),
                paused: r.try_get(2)?,
                waiting: count(3)?,
                running: count(4)?,
                blocked: count(5)?,
            })
        })
        .collect()
}

/// Applies `change` to `name`'s row (a row left without a limit and not
/// paused is dropped), waking idle workers, and returns the queue.
pub(super) fn configure(
    sql: &mut Sql<postgres::Transaction>,
    name: &QueueName,
    change: &QueueChange,
) -> TxResult<QueueRow> {
    let parallel = change.parallel.flatten().map(i64::from);
    sql.query(
        concat!(
            "WITH changed AS (
                 INSERT INTO queues (name, parallel, paused, updated_at)
                 VALUES ($1, $3, COALESCE($4, false), queuectl_now_ms())
                 ON CONFLICT (name) DO UPDATE SET
                     parallel = CASE WHEN $2 THEN excluded.parallel ELSE queues.parallel END,
                     paused = COALESCE($4, queues.paused), updated_at = excluded.updated_at
                 RETURNING name
             ), woken AS (",
            notify_work!(),
            " WHERE EXISTS (SELECT 1 FROM changed))
             SELECT (SELECT count(*) FROM woken)"
        ),
        &[
            &name.as_str(),
            &change.parallel.is_some(),
            &parallel,
            &change.paused,
        ],
    )?;
    sql.execute(
        "DELETE FROM queues WHERE name = $1 AND parallel IS NULL AND NOT paused",
        &[&name.as_str()],
    )?;
    let found = rows(sql, Some(name.as_str()))?.into_iter().next();
    Ok(found.unwrap_or_else(|| QueueRow::empty(name.as_str())))
}
