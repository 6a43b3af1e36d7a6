//! What the dashboard and `/metrics` read: figures computed from the queue
//! itself, so any `queuectl web` on any host serves the same numbers.

use crate::domain::{AttemptOutcome, JobState};
use jiff::Timestamp;
use serde::Serialize;

/// The overview page and the gauges of `/metrics`, read in one call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overview {
    /// The database's clock when it was read.
    pub now: Timestamp,
    /// Jobs per queue and state; only pairs with jobs, by queue then state.
    pub counts: Vec<QueueStateCount>,
    /// Per queue with due work: how long its oldest due job (pending or
    /// failed, `run_at` passed, not blocked) has waited. Queues with
    /// nothing due are absent.
    pub lag: Vec<QueueLag>,
    /// The queues paused on purpose, by name (their lag grows while they
    /// are, which is no fault).
    pub paused: Vec<String>,
    /// The last hour as 60 one-minute buckets, oldest first.
    pub last_hour: Vec<MinuteBucket>,
    /// Run time of the attempts that ended in the last hour.
    pub duration_p50_ms: Option<i64>,
    pub duration_p95_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStateCount {
    pub queue: String,
    pub state: JobState,
    pub jobs: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueLag {
    pub queue: String,
    pub seconds: f64,
}

/// Attempts that ended within one minute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinuteBucket {
    pub start: Timestamp,
    pub succeeded: u64,
    /// Failed or timed out.
    pub failed: u64,
}

