//! The systemd supervisor: worker instances are `queuectl-worker@N.service`
//! units of the system or user manager. Starting waits for READY (the units
//! are `Type=notify`); stopping waits for the running job (the worker asks
//! for more time with EXTEND_TIMEOUT_USEC).

use super::{Instance, ScaleReport, Supervisor};
use crate::error::{Error, Result};
use crate::systemd::systemctl::Systemctl;
use crate::systemd::units;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub struct SystemdSupervisor {
    pub systemctl: Systemctl,
    /// Unit files belong to a package or to NixOS: never write them.
    pub managed: bool,
    pub binary: PathBuf,
    pub config: PathBuf,
    pub db: crate::store::Database,
    /// `worker start --queues`: each instance started gets a drop-in
    /// restricting it to these; `None` removes such drop-ins.
    pub queues: Option<Vec<crate::domain::QueueName>>,
}

const INSTANCE_PATTERN: &str = "queuectl-worker@*.service";

impl SystemdSupervisor {
    /// Makes sure the units exist, installing them into the scope's unit
    /// directory when no package provides them, plus a drop-in that points
    /// the workers at this CLI's config and database.
    pub fn ensure_units(&self) -> Result<()> {
        if self.managed {
            return Ok(());
        }
        let provided = self.systemctl.unit_file_exists(units::WORKER_TEMPLATE);
        let dir = self.systemctl.scope.unit_dir();
        let scope = self.systemctl.scope;
        let mut files = units::install_set(
            &self.binary,
            Some((&self.config, &self.db)),
            units::Manager::of(scope),
        )?;
        if provided && !dir.join(units::WORKER_TEMPLATE).exists() {
            // A package's units: add only our drop-in next to them.
            files.retain(|(name, _)| name.contains(".d/"));
        }
        if units::write_if_changed(&dir, &files)? {
            self.systemctl.run(&["daemon-reload"])?;
        }
        Ok(())
    }

    /// Writes (or, without `--queues`, removes) the queues drop-in of
    /// instances 1..=count; returns the instances whose drop-in changed.
    fn place_queue_drop_ins(&self, count: u32) -> Result<Vec<u32>> {
        if self.managed {
            if self.queues.is_some() {
                return Err(Error::Invalid(
                    "the unit files are managed by the system (QUEUECTL_UNITS_MANAGED=1): \
                     set the workers' queues there (NixOS: services.queuectl.workerQueues)"
                        .into(),
                ));
            }
            return Ok(Vec::new());
        }
        let dir = self.systemctl.scope.unit_dir();
        let mut changed = Vec::new();
        for n in 1..=count {
            let path = dir.join(units::queues_drop_in_path(n));
            let wanted = self.queues.as_deref().map(units::queues_drop_in);
            let now = std::fs::read_to_string(&path).ok();
            if now == wanted {
                continue;
            }
            match &wanted {
                Some(text) => {
                    units::write_if_changed(
                        &dir,
                        &[(units::queues_drop_in_path(n), text.clone())],
                    )?;
                }
                None => std::fs::remove_file(&path)
                    .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?,
            }
            changed.push(n);
        }
        if !changed.is_empty() {
            self.systemctl.run(&["daemon-reload"])?;
        }
        Ok(changed)
    }

