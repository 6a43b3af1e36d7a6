//! Blocked jobs: do jobs waiting for others cost a claim anything? Claim +
//! complete of claimable jobs with 0, 10,000 and 100,000 blocked jobs beside
//! them (at a higher priority, so that a claim reading past them would have
//! to read them all), against the same with none. Then the shapes of
//! dependencies themselves: a chain run one job per transaction against
//! independent jobs, the finishes of a fan-in (every one decrements the same
//! row: a hot row on PostgreSQL) against finishes of jobs nobody waits for,
//! the cascade that cancels a chain, and an enqueue naming 1,000 jobs.
//! Figures and ratios are printed, never asserted. Runs on SQLite, and on
//! PostgreSQL with `--db`.

use super::report::Row;
use super::stats::{Target, median, millis, percentile};
use super::{Bench, no_samples};
use queuectl::domain::{AttemptOutcome, JobId, NewJob};
use queuectl::error::{Error, Result};
use queuectl::store::{AttemptResult, BulkAction, Finish, JobDefaults, Selection, Store};
use std::time::{Duration, Instant};

const DEFAULTS: JobDefaults = JobDefaults {
    max_retries: 0,
    timeout_seconds: 0,
};

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let claimable = bench.size(1000, 200);
    let repeats = bench.size(3, 1);
    let levels = [0, bench.size(10_000, 1_000), bench.size(100_000, 10_000)];
    // Levels alternate within each round, so that a machine busier for a
    // while weighs on all of them alike; each figure is the median.
    let mut runs: Vec<Vec<Drained>> = vec![Vec::new(); levels.len()];
    for round in 0..repeats {
        for (i, &blocked) in levels.iter().enumerate() {
            runs[i].push(claim_beside(bench, blocked, claimable, round)?);
        }
    }
    let figures: Vec<Drained> = runs
        .iter()
        .map(|samples| Drained::median(samples).ok_or_else(|| no_samples("blocked")))
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    let base = &figures[0];
    for (&blocked, drained) in levels.iter().zip(&figures) {
        bench.progress(&format!(
            "blocked {blocked}: {:.0} jobs/s, claim p50 {:.3} ms, p99 {:.3} ms",
            drained.rate, drained.claim_p50, drained.claim_p99
        ));
        let note = format!(
            "{claimable} claimable jobs (priority 0) claimed and completed one per transaction beside {blocked} blocked ones (priority 10, waiting for a job never due); claim p50 {:.3} ms, p99 {:.3} ms; median of {repeats} rounds, the levels alternating",
            drained.claim_p50, drained.claim_p99
        );
        rows.push(
            Row::new(
                "blocked",
                format!("claim+complete, {blocked} blocked"),
                drained.rate,
                "jobs/s",
            )
            .baseline(base.rate, "the same with no blocked job")
            .target(Target::ratio_at_least(0.8))
            .samples(repeats)
            .note(note.clone()),
        );
        rows.push(
            Row::new(
                "blocked",
                format!("claim p99, {blocked} blocked"),
                drained.claim_p99,
                "ms",
            )
            .baseline(base.claim_p99, "the same with no blocked job")
            .target(Target::ratio_at_most(1.5))
            .samples(repeats)
            .note(note),
        );
    }
    rows.push(chain(bench, base)?);
    rows.push(fan_in(bench, base)?);
    rows.push(cascade(bench)?);
    rows.push(wide_enqueue(bench)?);
    Ok(rows)
}

/// `claimable` jobs claimed and completed beside `blocked` blocked ones, in
/// a queue of their own.
fn claim_beside(bench: &Bench, blocked: usize, claimable: usize, round: usize) -> Result<Drained> {
    let queue = bench.queue(&format!("blocked-{blocked}-{round}"))?;
    let mut store = queue.store()?;
    enqueue_blocked(&mut store, blocked)?;
    enqueue_jobs(&mut store, "c", claimable, 0)?;
    let drained = drain_one_by_one(&mut store)?;
    if drained.jobs != claimable {
        return Err(Error::Supervisor(format!(
            "claimed {} of {claimable} jobs beside {blocked} blocked ones",
            drained.jobs
        )));
    }
    Ok(drained)
}

/// A thousand jobs run one after the other, each released by the finish of
/// the one before (which claims it in the same transaction).
fn chain(bench: &Bench, independent: &Drained) -> Result<Row> {
    let n = bench.size(1000, 200);
    let queue = bench.queue("blocked-chain")?;
    let mut store = queue.store()?;
    let jobs: Vec<(usize, NewJob)> = (0..n)
        .map(|i| {
            let mut job = named(&format!("k{i}"), 0);
            if i > 0 {
                job.after = vec![id(&format!("k{}", i - 1))];
            }
            (i + 1, job)
        })
        .collect();
    store.enqueue(&jobs, &DEFAULTS)?;
    let drained = drain_one_by_one(&mut store)?;
    bench.progress(&format!("blocked chain of {n}: {:.0} jobs/s", drained.rate));
    Ok(
        Row::new("blocked", format!("a chain of {n}"), drained.rate, "jobs/s")
            .baseline(independent.rate, "independent jobs, as above with no blocked job")
            .target(Target::ratio_at_least(0.8))
            .samples(drained.jobs)
            .note(format!(
                "{n} jobs each after the one before, each claimed and completed in a transaction of its own: {} claims per job (no claim finds the next job still blocked)",
                trim(drained.claims as f64 / drained.jobs.max(1) as f64)
            )),
    )
}