/// Cumulative counters for `/metrics`: kept by the store as attempts end,
/// so they only grow (a purge does not lower them).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Ended attempts per queue and outcome.
    pub attempts: Vec<AttemptCount>,
    /// Run time of ended attempts, per queue.
    pub duration: Vec<QueueHistogram>,
    /// Time from a job being due to its attempt starting, per queue.
    pub wait: Vec<QueueHistogram>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptCount {
    pub queue: String,
    #[serde(serialize_with = "outcome_name")]
    pub outcome: AttemptOutcome,
    pub attempts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueHistogram {
    pub queue: String,
    pub histogram: Histogram,
}

/// A Prometheus-style histogram: `cumulative[i]` observations were at most
/// `HISTOGRAM_BOUNDS_SECONDS[i]`; `count` includes those above the last.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

/// Bucket bounds shared by every histogram, in seconds.
pub const HISTOGRAM_BOUNDS_SECONDS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The jobs page: newest first, filtered, one page at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSearch {
    /// Only jobs in these states (every state when empty).
    pub states: Vec<JobState>,
    pub queue: Option<String>,
    /// Only jobs whose id or command contains this text (ASCII letters in
    /// either case; `%`, `_` and `\` are plain characters; empty: no filter).
    pub text: Option<String>,
    /// Only jobs older than this cursor (the previous page's `next`).
    pub before: Option<JobCursor>,
    /// 1 to [`SEARCH_LIMIT_MAX`]; anything else is refused as invalid.
    pub limit: u32,
}

/// The most jobs one page may ask for.
pub const SEARCH_LIMIT_MAX: u32 = 200;

/// How many jobs a page reads at most (per state asked for) when a filter
/// no index serves (the text, or states within one queue) has to look at
/// each job: past this the page stops, short, with `scanned_all` false and
/// a `next` that goes on from where it stopped. Bounds a page's work
/// whatever the queue's size (measured: ~25 ms on SQLite for a text that
/// matches nothing; see ARCHITECTURE.md, "Searching jobs").
#[cfg(not(test))]
pub const SEARCH_SCAN_ROWS: u32 = 100_000;
/// The conformance suite reaches the bound with a few hundred jobs.
#[cfg(test)]
pub const SEARCH_SCAN_ROWS: u32 = 50;

/// Where a page of [`JobSearch`] ended: the enqueue order of its last job.
/// Shown to users as an opaque string (`Display` and `FromStr` agree; JSON
/// writes it as that string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobCursor(pub i64);

impl std::fmt::Display for JobCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for JobCursor {
    type Err = String;
    fn from_str(text: &str) -> Result<JobCursor, String> {
        match text.parse::<i64>() {
            Ok(seq) if seq > 0 && !text.starts_with('+') => Ok(JobCursor(seq)),
            _ => Err(format!(
                "'{}' is not a page cursor (use the `next` of a previous page)",
                crate::domain::echo::shown(text)
            )),
        }
    }
}

impl Serialize for JobCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One page of [`JobSearch`]. Its JSON is `/api/jobs`: `jobs` are the
/// items of `list --json` (both serialize [`Job`](super::Job)).
#[derive(Clone, Debug, Serialize)]
pub struct SearchPage {
    pub jobs: Vec<super::Job>,
    /// The cursor of the next (older) page; `None` on the last page.
    pub next: Option<JobCursor>,
    /// False when the page stopped short: it read [`SEARCH_SCAN_ROWS`] jobs
    /// without filling up, so older matches may exist; `next` goes on
    /// below the last job it read (a page may then even be empty).
    pub scanned_all: bool,
}

fn outcome_name<S: serde::Serializer>(outcome: &AttemptOutcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(outcome.as_str())
}

// ----- assembling the figures from the rows both backends keep -----

/// One row of a backend's `histograms` table (summed over PostgreSQL's
/// shards): run times of one queue's attempts that ended one way, or the
/// waits of one queue's attempts.
pub(crate) struct HistogramRow {
    pub queue: String,
    /// The outcome of a run-time histogram; `None` for waits.
    pub outcome: Option<AttemptOutcome>,
    pub histogram: Histogram,
}

impl HistogramRow {
    /// A row as stored: `kind` 'duration' with an outcome, or 'wait'.
    pub(crate) fn new(
        kind: &str,
        queue: String,
        outcome: &str,
        histogram: Histogram,
    ) -> Result<HistogramRow, crate::error::Error> {
        let outcome = match kind {
            "wait" => None,
            "duration" => Some(AttemptOutcome::parse(outcome).ok_or_else(|| {
                crate::error::Error::Invalid(format!("corrupt histogram row: outcome {outcome:?}"))
            })?),
            _ => {
                return Err(crate::error::Error::Invalid(format!(
                    "corrupt histogram row: kind {kind:?}"
                )));
            }
        };
        Ok(HistogramRow {
            queue,
            outcome,
            histogram,
        })
    }
}

/// [`Stats`] from the histogram rows (any order; several rows per key, as
/// PostgreSQL's shards, are summed). The run-time histogram of a queue sums
/// its outcomes, so its `count` equals the queue's ended attempts.
pub(crate) fn stats_from(rows: Vec<HistogramRow>) -> Stats {
    use std::collections::BTreeMap;
    let mut counts: BTreeMap<(String, &'static str), (AttemptOutcome, u64)> = BTreeMap::new();
    let mut duration: BTreeMap<String, Histogram> = BTreeMap::new();
    let mut wait: BTreeMap<String, Histogram> = BTreeMap::new();
    for row in rows {
        let per_queue = match row.outcome {
            Some(outcome) => {
                counts
                    .entry((row.queue.clone(), outcome.as_str()))
                    .or_insert((outcome, 0))
                    .1 += row.histogram.count;
                &mut duration
            }
            None => &mut wait,
        };
        per_queue
            .entry(row.queue)
            .or_insert_with(Histogram::empty)
            .add(&row.histogram);
    }
    let per_queue = |map: BTreeMap<String, Histogram>| {
        map.into_iter()
            .map(|(queue, histogram)| QueueHistogram { queue, histogram })
            .collect()
    };
    Stats {
        attempts: counts
            .into_iter()
            .map(|((queue, _), (outcome, attempts))| AttemptCount {
                queue,
                outcome,
                attempts,
            })
            .collect(),
        duration: per_queue(duration),
        wait: per_queue(wait),
    }
}

impl Histogram {
    pub(crate) fn empty() -> Histogram {
        Histogram {
            cumulative: vec![0; HISTOGRAM_BOUNDS_SECONDS.len()],
            count: 0,
            sum_seconds: 0.0,
        }
    }

    /// A histogram from a backend's columns: the count, the sum in
    /// milliseconds and the bucket counts (b00..b13).
    pub(crate) fn from_columns(count: i64, sum_ms: i64, buckets: &[i64]) -> Histogram {
        debug_assert_eq!(buckets.len(), HISTOGRAM_BOUNDS_SECONDS.len());
        Histogram {
            cumulative: buckets.iter().map(|&b| b.max(0) as u64).collect(),
            count: count.max(0) as u64,
            sum_seconds: sum_ms as f64 / 1000.0,
        }
    }

    fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.cumulative.iter_mut().zip(&other.cumulative) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_seconds += other.sum_seconds;
    }
}

/// One row of a backend's per-minute record of attempts that ran to an end:
/// the minute of their end (ms since the epoch / 60000), whether they
/// succeeded, their run time rounded up to two significant digits, and how
/// many.
pub(crate) struct MinuteRow {
    pub minute: i64,
    pub succeeded: bool,
    pub duration_ms: i64,
    pub attempts: i64,
}

/// The minutes of the last hour at `now`: the current minute and the 59
/// before it, oldest first.
pub(crate) fn last_hour_minutes(now: Timestamp) -> std::ops::RangeInclusive<i64> {
    let current = super::to_millis(now).div_euclid(60_000);
    current - 59..=current
}

/// The hour chart and the run-time percentiles from the minute rows (rows
/// outside the last hour are ignored). Percentiles are nearest-rank over the
/// rounded run times, so each is an upper bound within 10% of the exact one.
pub(crate) fn last_hour_from(
    now: Timestamp,
    rows: &[MinuteRow],
) -> (Vec<MinuteBucket>, Option<i64>, Option<i64>) {
    let minutes = last_hour_minutes(now);
    let first = *minutes.start();
    let mut buckets: Vec<MinuteBucket> = minutes
        .clone()
        .map(|m| MinuteBucket {
            start: super::from_millis(m * 60_000),
            succeeded: 0,
            failed: 0,
        })
        .collect();
    let mut durations: Vec<(i64, u64)> = Vec::new();
    for row in rows.iter().filter(|r| minutes.contains(&r.minute)) {
        let n = row.attempts.max(0) as u64;
        let bucket = &mut buckets[(row.minute - first) as usize];
        if row.succeeded {
            bucket.succeeded += n;
        } else {
            bucket.failed += n;
        }
        durations.push((row.duration_ms, n));
    }
    durations.sort_unstable();
    let total: u64 = durations.iter().map(|(_, n)| n).sum();
    let percentile = |p: f64| -> Option<i64> {
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        durations.iter().find_map(|&(d, n)| {
            seen += n;
            (seen >= rank).then_some(d)
        })
    };
    (buckets, percentile(0.50), percentile(0.95))
}

/// Orders counts as documented on [`Overview::counts`] and drops empty
/// pairs.
pub(crate) fn sorted_counts(mut counts: Vec<QueueStateCount>) -> Vec<QueueStateCount> {
    counts.retain(|c| c.jobs > 0);
    counts.sort_by(|a, b| (&a.queue, a.state).cmp(&(&b.queue, b.state)));
    counts
}

/// The lag of each queue from its oldest due time (ms), for those already
/// due at `now`, by queue.
pub(crate) fn lag_from(now: Timestamp, oldest: Vec<(String, i64)>) -> Vec<QueueLag> {
    let now_ms = super::to_millis(now);
    let mut lag: Vec<QueueLag> = oldest
        .into_iter()
        .filter(|(_, run_at)| *run_at <= now_ms)
        .map(|(queue, run_at)| QueueLag {
            queue,
            seconds: (now_ms - run_at) as f64 / 1000.0,
        })
        .collect();
    lag.sort_by(|a, b| a.queue.cmp(&b.queue));
    lag
}

/// The queues with jobs pending or failed (each once, by name): those that
/// may have a lag.
pub(crate) fn waiting_queues(counts: &[QueueStateCount]) -> Vec<String> {
    let queues: std::collections::BTreeSet<&str> = counts
        .iter()
        .filter(|c| matches!(c.state, JobState::Pending | JobState::Failed))
        .map(|c| c.queue.as_str())
        .collect();
    queues.into_iter().map(str::to_owned).collect()
}
