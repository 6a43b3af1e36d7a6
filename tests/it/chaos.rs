//! The chaos suite: kill -9 of random workers, hundreds of times, while they
//! run thousands of jobs. Each job detects an overlapping run of itself (a
//! per-job `flock -n` that a live earlier run still holds); afterwards every
//! job must have completed with exactly one succeeded attempt, none may be
//! left in `processing`, no process of any run may be left alive, and an
//! SQLite database must pass `PRAGMA integrity_check`. Both scenarios run on
//! either backend (`QUEUECTL_TEST_BACKEND=postgres`; `.ci/run` does both).
//!
//! Not part of the quick suite (`#[ignore]`): `.ci/run` runs it with
//!   cargo nextest run --run-ignored only --no-capture -E 'test(/^chaos::/)'
//! and it prints its figures. `CHAOS_SEED` replays a run's kill schedule;
//! `CHAOS_JOBS` / `CHAOS_KILLS` change the minimums of the first scenario.
//!
//! Every worker runs several jobs at once (`concurrency`: 4 slots for bare
//! workers, 2 for kept ones), so a kill -9 hits full slots and attempts
//! that ended but whose completion was still buffered: those jobs must run
//! again, never twice at once, and end with one succeeded attempt.
//!
//! Two scenarios:
//! - Bare workers, killed every 50–400 ms. The driver brings them back the
//!   way a keeper does: it restarts them under the same name, which makes the
//!   new worker rescue its predecessor's job at once. One restart in twenty is
//!   held back past the lease (2 s) instead, so another worker's lease-expiry
//!   rescue is exercised too. Jobs keep their environment: a bare worker
//!   finds a dead run's leftovers by the attempt token in it.
//! - Kept workers (`worker start`, process backend), half of whose jobs shed
//!   their environment (`env -i`), killed or frozen (SIGSTOP): the keeper, a
//!   child subreaper with a watchdog, must end the worker and whatever its
//!   job left before a re-run starts. The keeper backs off for 10 s after 5
//!   failures in 30 s, so each worker is hit at most once every 8 s.

use crate::support::{TestEnv, alive, signal, wait_until};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
/// Pause between two hits, drawn uniformly from this range.
const KILL_EVERY_MS: RangeInclusive<u64> = 50..=400;
/// Jobs added when the queue runs dry before the kills are done.
const TOP_UP: usize = 200;
/// The whole run of a scenario, kills and drain, must end within this.
const RUN_LIMIT: Duration = Duration::from_secs(420);
const WAIT: Duration = Duration::from_secs(30);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// The random source of a scenario, printed so a run can be replayed.
fn seeded_rng(scenario: &str) -> (u64, StdRng) {
    let seed = env_number("CHAOS_SEED", rand::random::<u32>() as u64);
    println!("chaos {scenario}: seed {seed} (CHAOS_SEED={seed} replays the kill schedule)");
    (seed, StdRng::seed_from_u64(seed))
}

/// What the jobs of a scenario do.
struct JobMix {
    /// How long each sleeps, in milliseconds.
    millis: RangeInclusive<u32>,
    /// Share of jobs that drop their whole environment first (`env -i`).
    shed_env_percent: u32,
}

struct Chaos {
    env: TestEnv,
    mix: JobMix,
    locks: PathBuf,
    overlap: PathBuf,
    done: PathBuf,
    jobs: usize,
}

impl Chaos {
    fn new(lease_seconds: u64, slots: u32, mix: JobMix) -> Chaos {
        let env = TestEnv::with_config(&format!(
            "lease_seconds = {lease_seconds}\nconcurrency = {slots}\nkill_grace_seconds = 1\nbackoff_base = 1\n\
             backoff_max_seconds = 0\nmax_retries = 10000\nsupervisor = \"process\"\n\
             output = \"file\"\nretention_seconds = 0\n"
        ));
        let locks = env.path("locks");
        std::fs::create_dir(&locks).unwrap();
        Chaos {
            overlap: env.path("overlap"),
            done: env.path("done"),
            locks,
            env,
            mix,
            jobs: 0,
        }
    }

