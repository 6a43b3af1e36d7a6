//! `queuectl-bench` (also run as `queuectl bench`): runs the benchmark suite
//! in a throwaway queue and prints its table (or JSON). It needs no config or
//! database of the user's; a PostgreSQL `--db` names the server to measure
//! (in scratch databases). Exit codes as queuectl's: 0 every scenario ran,
//! 1 one could not, 2 bad usage.

use clap::Parser;
use queuectl::config::Durability;
use queuectl::error::{Error, IoContext, Result};
use queuectl::store::Database;
use queuectl_bench::{Options, Scenario};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Examples:
  queuectl-bench                          # every scenario, full size (1-2 minutes)
  queuectl-bench --quick                  # small sizes, well under a minute
  queuectl-bench --scenario latency --scenario footprint
  queuectl-bench --json > bench.json
  queuectl-bench --json-file bench.json   # table on stdout, JSON in the file
  queuectl-bench --dir /var/lib/queuectl  # measure on the disk the real queue uses
  queuectl-bench --db postgres://bench@db1/postgres   # a PostgreSQL server instead
  queuectl bench --quick                  # the same, through queuectl

Scenarios: throughput, store, enqueue, batch, latency, scale, footprint, blocked, web. Each figure is
shown beside a baseline measured in the same run (e.g. spawning `sh -c true`, raw SQLite
transactions, `/bin/true`), as a ratio, with the target it should meet. The benchmark
never touches your queue: it creates its own under --dir and removes it at the end.
Exits 0 when every scenario ran, whether or not targets were met; 1 when one could not
run; 2 on bad usage.

With --db postgres://… (or conninfo) the throughput, store, latency and blocked scenarios run on
that PostgreSQL server, beside raw `SELECT … FOR UPDATE SKIP LOCKED` claim-and-finish
transactions on the same server (1 and 4 connections; store batches of 8 against single jobs).
Each scenario gets a scratch database (queuectl_bench_<pid>_…) created beside the one
the address names, which is never changed, and drops it afterwards: the role needs
CREATEDB. Figures depend on the server's synchronous_commit and fsync, which the report
shows.";

/// Measure queuectl on this machine against raw baselines (in a throwaway queue)
#[derive(Debug, Parser)]
#[command(name = "queuectl-bench", version, after_help = AFTER_HELP)]
struct Args {
    /// Small sizes so the whole suite runs in well under a minute (what CI runs)
    #[arg(long)]
    quick: bool,
    /// Run only this scenario; repeat for several [default: all]
    #[arg(long = "scenario", value_name = "NAME", value_parser = Scenario::NAMES)]
    scenarios: Vec<String>,
    /// Jobs per throughput and store run [default: 2000 and 3000, quick: 300 and 500]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    jobs: Option<u32>,
    /// Durability of the benchmark's queues and baselines (the store scenario measures both)
    #[arg(long, value_name = "LEVEL", default_value = "full", value_parser = ["full", "normal"])]
    durability: String,
    /// Where to create the throwaway directory [default: $TMPDIR or /tmp]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A PostgreSQL server to measure instead of SQLite: a URL or conninfo
    /// (scratch databases are made beside the database it names)
    #[arg(long, value_name = "URL")]
    db: Option<PathBuf>,
    /// Print the report as JSON instead of the table
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (the table still goes to stdout)
    #[arg(long, value_name = "PATH")]
    json_file: Option<PathBuf>,
    /// The queuectl binary to measure [default: the one beside this program,
    /// else queuectl on $PATH]
    #[arg(long, value_name = "PATH")]
    queuectl: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // `queuectl-bench | head`: the reader left, nothing to report.
        Err(Error::Io { ref source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("queuectl-bench: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let report = queuectl_bench::run(&options(args)?, &|line| eprintln!("bench: {line}"))?;
    let json = || {
        serde_json::to_string_pretty(&report)
            .map(|text| text + "\n")
            .map_err(|e| Error::io("cannot encode the report", e.into()))
    };
    if let Some(path) = &args.json_file {
        std::fs::write(path, json()?).context(|| format!("cannot write {}", path.display()))?;
    }
    let text = if args.json { json()? } else { report.table() };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context(|| "cannot write output".into())?;
    match report.failures.len() {
        0 => Ok(()),
        n => Err(Error::Supervisor(format!(
            "{n} benchmark scenario(s) could not run (see above)"
        ))),
    }
}

fn options(args: &Args) -> Result<Options> {
    let postgres = match args.db.as_ref().map(|db| Database::from_os(db.as_os_str())) {
        None => None,
        Some(Ok(Database::Postgres(target))) => Some(target),
        Some(Ok(Database::Sqlite(_))) => {
            return Err(Error::Invalid(
                "--db takes a PostgreSQL server's address; the SQLite scenarios run in \
                 a throwaway queue under --dir"
                    .into(),
            ));
        }
        Some(Err(e)) => return Err(e),
    };
    let exe = match &args.queuectl {
        Some(path) => path.clone(),
        None => queuectl::paths::companion_program("queuectl").ok_or_else(|| {
            Error::io(
                "no queuectl binary beside queuectl-bench or on $PATH (name one with --queuectl)",
                std::io::ErrorKind::NotFound.into(),
            )
        })?,
    };
    Ok(Options {
        quick: args.quick,
        scenarios: args
            .scenarios
            .iter()
            .map(|name| {
                Scenario::parse(name)
                    .ok_or_else(|| Error::Invalid(format!("unknown scenario '{name}'")))
            })
            .collect::<Result<_>>()?,
        jobs: args.jobs.map(|n| n as usize),
        durability: match args.durability.as_str() {
            "normal" => Durability::Normal,
            _ => Durability::Full,
        },
        dir: args.dir.clone(),
        exe,
        postgres,
    })
}