    /// Loaded instances: (instance number, ActiveState).
    fn loaded(&self) -> Result<Vec<(u32, String)>> {
        let mut found: Vec<(u32, String)> = self
            .systemctl
            .show(INSTANCE_PATTERN, &["Id", "ActiveState"])?
            .into_iter()
            .filter_map(|unit| {
                let n = units::instance_number(unit.get("Id")?)?;
                Some((n, unit.get("ActiveState").cloned().unwrap_or_default()))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// `systemctl stop` on `instances`, killing them if `timeout` passes first.
    fn stop(&self, instances: &[u32], timeout: Option<Duration>) -> Result<()> {
        if instances.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = instances
            .iter()
            .map(|n| units::worker_instance(*n))
            .collect();
        let mut child: Child = self
            .systemctl
            .command()
            .arg("stop")
            .args(&names)
            .spawn()
            .map_err(|e| Error::io("cannot run systemctl", e))?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| Error::io("systemctl", e))? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(Error::Supervisor(format!(
                        "systemctl stop {} failed ({status})",
                        names.join(" ")
                    )))
                };
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                let mut args = vec!["kill", "--signal=SIGKILL"];
                args.extend(names.iter().map(String::as_str));
                let _ = self.systemctl.run(&args);
                let _ = child.wait();
                return Err(Error::Supervisor(format!(
                    "workers {} did not stop in time; killed them",
                    names.join(" ")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Supervisor for SystemdSupervisor {
    fn describe(&self) -> String {
        format!("systemd, {} scope", self.systemctl.scope.as_str())
    }

    fn scale(&self, count: u32, stop_timeout: Option<Duration>) -> Result<ScaleReport> {
        if count > 0 {
            super::check_queue(&self.db)?;
        }
        self.ensure_units()?;
        let moved = self.place_queue_drop_ins(count)?;
        let loaded = self.loaded()?;
        let running = |n: u32| {
            loaded
                .iter()
                .any(|(i, state)| *i == n && (state == "active" || state == "reloading"))
        };
        let mut report = ScaleReport::default();
        let (up, down): (Vec<u32>, Vec<u32>) = (1..=count).partition(|n| !running(*n));
        let (restart, kept): (Vec<u32>, Vec<u32>) =
            down.into_iter().partition(|n| moved.contains(n));
        report.already_running = kept.iter().map(u32::to_string).collect();
        if !restart.is_empty() {
            // They serve other queues now: a restart finishes their running
            // jobs first (as a stop does), then they serve the new ones.
            let names: Vec<String> = restart.iter().map(|n| units::worker_instance(*n)).collect();
            let mut args = vec!["restart"];
            args.extend(names.iter().map(String::as_str));
            self.systemctl.run(&args)?;
            report.restarted = restart.iter().map(u32::to_string).collect();
        }
        if !up.is_empty() {
            let names: Vec<String> = up.iter().map(|n| units::worker_instance(*n)).collect();
            let mut args = vec!["start"];
            args.extend(names.iter().map(String::as_str));
            // Blocks until each instance sent READY=1 (or failed).
            self.systemctl.run(&args)?;
            report.started = up.iter().map(u32::to_string).collect();
        }
        let surplus: Vec<u32> = loaded
            .iter()
            .filter(|(n, state)| *n > count && state != "inactive" && state != "failed")
            .map(|(n, _)| *n)
            .collect();
        self.stop(&surplus, stop_timeout)?;
        report.stopped = surplus.iter().map(u32::to_string).collect();
        Ok(report)
    }

    fn stop_all(&self, stop_timeout: Option<Duration>) -> Result<Vec<String>> {
        let running: Vec<u32> = self
            .loaded()?
            .into_iter()
            .filter(|(_, state)| state != "inactive" && state != "failed")
            .map(|(n, _)| n)
            .collect();
        self.stop(&running, stop_timeout)?;
        Ok(running.iter().map(u32::to_string).collect())
    }

    fn instances(&self) -> Result<Vec<Instance>> {
        let mut found: Vec<(u32, Instance)> = self
            .systemctl
            .show(
                INSTANCE_PATTERN,
                &["Id", "ActiveState", "SubState", "MainPID", "StatusText"],
            )?
            .into_iter()
            .filter_map(|unit| {
                let n = units::instance_number(unit.get("Id")?)?;
                let pid = unit
                    .get("MainPID")
                    .and_then(|p| p.parse::<u32>().ok())
                    .filter(|p| *p > 0);
                let state = format!(
                    "{}/{}",
                    unit.get("ActiveState").map(String::as_str).unwrap_or("?"),
                    unit.get("SubState").map(String::as_str).unwrap_or("?")
                );
                let status = unit.get("StatusText").filter(|s| !s.is_empty()).cloned();
                Some((
                    n,
                    Instance {
                        name: n.to_string(),
                        pid,
                        state,
                        status,
                        unit: unit.get("Id").cloned(),
                    },
                ))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        Ok(found.into_iter().map(|(_, i)| i).collect())
    }
}

/// Whether unit files are managed by the system (NixOS, a package) and must
/// not be written: `$QUEUECTL_UNITS_MANAGED=1`.
pub fn units_managed() -> bool {
    std::env::var("QUEUECTL_UNITS_MANAGED").is_ok_and(|v| v == "1")
}
