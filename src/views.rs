//! The JSON shapes shared by the CLI's `--json` and the web's `/api/*`: one
//! builder per shape, so the two never disagree. Builders take what the
//! store (and, for the CLI, the supervisor or systemd) returned; they read
//! nothing themselves.

use crate::domain::JobState;
use crate::domain::schedule::Driver;
use crate::store::schedules::ScheduleRow;
use crate::store::{Attempt, Dependencies, Job, QueueRow, WorkerRow};
use crate::supervisor::Instance;
use crate::supervisor::process::process_alive;
use crate::systemd::timers::TimerState;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `show --json`, `/api/jobs/{id}`: the job, its dependencies both ways and
/// every attempt.
pub fn job_detail(job: &Job, attempts: &[Attempt], deps: &Dependencies) -> Value {
    let mut value = serde_json::to_value(job).expect("jobs serialize");
    value["after"] = serde_json::to_value(&deps.after).expect("jobs serialize");
    value["dependents"] = serde_json::to_value(&deps.dependents).expect("jobs serialize");
    value["attempt_history"] = serde_json::to_value(attempts).expect("attempts serialize");
    value
}

/// `queue list --json`, `/api/queues`.
pub fn queue_list(queues: &[QueueRow]) -> Value {
    json!({ "queues": queues })
}

/// A worker as `status` shows it: the queue's registration, joined with
/// this host's supervisor where it knows the worker.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerView {
    pub name: String,
    /// The host it runs on (a PostgreSQL queue's workers run on many).
    pub host: String,
    pub pid: Option<u32>,
    /// Supervisor's view: a unit's "active/running", "failed/failed", ...; a
    /// kept process's "running" or "stopped" (absent for a worker started
    /// by hand, or on another host).
    pub unit_state: Option<String>,
    /// The systemd unit it runs as, on whichever host (none for processes).
    pub unit: Option<String>,
    /// The worker's own status text.
    pub status: Option<String>,
    /// How many jobs it runs at once (absent for an instance not yet registered).
    pub slots: Option<u32>,
    /// The jobs it runs now, one per busy slot.
    pub jobs: Vec<String>,
    /// The first of `jobs` (kept for scripts written before slots).
    pub job_id: Option<String>,
    /// When it registered (absent for an instance not yet registered).
    pub started_at: Option<Timestamp>,
    pub heartbeat_at: Option<Timestamp>,
    /// Whether its process is alive; `None` when it runs on another host.
    pub alive: Option<bool>,
    /// Seconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_seconds: Option<i64>,
    /// Whether it still works: the one judgement `status`, `/api/workers`
    /// and the dashboard's pages show.
    pub liveness: Liveness,
}

/// Whether a worker still works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// Its process runs (or runs elsewhere) and it beats.
    Live,
    /// No heartbeat for longer than `silent_after` (hung, or gone on another
    /// host, which cannot be asked).
    Silent,
    /// Its process on this host is gone: it died without unregistering.
    Dead,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Silent => "silent",
            Liveness::Dead => "dead",
        }
    }

    /// A process's `alive` (none: not asked) and its heartbeat's age.
    fn judge(
        alive: Option<bool>,
        age: Option<SignedDuration>,
        silent_after: SignedDuration,
    ) -> Self {
        if alive == Some(false) {
            Liveness::Dead
        } else if age.is_some_and(|age| age > silent_after) {
            Liveness::Silent
        } else {
            Liveness::Live
        }
    }
}

