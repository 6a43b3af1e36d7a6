use super::Context;
use super::args::ScopeArgs;
use super::format::{print_json, relative, running_for, table};
use jiff::Timestamp;
use queuectl::domain::JobState;
use queuectl::error::Result;
use queuectl::store::OpenMode;
use queuectl::store::WorkerRow;
use queuectl::supervisor::Instance;
use queuectl::views::{self, Liveness, WorkerView};
use queuectl::worker::registered_name;
use std::collections::{BTreeMap, HashMap};

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
    let workers = views::worker_views(registered, &instances, &host, queue.now, silent_after(ctx));
    if ctx.json {
        print_json(&views::status(
            &ctx.state.db.to_string(),
            unreachable.is_none(),
            supervisor.as_deref(),
            counts,
            &workers,
        ))?;
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

/// A worker with no heartbeat for twice the lease is silent: a live one
/// beats every few seconds and renews its jobs' leases well within one.
fn silent_after(ctx: &Context) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(2 * i64::from(ctx.config.lease_seconds))
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
                Some(at) if w.liveness == Liveness::Silent => {
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
    if w.liveness == Liveness::Dead {
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
