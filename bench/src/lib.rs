//! The benchmark suite (`queuectl-bench`, also run as `queuectl bench`):
//! answers "will the queue keep up?" on the user's own hardware. Each
//! scenario measures queuectl and, in the same run on the same machine, a
//! baseline that shows what the hardware can do without the queue (spawning
//! `sh -c true`, raw SQLite write transactions, `/bin/true`, ...), and
//! reports the ratio against the target from the performance issue. Ratios
//! rather than absolute figures, because shared machines are noisy.
//!
//! A crate of its own so that the queuectl binary, which every worker runs,
//! does not link it; it uses the queuectl library's public API like any
//! other client. Everything runs in a throwaway directory ([`sandbox`]) with
//! real `queuectl` processes (the binary in [`Options::exe`]), so the user's
//! queue is never touched. With a PostgreSQL server (`--db`), the
//! throughput, latency, store and blocked scenarios run there instead, each in a
//! scratch database of its own (created beside the one the address names,
//! dropped afterwards), the store's beside raw `SKIP LOCKED` transactions on
//! the same server. The scale scenario alone builds its large database
//! in-process through the store API plus fixture SQL, because a million jobs
//! through the CLI would take minutes; it then times the real commands.

#![deny(unsafe_code)]

mod blocked;
mod enqueue;
mod footprint;
mod latency;
mod pg_store;
pub mod procfs;
pub mod report;
pub mod sandbox;
mod scale;
pub mod stats;
mod store;
mod throughput;
mod web;

use queuectl::config::Durability;
use queuectl::error::{Error, Result};
use queuectl::store::postgres::{PgTarget, ScratchDatabase, server_settings};
use report::{Failure, Machine, Report, Row};
use sandbox::Sandbox;
use std::path::PathBuf;
use std::time::Instant;

/// The scenarios, in the order they run and are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// N jobs of `true` through W workers of K slots vs spawning `sh -c true`
    /// W·K-wide, at total concurrency 1, 2, 4 and 8.
    Throughput,
    /// Claim + complete cycles with no executor vs raw SQLite transactions.
    Store,
    /// One `queuectl enqueue` process vs one `/bin/true` process.
    Enqueue,
    /// 100,000 jobs through `queuectl enqueue -`.
    Batch,
    /// Enqueue to job start on an idle worker.
    Latency,
    /// `status`, `list` and a claim on a 1,000,000-job database vs 1,000.
    Scale,
    /// CPU and memory of idle workers (1 and 8 slots) and a busy one.
    Footprint,
    /// Claims beside 0, 10,000 and 100,000 blocked jobs; chains, fan-ins.
    Blocked,
    /// The dashboard's store calls on 1,000,000 jobs vs 1,000; the hot path
    /// with and without its counters.
    Web,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Throughput,
        Scenario::Store,
        Scenario::Enqueue,
        Scenario::Batch,
        Scenario::Latency,
        Scenario::Scale,
        Scenario::Footprint,
        Scenario::Blocked,
        Scenario::Web,
    ];

    /// What runs against a PostgreSQL server; the rest measure SQLite.
    pub const ON_POSTGRES: [Scenario; 4] = [
        Scenario::Throughput,
        Scenario::Store,
        Scenario::Latency,
        Scenario::Blocked,
    ];

    pub const NAMES: [&'static str; 9] = [
        "throughput",
        "store",
        "enqueue",
        "batch",
        "latency",
        "scale",
        "footprint",
        "blocked",
        "web",
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

/// What to run and how big.
#[derive(Clone, Debug)]
pub struct Options {
    /// Small sizes so the whole suite takes well under a minute (for CI).
    pub quick: bool,
    /// Which scenarios; empty means all.
    pub scenarios: Vec<Scenario>,
    /// Jobs per throughput and store run, instead of the mode's default.
    pub jobs: Option<usize>,
    pub durability: Durability,
    /// Where the throwaway directory is created [default: the temp dir].
    pub dir: Option<PathBuf>,
    /// The queuectl binary to benchmark (normally the running one).
    pub exe: PathBuf,
    /// A PostgreSQL server to measure instead of SQLite (scratch databases
    /// are made beside the database this names, which is left alone).
    pub postgres: Option<PgTarget>,
}

/// What every scenario gets: the sandbox, the sizes, a progress line.
pub struct Bench<'a> {
    pub sandbox: &'a Sandbox,
    pub quick: bool,
    pub jobs: Option<usize>,
    pub server: Option<&'a PgTarget>,
    progress: &'a dyn Fn(&str),
}