    /// Enqueues `count` more jobs in one batch. A job takes its lock without
    /// waiting and writes OVERLAP if an earlier run of it still holds it; the
    /// lock is held by the shell and the `sleep` it starts, so a run whose
    /// shell died but whose child lives on is caught too.
    fn enqueue(&mut self, count: usize, rng: &mut StdRng) {
        let batch: String = (self.jobs..self.jobs + count)
            .map(|n| {
                let id = format!("c{n:05}");
                let millis = rng.random_range(self.mix.millis.clone());
                let script = format!(
                    "exec 9>>{lock}; flock -n 9 || echo OVERLAP {id} >> {overlap}; \
                     sleep {seconds}.{fraction:03}; echo {id} >> {done}",
                    lock = self.locks.join(&id).display(),
                    overlap = self.overlap.display(),
                    done = self.done.display(),
                    seconds = millis / 1000,
                    fraction = millis % 1000,
                );
                let command = if rng.random_ratio(self.mix.shed_env_percent, 100) {
                    format!("exec env -i /bin/sh -c '{script}'")
                } else {
                    script
                };
                serde_json::json!({ "id": id, "command": command }).to_string() + "\n"
            })
            .collect();
        let out = self.env.run_with_stdin(&["enqueue", "-"], &batch);
        assert!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.jobs += count;
    }

    /// Starts worker `name`, appending to its log (restarts keep the history).
    fn start_worker(&mut self, name: usize) -> u32 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.path(&format!("worker-{name}.log")))
            .unwrap();
        let child = self
            .env
            .cmd()
            .args(["worker", "run", "--name", &name.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start worker");
        self.env.adopt(child)
    }

    fn waiting_jobs(&self) -> u64 {
        let counts = &self.env.json(&["status"])["counts"];
        ["pending", "failed", "processing"]
            .iter()
            .map(|s| counts[s].as_u64().unwrap())
            .sum()
    }

    /// The storm: every 50–400 ms `strike` may hit a worker (it says whether
    /// it did), until at least `min_hits` hits were made and no job waits;
    /// when the jobs run out first, more are enqueued. Returns the hits.
    fn storm(
        &mut self,
        rng: &mut StdRng,
        min_hits: u64,
        started: Instant,
        mut strike: impl FnMut(&mut Chaos, &mut StdRng) -> bool,
    ) -> u64 {
        let mut hits = 0;
        let mut next_check = Instant::now();
        loop {
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the storm did not end within {RUN_LIMIT:?} ({hits} hits)"
            );
            std::thread::sleep(Duration::from_millis(rng.random_range(KILL_EVERY_MS)));
            if Instant::now() >= next_check {
                next_check = Instant::now() + Duration::from_secs(1);
                if self.waiting_jobs() == 0 {
                    if hits >= min_hits {
                        return hits;
                    }
                    // Every job is done but the hits are not: more work to hit.
                    self.enqueue(TOP_UP, rng);
                }
            }
            if strike(self, rng) {
                hits += 1;
            }
        }
    }

    /// After the storm: every job leaves pending, failed and processing.
    fn drain(&self, started: Instant) -> Duration {
        wait_until(
            "no job is pending, failed or processing",
            RUN_LIMIT.saturating_sub(started.elapsed()).max(WAIT),
            || self.waiting_jobs() == 0,
        );
        started.elapsed()
    }
}

/// One bare worker's name: the process running under it now, or when it
/// comes back.
enum Slot {
    Running(u32),
    Down { restart_at: Instant },
}

#[test]
#[ignore = "the chaos suite, minutes long: run by .ci/run"]
fn kill_9_of_random_workers_loses_no_job_and_never_runs_one_twice_at_once() {
    const LEASE_SECONDS: u64 = 2;
    const SLOTS: u32 = 4;
    /// Share of restarts held back past the lease (the rest are immediate);
    /// at most one worker is held back at a time, so three keep working.
    const DELAYED_RESTART_PERCENT: u32 = 5;
    let min_jobs = env_number("CHAOS_JOBS", 2000) as usize;
    let min_kills = env_number("CHAOS_KILLS", 300);
    let (seed, mut rng) = seeded_rng("bare workers");

    let mut chaos = Chaos::new(
        LEASE_SECONDS,
        SLOTS,
        JobMix {
            millis: 20..=150,
            shed_env_percent: 0,
        },
    );
    chaos.enqueue(min_jobs, &mut rng);
    let started = Instant::now();
    let mut slots: Vec<Slot> = (1..=WORKERS)
        .map(|name| Slot::Running(chaos.start_worker(name)))
        .collect();

    let mut delayed_restarts = 0u64;
    let kills = chaos.storm(&mut rng, min_kills, started, |chaos, rng| {
        let now = Instant::now();
        for (index, slot) in slots.iter_mut().enumerate() {
            if let Slot::Down { restart_at } = slot
                && *restart_at <= now
            {
                *slot = Slot::Running(chaos.start_worker(index + 1));
            }
        }
        let running: Vec<usize> = (0..WORKERS)
            .filter(|&i| matches!(slots[i], Slot::Running(_)))
            .collect();
        if running.is_empty() {
            return false;
        }
        let index = running[rng.random_range(0..running.len())];
        let Slot::Running(pid) = slots[index] else {
            unreachable!()
        };
        signal(pid, Signal::SIGKILL);
        chaos.env.wait_worker(pid, WAIT);
        let one_held = slots.iter().any(|s| matches!(s, Slot::Down { .. }));
        slots[index] = if !one_held && rng.random_ratio(DELAYED_RESTART_PERCENT, 100) {
            delayed_restarts += 1;
            let hold = Duration::from_millis(
                rng.random_range(LEASE_SECONDS * 1000..=LEASE_SECONDS * 1500),
            );
            Slot::Down {
                restart_at: Instant::now() + hold,
            }
        } else {
            Slot::Running(chaos.start_worker(index + 1))
        };
        true
    });
    let storm = started.elapsed();

    // Drain: every worker up, no more kills.
    for (index, slot) in slots.iter_mut().enumerate() {
        if let Slot::Down { .. } = slot {
            *slot = Slot::Running(chaos.start_worker(index + 1));
        }
    }
    let total = chaos.drain(started);
    verify(
        &chaos,
        seed,
        &format!(
            "bare workers: {kills} kills of {WORKERS} workers ({delayed_restarts} restarts held past \
             the {LEASE_SECONDS} s lease), kill phase {storm:.1?}, total {total:.1?}"
        ),
    );
    assert!(kills >= min_kills, "only {kills} kills");
    assert!(chaos.jobs >= min_jobs);
}

