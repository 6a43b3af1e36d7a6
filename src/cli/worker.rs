use super::Context;
use super::args::WorkerCommand;
use super::format::print_json;
use queuectl::error::{Error, Result};
use queuectl::supervisor::Supervisor;
use queuectl::supervisor::process::{self, Invocation, ProcessSupervisor};
use queuectl::worker::{Worker, default_name};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(ctx: &Context, command: WorkerCommand) -> Result<()> {
    match command {
        WorkerCommand::Run { name } => {
            let name = name.unwrap_or_else(default_name);
            Worker::start(name, ctx.config.clone(), ctx.state.clone())?.run()
        }
        WorkerCommand::Start { count, timeout } => {
            let supervisor = supervisor(ctx, None)?;
            let report = supervisor.scale(count, timeout.map(Duration::from_secs))?;
            if ctx.json {
                return print_json(&report);
            }
            let list = |names: &[String]| names.join(", ");
            if !report.started.is_empty() {
                println!(
                    "started worker(s) {} ({})",
                    list(&report.started),
                    supervisor.describe()
                );
            }
            if !report.already_running.is_empty() {
                println!("already running: {}", list(&report.already_running));
            }
            if !report.stopped.is_empty() {
                println!("stopped worker(s) {}", list(&report.stopped));
            }
            Ok(())
        }
        WorkerCommand::Stop { timeout } => {
            let supervisor = supervisor(ctx, None)?;
            let stopped = supervisor.stop_all(timeout.map(Duration::from_secs))?;
            if ctx.json {
                return print_json(&serde_json::json!({ "stopped": stopped }));
            }
            if stopped.is_empty() {
                println!("no workers were running");
            } else {
                println!("stopped worker(s) {}", stopped.join(", "));
            }
            Ok(())
        }
        WorkerCommand::Supervise { instance } => {
            process::keep(&invocation(ctx)?, &ctx.state, instance)
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|e| Error::io(format!("cannot resolve {}", path.display()), e))
}

/// How background workers re-run this queuectl with the same settings.
fn invocation(ctx: &Context) -> Result<Invocation> {
    Ok(Invocation {
        exe: std::env::current_exe()
            .map_err(|e| Error::io("cannot find the queuectl binary", e))?,
        config: absolute(&ctx.config_path)?,
        db: absolute(&ctx.state.db)?,
    })
}

/// The supervisor backend for `worker start/stop` and `status`.
pub fn supervisor(ctx: &Context, _scope: Option<()>) -> Result<Box<dyn Supervisor>> {
    Ok(Box::new(ProcessSupervisor {
        state: queuectl::paths::StateDir::for_db(&absolute(&ctx.state.db)?),
        invocation: invocation(ctx)?,
    }))
}
