//! The cost of getting jobs in: one `queuectl enqueue` process against one
//! `/bin/true` process (the floor for any command a script runs), and a
//! 100,000-job batch through `queuectl enqueue -` against raw SQLite
//! inserting as many rows in one transaction.

use super::report::Row;
use super::sandbox::time_process;
use super::stats::{Target, median, millis, percentile};
use super::{Bench, no_samples};
use queuectl::config::Durability;
use queuectl::error::{Error, IoContext, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

pub fn single(bench: &Bench) -> Result<Vec<Row>> {
    let samples = bench.size(60, 15);
    let mut rows = Vec::new();
    for with_worker in [true, false] {
        let queue = bench.sandbox.queue(if with_worker {
            "enqueue-live"
        } else {
            "enqueue-idle"
        })?;
        // The first run creates the database; time only the steady state.
        time_process(&mut queue.command(&["enqueue", r#"{"command":"true"}"#]))?;
        // A live queue: an idle worker holds the database open (and runs
        // each job, as it would). Without one, every enqueue also creates
        // the WAL and checkpoints it away on exit.
        let workers = if with_worker {
            queue.spawn_workers("e", 1, 1)?
        } else {
            Vec::new()
        };
        let (mut enqueue, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            floor.push(time_process(
                Command::new("/bin/true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )?);
            enqueue.push(time_process(
                &mut queue.command(&["enqueue", r#"{"command":"true"}"#]),
            )?);
            if with_worker {
                // Let the worker finish the job before the next sample.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        drop(workers);
        let (enqueue, floor) = (millis(&enqueue), millis(&floor));
        let figure = median(&enqueue).ok_or_else(|| no_samples("enqueue"))?;
        let baseline = median(&floor).ok_or_else(|| no_samples("/bin/true"))?;
        let p90 = percentile(&enqueue, 90.0).unwrap_or(figure);
        let state = if with_worker {
            "worker running"
        } else {
            "no worker"
        };
        bench.progress(&format!(
            "enqueue ({state}): {figure:.2} ms, /bin/true {baseline:.2} ms"
        ));
        let how = if with_worker {
            "an idle worker holds the queue open and runs each job; 2 fsyncs per enqueue at durability full (the WAL, and its directory once per process)"
        } else {
            "no other process has the queue open, so each enqueue also creates the WAL and checkpoints it away on exit (5 fsyncs at durability full)"
        };
        rows.push(
            Row::new("enqueue", format!("one job, {state}"), figure, "ms")
                .baseline(
                    baseline,
                    "one `/bin/true` process, spawned and reaped the same way",
                )
                .target(Target::ratio_at_most(4.0))
                .samples(samples)
                .note(format!(
                    "median of {samples} alternating runs (p90 {p90:.2} ms); {how}"
                )),
        );
    }
    Ok(rows)
}

pub fn batch(bench: &Bench) -> Result<Vec<Row>> {
    let jobs = bench.size(100_000, 20_000);
    let repeats = bench.size(3, 1);
    let input_path = bench.sandbox.path("batch.jsonl");
    let line = "{\"command\":\"true\"}\n";
    std::fs::write(&input_path, line.repeat(jobs))
        .context(|| format!("cannot write {}", input_path.display()))?;
    let (mut rates, mut raw_rates) = (Vec::new(), Vec::new());
    for rep in 0..repeats {
        let raw_db = bench.sandbox.path(&format!("raw-batch-{rep}.db"));
        raw_rates.push(raw_insert_rate(&raw_db, bench.sandbox.durability(), jobs)?);
        let queue = bench.sandbox.queue(&format!("batch-{rep}"))?;
        let input = std::fs::File::open(&input_path)
            .context(|| format!("cannot open {}", input_path.display()))?;
        let took = time_process(queue.command(&["enqueue", "-"]).stdin(input))?;
        rates.push(jobs as f64 / took.as_secs_f64());
    }
    let figure = median(&rates).ok_or_else(|| no_samples("batch enqueue"))?;
    let baseline = median(&raw_rates).ok_or_else(|| no_samples("raw batch insert"))?;
    bench.progress(&format!(
        "batch: {figure:.0} jobs/s, raw SQLite {baseline:.0} rows/s"
    ));
    let mut note = format!(
        "{jobs} jobs of {{\"command\":\"true\"}} on stdin, one `queuectl enqueue -` process on a fresh queue (process start, parse, one transaction, ids printed), median of {repeats}"
    );
    if bench.quick {
        note.push_str("; quick mode: 20,000 jobs instead of 100,000");
    }
    Ok(vec![
        Row::new("batch", format!("{jobs} jobs from stdin"), figure, "jobs/s")
            .baseline_in(
                baseline,
                "rows/s",
                "raw SQLite in-process: the same number of (unique text id, command) rows inserted in one transaction with a reused statement",
            )
            .target(Target::at_least(100_000.0))
            .samples(repeats)
            .note(note),
    ])
}

/// Rows per second inserted by raw SQLite in one transaction: a table with a
/// unique 26-character text key (like a job id).
fn raw_insert_rate(path: &Path, durability: Durability, rows: usize) -> Result<f64> {
    let db_err = |source| Error::Database {
        path: path.to_owned(),
        source,
    };
    let started = Instant::now();
    let mut conn = super::store::raw_connection(path, durability)?;
    // Like the jobs table: a unique text id beside the integer key.
    conn.execute_batch("CREATE UNIQUE INDEX t_id ON t (v)")
        .map_err(db_err)?;
    let tx = conn.transaction().map_err(db_err)?;
    {
        let mut insert = tx
            .prepare("INSERT INTO t (v) VALUES (?1)")
            .map_err(db_err)?;
        for i in 0..rows {
            insert.execute([format!("{i:026}")]).map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}
