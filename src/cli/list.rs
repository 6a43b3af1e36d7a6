use super::Context;
use super::args::ListArgs;
use super::format::{clip, print_json, relative, running_for};
use jiff::Timestamp;
use queuectl::domain::JobState;
use queuectl::error::{Error, Result};
use queuectl::store::OpenMode;
use queuectl::store::{Job, Store};
use std::collections::HashMap;

pub fn run(ctx: &Context, args: ListArgs) -> Result<()> {
    let state = args
        .state
        .as_deref()
        .map(|s| s.parse::<JobState>().map_err(Error::Invalid))
        .transpose()?;
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let jobs = store.list(state, args.limit)?;
    print_jobs(ctx, &mut store, &jobs)
}

/// When each running job's current attempt started (a few: one per busy
/// worker slot), and now by the queue's clock, which stamped them.
fn running_since(
    store: &mut Store,
    jobs: &[Job],
) -> Result<(Timestamp, HashMap<String, Timestamp>)> {
    let mut since = HashMap::new();
    for job in jobs.iter().filter(|j| j.state == JobState::Processing) {
        if let Some(attempt) = store.attempts(&job.id)?.last() {
            since.insert(job.id.clone(), attempt.started_at);
        }
    }
    Ok((store.now()?, since))
}

/// The job table shared by `list` and `dlq list`.
pub fn print_jobs(ctx: &Context, store: &mut Store, jobs: &[Job]) -> Result<()> {
    if ctx.json {
        return print_json(&jobs);
    }
    if jobs.is_empty() {
        eprintln!("no jobs");
        return Ok(());
    }
    let (now, running) = running_since(store, jobs)?;
    let id_width = jobs.iter().map(|j| j.id.len()).max().unwrap_or(2).max(2);
    let whens: Vec<String> = jobs
        .iter()
        .map(|job| match job.state {
            JobState::Pending | JobState::Failed => relative(job.run_at, now),
            JobState::Processing if running.contains_key(&job.id) => {
                running_for(running[&job.id], now)
            }
            _ => relative(job.finished_at.unwrap_or(job.updated_at), now),
        })
        .collect();
    let when_width = whens.iter().map(String::len).max().unwrap_or(0).max(4);
    println!(
        "{}",
        ctx.paint.bold(&format!(
            "{:<id_width$}  {:<10}  {:>4}  {:>8}  {:<when_width$}  COMMAND",
            "ID", "STATE", "PRI", "ATTEMPTS", "WHEN"
        ))
    );
    for (job, when) in jobs.iter().zip(&whens) {
        println!(
            "{:<id_width$}  {}  {:>4}  {:>8}  {when:<when_width$}  {}",
            job.id,
            ctx.paint.state(job.state, 10),
            job.priority,
            job.attempts,
            clip(&job.command, 60)
        );
    }
    Ok(())
}
