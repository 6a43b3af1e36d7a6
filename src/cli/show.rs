use super::Context;
use super::format::{clip, elapsed, print_json, table, took};
use super::output_place::{Here, notes};
use super::queue::find;
use queuectl::domain::JobState;
use queuectl::domain::queue::DEFAULT_QUEUE;
use queuectl::error::Result;
use queuectl::store::{Attempt, Linked, OpenMode};

pub fn run(ctx: &Context, id: &str) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let job = store.get(id)?;
    let attempts = store.attempts(id)?;
    let deps = store.dependencies(id)?;
    // Attempts are stamped with the database's clock: time them by it.
    let now = store.now()?;
    if ctx.json {
        return print_json(&queuectl::views::job_detail(&job, &attempts, &deps));
    }
    let p = &ctx.paint;
    println!("{}  {}", p.bold(&job.id), p.state(job.state, 0));
    println!("  command:     {}", job.command);
    println!("  priority:    {}", job.priority);
    let paused = find(&mut store, &job.queue)?.is_some_and(|q| q.paused);
    if paused && !job.state.is_terminal() {
        println!(
            "  queue:       {} (paused: `queuectl queue resume {}`)",
            job.queue, job.queue
        );
    } else if job.queue != DEFAULT_QUEUE {
        println!("  queue:       {}", job.queue);
    }
    if let Some(schedule) = &job.schedule {
        println!("  schedule:    {schedule}");
    }
    println!(
        "  attempts:    {} run(s), {} failure(s) of max_retries {}",
        job.attempts, job.failures, job.max_retries
    );
    let timeout = if job.timeout_seconds == 0 {
        "none".to_owned()
    } else {
        format!("{}s", job.timeout_seconds)
    };
    println!("  timeout:     {timeout}");
    println!("  created:     {}", ctx.times.at(job.created_at));
    if job.state.is_terminal() {
        if let Some(at) = job.finished_at {
            println!("  finished:    {}", ctx.times.at(at));
        }
    } else {
        println!("  due:         {}", ctx.times.at(job.run_at));
    }
    if let Some(key) = &job.unique_key {
        println!("  unique key:  {key}");
    }
    if job.deps_left > 0 && job.state == JobState::Pending {
        println!(
            "  blocked:     waiting for {} of its {} dependencies to complete",
            job.deps_left,
            deps.after.len()
        );
    }
    print_linked(ctx, "after:", &deps.after);
    print_linked(ctx, "dependents:", &deps.dependents);
    if let Some(worker) = &job.worker {
        println!("  worker:      {worker}");
    }
    if let Some(cwd) = &job.cwd {
        println!("  cwd:         {cwd}");
    }
    match &job.env {
        // Values may be secrets: names only.
        Ok(vars) if !vars.is_empty() => {
            let names: Vec<_> = vars.keys().map(String::as_str).collect();
            println!("  env:         {}", names.join(", "));
        }
        Ok(_) => {}
        Err(corrupt) => println!("  env:         {}", p.bold(&format!("CORRUPT: {corrupt}"))),
    }
    if let Some(file) = &job.env_file {
        println!("  env file:    {file}");
    }
    if job.cancel_requested {
        println!("  cancel:      requested; the job ends cancelled however this attempt ends");
    }
    if let Some(error) = &job.last_error {
        println!(
            "  last error:  {}",
            error.replace('\n', "\n               ")
        );
    }
    if attempts.is_empty() {
        return Ok(());
    }
    print_attempts(ctx, &attempts, now);
    for a in attempts.iter().filter(|a| a.output_truncated) {
        println!(
            "  attempt {}: output truncated: some of it could not be stored (the worker's log says why)",
            a.number
        );
    }
    show_output_elsewhere(&Here::new(ctx.state.job_log(id)), id, &attempts);
    Ok(())
}

/// Jobs on one side of a dependency, each with its state; the first
/// [`LINKED_SHOWN`] of them (`--json` has all).
fn print_linked(ctx: &Context, heading: &str, jobs: &[Linked]) {
    if jobs.is_empty() {
        return;
    }
    let shown: Vec<String> = jobs
        .iter()
        .take(LINKED_SHOWN)
        .map(|j| format!("{} ({})", j.id, ctx.paint.state(j.state, 0)))
        .collect();
    let more = match jobs.len().saturating_sub(LINKED_SHOWN) {
        0 => String::new(),
        n => format!(", and {n} more (--json lists all)"),
    };
    println!("  {heading:<12} {}{more}", shown.join(", "));
}

/// How many dependencies or dependents `show` names.
const LINKED_SHOWN: usize = 20;

/// The attempt table, its columns as wide as their widest cell.
fn print_attempts(ctx: &Context, attempts: &[Attempt], now: jiff::Timestamp) {
    let rows: Vec<[String; 7]> = attempts
        .iter()
        .map(|a| {
            let exit = match (a.exit_code, a.signal) {
                (Some(code), _) => code.to_string(),
                (None, Some(sig)) => format!("sig{sig}"),
                _ => "-".into(),
            };
            // A running attempt's clock ticks: how long it has run so far.
            let duration = match a.duration() {
                Some(d) => jiff::SignedDuration::try_from(d)
                    .map(took)
                    .unwrap_or_else(|_| "-".into()),
                None => elapsed(now.duration_since(a.started_at)),
            };
            let outcome = a.outcome.map(|o| o.as_str()).unwrap_or("running");
            let error = a
                .error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("");
            [
                a.number.to_string(),
                a.worker.clone(),
                ctx.times.at(a.started_at),
                duration,
                outcome.to_owned(),
                exit,
                clip(error, 60),
            ]
        })
        .collect();
    let (header, lines) = table(
        [
            "#", "WORKER", "STARTED", "DURATION", "OUTCOME", "EXIT", "ERROR",
        ],
        [false; 7],
        &rows,
    );
    println!("\n  {}", ctx.paint.bold(&header));
    for line in lines {
        println!("  {line}");
    }
}

/// For attempts whose output is not on this host: where it is; and the tail
/// the queue kept of the latest one (`logs` shows every attempt's).
fn show_output_elsewhere(here: &Here, id: &str, attempts: &[Attempt]) {
    for a in attempts {
        for note in notes(here, id, a) {
            println!("  {note}");
        }
    }
    let Some(latest) = attempts.last() else {
        return;
    };
    let tail = latest.output_tail.as_deref().unwrap_or("");
    if here.place(latest).is_here() || tail.is_empty() {
        return;
    }
    println!(
        "\n  output of attempt {}, as kept in the queue:",
        latest.number
    );
    for line in tail.lines() {
        println!("    {line}");
    }
}
