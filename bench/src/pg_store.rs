//! The store's ceiling on PostgreSQL: claim + complete cycles through the
//! store interface (as workers run them: the finish and the next claim in
//! one transaction), from 1 and 4 connections, one job at a time and in
//! batches of [`BATCH`] (a worker with that many slots), each against a raw
//! baseline on the same server in the same run: a plain job table drained
//! one job per transaction with `SELECT … FOR UPDATE SKIP LOCKED`
//! claim-and-finish transactions, as pgbench would run them, from as many
//! connections. The target: batches at least twice that.
//!
//! The raw baseline is the only SQL here; the queue's fixtures go through
//! the store. Both run in a scratch database of the scenario's own, the raw
//! table in a schema of its own (`raw`), so the queue's schema holds nothing
//! but the queue.

use super::Bench;
use super::report::Row;
use super::stats::{Target, median};
use super::store::{BATCH, drain, enqueue_noops};
use queuectl::error::{Error, Result};
use queuectl::store::postgres::{PgTarget, ScratchDatabase};
use queuectl::store::{Database, Store};
use std::sync::Barrier;
use std::time::{Duration, Instant};

pub fn run(bench: &Bench, server: &PgTarget) -> Result<Vec<Row>> {
    let jobs = bench.jobs.unwrap_or(bench.size(2000, 400));
    let repeats = bench.size(3, 1);
    let scratch = ScratchDatabase::create(server, "store")?;
    let queue = Database::Postgres(scratch.target().clone());
    let durability = bench.sandbox.durability();
    let mut rows = Vec::new();
    for clients in [1, 4] {
        let mut raw_rates = Vec::new();
        for _ in 0..repeats {
            raw_rates.push(raw_drain_rate(&scratch, jobs, clients, 1)?);
        }
        let baseline = median(&raw_rates).ok_or_else(|| super::no_samples("raw claims"))?;
        for batch in [1, BATCH] {
            let mut store_rates = Vec::new();
            for _ in 0..repeats {
                enqueue_noops(&mut Store::open(&queue, durability)?, jobs)?;
                let (done, took) = in_parallel(
                    clients,
                    |_| Store::open(&queue, durability),
                    |mut store, i| drain(&mut store, &format!("bench-{i}"), batch),
                )?;
                if done != jobs {
                    return Err(Error::Supervisor(format!("drained {done} of {jobs} jobs")));
                }
                store_rates.push(jobs as f64 / took.as_secs_f64());
            }
            let figure = median(&store_rates).ok_or_else(|| super::no_samples("store"))?;
            let shape = format!(
                "{clients} connection{}, {}",
                if clients == 1 { "" } else { "s" },
                if batch == 1 {
                    "one job per transaction".to_owned()
                } else {
                    format!("batches of {batch}")
                }
            );
            bench.progress(&format!(
                "store ({shape}): {figure:.0} jobs/s, raw single-job {baseline:.0} jobs/s"
            ));
            // One job per transaction does what the raw baseline does and
            // more (an attempt row, a lease); batches must beat it twice.
            let target = if batch == 1 { 0.5 } else { 2.0 };
            rows.push(
                Row::new("store", format!("claim+complete, {shape}"), figure, "jobs/s")
                    .baseline(
                        baseline,
                        format!(
                            "raw PostgreSQL on the same server: a plain job table drained by {clients} connection(s), one job per transaction: `SELECT id … ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED` then `UPDATE … SET state = 'done' WHERE id = ANY(…)`, as pgbench would run it"
                        ),
                    )
                    .target(Target::ratio_at_least(target))
                    .samples(repeats)
                    .note(format!(
                        "{jobs} jobs per run through the store interface, each transaction finishing {batch} job(s) and claiming the next; median of {repeats}"
                    )),
            );
        }
    }
    Ok(rows)
}

/// Runs `work` on `clients` threads, each with what `open` made for it
/// before the clock starts; returns the sum of what they did and the time
/// from the common start to the last one's end.
pub(super) fn in_parallel<T: Send>(
    clients: usize,
    open: impl Fn(usize) -> Result<T> + Sync,
    work: impl Fn(T, usize) -> Result<usize> + Sync,
) -> Result<(usize, Duration)> {
    let ready = Barrier::new(clients + 1);
    let (results, took) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (ready, open, work) = (&ready, &open, &work);
                scope.spawn(move || {
                    let opened = open(i);
                    ready.wait();
                    work(opened?, i)
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        let results: Vec<Result<usize>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Supervisor("a benchmark thread panicked".into()))
                })
            })
            .collect();
        (results, started.elapsed())
    });
    let mut total = 0;
    for result in results {
        total += result?;
    }
    Ok((total, took))
}

/// Jobs per second when `clients` connections drain `jobs` rows of a plain
/// table, `batch` per transaction (a fresh table each time).
fn raw_drain_rate(
    scratch: &ScratchDatabase,
    jobs: usize,
    clients: usize,
    batch: usize,
) -> Result<f64> {
    let target = scratch.target();
    let sql_err = |e: postgres::Error| Error::Postgres {
        target: target.to_string(),
        message: e.to_string(),
    };
    let mut setup = scratch.raw_client()?;
    setup
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS raw CASCADE;
             CREATE SCHEMA raw;
             CREATE TABLE raw.jobs (
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               state text NOT NULL DEFAULT 'pending',
               worker text,
               finished_at timestamptz);
             CREATE INDEX jobs_pending ON raw.jobs (id) WHERE state = 'pending';
             INSERT INTO raw.jobs (state) SELECT 'pending' FROM generate_series(1, {jobs});"
        ))
        .map_err(sql_err)?;
    setup
        .batch_execute("VACUUM ANALYZE raw.jobs")
        .map_err(sql_err)?;
    let limit = batch as i64;
    let (done, took) = in_parallel(
        clients,
        |_| {
            let mut client = scratch.raw_client()?;
            let claim = client
                .prepare("SELECT id FROM raw.jobs WHERE state = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED")
                .map_err(sql_err)?;
            let finish = client
                .prepare("UPDATE raw.jobs SET state = 'done', worker = $2, finished_at = now() WHERE id = ANY($1)")
                .map_err(sql_err)?;
            Ok((client, claim, finish))
        },
        |(mut client, claim, finish), i| {
            let worker = format!("raw-{i}");
            let mut done = 0;
            loop {
                let mut tx = client.transaction().map_err(sql_err)?;
                let ids: Vec<i64> = tx
                    .query(&claim, &[&limit])
                    .map_err(sql_err)?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                if ids.is_empty() {
                    return Ok(done);
                }
                tx.execute(&finish, &[&ids, &worker]).map_err(sql_err)?;
                tx.commit().map_err(sql_err)?;
                done += ids.len();
            }
        },
    )?;
    if done != jobs {
        return Err(Error::Supervisor(format!(
            "the raw baseline finished {done} of {jobs} rows"
        )));
    }
    Ok(jobs as f64 / took.as_secs_f64())
}
