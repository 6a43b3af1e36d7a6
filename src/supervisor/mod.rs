//! Supervisor backends behind `queuectl worker start/stop`: systemd template
//! instances where systemd runs, plain supervised processes elsewhere. Both
//! name instances 1..N, so scaling means "make instances 1..N run and stop
//! the rest", and each instance's worker registers under that name.

mod keeper;
pub mod process;
pub mod systemd;

use crate::error::Result;
use serde::Serialize;
use std::time::Duration;

/// One worker instance as its supervisor sees it.
#[derive(Clone, Debug, Serialize)]
pub struct Instance {
    pub name: String,
    pub pid: Option<u32>,
    /// A unit's "ActiveState/SubState" ("active/running", "failed/failed",
    /// ...); a kept process's "running" or "stopped".
    pub state: String,
    /// The systemd unit it runs as ("queuectl-worker@1.service"); `None`
    /// for a process.
    pub unit: Option<String>,
    /// The worker's own status text (sd_notify STATUS), where known.
    pub status: Option<String>,
}

pub trait Supervisor {
    /// A short name for messages: "process supervisor", "systemd (user)".
    fn describe(&self) -> String;
    /// Makes instances 1..=count run (waiting until each is ready) and stops
    /// any instance above count. Returns the instances started and stopped.
    fn scale(&self, count: u32, stop_timeout: Option<Duration>) -> Result<ScaleReport>;
    /// Stops every instance gracefully and waits for them.
    fn stop_all(&self, stop_timeout: Option<Duration>) -> Result<Vec<String>>;
    fn instances(&self) -> Result<Vec<Instance>>;
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScaleReport {
    pub started: Vec<String>,
    pub already_running: Vec<String>,
    /// Running instances restarted to serve other queues (`--queues`).
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
}

/// Before starting workers: open (or create) the queue as they will, so a
/// path that is no queue, or a database that cannot be reached, is reported
/// at once, with nothing made beside it, rather than by workers failing or
/// waiting in the background.
fn check_queue(db: &crate::store::Database) -> Result<()> {
    let durability = crate::config::Durability::Normal;
    crate::store::Store::open_as(db, durability, crate::store::OpenMode::Create).map(drop)
}
