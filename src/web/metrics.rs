//! `/metrics`: the queue's figures in the Prometheus text format 0.0.4,
//! built from what the store read ([`Overview`], [`Stats`], the workers).
//! Pure: no I/O and no clock of its own, so any host serving the same
//! queue serves the same numbers. It must not read the store itself.

use crate::config::Config;
use crate::domain::{AttemptOutcome, JobState};
use crate::error::Result;
use crate::store::dashboard::{HISTOGRAM_BOUNDS_SECONDS, Overview, QueueHistogram, Stats};
use crate::store::{Store, WorkerRow};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::fmt::Write;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A worker whose last heartbeat is older than this is `silent` (twice the
/// default lease, as `queuectl status` judges it).
pub fn silent_after() -> SignedDuration {
    SignedDuration::from_secs(2 * i64::from(Config::default().lease_seconds))
}

/// The exposition of the queue `store` reads, at the database's clock.
pub fn exposition(store: &mut Store) -> Result<String> {
    let overview = store.overview()?;
    let stats = store.stats()?;
    let workers = store.workers()?;
    Ok(render(&overview, &stats, &workers, overview.now))
}

/// The exposition: every metric family with `# HELP` and `# TYPE`.
/// `queuectl_jobs` and `queuectl_queue_lag_seconds` have a sample for every
/// queue seen (with jobs now, or with counted attempts), zeros included, so
/// a queue that empties reads 0 rather than vanishing.
pub fn render(overview: &Overview, stats: &Stats, workers: &[WorkerRow], now: Timestamp) -> String {
    let mut out = Exposition::default();
    let queues: BTreeSet<&str> = overview
        .counts
        .iter()
        .map(|c| c.queue.as_str())
        .chain(stats.attempts.iter().map(|a| a.queue.as_str()))
        .chain(overview.lag.iter().map(|l| l.queue.as_str()))
        .chain(overview.paused.iter().map(String::as_str))
        .collect();

    out.family(
        "queuectl_jobs",
        "gauge",
        "Jobs in the queue, per queue and state.",
    );
    for queue in &queues {
        for state in JobState::ALL {
            let jobs = overview
                .counts
                .iter()
                .find(|c| c.queue == *queue && c.state == state)
                .map_or(0, |c| c.jobs);
            out.sample(
                "queuectl_jobs",
                &[("queue", queue), ("state", state.as_str())],
                jobs,
            );
        }
    }

    out.family(
        "queuectl_queue_lag_seconds",
        "gauge",
        "How long the oldest due job of the queue has waited to start (0 when nothing is due).",
    );
    for queue in &queues {
        let lag = overview
            .lag
            .iter()
            .find(|l| l.queue == *queue)
            .map_or(0.0, |l| l.seconds);
        out.sample("queuectl_queue_lag_seconds", &[("queue", queue)], lag);
    }

    out.family(
        "queuectl_queue_paused",
        "gauge",
        "1 when the queue is paused (`queue pause`): its lag grows on purpose; else 0.",
    );
    for queue in &queues {
        let paused = overview.paused.iter().any(|p| p == queue);
        out.sample(
            "queuectl_queue_paused",
            &[("queue", queue)],
            u64::from(paused),
        );
    }

    out.family(
        "queuectl_attempts_total",
        "counter",
        "Attempts that ended, per queue and outcome.",
    );
    let counted: BTreeSet<&str> = stats.attempts.iter().map(|a| a.queue.as_str()).collect();
    for queue in &counted {
        for outcome in AttemptOutcome::ALL {
            let attempts = stats
                .attempts
                .iter()
                .find(|a| a.queue == *queue && a.outcome == outcome)
                .map_or(0, |a| a.attempts);
            out.sample(
                "queuectl_attempts_total",
                &[("outcome", outcome.as_str()), ("queue", queue)],
                attempts,
            );
        }
    }

    out.histograms(
        "queuectl_job_duration_seconds",
        "Run time of attempts that ended (start to end).",
        &stats.duration,
    );
    out.histograms(
        "queuectl_job_wait_seconds",
        "Time from a job being due to its attempt starting.",
        &stats.wait,
    );

    out.family(
        "queuectl_workers",
        "gauge",
        "Registered workers: busy (running jobs), idle, or silent (no heartbeat for twice the default lease).",
    );
    let mut by_state = [("busy", 0u64), ("idle", 0), ("silent", 0)];
    for worker in workers {
        let state = if now.duration_since(worker.heartbeat_at) > silent_after() {
            2
        } else if worker.jobs.is_empty() {
            1
        } else {
            0
        };
        by_state[state].1 += 1;
    }
    for (state, n) in by_state {
        out.sample("queuectl_workers", &[("state", state)], n);
    }

    out.family(
        "queuectl_rescued_total",
        "counter",
        "Attempts ended by a rescue because their worker's lease ran out.",
    );
    let rescued: u64 = stats
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::LeaseExpired)
        .map(|a| a.attempts)
        .sum();
    out.sample("queuectl_rescued_total", &[], rescued);
    out.text
}

