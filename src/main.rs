//! The `queuectl` binary: parse, set up logging, dispatch, and map errors to
//! documented exit codes.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cli;

use clap::Parser;
use cli::args::{Cli, Command, WorkerCommand};
use std::process::ExitCode;

/// `queuectl list | head` should end quietly, not panic on a closed pipe:
/// the default SIGPIPE action (Rust ignores it). Changing a disposition has
/// no safe wrapper, hence this one allowance outside the unsafe rooms.
#[allow(unsafe_code)]
fn die_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler of ours, and no thread exists yet
    // that could be changing dispositions at the same time.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn main() -> ExitCode {
    cli::complete::answer_if_asked();
    let cli = Cli::parse();
    let long_running = matches!(
        cli.command,
        Command::Worker(WorkerCommand::Run { .. } | WorkerCommand::Supervise { .. })
            | Command::Web(_)
    );
    if !long_running {
        die_quietly_on_a_closed_pipe();
    }
    let identifier = match cli.command {
        Command::Web(_) => "queuectl-web",
        _ => "queuectl-worker",
    };
    queuectl::logging::init(long_running, identifier);
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queuectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
