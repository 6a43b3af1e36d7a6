//! Scale: does the queue slow down as history piles up? `status`, `list
//! --state pending --limit 20`, `list --state pending,completed --limit 20`
//! (real processes) and a claim (in-process,
//! committed) on a database of 1,000,000 jobs, mostly finished, against the
//! same on a 1,000-job database. Both hold the same number of pending jobs.
//! SQLite only: the history is built by a store fixture helper that exists
//! for SQLite alone.

use super::report::Row;
use super::sandbox::{Queue, time_process};
use super::stats::{Target, median, millis};
use super::{Bench, no_samples};
use queuectl::domain::NewJob;
use queuectl::error::{Error, Result};
use queuectl::store::{Backend, JobDefaults, Store};
use std::time::{Duration, Instant};

const SMALL: usize = 1_000;
/// Pending jobs in both databases; every other job is completed.
const PENDING: usize = 200;

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let big_size = bench.size(1_000_000, 100_000);
    let small = bench.sandbox.queue("scale-small")?;
    build(&small, SMALL)?;
    let big = bench.sandbox.queue("scale-big")?;
    let started = Instant::now();
    build(&big, big_size)?;
    bench.progress(&format!(
        "scale: built a {big_size}-job database in {:.1}s",
        started.elapsed().as_secs_f64()
    ));

    let repeats = bench.size(21, 7);
    let list_args = ["list", "--state", "pending", "--limit", "20"];
    // Newest first across a small and a huge state, with their total.
    let mixed_args = ["list", "--state", "pending,completed", "--limit", "20"];
    let (mut status, mut list, mut mixed) = (
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
    );
    for _ in 0..repeats {
        for (i, queue) in [&small, &big].into_iter().enumerate() {
            status[i].push(time_process(&mut queue.command(&["status"]))?);
            list[i].push(time_process(&mut queue.command(&list_args))?);
            mixed[i].push(time_process(&mut queue.command(&mixed_args))?);
        }
    }
    let claims = bench.size(60, 15).min(PENDING);
    let mut stores = [small.store()?, big.store()?];
    let mut claim = [Vec::new(), Vec::new()];
    for _ in 0..claims {
        for (i, store) in stores.iter_mut().enumerate() {
            claim[i].push(time_claim(store)?);
        }
    }

    let size_note = if bench.quick {
        format!("quick mode: {big_size} jobs instead of 1,000,000")
    } else {
        format!("{big_size} jobs")
    };
    let mut rows = Vec::new();
    for (metric, samples, what) in [
        ("status", &status, "`queuectl status` process"),
        (
            "list --state pending --limit 20",
            &list,
            "`queuectl list --state pending --limit 20` process",
        ),
        (
            "list --state pending,completed --limit 20",
            &mixed,
            "`queuectl list --state pending,completed --limit 20` process",
        ),
        (
            "claim",
            &claim,
            "one claim transaction (in-process, committed)",
        ),
    ] {
        let big_ms = median(&millis(&samples[1])).ok_or_else(|| no_samples(metric))?;
        let small_ms = median(&millis(&samples[0])).ok_or_else(|| no_samples(metric))?;
        bench.progress(&format!(
            "scale {metric}: {big_ms:.2} ms vs {small_ms:.2} ms"
        ));
        rows.push(
            Row::new("scale", metric, big_ms, "ms")
                .baseline(small_ms, format!("{what} on a {SMALL}-job database"))
                .target(Target::ratio_at_most(1.5))
                .samples(samples[1].len())
                .note(format!(
                    "{size_note}, {PENDING} pending and the rest completed with one attempt each; median of {} alternating runs",
                    samples[1].len()
                )),
        );
    }
    Ok(rows)
}

/// Fills `queue` with `total` jobs of `true`, leaving [`PENDING`] pending.
fn build(queue: &Queue, total: usize) -> Result<()> {
    build_history(queue, total, PENDING, |_| Ok(NewJob::new("true")))
}

/// Fills `queue` with `total` jobs (`job(n)` for n = 1..=total) through the
/// store's batch enqueue, then has the store complete all but `pending` of
/// them with one attempt each (a fixture helper: running a million jobs
/// would take many minutes; the rows come out as `finish` leaves them).
/// SQLite only.
pub(super) fn build_history(
    queue: &Queue,
    total: usize,
    pending: usize,
    job: impl Fn(usize) -> Result<NewJob>,
) -> Result<()> {
    let mut store = queue.sqlite_store()?;
    let defaults = JobDefaults {
        max_retries: 0,
        timeout_seconds: 0,
    };
    for start in (0..total).step_by(50_000) {
        let end = (start + 50_000).min(total);
        let batch: Vec<(usize, NewJob)> = (start..end)
            .map(|i| Ok((i + 1, job(i + 1)?)))
            .collect::<Result<_>>()?;
        store.enqueue(&batch, &defaults)?;
    }
    store.complete_oldest_pending_as_fixture(total.saturating_sub(pending))?;
    Ok(())
}

/// The time of one committed claim; the job is left processing.
fn time_claim(store: &mut Store) -> Result<Duration> {
    let request = super::claim_request("bench", Duration::from_secs(3600));
    let started = Instant::now();
    let claimed = store.claim_one(&request)?;
    let took = started.elapsed();
    if claimed.is_none() {
        return Err(Error::Supervisor(
            "nothing to claim in the scale database".into(),
        ));
    }
    Ok(took)
}