/// Every registered worker, joined with `instances` (this host's supervised
/// ones, under the names their workers register), then the instances no
/// registered worker stands for (not started yet, failed, or a second keeper
/// of one name), so every live one is seen. `host` is this host's name,
/// `now` the database's clock (which wrote the heartbeats); a worker is
/// silent after no heartbeat for `silent_after`.
pub fn worker_views(
    registered: &[WorkerRow],
    instances: &[Instance],
    host: &str,
    now: Timestamp,
    silent_after: SignedDuration,
) -> Vec<WorkerView> {
    let mut workers: Vec<WorkerView> = registered
        .iter()
        .map(|w| {
            let instance = instances
                .iter()
                .find(|i| i.name == w.name && w.host == host);
            let alive = (w.host == host).then(|| process_alive(w.pid));
            let age = now.duration_since(w.heartbeat_at);
            WorkerView {
                name: w.name.clone(),
                host: w.host.clone(),
                pid: Some(w.pid),
                unit_state: instance.map(|i| i.state.clone()),
                unit: w
                    .unit
                    .clone()
                    .or_else(|| instance.and_then(|i| i.unit.clone())),
                status: instance
                    .and_then(|i| i.status.clone())
                    .or_else(|| Some(w.status.clone())),
                slots: Some(w.slots),
                jobs: w.jobs.clone(),
                job_id: w.jobs.first().cloned(),
                started_at: Some(w.started_at),
                heartbeat_at: Some(w.heartbeat_at),
                alive,
                heartbeat_age_seconds: Some(age.as_secs()),
                liveness: Liveness::judge(alive, Some(age), silent_after),
            }
        })
        .collect();
    let mut represented: Vec<String> = workers.iter().map(|w| w.name.clone()).collect();
    for instance in instances {
        if let Some(at) = represented.iter().position(|name| *name == instance.name) {
            represented.swap_remove(at);
        } else {
            let alive = instance.pid.map(process_alive);
            workers.push(WorkerView {
                name: instance.name.clone(),
                host: host.to_owned(),
                pid: instance.pid,
                unit_state: Some(instance.state.clone()),
                unit: instance.unit.clone(),
                status: instance.status.clone(),
                slots: None,
                jobs: vec![],
                job_id: None,
                started_at: None,
                heartbeat_at: None,
                alive,
                heartbeat_age_seconds: None,
                liveness: Liveness::judge(alive, None, silent_after),
            });
        }
    }
    workers
}

/// `status --json`, `/api/status`: where the queue is, whether it answered,
/// who supervises this host's workers, the jobs per state and the workers.
pub fn status(
    db: &str,
    reachable: bool,
    supervisor: Option<&str>,
    counts: &BTreeMap<JobState, u64>,
    workers: &[WorkerView],
) -> Value {
    let counts: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(state, n)| (state.to_string(), (*n).into()))
        .collect();
    json!({
        "db": db,
        "reachable": reachable,
        "supervisor": supervisor,
        "counts": counts,
        "workers": workers,
    })
}

/// Where a schedule's next elapse comes from.
pub enum NextElapse {
    At(Option<Timestamp>),
    /// Its timer is another host's.
    OnHost(String),
    /// A systemd schedule of this host whose timer the manager does not know.
    NoTimer,
    /// The manager could not be asked.
    Unknown,
}

/// A schedule's next elapse: the queue's column for the workers' driver;
/// for a systemd timer of this host (`here`), what its manager said
/// (`timers`: `None` when it could not be, or was not, asked).
pub fn next_elapse(
    row: &ScheduleRow,
    here: &str,
    timers: Option<&BTreeMap<String, TimerState>>,
) -> NextElapse {
    match row.driver {
        Driver::Workers => NextElapse::At(row.next_elapse_at),
        Driver::Systemd if row.host.as_deref().is_some_and(|h| h != here) => {
            NextElapse::OnHost(row.host.clone().unwrap_or_default())
        }
        Driver::Systemd => match timers.map(|t| t.get(&row.name)) {
            Some(Some(TimerState { next_elapse, .. })) => NextElapse::At(*next_elapse),
            Some(None) => NextElapse::NoTimer,
            None => NextElapse::Unknown,
        },
    }
}

/// `schedule list --json`, `/api/schedules`: each row with its next elapse
/// (as [`next_elapse`] finds it) and, where its timer was read, its last
/// trigger.
pub fn schedule_list(
    rows: &[ScheduleRow],
    here: &str,
    timers: Option<&BTreeMap<String, TimerState>>,
) -> Value {
    let items: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut item = serde_json::to_value(row).expect("a schedule serializes");
            let (next, on_host) = match next_elapse(row, here, timers) {
                NextElapse::At(at) => (at, None),
                NextElapse::OnHost(host) => (None, Some(host)),
                NextElapse::NoTimer | NextElapse::Unknown => (None, None),
            };
            item["next_elapse"] = serde_json::to_value(next).expect("a time serializes");
            item["timer_on_host"] = on_host.into();
            if let Some(state) = timers.and_then(|t| t.get(&row.name)) {
                item["last_trigger"] =
                    serde_json::to_value(state.last_trigger).expect("a time serializes");
            }
            item
        })
        .collect();
    json!({ "schedules": items })
}
