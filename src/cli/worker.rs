use super::Context;
use super::args::{ScopeArgs, WorkerCommand};
use super::format::print_json;
use queuectl::config::SupervisorKind;
use queuectl::error::{Error, Result};
use queuectl::store::Database;
use queuectl::supervisor::Supervisor;
use queuectl::supervisor::process::{self, Invocation, ProcessSupervisor};
use queuectl::supervisor::systemd::{self, SystemdSupervisor};
use queuectl::systemd::systemctl::Systemctl;
use queuectl::worker::{Worker, default_name};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(ctx: &Context, command: WorkerCommand) -> Result<()> {
    match command {
        WorkerCommand::Run {
            name,
            drain,
            concurrency,
        } => {
            let name = name.unwrap_or_else(default_name);
            let mut config = ctx.config.clone();
            if let Some(k) = concurrency {
                config.concurrency = k;
            }
            Worker::start(name, config, ctx.state.clone())?.run(drain)
        }
        WorkerCommand::Start {
            scope,
            count,
            timeout,
        } => {
            let supervisor = supervisor(ctx, scope)?;
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
        WorkerCommand::Stop { scope, timeout } => {
            let supervisor = supervisor(ctx, scope)?;
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
            process::keep(&invocation(ctx)?, &ctx.state, instance, ctx.config.lease())
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|e| Error::io(format!("cannot resolve {}", path.display()), e))
}

/// How background workers re-run this queuectl with the same settings.
pub fn invocation(ctx: &Context) -> Result<Invocation> {
    Ok(Invocation {
        exe: std::env::current_exe()
            .map_err(|e| Error::io("cannot find the queuectl binary", e))?,
        config: absolute(&ctx.config_path)?,
        db: match &ctx.state.db {
            Database::Sqlite(path) => Database::Sqlite(absolute(path)?),
            shared => shared.clone(),
        },
    })
}

/// The supervisor backend for `worker start/stop` and `status`: systemd
/// where its manager runs (or when forced by config or flag), else processes.
pub fn supervisor(ctx: &Context, scope: ScopeArgs) -> Result<Box<dyn Supervisor>> {
    let scope = scope.scope();
    let use_systemd = match ctx.config.supervisor {
        SupervisorKind::Process => false,
        SupervisorKind::Systemd => true,
        SupervisorKind::Auto => scope.manager_running(),
    };
    let invocation = invocation(ctx)?;
    if use_systemd {
        if !scope.manager_running() {
            return Err(Error::Supervisor(format!(
                "no systemd {} manager is running here; set `supervisor = \"process\"` or \"auto\"",
                scope.as_str()
            )));
        }
        return Ok(Box::new(SystemdSupervisor {
            systemctl: Systemctl { scope },
            managed: systemd::units_managed(),
            binary: invocation.exe,
            config: invocation.config,
            db: invocation.db,
        }));
    }
    Ok(Box::new(ProcessSupervisor {
        state: queuectl::paths::StateDir::for_db(&invocation.db),
        invocation,
    }))
}
