//! The store's ceiling: how many jobs per second the queue itself could move
//! if jobs cost nothing. A no-op executor claims and completes jobs exactly
//! as a worker with K slots does (the first claim of K, then `finish` of the
//! K ended attempts + claim of the next K in one transaction), against raw
//! single-row SQLite write transactions at the same journal mode and
//! synchronous setting.
//!
//! Measured at both durability settings, one job per transaction (K = 1)
//! and in batches of [`BATCH`]. A last run has four connections
//! claiming at once and counts the errors that reach the caller (the store
//! must absorb every "database is locked"), beside what raw SQLite without a
//! busy handler reports under the same load.

use super::Bench;
use super::report::Row;
use super::stats::{Target, median};
use queuectl::config::Durability;
use queuectl::domain::{AttemptOutcome, NewJob};
use queuectl::error::{Error, Result};
use queuectl::store::{AttemptResult, Database, Finish, JobDefaults, Store};
use rusqlite::{Connection, ErrorCode};
use std::path::Path;
use std::time::{Duration, Instant};

const CONTENDERS: usize = 4;
/// Jobs per transaction of the batched rows: a worker with this many slots,
/// all busy.
pub(super) const BATCH: usize = 8;

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let cycles = bench.jobs.unwrap_or(bench.size(3000, 500));
    let repeats = bench.size(3, 1);
    // Both settings: at `full` both sides wait for fsync, at `normal` the
    // ratio shows the CPU cost of a job's bookkeeping against one row's.
    let mut rows = Vec::new();
    for durability in [Durability::Full, Durability::Normal] {
        for batch in [1, BATCH] {
            rows.push(ceiling(bench, durability, batch, cycles, repeats)?);
        }
    }
    rows.push(contention(bench)?);
    Ok(rows)
}

