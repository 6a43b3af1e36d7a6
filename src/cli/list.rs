use super::Context;
use super::args::ListArgs;
use super::format::{clip, print_json, relative};
use queuectl::domain::JobState;
use queuectl::error::{Error, Result};
use queuectl::store::Job;
use queuectl::store::OpenMode;

pub fn run(ctx: &Context, args: ListArgs) -> Result<()> {
    let state = args
        .state
        .as_deref()
        .map(|s| s.parse::<JobState>().map_err(Error::Invalid))
        .transpose()?;
    let jobs = ctx.store(OpenMode::ReadOnly)?.list(state, args.limit)?;
    print_jobs(ctx, &jobs)
}

/// The job table shared by `list` and `dlq list`.
pub fn print_jobs(ctx: &Context, jobs: &[Job]) -> Result<()> {
    if ctx.json {
        return print_json(&jobs);
    }
    if jobs.is_empty() {
        eprintln!("no jobs");
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let id_width = jobs.iter().map(|j| j.id.len()).max().unwrap_or(2).max(2);
    println!(
        "{}",
        ctx.paint.bold(&format!(
            "{:<id_width$}  {:<10}  {:>4}  {:>8}  {:<12}  COMMAND",
            "ID", "STATE", "PRI", "ATTEMPTS", "WHEN"
        ))
    );
    for job in jobs {
        let when = match job.state {
            JobState::Pending | JobState::Failed => relative(job.run_at, now),
            _ => relative(job.finished_at.unwrap_or(job.updated_at), now),
        };
        println!(
            "{:<id_width$}  {}  {:>4}  {:>8}  {:<12}  {}",
            job.id,
            ctx.paint.state(job.state, 10),
            job.priority,
            job.attempts,
            when,
            clip(&job.command, 60)
        );
    }
    Ok(())
}