/// The text being built.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        value.write(&mut self.text);
        self.text.push('\n');
    }

    /// A histogram family with one set of buckets per queue.
    fn histograms(&mut self, name: &str, help: &str, per_queue: &[QueueHistogram]) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for QueueHistogram { queue, histogram } in per_queue {
            for (bound, cumulative) in HISTOGRAM_BOUNDS_SECONDS.iter().zip(&histogram.cumulative) {
                let le = bound.to_string();
                self.sample(&bucket, &[("queue", queue), ("le", &le)], *cumulative);
            }
            self.sample(
                &bucket,
                &[("queue", queue), ("le", "+Inf")],
                histogram.count,
            );
            self.sample(
                &format!("{name}_sum"),
                &[("queue", queue)],
                histogram.sum_seconds,
            );
            self.sample(
                &format!("{name}_count"),
                &[("queue", queue)],
                histogram.count,
            );
        }
    }
}

/// A sample's value as the format writes it.
trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_finite() {
            let _ = write!(out, "{self}");
        } else if self.is_nan() {
            out.push_str("NaN");
        } else if *self > 0.0 {
            out.push_str("+Inf");
        } else {
            out.push_str("-Inf");
        }
    }
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dashboard::{AttemptCount, Histogram, QueueLag, QueueStateCount};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn histogram(count: u64, sum_seconds: f64) -> Histogram {
        let mut cumulative = vec![0; HISTOGRAM_BOUNDS_SECONDS.len()];
        for (i, c) in cumulative.iter_mut().enumerate() {
            *c = if i >= 5 { count } else { 0 };
        }
        Histogram {
            cumulative,
            count,
            sum_seconds,
        }
    }

    fn worker(name: &str, heartbeat: i64, jobs: &[&str]) -> WorkerRow {
        WorkerRow {
            name: name.into(),
            pid: 1,
            host: "h".into(),
            started_at: at(0),
            heartbeat_at: at(heartbeat),
            status: "running".into(),
            unit: None,
            slots: 1,
            jobs: jobs.iter().map(|j| j.to_string()).collect(),
        }
    }

    const HOSTILE: &str = "q\"}\\\nx{le=\"1\"} 9";

    fn figures() -> (Overview, Stats, Vec<WorkerRow>) {
        let overview = Overview {
            now: at(100),
            counts: vec![
                QueueStateCount {
                    queue: "mail".into(),
                    state: JobState::Pending,
                    jobs: 3,
                },
                QueueStateCount {
                    queue: HOSTILE.into(),
                    state: JobState::Dead,
                    jobs: 1,
                },
            ],
            lag: vec![QueueLag {
                queue: "mail".into(),
                seconds: 2.5,
            }],
            paused: vec!["mail".into(), "reports".into()],
            last_hour: Vec::new(),
            duration_p50_ms: None,
            duration_p95_ms: None,
        };
        let stats = Stats {
            attempts: vec![
                AttemptCount {
                    queue: "mail".into(),
                    outcome: AttemptOutcome::Succeeded,
                    attempts: 7,
                },
                AttemptCount {
                    queue: "mail".into(),
                    outcome: AttemptOutcome::LeaseExpired,
                    attempts: 2,
                },
            ],
            duration: vec![QueueHistogram {
                queue: "mail".into(),
                histogram: histogram(9, 12.5),
            }],
            wait: vec![QueueHistogram {
                queue: HOSTILE.into(),
                histogram: histogram(1, 0.25),
            }],
        };
        let workers = vec![
            worker("a", 99, &["j1"]),
            worker("b", 99, &[]),
            worker("c", 0, &["j2"]),
        ];
        (overview, stats, workers)
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn every_family_has_help_and_type_and_every_state_of_every_queue() {
        let (overview, stats, workers) = figures();
        let text = render(&overview, &stats, &workers, at(100));
        for (family, kind) in [
            ("queuectl_jobs", "gauge"),
            ("queuectl_queue_lag_seconds", "gauge"),
            ("queuectl_queue_paused", "gauge"),
            ("queuectl_attempts_total", "counter"),
            ("queuectl_job_duration_seconds", "histogram"),
            ("queuectl_job_wait_seconds", "histogram"),
            ("queuectl_workers", "gauge"),
            ("queuectl_rescued_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}"
            );
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        }
        let lines = lines(&text);
        assert!(lines.contains(&r#"queuectl_jobs{queue="mail",state="pending"} 3"#));
        assert!(lines.contains(&r#"queuectl_jobs{queue="mail",state="cancelled"} 0"#));
        assert!(lines.contains(&r#"queuectl_queue_lag_seconds{queue="mail"} 2.5"#));
        // Paused: a queue paused with no job has its sample too.
        assert!(lines.contains(&r#"queuectl_queue_paused{queue="mail"} 1"#));
        assert!(lines.contains(&r#"queuectl_queue_paused{queue="reports"} 1"#));
        let hostile = format!(
            r#"queuectl_queue_paused{{queue="{}"}} 0"#,
            escape_label(HOSTILE)
        );
        assert!(lines.contains(&hostile.as_str()), "{text}");
        assert!(lines.contains(&r#"queuectl_attempts_total{outcome="succeeded",queue="mail"} 7"#));
        assert!(lines.contains(&r#"queuectl_attempts_total{outcome="failed",queue="mail"} 0"#));
        assert!(lines.contains(&"queuectl_rescued_total 2"));
        assert!(lines.contains(&r#"queuectl_workers{state="busy"} 1"#));
        assert!(lines.contains(&r#"queuectl_workers{state="idle"} 1"#));
        assert!(lines.contains(&r#"queuectl_workers{state="silent"} 1"#));
    }

    #[test]
    fn histograms_have_cumulative_buckets_inf_sum_and_count() {
        let (overview, stats, workers) = figures();
        let text = render(&overview, &stats, &workers, at(100));
        let lines = lines(&text);
        assert!(
            lines.contains(&r#"queuectl_job_duration_seconds_bucket{queue="mail",le="0.5"} 0"#)
        );
        assert!(lines.contains(&r#"queuectl_job_duration_seconds_bucket{queue="mail",le="1"} 9"#));
        assert!(
            lines.contains(&r#"queuectl_job_duration_seconds_bucket{queue="mail",le="3600"} 9"#)
        );
        assert!(
            lines.contains(&r#"queuectl_job_duration_seconds_bucket{queue="mail",le="+Inf"} 9"#)
        );
        assert!(lines.contains(&r#"queuectl_job_duration_seconds_sum{queue="mail"} 12.5"#));
        assert!(lines.contains(&r#"queuectl_job_duration_seconds_count{queue="mail"} 9"#));
        let buckets = lines
            .iter()
            .filter(|l| l.starts_with("queuectl_job_duration_seconds_bucket"))
            .count();
        assert_eq!(buckets, HISTOGRAM_BOUNDS_SECONDS.len() + 1);
    }

    #[test]
    fn a_hostile_queue_name_is_escaped_and_cannot_forge_a_sample() {
        let (overview, stats, workers) = figures();
        let text = render(&overview, &stats, &workers, at(100));
        let escaped = r#"q\"}\\\nx{le=\"1\"} 9"#;
        assert!(
            text.lines()
                .any(|l| l == format!(r#"queuectl_jobs{{queue="{escaped}",state="dead"}} 1"#)),
            "{text}"
        );
        // Every line is a comment or `name{labels} value` with the quotes
        // balanced: no raw line feed or quote escaped the label.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let unescaped_quotes = line
                .replace("\\\\", "")
                .replace("\\\"", "")
                .matches('"')
                .count();
            assert_eq!(unescaped_quotes % 2, 0, "{line}");
            assert!(line.starts_with("queuectl_"), "{line}");
        }
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
    }

    #[test]
    fn an_empty_queue_renders_every_family_with_no_queue_samples() {
        let overview = Overview {
            now: at(0),
            counts: Vec::new(),
            lag: Vec::new(),
            paused: Vec::new(),
            last_hour: Vec::new(),
            duration_p50_ms: None,
            duration_p95_ms: None,
        };
        let stats = Stats {
            attempts: Vec::new(),
            duration: Vec::new(),
            wait: Vec::new(),
        };
        let text = render(&overview, &stats, &[], at(0));
        assert!(text.contains("# TYPE queuectl_jobs gauge\n"));
        assert!(text.lines().any(|l| l == "queuectl_rescued_total 0"));
        assert!(!text.contains("queuectl_jobs{"));
    }
}
