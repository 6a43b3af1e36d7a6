use super::Context;
use super::args::ScopeArgs;
use super::format::{print_json, relative};
use queuectl::domain::JobState;
use queuectl::error::Result;
use queuectl::store::OpenMode;
use queuectl::supervisor::Instance;
use queuectl::supervisor::process::process_alive;
use serde::Serialize;

#[derive(Serialize)]
struct WorkerView {
    name: String,
    pid: Option<u32>,
    /// Supervisor's view: active, inactive, failed, ... (absent for a worker started by hand).
    unit_state: Option<String>,
    /// The worker's own status text.
    status: Option<String>,
    job_id: Option<String>,
    heartbeat_at: Option<jiff::Timestamp>,
    /// Whether its process is alive; `None` when it runs on another host.
    alive: Option<bool>,
}

pub fn run(ctx: &Context, scope: ScopeArgs) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let counts = store.counts()?;
    let registered = store.workers()?;
    let (supervisor, instances) = match super::worker::supervisor(ctx, scope) {
        Ok(s) => {
            let instances = s.instances().unwrap_or_default();
            (Some(s.describe()), instances)
        }
        Err(_) => (None, vec![]),
    };
    let host = queuectl::worker::hostname();
    let mut workers: Vec<WorkerView> = registered
        .iter()
        .map(|w| {
            let instance: Option<&Instance> = instances.iter().find(|i| i.name == w.name);
            WorkerView {
                name: w.name.clone(),
                pid: Some(w.pid),
                unit_state: instance.map(|i| i.state.clone()),
                status: instance
                    .and_then(|i| i.status.clone())
                    .or_else(|| Some(w.status.clone())),
                job_id: w.job_id.clone(),
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
                pid: instance.pid,
                unit_state: Some(instance.state.clone()),
                status: instance.status.clone(),
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
        return print_json(&serde_json::json!({
            "db": ctx.state.db,
            "supervisor": supervisor,
            "counts": counts,
            "workers": workers,
        }));
    }
    let p = &ctx.paint;
    println!("{} {}", p.bold("queue:"), ctx.state.db);
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
    let header = match &supervisor {
        Some(name) => format!("workers ({name}):"),
        None => "workers:".into(),
    };
    println!("{}", p.bold(&header));
    if workers.is_empty() {
        println!("  none running (start some with: queuectl worker start --count 2)");
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let silent_after = jiff::SignedDuration::from_secs(2 * i64::from(ctx.config.lease_seconds));
    println!(
        "  {:<16} {:>8}  {:<12} {:<14} {:<24} STATUS",
        "NAME", "PID", "UNIT", "HEARTBEAT", "JOB"
    );
    for w in &workers {
        let heartbeat = match w.heartbeat_at {
            Some(at) if now.duration_since(at) > silent_after => {
                format!("{} (silent)", relative(at, now))
            }
            Some(at) => relative(at, now),
            None => "-".into(),
        };
        println!(
            "  {:<16} {:>8}  {:<12} {:<14} {:<24} {}",
            w.name,
            w.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            w.unit_state.as_deref().unwrap_or("-"),
            heartbeat,
            w.job_id.as_deref().unwrap_or("-"),
            match w.alive {
                Some(false) => "not running (died without unregistering)",
                _ => w.status.as_deref().unwrap_or("-"),
            },
        );
    }
    Ok(())
}
