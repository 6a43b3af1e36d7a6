use super::Context;
use super::args::UnitsCommand;
use super::format::print_json;
use queuectl::error::{Error, Result};
use queuectl::supervisor::systemd::units_managed;
use queuectl::systemd::systemctl::{Scope, Systemctl};
use queuectl::systemd::units;

pub fn run(ctx: &Context, command: UnitsCommand) -> Result<()> {
    let invocation = super::worker::invocation(ctx)?;
    match command {
        UnitsCommand::Print => {
            let files = units::render(&invocation.exe);
            if ctx.json {
                let map: serde_json::Map<_, _> = files
                    .into_iter()
                    .map(|(n, t)| (n.to_owned(), t.into()))
                    .collect();
                return print_json(&map);
            }
            for (name, text) in files {
                println!("# {name}\n{text}");
            }
            Ok(())
        }
        UnitsCommand::Install { scope } => {
            if units_managed() {
                return Err(Error::Invalid(
                    "unit files are managed by the system here (QUEUECTL_UNITS_MANAGED=1); not writing any".into(),
                ));
            }
            let scope = scope.scope();
            let dir = scope.unit_dir();
            let files = units::install_set(
                &invocation.exe,
                Some((&invocation.config, &invocation.db)),
                units::Manager::of(scope),
            )?;
            let changed = units::write_if_changed(&dir, &files)?;
            let reloaded = changed && scope.manager_running();
            if reloaded {
                Systemctl { scope }.run(&["daemon-reload"])?;
            }
            if ctx.json {
                return print_json(&serde_json::json!({
                    "dir": dir, "files": files.iter().map(|(n, _)| n).collect::<Vec<_>>(), "changed": changed, "reloaded": reloaded,
                }));
            }
            for (name, _) in &files {
                println!("{}", dir.join(name).display());
            }
            let flag = if scope == Scope::User { " --user" } else { "" };
            println!(
                "start workers with: systemctl{flag} start queuectl-worker@1 (or: queuectl worker start --count N)"
            );
            println!(
                "serve the dashboard on demand with: systemctl{flag} enable --now queuectl-web.socket"
            );
            Ok(())
        }
    }
}
