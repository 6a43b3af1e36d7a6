//! `queuectl bench`: answers "will the queue keep up?" on the user's own
//! hardware. Each scenario measures queuectl and, in the same run on the
//! same machine, a baseline that shows what the hardware can do without the
//! queue (spawning `sh -c true`, raw SQLite write transactions, `/bin/true`,
//! ...), and reports the ratio against the target from the performance issue.
//! Ratios rather than absolute figures, because shared machines are noisy.
//!
//! Everything runs in a throwaway directory ([`sandbox`]) with real
//! `queuectl` processes (the running binary), so the user's queue is never
//! touched. The scale scenario alone builds its large database in-process
//! through the store API plus fixture SQL, because a million jobs through
//! the CLI would take minutes; it then times the real commands.

mod enqueue;
mod footprint;
mod latency;
pub mod procfs;
pub mod report;
pub mod sandbox;
mod scale;
pub mod stats;
mod store;
mod throughput;

use crate::config::Durability;
use crate::error::{Error, Result};
use report::{Failure, Machine, Report, Row};
use sandbox::Sandbox;
use std::path::PathBuf;
use std::time::Instant;

/// The scenarios, in the order they run and are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// N jobs of `true` through W workers vs spawning `sh -c true` W-wide.
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
    /// CPU and memory of idle and busy workers.
    Footprint,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Throughput,
        Scenario::Store,
        Scenario::Enqueue,
        Scenario::Batch,
        Scenario::Latency,
        Scenario::Scale,
        Scenario::Footprint,
    ];

    pub const NAMES: [&'static str; 7] = [
        "throughput",
        "store",
        "enqueue",
        "batch",
        "latency",
        "scale",
        "footprint",
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
}

/// What every scenario gets: the sandbox, the sizes, a progress line.
pub struct Bench<'a> {
    pub sandbox: &'a Sandbox,
    pub quick: bool,
    pub jobs: Option<usize>,
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
}

/// Runs the chosen scenarios and collects their rows. A scenario that breaks
/// is recorded as a failure and the others still run.
pub fn run(options: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    let started = Instant::now();
    let date = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now());
    let parent = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let sandbox = Sandbox::create(&parent, options.exe.clone(), options.durability)?;
    let machine = Machine::detect(sandbox.root());
    let bench = Bench {
        sandbox: &sandbox,
        quick: options.quick,
        jobs: options.jobs,
        progress,
    };
    let mut chosen = if options.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        options.scenarios.clone()
    };
    chosen.sort();
    chosen.dedup();

    let mut results: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    for scenario in chosen {
        bench.progress(&format!("{}...", scenario.name()));
        let outcome = match scenario {
            Scenario::Throughput => throughput::run(&bench),
            Scenario::Store => store::run(&bench),
            Scenario::Enqueue => enqueue::single(&bench),
            Scenario::Batch => enqueue::batch(&bench),
            Scenario::Latency => latency::run(&bench),
            Scenario::Scale => scale::run(&bench),
            Scenario::Footprint => footprint::run(&bench),
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
        queuectl_version: env!("CARGO_PKG_VERSION"),
        date: date.to_string(),
        machine,
        mode: if options.quick { "quick" } else { "full" },
        durability: options.durability.as_str(),
        results,
        failures,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
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