#[test]
#[ignore = "the chaos suite, minutes long: run by .ci/run"]
fn kept_workers_killed_or_frozen_never_let_a_job_that_shed_its_environment_overlap() {
    const LEASE_SECONDS: u64 = 3;
    const SLOTS: u32 = 2;
    /// The keeper's start limit allows 4 failures in 30 s.
    const HIT_SPACING: Duration = Duration::from_secs(8);
    const FREEZE_PERCENT: u32 = 25;
    const MIN_HITS: u64 = 25;
    let (seed, mut rng) = seeded_rng("kept workers");

    let mut chaos = Chaos::new(
        LEASE_SECONDS,
        SLOTS,
        JobMix {
            millis: 100..=500,
            shed_env_percent: 50,
        },
    );
    chaos.enqueue(500, &mut rng);
    chaos.env.mark_supervised();
    let started = Instant::now();
    chaos
        .env
        .ok(&["worker", "start", "--count", &WORKERS.to_string()]);
    let workers_dir = chaos
        .env
        .job_log("x")
        .parent()
        .unwrap()
        .with_file_name("workers");

    let mut last_hit: Vec<Option<Instant>> = vec![None; WORKERS];
    let (mut kills, mut freezes) = (0u64, 0u64);
    let hits = chaos.storm(&mut rng, MIN_HITS, started, |_, rng| {
        let ready: Vec<usize> = (0..WORKERS)
            .filter(|&i| last_hit[i].is_none_or(|t| t.elapsed() >= HIT_SPACING))
            .collect();
        if ready.is_empty() {
            return false;
        }
        let index = ready[rng.random_range(0..ready.len())];
        // Between a kill and the restart (the keeper pauses 500 ms) there is
        // no worker to hit.
        let Some(worker) = kept_worker(&workers_dir.join(format!("{}.pid", index + 1))) else {
            return false;
        };
        if rng.random_ratio(FREEZE_PERCENT, 100) {
            signal(worker, Signal::SIGSTOP);
            freezes += 1;
        } else {
            signal(worker, Signal::SIGKILL);
            kills += 1;
        }
        last_hit[index] = Some(Instant::now());
        true
    });
    let storm = started.elapsed();
    let total = chaos.drain(started);
    verify(
        &chaos,
        seed,
        &format!(
            "kept workers: {hits} hits of {WORKERS} kept workers ({kills} kill -9, {freezes} SIGSTOP), \
             half the jobs under env -i, kill phase {storm:.1?}, total {total:.1?}"
        ),
    );
}

/// The worker a keeper (pid in `pid_file`) runs now: its child running
/// `worker run`. (Its other children are leftovers it is about to kill.)
fn kept_worker(pid_file: &Path) -> Option<u32> {
    let keeper: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    std::fs::read_dir(format!("/proc/{keeper}/task"))
        .ok()?
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|&pid| {
            alive(pid)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.windows(11).any(|w| w == b"worker\0run\0"))
        })
}

struct Report {
    attempts: u64,
    rescues: u64,
    overlaps: usize,
    /// Everything that did not hold, one line each.
    problems: Vec<String>,
}

/// Prints a scenario's figures, then fails on every broken promise.
fn verify(chaos: &Chaos, seed: u64, summary: &str) {
    let report = inspect(chaos);
    println!(
        "chaos {summary}; {jobs} jobs, {attempts} attempts, {rescues} rescued (lease_expired), \
         {overlaps} overlaps",
        jobs = chaos.jobs,
        attempts = report.attempts,
        rescues = report.rescues,
        overlaps = report.overlaps,
    );
    assert!(
        report.problems.is_empty(),
        "chaos (CHAOS_SEED={seed}):\n{}",
        report.problems.join("\n")
    );
}

