//! `queuectl bench`: runs the benchmark suite in a throwaway queue and prints
//! its table (or JSON). Bench needs no config or database of the user's; a
//! PostgreSQL `--db` names the server to measure (in scratch databases).

use super::args::BenchArgs;
use super::format::print_json;
use queuectl::bench::{self, Options, Scenario};
use queuectl::config::Durability;
use queuectl::error::{Error, Result};
use queuectl::store::Database;
use std::path::Path;

pub fn run(args: &BenchArgs, db: Option<&Path>, json: bool) -> Result<()> {
    let postgres = match db.map(|db| Database::from_os(db.as_os_str())).transpose()? {
        None => None,
        Some(Database::Postgres(target)) => Some(target),
        Some(Database::Sqlite(_)) => {
            return Err(Error::Invalid(
                "bench --db takes a PostgreSQL server's address; the SQLite scenarios run in \
                 a throwaway queue under --dir"
                    .into(),
            ));
        }
    };
    let options = Options {
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
        exe: std::env::current_exe()
            .map_err(|e| Error::io("cannot find the queuectl binary", e))?,
        postgres,
    };
    let report = bench::run(&options, &|line| eprintln!("bench: {line}"))?;
    if let Some(path) = &args.json_file {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::io("cannot encode the report", e.into()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    }
    if json {
        print_json(&report)?;
    } else {
        print!("{}", report.table());
    }
    match report.failures.len() {
        0 => Ok(()),
        n => Err(Error::Supervisor(format!(
            "{n} benchmark scenario(s) could not run (see above)"
        ))),
    }
}
