//! End-to-end throughput: N jobs of `true` through W workers, against the
//! raw rate of spawning `sh -c true` from W threads in a plain loop.
//!
//! The queue's figure runs from the commit of the batch (enqueued in this
//! process, then the workers are woken as `queuectl enqueue` wakes them) to
//! the moment the last job is recorded completed. Runs of the two alternate,
//! so drift on a shared machine hits both.

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

pub const WORKER_COUNTS: [usize; 3] = [1, 2, 4];

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let jobs = bench.jobs.unwrap_or(bench.size(2000, 300));
    let repeats = bench.size(3, 1);
    let mut rows = Vec::new();
    for workers in WORKER_COUNTS {
        let queue = bench.queue(&format!("throughput-w{workers}"))?;
        let processes = queue.spawn_workers("w", workers)?;
        let (mut queued, mut raw) = (Vec::new(), Vec::new());
        let cpu_before = workers_cpu(&processes);
        for _ in 0..repeats {
            raw.push(raw_spawn_rate(jobs, workers)?);
            queued.push(queue_rate(&queue, &processes, jobs)?);
        }
        let cpu_per_job = workers_cpu(&processes)
            .saturating_sub(cpu_before)
            .as_secs_f64()
            * 1e6
            / (jobs * repeats) as f64;
        drop(processes);
        let figure = median(&queued).ok_or_else(|| no_samples("throughput"))?;
        let baseline = median(&raw).ok_or_else(|| no_samples("raw spawn rate"))?;
        bench.progress(&format!(
            "throughput W={workers}: {figure:.0} jobs/s, raw {baseline:.0}/s"
        ));
        rows.push(
            Row::new("throughput", format!("W={workers}"), figure, "jobs/s")
                .baseline(
                    baseline,
                    format!("`sh -c true` spawned and reaped in a loop by {workers} thread(s)"),
                )
                .target(Target::ratio_at_least(0.85))
                .samples(repeats)
                .note(format!(
                    "{jobs} jobs per run, median of {repeats} run(s); the workers' own CPU (not the jobs') was {cpu_per_job:.0} us per job"
                )),
        );
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