/// Reads the outcome of the storm: figures, and every broken promise.
fn inspect(chaos: &Chaos) -> Report {
    let mut problems = vec![];
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let overlaps = crate::support::read_lines(&chaos.overlap);
    check(
        overlaps.is_empty(),
        format!(
            "{} runs started while an earlier run of the same job was alive:\n{}",
            overlaps.len(),
            overlaps.join("\n")
        ),
    );

    let (integrity, jobs, rescues) = read_queue(&chaos.env);
    check(integrity.is_empty(), integrity);
    check(
        jobs.len() == chaos.jobs,
        format!("{} jobs enqueued, {} in the queue", chaos.jobs, jobs.len()),
    );
    let wrong: Vec<String> = jobs
        .iter()
        .filter(|(_, (state, counter, rows, succeeded, open))| {
            state != "completed" || counter != rows || *succeeded != 1 || *open != 0
        })
        .map(|(id, (state, counter, rows, succeeded, open))| {
            format!("{id}: {state}, attempts {counter} (rows {rows}), {succeeded} succeeded, {open} unfinished")
        })
        .collect();
    check(
        wrong.is_empty(),
        format!(
            "{} jobs are not completed with exactly one succeeded attempt:\n{}",
            wrong.len(),
            wrong.join("\n")
        ),
    );
    let attempts: u64 = jobs.values().map(|j| j.2 as u64).sum();

    // Every job's command ran to its end at least once.
    let mut finished: BTreeMap<String, usize> = BTreeMap::new();
    for id in crate::support::read_lines(&chaos.done) {
        *finished.entry(id).or_default() += 1;
    }
    let never: Vec<&String> = jobs
        .keys()
        .filter(|id| !finished.contains_key(*id))
        .collect();
    check(
        never.is_empty(),
        format!("jobs completed without running to the end: {never:?}"),
    );

    // No process of any run is left: every job's lock is free.
    let held: Vec<&String> = jobs
        .keys()
        .filter(|id| lock_is_held(&chaos.locks.join(id)))
        .collect();
    check(
        held.is_empty(),
        format!("processes of these jobs are still alive (holding their locks): {held:?}"),
    );
    Report {
        attempts,
        rescues,
        overlaps: overlaps.len(),
        problems,
    }
}

/// Whether a process holds the job's lock (a job that never ran has no file).
fn lock_is_held(path: &Path) -> bool {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .is_ok_and(|file| {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
        })
}

/// Per job: its state, its attempt counter, its attempt rows, how many
/// succeeded, how many are unfinished.
type JobOutcome = (String, i64, i64, i64, i64);

const PER_JOB: &str = "SELECT j.id, j.state, j.attempts, count(a.number),
        count(a.number) FILTER (WHERE a.outcome = 'succeeded'),
        count(a.number) FILTER (WHERE a.outcome IS NULL)
     FROM jobs j LEFT JOIN attempts a ON a.job_seq = j.seq GROUP BY j.seq";
const RESCUES: &str = "SELECT count(*) FROM attempts WHERE outcome = 'lease_expired'";

/// What the queue's own database says, read around queuectl: a failed
/// integrity check (empty when fine), every job's outcome, the rescues.
fn read_queue(env: &TestEnv) -> (String, BTreeMap<String, JobOutcome>, u64) {
    if let Some(database) = env.postgres_db() {
        let jobs = database
            .sql(PER_JOB)
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split('|').collect();
                let n = |i: usize| f[i].parse::<i64>().unwrap();
                (f[0].to_owned(), (f[1].to_owned(), n(2), n(3), n(4), n(5)))
            })
            .collect();
        // PostgreSQL checks its own pages; nothing like SQLite's integrity_check to run.
        return (String::new(), jobs, database.sql(RESCUES).parse().unwrap());
    }
    let db = Connection::open_with_flags(env.db(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the queue read-only");
    let integrity: Vec<String> = db
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let integrity = match integrity.as_slice() {
        [ok] if ok == "ok" => String::new(),
        _ => format!("PRAGMA integrity_check: {integrity:?}"),
    };
    let mut jobs = BTreeMap::new();
    let mut query = db.prepare(PER_JOB).unwrap();
    let rows = query
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                (
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ),
            ))
        })
        .unwrap();
    for row in rows {
        let (id, job) = row.unwrap();
        jobs.insert(id, job);
    }
    let rescues = db.query_row(RESCUES, [], |row| row.get(0)).unwrap();
    (integrity, jobs, rescues)
}
