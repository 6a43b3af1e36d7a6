use super::Context;
use super::format::{print_json, short_duration, time};
use super::output_place::{Here, notes};
use queuectl::error::Result;
use queuectl::store::{Attempt, OpenMode};

pub fn run(ctx: &Context, id: &str) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let job = store.get(id)?;
    let attempts = store.attempts(id)?;
    if ctx.json {
        let mut value = serde_json::to_value(&job).expect("jobs serialize");
        value["attempt_history"] = serde_json::to_value(&attempts).expect("attempts serialize");
        return print_json(&value);
    }
    let p = &ctx.paint;
    println!("{}  {}", p.bold(&job.id), p.state(job.state, 0));
    println!("  command:     {}", job.command);
    println!("  priority:    {}", job.priority);
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
    println!("  created:     {}", time(job.created_at));
    if job.state.is_terminal() {
        if let Some(at) = job.finished_at {
            println!("  finished:    {}", time(at));
        }
    } else {
        println!("  due:         {}", time(job.run_at));
    }
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
    println!(
        "\n  {}",
        p.bold("#   WORKER        STARTED               DURATION  OUTCOME        EXIT  ERROR")
    );
    for a in &attempts {
        let exit = match (a.exit_code, a.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(sig)) => format!("sig{sig}"),
            _ => "-".into(),
        };
        let duration = a
            .duration()
            .and_then(|d| jiff::SignedDuration::try_from(d).ok())
            .map(short_duration)
            .unwrap_or_else(|| "running".into());
        let outcome = a.outcome.map(|o| o.as_str()).unwrap_or("running");
        let error = a
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        println!(
            "  {:<3} {:<13} {:<21} {:<9} {:<14} {:<5} {}",
            a.number,
            a.worker,
            time(a.started_at),
            duration,
            outcome,
            exit,
            super::format::clip(error, 60)
        );
    }
    for a in attempts.iter().filter(|a| a.output_truncated) {
        println!(
            "  attempt {}: output truncated: some of it could not be stored (the worker's log says why)",
            a.number
        );
    }
    show_output_elsewhere(&Here::new(ctx.state.job_log(id)), id, &attempts);
    Ok(())
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
