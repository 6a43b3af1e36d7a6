//! `queuectl bench`: hands over to `queuectl-bench`, the benchmark suite,
//! which is a program of its own so that this binary (the one every worker
//! runs) does not carry it. It measures this queuectl binary.

use super::args::{BenchArgs, Cli};
use clap::CommandFactory;
use queuectl::error::{Error, Result};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

pub const PROGRAM: &str = "queuectl-bench";

/// Where queuectl looked for the benchmark, and how to get it.
const NOT_INSTALLED: &str = "queuectl-bench is not installed beside this queuectl or on $PATH \
     (it ships with queuectl; from a source tree: cargo build --release -p queuectl-bench)";

/// Replaces this process with `queuectl-bench ARGS…` (its exit code is
/// the command's); returns only when it cannot be started. Without it,
/// `--help` still answers, with queuectl's own text on `bench`.
pub fn run(args: &BenchArgs, db: Option<&Path>, json: bool) -> Result<()> {
    let Some(program) = queuectl::paths::companion_program(PROGRAM) else {
        if asks_for_help(&args.args) {
            return print_own_help();
        }
        return Err(Error::io(
            NOT_INSTALLED,
            std::io::ErrorKind::NotFound.into(),
        ));
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("cannot find the running queuectl binary", e))?;
    let mut command = Command::new(&program);
    command.arg("--queuectl").arg(exe);
    // queuectl's global flags, given before `bench`, mean the same there.
    if let Some(db) = db {
        command.arg("--db").arg(db);
    }
    if json {
        command.arg("--json");
    }
    let error = command.args(&args.args).exec();
    Err(Error::io(
        format!("cannot run {}", program.display()),
        error,
    ))
}

/// Whether the arguments ask for help (`--help` or `-h` before any `--`).
fn asks_for_help(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .take_while(|arg| arg.as_os_str() != OsStr::new("--"))
        .any(|arg| arg == "--help" || arg == "-h")
}

/// `queuectl bench`'s help from queuectl's own definitions, and the note
/// on getting queuectl-bench, whose help lists the options.
fn print_own_help() -> Result<()> {
    let mut root = Cli::command();
    root.build();
    let bench = root
        .find_subcommand_mut("bench")
        .expect("bench is one of queuectl's subcommands");
    let text = format!("{}\n{NOT_INSTALLED}\n", bench.render_help());
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("cannot write the help", e))
}
