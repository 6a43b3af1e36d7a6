use super::Context;
use super::args::ScopeArgs;
use super::format::{print_json, relative, running_for, table};
use jiff::Timestamp;
use queuectl::domain::JobState;
use queuectl::error::Result;
use queuectl::store::OpenMode;
use queuectl::store::WorkerRow;
use queuectl::supervisor::Instance;
use queuectl::supervisor::process::process_alive;
use queuectl::worker::registered_name;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Serialize)]
struct WorkerView {
    name: String,
    /// The host it runs on (a PostgreSQL queue's workers run on many).
    host: String,
    pid: Option<u32>,
    /// Supervisor's view: a unit's "active/running", "failed/failed", ...; a
    /// kept process's "running" or "stopped" (absent for a worker started
    /// by hand, or on another host).
    unit_state: Option<String>,
    /// The systemd unit it runs as, on whichever host (none for processes).
    unit: Option<String>,
    /// The worker's own status text.
    status: Option<String>,
    /// How many jobs it runs at once (absent for an instance not yet registered).
    slots: Option<u32>,
    /// The jobs it runs now, one per busy slot.
    jobs: Vec<String>,
    /// The first of `jobs` (kept for scripts written before slots).
    job_id: Option<String>,
    heartbeat_at: Option<jiff::Timestamp>,
    /// Whether its process is alive; `None` when it runs on another host.
    alive: Option<bool>,
}

/// What the queue says, or why it cannot be asked.
struct QueueView {
    counts: BTreeMap<JobState, u64>,
    workers: Vec<WorkerRow>,
    /// When each worker's first job's attempt started (the one shown).
    running_since: HashMap<String, Timestamp>,
    /// The database's clock, which wrote heartbeats and start times.
    now: Timestamp,
}

fn read_queue(ctx: &Context) -> Result<QueueView> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let workers = store.workers()?;
    let first_jobs = workers.iter().filter_map(|w| w.jobs.first());
    let running_since = super::list::attempts_started(&mut store, first_jobs.map(String::as_str))?;
    Ok(QueueView {
        counts: store.counts()?,
        workers,
        running_since,
        now: store.now()?,
    })
}

/// Prints the queue's job counts and workers. When the database cannot be
/// reached, still shows this host's workers (their status text says what
/// they do about it), then fails.
pub fn run(ctx: &Context, scope: ScopeArgs) -> Result<()> {
    let (queue, unreachable) = match read_queue(ctx) {
        Ok(queue) => (queue, None),
        Err(e) if e.is_unreachable() => {
            let nothing = QueueView {
                counts: BTreeMap::new(),
                workers: vec![],
                running_since: HashMap::new(),
                now: Timestamp::now(),
            };
            (nothing, Some(e))
        }
        Err(e) => return Err(e),
    };
    let counts = &queue.counts;
    let registered = &queue.workers;
    // A manager named by --user/--system that is not running fails the
    // command once the rest is shown; otherwise status shows what it can.
    let (supervisor, instances, missing_manager) = match super::worker::supervisor(ctx, scope) {
        Ok(s) => {
            let instances = s.instances().unwrap_or_default();
            (Some(s.describe()), instances, None)
        }
        Err(e) => (None, vec![], scope.explicit().then_some(e)),
    };
    let host = queuectl::worker::hostname();
    // This host's supervised instances, under the names their workers register.
    let instances: Vec<Instance> = instances
        .into_iter()
        .map(|i| Instance {
            name: registered_name(&ctx.state.db, &host, &i.name),
            ..i
        })
        .collect();
    let mut workers: Vec<WorkerView> = registered
        .iter()
        .map(|w| {
            let instance: Option<&Instance> = instances
                .iter()
                .find(|i| i.name == w.name && w.host == host);
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
                heartbeat_at: Some(w.heartbeat_at),
                alive: (w.host == host).then(|| process_alive(w.pid)),
            }
        })
        .collect();
    // Instances no registered worker stands for (not started yet, failed, or
    // a second keeper of one name) are shown too: every live one is seen.
    let mut represented: Vec<String> = workers.iter().map(|w| w.name.clone()).collect();
    for instance in &instances {
        if let Some(at) = represented.iter().position(|name| *name == instance.name) {
            represented.swap_remove(at);
        } else {
            workers.push(WorkerView {
                name: instance.name.clone(),
                host: host.clone(),
                pid: instance.pid,
                unit_state: Some(instance.state.clone()),
                unit: instance.unit.clone(),
                status: instance.status.clone(),
                slots: None,
                jobs: vec![],
                job_id: None,
                heartbeat_at: None,
                alive: instance.pid.map(process_alive),
            });
        }
    }
    if ctx.json {
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(state, n)| (state.to_string(), (*n).into()))
            .collect();
        print_json(&serde_json::json!({
            "db": ctx.state.db,
            "reachable": unreachable.is_none(),
            "supervisor": supervisor,
            "counts": counts,
            "workers": workers,
        }))?;
        return unreachable.or(missing_manager).map_or(Ok(()), Err);
    }
    let p = &ctx.paint;
    println!("{} {}", p.bold("queue:"), ctx.state.db);
    if unreachable.is_some() {
        println!(
            "{} unreachable (this host's workers below; see the error)",
            p.bold("jobs: ")
        );
        print_workers(ctx, &workers, supervisor.as_deref(), &queue);
        return unreachable.or(missing_manager).map_or(Ok(()), Err);
    }
    let line: Vec<String> = JobState::ALL
        .iter()
        .map(|state| {
            format!(
                "{} {}",
                p.state(*state, 0),
                counts.get(state).copied().unwrap_or(0)
            )
        })
        .collect();
    println!("{} {}", p.bold("jobs: "), line.join("  "));
    print_workers(ctx, &workers, supervisor.as_deref(), &queue);
    missing_manager.map_or(Ok(()), Err)
}