/// The finishes of a fan-in's jobs, each of which decrements the same
/// dependent, against finishes of jobs nobody waits for.
fn fan_in(bench: &Bench, independent: &Drained) -> Result<Row> {
    let n = bench.size(1000, 200);
    let queue = bench.queue("blocked-fan-in")?;
    let mut store = queue.store()?;
    enqueue_jobs(&mut store, "p", n, 0)?;
    let mut last = named("all", -1);
    last.after = (0..n).map(|i| id(&format!("p{i}"))).collect();
    store.enqueue(&[(1, last)], &DEFAULTS)?;
    let drained = drain_one_by_one(&mut store)?;
    if drained.jobs != n + 1 {
        return Err(Error::Supervisor(format!(
            "the fan-in ran {} of {} jobs",
            drained.jobs,
            n + 1
        )));
    }
    bench.progress(&format!(
        "blocked fan-in {n} -> 1: finish p99 {:.3} ms",
        drained.finish_p99
    ));
    Ok(
        Row::new("blocked", format!("fan-in {n} -> 1, finish p99"), drained.finish_p99, "ms")
            .baseline(independent.finish_p99, "finishes of jobs nobody waits for")
            .target(Target::ratio_at_most(2.0))
            .samples(drained.jobs)
            .note(format!(
                "{n} jobs that one job waits for, finished one per transaction: each decrements the waiting job's counter (one row)"
            )),
    )
}

/// Cancelling the head of a waiting chain cancels the rest, transitively,
/// in the same transaction; against cancelling as many independent jobs.
fn cascade(bench: &Bench) -> Result<Row> {
    let n = bench.size(1000, 200);
    let queue = bench.queue("blocked-cascade")?;
    let mut store = queue.store()?;
    let mut jobs = vec![(1, named("head", 0))];
    jobs[0].1.schedule = queuectl::domain::job::Schedule::After(Duration::from_secs(3600));
    for i in 1..n {
        let mut job = named(&format!("k{i}"), 0);
        job.after = vec![id(&if i == 1 {
            "head".into()
        } else {
            format!("k{}", i - 1)
        })];
        jobs.push((i + 1, job));
    }
    store.enqueue(&jobs, &DEFAULTS)?;
    let started = Instant::now();
    let outcome = store.act(BulkAction::Cancel, &Selection::ids(["head".to_owned()]))?;
    let took = started.elapsed();
    if outcome.cascaded.len() != n - 1 {
        return Err(Error::Supervisor(format!(
            "the cascade cancelled {} of {} jobs",
            outcome.cascaded.len(),
            n - 1
        )));
    }
    let independent_queue = bench.queue("blocked-cascade-base")?;
    let mut independent = independent_queue.store()?;
    enqueue_jobs(&mut independent, "i", n, 0)?;
    let ids: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    let started = Instant::now();
    independent.act(BulkAction::Cancel, &Selection::ids(ids))?;
    let baseline = started.elapsed();
    bench.progress(&format!(
        "blocked cascade of {n}: {:.1} ms",
        took.as_secs_f64() * 1000.0
    ));
    Ok(
        Row::new("blocked", format!("cancel cascading down a chain of {n}"), ms(took), "ms")
            .baseline(ms(baseline), format!("`cancel` of {n} independent waiting jobs named"))
            .target(Target::ratio_at_most(3.0))
            .note(format!(
                "one `cancel` of a chain's head: the {} jobs after it are cancelled transitively with the reason in the same transaction",
                n - 1
            )),
    )
}

