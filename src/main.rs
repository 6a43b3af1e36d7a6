//! The `queuectl` binary: parse, set up logging, dispatch, and map errors to
//! documented exit codes.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command, WorkerCommand};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let long_running = matches!(
        cli.command,
        Command::Worker(WorkerCommand::Run { .. } | WorkerCommand::Supervise { .. })
    );
    if !long_running {
        // `queuectl list | head` should end quietly, not panic on a closed pipe.
        // SAFETY: setting a signal disposition before any threads exist.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    queuectl::logging::init(long_running);
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queuectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
