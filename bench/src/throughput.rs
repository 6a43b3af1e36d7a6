//! End-to-end throughput: N jobs of `true` through W workers of K slots
//! each (`worker run --concurrency K`), against the raw rate of spawning
//! `sh -c true` from W·K threads in a plain loop: a table of worker shapes
//! at total concurrency 1, 2, 4 and 8, each beside the baseline at its own
//! total concurrency.
//!
//! The queue's figure runs from the commit of the batch (enqueued in this
//! process, then the workers are woken as `queuectl enqueue` wakes them) to
//! the moment the last job is recorded completed. Runs alternate with the
//! baseline at the same total concurrency, so drift on a shared machine hits
//! both.

use super::report::Row;
use super::sandbox::{Queue, WorkerProcess, wait_for};
use super::stats::{Target, median};
use super::{Bench, no_samples};
use queuectl::domain::{JobState, NewJob};
use queuectl::error::{Error, Result};
use queuectl::store::JobDefaults;
use queuectl::wakeup::wake_workers;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// W worker processes of K slots each: W·K jobs run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub workers: usize,
    pub slots: usize,
}

impl Shape {
    const fn new(workers: usize, slots: usize) -> Shape {
        Shape { workers, slots }
    }

    pub fn total(self) -> usize {
        self.workers * self.slots
    }

    pub fn label(self) -> String {
        format!("W={} x K={}", self.workers, self.slots)
    }
}

/// Every shape at total concurrency 1, 2, 4 and 8, but 8 worker processes
/// on their own (more processes than the slots idea is for).
const FULL_SHAPES: [Shape; 9] = [
    Shape::new(1, 1),
    Shape::new(1, 2),
    Shape::new(2, 1),
    Shape::new(1, 4),
    Shape::new(2, 2),
    Shape::new(4, 1),
    Shape::new(1, 8),
    Shape::new(2, 4),
    Shape::new(4, 2),
];

/// `--quick`: still every total concurrency, and the 1x8 and 2x4 the issue
/// names.
const QUICK_SHAPES: [Shape; 7] = [
    Shape::new(1, 1),
    Shape::new(1, 2),
    Shape::new(2, 1),
    Shape::new(1, 4),
    Shape::new(2, 2),
    Shape::new(1, 8),
    Shape::new(2, 4),
];

/// The shapes measured, in order of total concurrency.
pub fn shapes(quick: bool) -> &'static [Shape] {
    if quick { &QUICK_SHAPES } else { &FULL_SHAPES }
}

/// The issue's target for a shape: on SQLite every shape at ≥ 0.85 of the
/// raw spawn rate; on PostgreSQL 2 workers x 4 slots at ≥ 0.7 (the other
/// shapes are shown for comparison, without a target).
pub fn target(shape: Shape, postgres: bool) -> Option<Target> {
    match postgres {
        false => Some(Target::ratio_at_least(0.85)),
        true if shape == Shape::new(2, 4) => Some(Target::ratio_at_least(0.7)),
        true => None,
    }
}