/// One job naming a thousand others in `after`, against one naming none.
fn wide_enqueue(bench: &Bench) -> Result<Row> {
    let n = 1000;
    let repeats = bench.size(7, 3);
    let queue = bench.queue("blocked-wide")?;
    let mut store = queue.store()?;
    enqueue_jobs(&mut store, "w", n, 0)?;
    let (mut wide, mut plain) = (Vec::new(), Vec::new());
    for rep in 0..repeats {
        let mut job = named(&format!("wide{rep}"), 0);
        job.after = (0..n).map(|i| id(&format!("w{i}"))).collect();
        let started = Instant::now();
        store.enqueue(&[(1, job)], &DEFAULTS)?;
        wide.push(started.elapsed());
        let started = Instant::now();
        store.enqueue(&[(1, named(&format!("plain{rep}"), 0))], &DEFAULTS)?;
        plain.push(started.elapsed());
    }
    let figure = median(&millis(&wide)).ok_or_else(|| no_samples("wide enqueue"))?;
    let baseline = median(&millis(&plain)).ok_or_else(|| no_samples("plain enqueue"))?;
    bench.progress(&format!("blocked enqueue after {n}: {figure:.2} ms"));
    Ok(
        Row::new("blocked", format!("enqueue of a job after {n}"), figure, "ms")
            .baseline(baseline, "the enqueue of one job after none")
            .target(Target::ratio_at_most(20.0))
            .samples(repeats)
            .note(format!(
                "one transaction: the {n} named jobs counted (locked in seq order on PostgreSQL), the job inserted, {n} edges recorded; median of {repeats}"
            )),
    )
}

/// What [`drain_one_by_one`] measured.
#[derive(Clone, Debug)]
struct Drained {
    jobs: usize,
    /// Claim transactions, the last one (which found nothing) included.
    claims: usize,
    rate: f64,
    claim_p50: f64,
    claim_p99: f64,
    finish_p99: f64,
}

impl Drained {
    /// The median of each figure over several runs.
    fn median(runs: &[Drained]) -> Option<Drained> {
        let of = |f: fn(&Drained) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        Some(Drained {
            jobs: runs.first()?.jobs,
            claims: runs.first()?.claims,
            rate: of(|d| d.rate)?,
            claim_p50: of(|d| d.claim_p50)?,
            claim_p99: of(|d| d.claim_p99)?,
            finish_p99: of(|d| d.finish_p99)?,
        })
    }
}

/// Claims one job and completes it, one transaction each, until a claim
/// finds nothing due; times every claim and every finish.
fn drain_one_by_one(store: &mut Store) -> Result<Drained> {
    let request = super::claim_request("bench", Duration::from_secs(3600));
    let policy = queuectl::config::Config::default().retry_policy();
    let success = AttemptResult::new(AttemptOutcome::Succeeded);
    let started = Instant::now();
    let (mut claims, mut finishes) = (Vec::new(), Vec::new());
    loop {
        let at = Instant::now();
        let claimed = store.claim_one(&request)?;
        claims.push(at.elapsed());
        let Some(job) = claimed else { break };
        let at = Instant::now();
        let done = [Finish {
            lease: &job.lease,
            result: &success,
        }];
        let finished = store.finish(&done, &policy, None)?;
        finishes.push(at.elapsed());
        if finished.held.first() != Some(&true) {
            return Err(Error::Supervisor(format!("lost the lease of {}", job.id)));
        }
    }
    let rate = finishes.len() as f64 / started.elapsed().as_secs_f64();
    let claim_ms = millis(&claims);
    let p = |samples: &[f64], at: f64| percentile(samples, at).ok_or_else(|| no_samples("blocked"));
    Ok(Drained {
        jobs: finishes.len(),
        claims: claims.len(),
        rate,
        claim_p50: p(&claim_ms, 50.0)?,
        claim_p99: p(&claim_ms, 99.0)?,
        finish_p99: p(&millis(&finishes), 99.0)?,
    })
}

/// `n` blocked jobs at priority 10: each waits for one job due in an hour.
fn enqueue_blocked(store: &mut Store, n: usize) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let mut gate = named("gate", 0);
    gate.schedule = queuectl::domain::job::Schedule::After(Duration::from_secs(3600));
    store.enqueue(&[(1, gate)], &DEFAULTS)?;
    for start in (0..n).step_by(50_000) {
        let batch: Vec<(usize, NewJob)> = (start..(start + 50_000).min(n))
            .map(|i| {
                let mut job = named(&format!("b{i}"), 10);
                job.after = vec![id("gate")];
                (i + 1, job)
            })
            .collect();
        store.enqueue(&batch, &DEFAULTS)?;
    }
    Ok(())
}

/// `n` independent jobs `{prefix}0` … at `priority`.
fn enqueue_jobs(store: &mut Store, prefix: &str, n: usize, priority: i64) -> Result<()> {
    for start in (0..n).step_by(50_000) {
        let batch: Vec<(usize, NewJob)> = (start..(start + 50_000).min(n))
            .map(|i| (i + 1, named(&format!("{prefix}{i}"), priority)))
            .collect();
        store.enqueue(&batch, &DEFAULTS)?;
    }
    Ok(())
}

fn named(name: &str, priority: i64) -> NewJob {
    let mut job = NewJob::new("true");
    job.id = Some(id(name));
    job.priority = priority;
    job
}

fn id(name: &str) -> JobId {
    JobId::parse(name).expect("benchmark ids are valid")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn trim(x: f64) -> String {
    super::stats::trim_number(x)
}