fn print_workers(
    ctx: &Context,
    workers: &[WorkerView],
    supervisor: Option<&str>,
    queue: &QueueView,
) {
    let p = &ctx.paint;
    let header = match supervisor {
        Some(name) => format!("workers ({name}):"),
        None => "workers:".into(),
    };
    println!("{}", p.bold(&header));
    if workers.is_empty() {
        println!("  none running (start some with: queuectl worker start --count 2)");
        return;
    }
    let now = queue.now;
    let silent_after = jiff::SignedDuration::from_secs(2 * i64::from(ctx.config.lease_seconds));
    // Units by name where systemd runs them; a kept process by its state.
    let supervised = |w: &WorkerView| {
        let name = w.unit.as_deref().map(|u| u.trim_end_matches(".service"));
        match (name, w.unit_state.as_deref()) {
            (Some(name), Some(state)) => format!("{name} ({state})"),
            (Some(name), None) => name.to_owned(),
            (None, Some(state)) => state.to_owned(),
            (None, None) => "-".to_owned(),
        }
    };
    let by_unit = workers.iter().any(|w| w.unit.is_some());
    let rows: Vec<[String; 8]> = workers
        .iter()
        .map(|w| {
            let heartbeat = match w.heartbeat_at {
                Some(at) if now.duration_since(at) > silent_after => {
                    format!("{} (silent)", relative(at, now))
                }
                Some(at) => relative(at, now),
                None => "-".into(),
            };
            let slots = match w.slots {
                Some(total) => format!("{}/{total}", w.jobs.len()),
                None => "-".into(),
            };
            // The status text names every running job; this column the
            // first, with how long it has run.
            let job = match w.jobs.as_slice() {
                [] => "-".to_owned(),
                [first, rest @ ..] => {
                    let clock = queue
                        .running_since
                        .get(first)
                        .map(|since| format!(" ({})", running_for(*since, now)))
                        .unwrap_or_default();
                    let more = match rest.len() {
                        0 => String::new(),
                        n => format!(" +{n}"),
                    };
                    format!("{first}{clock}{more}")
                }
            };
            let status = status_word(w);
            [
                w.name.clone(),
                w.host.clone(),
                w.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                supervised(w),
                heartbeat,
                slots,
                job,
                status,
            ]
        })
        .collect();
    let (header, lines) = table(
        [
            "NAME",
            "HOST",
            "PID",
            if by_unit { "UNIT" } else { "PROCESS" },
            "HEARTBEAT",
            "SLOTS",
            "JOB",
            "STATUS",
        ],
        [false, false, true, false, false, true, false, false],
        &rows,
    );
    println!("  {header}");
    for line in lines {
        println!("  {line}");
    }
}

/// The STATUS column: what the worker says when that is news (stopping, the
/// database unreachable, died). Its routine text ("idle", "running 2/4: a
/// (attempt 1/4), ...") repeats the JOB column, from a row updated up to a
/// second later, so the column says "busy" or "idle" from the jobs instead,
/// and the two never disagree. `--json` keeps the worker's own text.
fn status_word(w: &WorkerView) -> String {
    if w.alive == Some(false) {
        return "not running (died without unregistering)".into();
    }
    match w.status.as_deref() {
        None => "-".into(),
        Some(text) if text == "idle" || text.starts_with("running ") => {
            if w.jobs.is_empty() { "idle" } else { "busy" }.into()
        }
        Some(text) => text.to_owned(),
    }
}