impl Bench<'_> {
    /// Full-mode size or quick-mode size.
    pub fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    pub fn progress(&self, text: &str) {
        (self.progress)(text);
    }

    /// A fresh queue named `name`: in the sandbox, or in a scratch database
    /// on the PostgreSQL server being measured.
    pub fn queue(&self, name: &str) -> Result<sandbox::Queue> {
        match self.server {
            None => self.sandbox.queue(name),
            Some(server) => self
                .sandbox
                .queue_in(name, ScratchDatabase::create(server, name)?),
        }
    }
}

/// Runs the chosen scenarios and collects their rows. A scenario that breaks
/// is recorded as a failure and the others still run.
pub fn run(options: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    let started = Instant::now();
    let date = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now());
    let mut chosen = match (&options.postgres, options.scenarios.is_empty()) {
        (None, true) => Scenario::ALL.to_vec(),
        (Some(_), true) => Scenario::ON_POSTGRES.to_vec(),
        (_, false) => options.scenarios.clone(),
    };
    chosen.sort();
    chosen.dedup();
    let server = match &options.postgres {
        Some(server) => {
            if let Some(other) = chosen.iter().find(|s| !Scenario::ON_POSTGRES.contains(s)) {
                return Err(Error::Invalid(format!(
                    "scenario '{}' measures SQLite only; with a PostgreSQL --db: throughput, store, latency, blocked",
                    other.name()
                )));
            }
            // Fails early, and clearly, where no scratch database can be made.
            drop(ScratchDatabase::create(server, "check")?);
            Some(server_settings(server)?)
        }
        None => None,
    };
    let parent = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let sandbox = Sandbox::create(&parent, options.exe.clone(), options.durability)?;
    let machine = Machine::detect(sandbox.root());
    let bench = Bench {
        sandbox: &sandbox,
        quick: options.quick,
        jobs: options.jobs,
        server: options.postgres.as_ref(),
        progress,
    };

    let mut results: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    for scenario in chosen {
        bench.progress(&format!("{}...", scenario.name()));
        let outcome = match scenario {
            Scenario::Throughput => throughput::run(&bench),
            Scenario::Store => match bench.server {
                Some(server) => pg_store::run(&bench, server),
                None => store::run(&bench),
            },
            Scenario::Enqueue => enqueue::single(&bench),
            Scenario::Batch => enqueue::batch(&bench),
            Scenario::Latency => latency::run(&bench),
            Scenario::Scale => scale::run(&bench),
            Scenario::Footprint => footprint::run(&bench),
            Scenario::Blocked => blocked::run(&bench),
            Scenario::Web => web::run(&bench),
        };
        match outcome {
            Ok(rows) => results.extend(rows),
            Err(e) => {
                bench.progress(&format!("{} failed: {e}", scenario.name()));
                failures.push(Failure {
                    scenario: scenario.name(),
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(Report {
        queuectl_version: queuectl::VERSION,
        date: date.to_string(),
        machine,
        mode: if options.quick { "quick" } else { "full" },
        backend: if server.is_some() {
            "postgresql"
        } else {
            "sqlite"
        },
        server,
        durability: options.durability.as_str(),
        results,
        failures,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A claim as the benchmark's in-process workers make it: output to files,
/// on this host, no cgroups.
fn claim_request(worker: &str, lease: std::time::Duration) -> queuectl::store::ClaimRequest {
    queuectl::store::ClaimRequest {
        worker: worker.to_owned(),
        lease,
        output: queuectl::output::Destination::File,
        host: "localhost".into(),
        cgroups: None,
        queues: None,
    }
}

/// A measurement that came out empty (no samples): the benchmark is broken.
fn no_samples(what: &str) -> Error {
    Error::Supervisor(format!("no samples for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() {
        for scenario in Scenario::ALL {
            assert_eq!(Scenario::parse(scenario.name()), Some(scenario));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }
}
