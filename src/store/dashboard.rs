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
