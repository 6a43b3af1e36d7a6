//! The dashboard's figures on SQLite: read from the counter tables that
//! migration 9's triggers keep (never by reading every job), in one read
//! transaction so they agree with each other.

use crate::store::dashboard::{
    Histogram, HistogramRow, MinuteRow, Overview, QueueStateCount, Stats, lag_from, last_hour_from,
    last_hour_minutes, sorted_counts, stats_from, waiting_queues,
};
use crate::store::parse_state;
use jiff::Timestamp;
use rusqlite::{Connection, Row, params};

/// Where a store error comes from: SQLite's, or a corrupt value.
pub(super) enum ReadError {
    Sql(rusqlite::Error),
    Corrupt(crate::error::Error),
}

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Sql(e)
    }
}

const BUCKETS: &str = "b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13";

pub(super) fn overview(conn: &Connection, now: Timestamp) -> Result<Overview, ReadError> {
    let counts = conn
        .prepare_cached("SELECT queue, state, n FROM queue_counts WHERE n > 0")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|(queue, state, n)| {
            Ok(QueueStateCount {
                queue,
                state: parse_state(&state).map_err(ReadError::Corrupt)?,
                jobs: n as u64,
            })
        })
        .collect::<Result<Vec<_>, ReadError>>()?;
    let counts = sorted_counts(counts);
    // The oldest due time of each queue with waiting jobs: the first entry
    // of its range of jobs_due.
    let mut oldest = Vec::new();
    let mut first_due = conn.prepare_cached(
        "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due
         WHERE queue = ?1 AND state IN ('pending', 'failed') AND deps_left = 0",
    )?;
    for queue in waiting_queues(&counts) {
        let run_at: Option<i64> = first_due.query_row([&queue], |r| r.get(0))?;
        if let Some(run_at) = run_at {
            oldest.push((queue, run_at));
        }
    }
    let minutes = last_hour_minutes(now);
    let rows = conn
        .prepare_cached(
            "SELECT minute, class, duration_ms, attempts FROM attempt_minutes
             WHERE minute BETWEEN ?1 AND ?2",
        )?
        .query_map(params![minutes.start(), minutes.end()], |r| {
            Ok(MinuteRow {
                minute: r.get(0)?,
                succeeded: r.get::<_, String>(1)? == "s",
                duration_ms: r.get(2)?,
                attempts: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (last_hour, duration_p50_ms, duration_p95_ms) = last_hour_from(now, &rows);
    let paused = conn
        .prepare_cached("SELECT name FROM queues WHERE paused ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Overview {
        now,
        counts,
        lag: lag_from(now, oldest),
        paused,
        last_hour,
        duration_p50_ms,
        duration_p95_ms,
    })
}

pub(super) fn stats(conn: &Connection) -> Result<Stats, ReadError> {
    conn.prepare_cached(&format!(
        "SELECT kind, queue, outcome, observations, sum_ms, {BUCKETS} FROM histograms"
    ))?
    .query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            histogram(r, 3)?,
        ))
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?
    .into_iter()
    .map(|(kind, queue, outcome, histogram)| {
        HistogramRow::new(&kind, queue, &outcome, histogram).map_err(ReadError::Corrupt)
    })
    .collect::<Result<Vec<_>, _>>()
    .map(stats_from)
}

/// The count, sum and 14 bucket columns starting at column `from`.
fn histogram(r: &Row, from: usize) -> rusqlite::Result<Histogram> {
    let buckets = (0..14)
        .map(|i| r.get::<_, i64>(from + 2 + i))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Histogram::from_columns(
        r.get(from)?,
        r.get(from + 1)?,
        &buckets,
    ))
}
