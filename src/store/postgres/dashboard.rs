//! The dashboard's figures on PostgreSQL, in one read-only snapshot: counts
//! per queue and state from the (queue, state) index, lag from the due
//! index, the rest from the sharded counter rows migration 6's triggers keep
//! (summed here).

use super::session::{Sql, TxResult};
use crate::store::dashboard::{
    Histogram, HistogramRow, MinuteRow, Overview, QueueStateCount, Stats, lag_from, last_hour_from,
    last_hour_minutes, sorted_counts, stats_from, waiting_queues,
};
use crate::store::{from_millis, parse_state};
use postgres::Transaction;

/// One snapshot for every statement of a read.
fn snapshot(sql: &mut Sql<'_, Transaction<'_>>) -> TxResult<()> {
    sql.batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    Ok(())
}

pub(super) fn overview(sql: &mut Sql<'_, Transaction<'_>>) -> TxResult<Overview> {
    snapshot(sql)?;
    let now = from_millis(sql.query_one("SELECT queuectl_now_ms()", &[])?.try_get(0)?);
    let mut counts = Vec::new();
    for row in sql.query(
        "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state",
        &[],
    )? {
        let n: i64 = row.try_get(2)?;
        counts.push(QueueStateCount {
            queue: row.try_get(0)?,
            state: parse_state(row.try_get(1)?)?,
            jobs: n.max(0) as u64,
        });
    }
    let counts = sorted_counts(counts);
    let waiting = waiting_queues(&counts);
    // The oldest due time per queue: the first entry of its jobs_due range.
    let mut oldest = Vec::new();
    for row in sql.query(
        "SELECT q.name, (SELECT min(j.run_at) FROM jobs j
                         WHERE j.queue = q.name AND j.state IN ('pending', 'failed')
                           AND j.deps_left = 0)
         FROM unnest($1::text[]) AS q(name)",
        &[&waiting],
    )? {
        if let Some(run_at) = row.try_get::<_, Option<i64>>(1)? {
            oldest.push((row.try_get(0)?, run_at));
        }
    }
    let minutes = last_hour_minutes(now);
    let rows = sql
        .query(
            "SELECT minute, class = 's', duration_ms, sum(attempts)::bigint FROM attempt_minutes
             WHERE minute BETWEEN $1 AND $2 GROUP BY minute, class, duration_ms",
            &[minutes.start(), minutes.end()],
        )?
        .iter()
        .map(|r| {
            Ok(MinuteRow {
                minute: r.try_get(0)?,
                succeeded: r.try_get(1)?,
                duration_ms: r.try_get(2)?,
                attempts: r.try_get(3)?,
            })
        })
        .collect::<TxResult<Vec<_>>>()?;
    let (last_hour, duration_p50_ms, duration_p95_ms) = last_hour_from(now, &rows);
    let paused = sql
        .query("SELECT name FROM queues WHERE paused ORDER BY name", &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Overview {
        now,
        lag: lag_from(now, oldest),
        paused,
        counts,
        last_hour,
        duration_p50_ms,
        duration_p95_ms,
    })
}

/// The sums of the 14 bucket columns, as SQL.
macro_rules! bucket_sums {
    () => {
        "sum(b00)::bigint, sum(b01)::bigint, sum(b02)::bigint, sum(b03)::bigint, sum(b04)::bigint,
         sum(b05)::bigint, sum(b06)::bigint, sum(b07)::bigint, sum(b08)::bigint, sum(b09)::bigint,
         sum(b10)::bigint, sum(b11)::bigint, sum(b12)::bigint, sum(b13)::bigint"
    };
}

pub(super) fn stats(sql: &mut Sql<'_, Transaction<'_>>) -> TxResult<Stats> {
    snapshot(sql)?;
    let rows = sql
        .query(
            concat!(
                "SELECT kind, queue, outcome, sum(observations)::bigint, sum(sum_ms)::bigint, ",
                bucket_sums!(),
                " FROM histograms GROUP BY kind, queue, outcome"
            ),
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(HistogramRow::new(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                histogram(r, 3)?,
            )?)
        })
        .collect::<TxResult<Vec<_>>>()?;
    Ok(stats_from(rows))
}

/// The count, sum and 14 bucket sums starting at column `from`.
fn histogram(r: &postgres::Row, from: usize) -> TxResult<Histogram> {
    let buckets = (0..14)
        .map(|i| r.try_get::<_, i64>(from + 2 + i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Histogram::from_columns(
        r.try_get(from)?,
        r.try_get(from + 1)?,
        &buckets,
    ))
}
