//! The dashboard's cost: what each page's store calls take on a queue of
//! 1,000,000 jobs against the same calls on 1,000 jobs (the figures must
//! not grow with history), each page and endpoint of a real `queuectl web`
//! on that queue against a static asset from the same server, and what the
//! counters that keep those figures cost the hot path: claim + complete with migration 9's triggers against
//! the same schema with the triggers it replaced. SQLite only (the history
//! is built with the SQLite fixture helper, as the scale scenario's).

use super::report::Row;
use super::sandbox::Queue;
use super::stats::{Target, median, millis};
use super::{Bench, no_samples};
use queuectl::config::Durability;
use queuectl::domain::{JobId, NewJob, QueueName};
use queuectl::error::{Error, Result};
use queuectl::store::Store;
use queuectl::store::dashboard::{JobCursor, JobSearch};
use std::time::{Duration, Instant};

const SMALL: usize = 1_000;
/// One job in this many is left pending (a backlog as the history grows:
/// 200,000 of 1,000,000), one pending job in [`BLOCKED_EVERY`] blocked on
/// the one before it; the rest are completed.
const PENDING_EVERY: usize = 5;
const BLOCKED_EVERY: usize = 10;
/// The queues the jobs are spread over.
const QUEUES: [&str; 3] = ["default", "mail", "reports"];

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let mut rows = store_calls(bench)?;
    rows.extend(hot_path(bench)?);
    Ok(rows)
}

/// One store call the dashboard makes, run on `store`.
type Call = fn(&mut Store, usize) -> Result<()>;

/// The calls behind the pages, by name: each on a queue of `size` jobs.
const CALLS: [(&str, Call); 6] = [
    ("overview()", |store, _| store.overview().map(drop)),
    ("queues()", |store, _| store.queues().map(drop)),
    ("stats()", |store, _| store.stats().map(drop)),
    ("search_jobs() first page", |store, _| {
        store.search_jobs(&page(None)).map(drop)
    }),
    ("search_jobs() deep page", |store, size| {
        let middle = JobCursor(i64::try_from(size / 2).unwrap_or(i64::MAX));
        store.search_jobs(&page(Some(middle))).map(drop)
    }),
    ("job detail (get, attempts, dependencies)", |store, size| {
        let id = job_id(size / 2);
        store.get(&id)?;
        store.attempts(&id)?;
        store.dependencies(&id).map(drop)
    }),
];

fn page(before: Option<JobCursor>) -> JobSearch {
    JobSearch {
        before,
        limit: 50,
        ..JobSearch::default()
    }
}

fn job_id(n: usize) -> String {
    format!("job-{n}")
}