/// Claim + complete cycles per second on one connection, `batch` jobs per
/// transaction, against raw single-row write transactions, at `durability`.
fn ceiling(
    bench: &Bench,
    durability: Durability,
    batch: usize,
    cycles: usize,
    repeats: usize,
) -> Result<Row> {
    let name = durability.as_str();
    let shape = if batch == 1 {
        "one job per transaction".to_owned()
    } else {
        format!("batches of {batch}")
    };
    let (mut store_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for rep in 0..repeats {
        let raw_db = bench
            .sandbox
            .path(&format!("raw-writes-{name}-{batch}-{rep}.db"));
        raw_rates.push(raw_write_rate(&raw_db, durability, cycles)?);
        let queue = bench
            .sandbox
            .queue(&format!("store-{name}-{batch}-{rep}"))?;
        let mut store = Store::open(&queue.state.db, durability)?;
        enqueue_noops(&mut store, cycles)?;
        let started = Instant::now();
        let done = drain(&mut store, "bench", batch)?;
        if done != cycles {
            return Err(Error::Supervisor(format!(
                "drained {done} of {cycles} jobs"
            )));
        }
        store_rates.push(cycles as f64 / started.elapsed().as_secs_f64());
    }
    let figure = median(&store_rates).ok_or_else(|| super::no_samples("store"))?;
    let baseline = median(&raw_rates).ok_or_else(|| super::no_samples("raw writes"))?;
    bench.progress(&format!(
        "store ({name}, {shape}): {figure:.0} jobs/s, raw {baseline:.0} txn/s"
    ));
    let target = match durability {
        Durability::Full => 0.9,
        Durability::Normal => 0.5,
    };
    Ok(
        Row::new("store", format!("claim+complete, durability {name}, {shape}"), figure, "jobs/s")
            .baseline_in(
                baseline,
                "txn/s",
                format!("raw SQLite single-row INSERT transactions (BEGIN IMMEDIATE; INSERT; COMMIT), WAL, synchronous={}", name.to_uppercase()),
            )
            .target(Target::ratio_at_least(target))
            .samples(repeats)
            .note(format!(
                "{cycles} jobs per run on one connection, {batch} per transaction: each transaction finishes the attempts of the last claim and claims the next, as a worker with {batch} slot(s) does; median of {repeats}"
            )),
    )
}

/// Four connections claiming and completing at once: how many errors reach
/// a caller, beside what raw SQLite without a busy handler reports.
fn contention(bench: &Bench) -> Result<Row> {
    let durability = bench.sandbox.durability();
    let queue = bench.sandbox.queue("store-contended")?;
    let contended_jobs = bench.size(2000, 400);
    enqueue_noops(&mut queue.store()?, contended_jobs)?;
    let started = Instant::now();
    let errors = contended_drain(&queue.db_path(), durability)?;
    let contended_rate = contended_jobs as f64 / started.elapsed().as_secs_f64();
    let raw_busy = raw_busy_errors(
        &bench.sandbox.path("raw-contended.db"),
        durability,
        contended_jobs,
    )?;
    bench.progress(&format!(
        "store under contention: {errors} errors, raw SQLite {raw_busy} busy errors"
    ));
    Ok(
        Row::new("store", format!("errors, {CONTENDERS} connections"), errors as f64, "errors")
            .baseline(
                raw_busy as f64,
                format!("write transactions that fail with 'database is locked' when raw SQLite (no busy handler) attempts {contended_jobs} of them once each from {CONTENDERS} threads"),
            )
            .target(Target::at_most(0.0))
            .samples(contended_jobs)
            .note(format!(
                "{contended_jobs} jobs claimed and completed by {CONTENDERS} connections at once (durability {}), {contended_rate:.0} jobs/s",
                durability.as_str()
            )),
    )
}

pub(super) fn enqueue_noops(store: &mut Store, count: usize) -> Result<()> {
    let defaults = JobDefaults {
        max_retries: 0,
        timeout_seconds: 0,
    };
    for chunk_start in (0..count).step_by(50_000) {
        let end = (chunk_start + 50_000).min(count);
        let batch: Vec<(usize, NewJob)> = (chunk_start..end)
            .map(|i| (i + 1, NewJob::new("true")))
            .collect();
        store.enqueue(&batch, &defaults)?;
    }
    Ok(())
}

/// Claims and completes jobs, `batch` per transaction, until none is due;
/// returns how many.
pub(super) fn drain(store: &mut Store, worker: &str, batch: usize) -> Result<usize> {
    let request = super::claim_request(worker, Duration::from_secs(30));
    let policy = queuectl::config::Config::default().retry_policy();
    let success = AttemptResult {
        exit_code: Some(0),
        ..AttemptResult::new(AttemptOutcome::Succeeded)
    };
    let mut done = 0;
    let mut jobs = store.claim(&request, batch)?;
    while !jobs.is_empty() {
        let finishes: Vec<Finish> = jobs
            .iter()
            .map(|job| Finish {
                lease: &job.lease,
                result: &success,
            })
            .collect();
        let finished = store.finish(&finishes, &policy, Some((&request, batch)))?;
        if let Some(lost) = finished.held.iter().position(|held| !held) {
            return Err(Error::Supervisor(format!(
                "lost the lease of {}",
                jobs[lost].id
            )));
        }
        done += jobs.len();
        jobs = finished.claimed;
    }
    Ok(done)
}

/// Drains the queue with several connections at once; returns how many
/// errors reached a caller.
fn contended_drain(db: &Path, durability: Durability) -> Result<usize> {
    let errors: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CONTENDERS)
            .map(|i| {
                scope.spawn(move || -> usize {
                    let mut store = match Store::open(&Database::Sqlite(db.to_owned()), durability)
                    {
                        Ok(store) => store,
                        Err(_) => return 1,
                    };
                    let mut errors = 0;
                    loop {
                        match drain(&mut store, &format!("bench-{i}"), 1) {
                            Ok(_) => return errors,
                            Err(_) if errors < 1000 => errors += 1,
                            Err(_) => return errors,
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(1)).collect()
    });
    Ok(errors.into_iter().sum())
}

/// Opens a raw SQLite database like the store does (WAL, same synchronous)
/// with one plain table `t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`.
pub(super) fn raw_connection(path: &Path, durability: Durability) -> Result<Connection> {
    let db_err = |source| Error::Database {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(db_err)?;
    let synchronous = durability.sqlite_synchronous();
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
    ))
    .map_err(db_err)?;
    Ok(conn)
}

/// Single-row write transactions per second on a raw connection.
fn raw_write_rate(path: &Path, durability: Durability, count: usize) -> Result<f64> {
    let conn = raw_connection(path, durability)?;
    let db_err = |source| Error::Database {
        path: path.to_owned(),
        source,
    };
    let started = Instant::now();
    for i in 0..count {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        conn.prepare_cached("INSERT INTO t (v) VALUES (?1)")
            .and_then(|mut s| s.execute([i.to_string()]))
            .map_err(db_err)?;
        conn.execute_batch("COMMIT").map_err(db_err)?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// How many of `count` write transactions, attempted once each by
/// `CONTENDERS` threads of raw SQLite without a busy handler, fail with
/// "database is locked".
fn raw_busy_errors(path: &Path, durability: Durability, count: usize) -> Result<usize> {
    raw_connection(path, durability)?;
    let per_thread = count / CONTENDERS;
    let results: Vec<Result<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CONTENDERS)
            .map(|_| {
                scope.spawn(move || -> Result<usize> {
                    let conn = raw_connection(path, durability)?;
                    // rusqlite installs a 5 s busy handler by default.
                    conn.busy_timeout(Duration::ZERO)
                        .map_err(|source| Error::Database {
                            path: path.to_owned(),
                            source,
                        })?;
                    let mut busy = 0;
                    for _ in 0..per_thread {
                        let attempt = conn.execute_batch(
                            "BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('x'); COMMIT;",
                        );
                        match attempt {
                            Ok(()) => {}
                            Err(e)
                                if matches!(
                                    e.sqlite_error_code(),
                                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                                ) =>
                            {
                                busy += 1;
                                let _ = conn.execute_batch("ROLLBACK");
                            }
                            Err(e) => {
                                return Err(Error::Database {
                                    path: path.to_owned(),
                                    source: e,
                                });
                            }
                        }
                    }
                    Ok(busy)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Supervisor("panicked".into())))
            })
            .collect()
    });
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(total)
}
