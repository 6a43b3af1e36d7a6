use super::Context;
use super::args::{ScopeArgs, WorkerCommand};
use super::format::print_json;
use queuectl::config::SupervisorKind;
use queuectl::domain::QueueName;
use queuectl::error::{Error, Result};
use queuectl::store::Database;
use queuectl::supervisor::Supervisor;
use queuectl::supervisor::process::{self, Invocation, ProcessSupervisor};
use queuectl::supervisor::systemd::{self, SystemdSupervisor};
use queuectl::systemd::systemctl::{Scope, Systemctl};
use queuectl::worker::{Worker, default_name};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(ctx: &Context, command: WorkerCommand) -> Result<()> {
    match command {
        WorkerCommand::Run {
            name,
            drain,
            concurrency,
            queues,
        } => {
            let name = name.unwrap_or_else(default_name);
            let mut config = ctx.config.clone();
            if let Some(k) = concurrency {
                config.concurrency = k;
            }
            if let Some(queues) = queues {
                config.worker_queues = Some(queues.0);
            } else if let Some(text) = std::env::var_os("QUEUECTL_QUEUES") {
                let text = text
                    .into_string()
                    .map_err(|_| Error::Invalid("$QUEUECTL_QUEUES: not valid UTF-8".into()))?;
                config.worker_queues =
                    queuectl::domain::queue::parse_queues_env(&text).map_err(Error::Invalid)?;
            }
            Worker::start(name, config, ctx.state.clone())?.run(drain)
        }
        WorkerCommand::Start {
            scope,
            count,
            timeout,
            queues,
        } => {
            let supervisor = supervisor_for(ctx, scope, queues.map(|q| q.0))?;
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
            if !report.restarted.is_empty() {
                println!(
                    "restarted worker(s) {} to serve other queues",
                    list(&report.restarted)
                );
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
        queues: None,
    })
}

/// The supervisor backend for `worker start/stop` and `status`: systemd
/// where its manager runs, else processes. `--user`/`--system` or the
/// config's `supervisor = "systemd"` ask for systemd: then a missing manager
/// is an error, never a quiet fall back to processes.
pub fn supervisor(ctx: &Context, scope_args: ScopeArgs) -> Result<Box<dyn Supervisor>> {
    supervisor_for(ctx, scope_args, None)
}

/// [`supervisor`], starting workers that serve `queues` only (when given).
fn supervisor_for(
    ctx: &Context,
    scope_args: ScopeArgs,
    queues: Option<Vec<QueueName>>,
) -> Result<Box<dyn Supervisor>> {
    let scope = scope_args.scope();
    let use_systemd = match ctx.config.supervisor {
        _ if scope_args.explicit() => true,
        SupervisorKind::Process => false,
        SupervisorKind::Systemd => true,
        SupervisorKind::Auto => scope.manager_running(),
    };
    let mut invocation = invocation(ctx)?;
    invocation.queues = queues.as_ref().map(|queues| {
        let names: Vec<&str> = queues.iter().map(QueueName::as_str).collect();
        names.join(",")
    });
    if use_systemd {
        if !scope.manager_running() {
            return Err(no_manager(scope, scope_args.explicit()));
        }
        return Ok(Box::new(SystemdSupervisor {
            systemctl: Systemctl { scope },
            managed: systemd::units_managed(),
            binary: invocation.exe,
            config: invocation.config,
            db: invocation.db,
            queues,
        }));
    }
    Ok(Box::new(ProcessSupervisor {
        state: queuectl::paths::StateDir::for_db(&invocation.db),
        invocation,
    }))
}

/// Why systemd cannot be used here, and what to do instead.
fn no_manager(scope: Scope, asked_by_flag: bool) -> Error {
    let missing = match scope {
        Scope::User if std::env::var_os("XDG_RUNTIME_DIR").is_none() => {
            "no systemd user manager is reachable ($XDG_RUNTIME_DIR is not set: \
             log in, or run `loginctl enable-linger`)"
        }
        Scope::User => {
            "no systemd user manager is reachable ($XDG_RUNTIME_DIR/systemd/private is missing or does not answer: \
             log in, or run `loginctl enable-linger`)"
        }
        Scope::System => {
            "no systemd system manager is reachable here (PID 1 is not systemd, or its bus does not answer)"
        }
    };
    let instead = if asked_by_flag {
        format!(
            "leave out --{} to run workers as supervised processes",
            scope.as_str()
        )
    } else {
        "set `supervisor = \"process\"` or \"auto\" in the config".to_owned()
    };
    Error::Supervisor(format!("{missing}; {instead}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_manager_says_what_to_do_instead() {
        let by_flag = no_manager(Scope::System, true).to_string();
        assert!(
            by_flag.contains("no systemd system manager is reachable here")
                && by_flag.ends_with("leave out --system to run workers as supervised processes"),
            "{by_flag}"
        );
        let by_config = no_manager(Scope::System, false).to_string();
        assert!(
            by_config.ends_with("set `supervisor = \"process\"` or \"auto\" in the config"),
            "{by_config}"
        );
        assert_eq!(no_manager(Scope::User, true).exit_code(), 1);
    }
}