/// One shape's workers, its queue and what they measured.
struct Trial {
    shape: Shape,
    queue: Queue,
    workers: Vec<WorkerProcess>,
    rates: Vec<f64>,
}

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let jobs = bench.jobs.unwrap_or(bench.size(2000, 300));
    let repeats = bench.size(3, 1);
    let postgres = bench.server.is_some();
    let all = shapes(bench.quick);
    let mut totals: Vec<usize> = all.iter().map(|s| s.total()).collect();
    totals.dedup();
    let mut rows = Vec::new();
    for total in totals {
        let mut trials = Vec::new();
        for &shape in all.iter().filter(|s| s.total() == total) {
            let queue = bench.queue(&format!("throughput-{}x{}", shape.workers, shape.slots))?;
            let workers = queue.spawn_workers("w", shape.workers, shape.slots)?;
            trials.push(Trial {
                shape,
                queue,
                workers,
                rates: Vec::new(),
            });
        }
        let mut raw = Vec::new();
        let cpu_before: Vec<Duration> = trials.iter().map(|t| workers_cpu(&t.workers)).collect();
        for _ in 0..repeats {
            raw.push(raw_spawn_rate(jobs, total)?);
            for trial in &mut trials {
                trial
                    .rates
                    .push(queue_rate(&trial.queue, &trial.workers, jobs)?);
            }
        }
        let baseline = median(&raw).ok_or_else(|| no_samples("raw spawn rate"))?;
        for (trial, cpu_before) in trials.into_iter().zip(cpu_before) {
            let cpu_per_job = workers_cpu(&trial.workers)
                .saturating_sub(cpu_before)
                .as_secs_f64()
                * 1e6
                / (jobs * repeats) as f64;
            drop(trial.workers);
            let figure = median(&trial.rates).ok_or_else(|| no_samples("throughput"))?;
            let label = trial.shape.label();
            bench.progress(&format!(
                "throughput {label}: {figure:.0} jobs/s, raw {baseline:.0}/s"
            ));
            let mut row = Row::new("throughput", label, figure, "jobs/s")
                .baseline(
                    baseline,
                    format!("`sh -c true` spawned and reaped in a loop by {total} thread(s)"),
                )
                .samples(repeats)
                .note(format!(
                    "{jobs} jobs per run, median of {repeats} run(s); the workers' own CPU (not the jobs') was {cpu_per_job:.0} us per job"
                ));
            if let Some(target) = target(trial.shape, postgres) {
                row = row.target(target);
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Jobs per second through the queue: enqueue `jobs` in one commit, wake the
/// idle workers, wait until all are completed.
fn queue_rate(queue: &Queue, workers: &[WorkerProcess], jobs: usize) -> Result<f64> {
    let mut store = queue.store()?;
    let completed_before = completed(&store.counts()?);
    let batch: Vec<(usize, NewJob)> = (1..=jobs).map(|i| (i, NewJob::new("true"))).collect();
    let defaults = JobDefaults {
        max_retries: 0,
        timeout_seconds: 0,
    };
    store.enqueue(&batch, &defaults)?;
    let started = Instant::now();
    wake_workers(&queue.state.wake());
    let target = completed_before + jobs as u64;
    wait_for(
        &mut store,
        workers,
        Duration::from_secs(600),
        "the jobs to complete",
        |store| {
            let counts = store.counts()?;
            let stuck = counts.get(&JobState::Dead).copied().unwrap_or(0)
                + counts.get(&JobState::Failed).copied().unwrap_or(0);
            if stuck > 0 {
                return Err(Error::Supervisor(format!(
                    "{stuck} benchmark job(s) failed"
                )));
            }
            Ok(completed(&counts) >= target)
        },
    )?;
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}

/// CPU time used so far by the worker processes themselves, all their
/// threads included (their jobs are separate processes and not included).
fn workers_cpu(workers: &[WorkerProcess]) -> Duration {
    workers
        .iter()
        .filter_map(|w| super::procfs::total_cpu_time(w.pid()))
        .sum()
}

fn completed(counts: &std::collections::BTreeMap<JobState, u64>) -> u64 {
    counts.get(&JobState::Completed).copied().unwrap_or(0)
}

/// Processes per second when `threads` threads each spawn and reap
/// `sh -c true` in a loop: what the machine can do with no queue at all.
pub fn raw_spawn_rate(jobs: usize, threads: usize) -> Result<f64> {
    let started = Instant::now();
    let results: Vec<std::io::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = jobs / threads + usize::from(t < jobs % threads);
                scope.spawn(move || -> std::io::Result<()> {
                    for _ in 0..share {
                        let status = Command::new("sh")
                            .args(["-c", "true"])
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()?;
                        if !status.success() {
                            return Err(std::io::Error::other(format!("sh -c true: {status}")));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
            })
            .collect()
    });
    for result in results {
        result.map_err(|e| Error::io("raw spawn baseline", e))?;
    }
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_total_concurrency_is_measured_in_both_modes() {
        for quick in [true, false] {
            let totals: Vec<usize> = shapes(quick).iter().map(|s| s.total()).collect();
            let mut sorted = totals.clone();
            sorted.sort();
            assert_eq!(totals, sorted, "grouped by total concurrency");
            sorted.dedup();
            assert_eq!(sorted, [1, 2, 4, 8], "quick={quick}");
            // The shapes the issue names, and one process of many slots.
            for named in [Shape::new(1, 8), Shape::new(2, 4), Shape::new(1, 1)] {
                assert!(shapes(quick).contains(&named), "{named:?}, quick={quick}");
            }
        }
        assert!(QUICK_SHAPES.iter().all(|s| FULL_SHAPES.contains(s)));
        assert!(QUICK_SHAPES.len() < FULL_SHAPES.len());
    }

    #[test]
    fn targets_follow_the_issue_per_backend() {
        for &shape in shapes(false) {
            assert_eq!(
                target(shape, false),
                Some(Target::ratio_at_least(0.85)),
                "{shape:?}"
            );
        }
        assert_eq!(
            target(Shape::new(2, 4), true),
            Some(Target::ratio_at_least(0.7))
        );
        assert_eq!(target(Shape::new(1, 8), true), None);
        assert_eq!(Shape::new(2, 4).label(), "W=2 x K=4");
    }
}