fn store_calls(bench: &Bench) -> Result<Vec<Row>> {
    let big_size = bench.size(1_000_000, 20_000);
    let small = bench.sandbox.queue("web-small")?;
    build(&small, SMALL)?;
    let big = bench.sandbox.queue("web-big")?;
    let started = Instant::now();
    build(&big, big_size)?;
    bench.progress(&format!(
        "web: built a {big_size}-job database in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let repeats = bench.size(21, 5);
    let mut stores = [small.store()?, big.store()?];
    let sizes = [SMALL, big_size];
    let size_note = if bench.quick {
        format!("quick mode: {big_size} jobs instead of 1,000,000")
    } else {
        format!("{big_size} jobs")
    };
    let mut rows = Vec::new();
    for (name, call) in CALLS {
        let mut samples = [Vec::new(), Vec::new()];
        let mut failed = None;
        for _ in 0..repeats {
            for (i, store) in stores.iter_mut().enumerate() {
                let started = Instant::now();
                match call(store, sizes[i]) {
                    Ok(()) => samples[i].push(started.elapsed()),
                    Err(e) => failed = Some(e),
                }
            }
        }
        if let Some(e) = failed {
            // A call another package has not built yet is reported, not fatal.
            bench.progress(&format!("web {name}: failed: {e}"));
            continue;
        }
        let big_ms = median(&millis(&samples[1])).ok_or_else(|| no_samples(name))?;
        let small_ms = median(&millis(&samples[0])).ok_or_else(|| no_samples(name))?;
        bench.progress(&format!("web {name}: {big_ms:.2} ms vs {small_ms:.2} ms"));
        rows.push(
            Row::new("web", format!("store {name}"), big_ms, "ms")
                .baseline(small_ms, format!("the same call on a {SMALL}-job database"))
                .target(Target::ratio_at_most(1.5))
                .samples(repeats)
                .note(format!(
                    "{size_note} in {} queues, 1 in {PENDING_EVERY} pending (1 in {BLOCKED_EVERY} of those blocked) and the rest completed with one attempt each; in-process, median of {repeats} alternating runs",
                    QUEUES.len()
                )),
        );
    }
    drop(stores);
    rows.extend(http_pages(bench, &big, big_size)?);
    Ok(rows)
}

/// Fills `queue` with `total` jobs spread over [`QUEUES`]: the newest
/// 1 in [`PENDING_EVERY`] pending, every [`BLOCKED_EVERY`]th of them waiting
/// for the job before it (pending too), the rest completed (their attempts
/// pass through the counting triggers as a finish's).
fn build(queue: &Queue, total: usize) -> Result<()> {
    let names: Vec<QueueName> = QUEUES
        .iter()
        .map(|q| QueueName::parse(q).map_err(Error::Invalid))
        .collect::<Result<_>>()?;
    let pending = total / PENDING_EVERY;
    let first_pending = total - pending + 1;
    super::scale::build_history(queue, total, pending, |i| {
        let mut job = NewJob::new("true");
        job.id = Some(JobId::parse(&job_id(i)).map_err(Error::Invalid)?);
        job.queue = names[i % names.len()].clone();
        if i > first_pending && i % BLOCKED_EVERY == 0 {
            job.after = vec![JobId::parse(&job_id(i - 1)).map_err(Error::Invalid)?];
        }
        Ok(job)
    })
}

/// Migration 1, whose state_counts and triggers migration 9 replaced.
const INITIAL_SCHEMA: &str = include_str!("../../src/store/sqlite/migrations/001_initial.sql");

/// The counting as it was before migration 9, for the hot-path baseline:
/// the same queue without the dashboard's counters.
fn before_counters() -> Result<String> {
    let part = INITIAL_SCHEMA
        .find("CREATE TABLE state_counts")
        .zip(INITIAL_SCHEMA.find("CREATE TABLE workers"))
        .map(|(start, end)| &INITIAL_SCHEMA[start..end])
        .ok_or_else(|| Error::Supervisor("migration 1 no longer has state_counts".into()))?;
    Ok(format!(
        "DROP TRIGGER attempts_end;
         DROP TRIGGER attempts_insert_ended;
         DROP TRIGGER attempts_start;
         DROP TRIGGER jobs_count_insert;
         DROP TRIGGER jobs_count_delete;
         DROP TRIGGER jobs_count_update;
         {part}"
    ))
}

/// Claim + complete with the dashboard's triggers against without them, one
/// job per transaction and in batches, alternating runs on fresh queues.
fn hot_path(bench: &Bench) -> Result<Vec<Row>> {
    let cycles = bench.jobs.unwrap_or(bench.size(3000, 500));
    let repeats = bench.size(5, 2);
    let mut rows = Vec::new();
    // Full: what a queue pays by default (fsync per commit); normal: the
    // counters' CPU cost, with little else to hide it.
    let shapes = [Durability::Full, Durability::Normal]
        .into_iter()
        .flat_map(|d| [(d, 1), (d, super::store::BATCH)]);
    for (durability, batch) in shapes {
        let name = durability.as_str();
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for rep in 0..repeats {
            for counters in [true, false] {
                let name = format!("web-hot-{name}-{batch}-{rep}-{counters}");
                let queue = bench.sandbox.queue(&name)?;
                let mut store = Store::open(&queue.state.db, durability)?;
                if !counters {
                    let conn = super::store::raw_connection(&queue.db_path(), durability)?;
                    conn.execute_batch(&before_counters()?)
                        .map_err(|source| Error::Database {
                            path: queue.db_path(),
                            source,
                        })?;
                }
                super::store::enqueue_noops(&mut store, cycles)?;
                let started = Instant::now();
                let done = super::store::drain(&mut store, "bench", batch)?;
                if done != cycles {
                    return Err(Error::Supervisor(format!(
                        "drained {done} of {cycles} jobs"
                    )));
                }
                let rate = cycles as f64 / started.elapsed().as_secs_f64();
                if counters { &mut with } else { &mut without }.push(rate);
            }
        }
        let figure = median(&with).ok_or_else(|| no_samples("with counters"))?;
        let baseline = median(&without).ok_or_else(|| no_samples("without counters"))?;
        bench.progress(&format!(
            "web hot path ({name}, batch {batch}): {figure:.0} jobs/s with the counters, {baseline:.0} without"
        ));
        rows.push(
            Row::new(
                "web",
                format!("claim+complete with the dashboard's counters, {name}, batch {batch}"),
                figure,
                "jobs/s",
            )
            .baseline(
                baseline,
                "the same queue with the triggers migration 9 replaced (state_counts only)",
            )
            .target(Target::ratio_at_least(0.9))
            .samples(repeats)
            .note(format!(
                "{cycles} jobs per run on one connection, durability {name}, {batch} per transaction; median of {repeats} alternating runs"
            )),
        );
    }
    Ok(rows)
}

/// The pages of a real `queuectl web` on the big queue, each against a
/// static asset request in the same run (the server's own floor: parsing,
/// headers, the socket): wall time per request, and the server's own
/// `Server-Timing` in the note.
fn http_pages(bench: &Bench, queue: &Queue, size: usize) -> Result<Vec<Row>> {
    let mut server = WebServer::start(queue)?;
    let middle = size / 2;
    let pages: [(&str, String); 9] = [
        ("overview /", "/".to_owned()),
        ("jobs /jobs", "/jobs".to_owned()),
        ("jobs, a deep page", format!("/jobs?before={middle}")),
        ("job /jobs/{id}", format!("/jobs/{}", job_id(middle))),
        ("dead letter /dlq", "/dlq".to_owned()),
        ("queues /queues", "/queues".to_owned()),
        ("/api/overview", "/api/overview".to_owned()),
        ("/api/jobs", "/api/jobs".to_owned()),
        ("/metrics", "/metrics".to_owned()),
    ];
    let repeats = bench.size(21, 5);
    let asset = "/assets/app.css";
    let mut baseline = Vec::new();
    let mut samples: Vec<(Vec<Duration>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); pages.len()];
    for _ in 0..repeats {
        baseline.push(server.get(asset)?.0);
        for (i, (_, path)) in pages.iter().enumerate() {
            let (took, app_ms) = server.get(path)?;
            samples[i].0.push(took);
            samples[i].1.extend(app_ms);
        }
    }
    server.stop();
    let baseline_ms = median(&millis(&baseline)).ok_or_else(|| no_samples(asset))?;
    let mut rows = Vec::new();
    for ((name, path), (times, app)) in pages.iter().zip(samples) {
        let figure = median(&millis(&times)).ok_or_else(|| no_samples(name))?;
        let app_ms = median(&app).map_or("none".to_owned(), |ms| format!("{ms:.2} ms"));
        bench.progress(&format!(
            "web GET {path}: {figure:.2} ms (app {app_ms}), asset {baseline_ms:.2} ms"
        ));
        rows.push(
            Row::new("web", format!("GET {name}"), figure, "ms")
                .baseline(
                    baseline_ms,
                    format!("GET {asset} (an embedded static asset) from the same server"),
                )
                .samples(repeats)
                .note(format!(
                    "`queuectl web` on the {size}-job queue, one request per connection from this process; Server-Timing app median {app_ms}; median of {repeats} alternating runs"
                )),
        );
    }
    Ok(rows)
}

/// A `queuectl web --listen 127.0.0.1:0` process, stopped when dropped.
struct WebServer {
    child: std::process::Child,
    address: String,
}

impl WebServer {
    fn start(queue: &Queue) -> Result<WebServer> {
        use std::io::BufRead;
        let mut child = queue
            .command(&["web", "--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("cannot start queuectl web", e))?;
        let stderr = child.stderr.take().expect("piped");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("listening on http://") {
                        break address.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Supervisor(
                        "queuectl web ended before it said where it listens".into(),
                    ));
                }
            }
        };
        // Keep reading its stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(WebServer { child, address })
    }

    /// One GET on a new connection: the time to the whole response, and
    /// the server's `Server-Timing: app;dur=<ms>` if it sent one. A status
    /// other than 200 is an error.
    fn get(&mut self, path: &str) -> Result<(Duration, Option<f64>)> {
        use std::io::{Read, Write};
        let io = |e| Error::io(format!("GET {path}"), e);
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(&self.address).map_err(io)?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )
        .map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).map_err(io)?;
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&response);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            return Err(Error::Supervisor(format!(
                "GET {path}: status {status:?}, not 200"
            )));
        }
        let app_ms = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            if !name.eq_ignore_ascii_case("server-timing") {
                return None;
            }
            value
                .split(';')
                .find_map(|part| part.trim().strip_prefix("dur=")?.parse().ok())
        });
        Ok((took, app_ms))
    }

    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
