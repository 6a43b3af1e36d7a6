//! `queuectl bench`: hands over to `queuectl-bench`, the benchmark suite,
//! which is a program of its own so that this binary (the one every worker
//! runs) does not carry it. It measures this queuectl binary.

use super::args::BenchArgs;
use queuectl::error::{Error, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

pub const PROGRAM: &str = "queuectl-bench";

/// Replaces this process with `queuectl-bench ARGS…` (its exit code is
/// the command's); returns only when it cannot be started.
pub fn run(args: &BenchArgs, db: Option<&Path>, json: bool) -> Result<()> {
    let Some(program) = queuectl::paths::companion_program(PROGRAM) else {
        return Err(Error::io(
            format!(
                "{PROGRAM} is not installed beside this queuectl or on $PATH (it ships with \
                 queuectl; from a source tree: cargo build --release -p {PROGRAM})"
            ),
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
