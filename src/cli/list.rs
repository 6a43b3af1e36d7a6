//! `list` and `dlq list`: the newest jobs first, with how many there are in
//! all (a note on stderr when some are not shown, so stdout stays a table).

use super::Context;
use super::args::{ListArgs, PageArgs};
use super::format::{clip, print_json, relative, running_for};
use jiff::Timestamp;
use queuectl::domain::queue::DEFAULT_QUEUE;
use queuectl::domain::{JobState, QueueName, echo};
use queuectl::error::{Error, Result};
use queuectl::store::OpenMode;
use queuectl::store::dashboard::{JobCursor, JobSearch, SEARCH_SCAN_ROWS, SearchPage};
use queuectl::store::{Job, ListFilter, Store};
use std::collections::HashMap;

pub fn run(ctx: &Context, args: ListArgs) -> Result<()> {
    let states = args
        .state
        .iter()
        .map(|s| s.parse::<JobState>().map_err(Error::Invalid))
        .collect::<Result<Vec<_>>>()?;
    let queue = args
        .queue
        .map(|name| {
            QueueName::parse(&name)
                .map(|q| q.to_string())
                .map_err(|why| {
                    Error::Invalid(format!(
                        "--queue: queue name '{}' {why}",
                        echo::shown(&name)
                    ))
                })
        })
        .transpose()?;
    if args.search.is_some() || args.before.is_some() {
        let before = args
            .before
            .as_deref()
            .map(|text| text.parse::<JobCursor>())
            .transpose()
            .map_err(|why| Error::Invalid(format!("--before: {why}")))?;
        let search = JobSearch {
            states,
            queue,
            text: args.search,
            before,
            limit: args.page.limit,
        };
        return print_search(ctx, &search);
    }
    print_list(
        ctx,
        &ListFilter {
            states,
            queue,
            blocked: args.blocked,
        },
        &args.page,
        Columns::Jobs,
    )
}

/// One page of `search`, as the dashboard pages (with `--json`, the
/// [`SearchPage`] that `/api/jobs` prints too); the next page's cursor and
/// a page that stopped at the read bound are said on stderr.
fn print_search(ctx: &Context, search: &JobSearch) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let page: SearchPage = store.search_jobs(search)?;
    if ctx.json {
        return print_json(&page);
    }
    print_jobs(ctx, &mut store, &page.jobs, Columns::Jobs)?;
    if !page.scanned_all {
        eprintln!("stopped after reading {SEARCH_SCAN_ROWS} jobs: older ones may match too");
    }
    if let Some(next) = page.next {
        eprintln!("more: --before {next}");
    }
    Ok(())
}

/// Which table to print.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Every job: its command last.
    Jobs,
    /// The dead letter queue: each job's last error too.
    DeadLetters,
}

/// Lists the newest jobs `filter` matches as `page` says; with `--json`,
/// `{"jobs": [...], "total": N}`.
pub fn print_list(
    ctx: &Context,
    filter: &ListFilter,
    page: &PageArgs,
    columns: Columns,
) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let limit = (!page.all).then_some(page.limit);
    let listed = store.list(filter, limit)?;
    if ctx.json {
        return print_json(&listed);
    }
    print_jobs(ctx, &mut store, &listed.jobs, columns)?;
    let hidden = listed.total.saturating_sub(listed.jobs.len() as u64);
    if hidden > 0 {
        eprintln!("{hidden} more (use --limit or --all)");
    }
    Ok(())
}

/// A pending job that waits for others reads `blocked (N)`: N of its
/// dependencies have not completed yet.
fn blocked_cell(job: &Job) -> Option<String> {
    (job.state == JobState::Pending && job.deps_left > 0)
        .then(|| format!("blocked ({})", job.deps_left))
}

/// When each running job's current attempt started (a few: one per busy
/// worker slot), and now by the queue's clock, which stamped them.
fn running_since(
    store: &mut Store,
    jobs: &[Job],
) -> Result<(Timestamp, HashMap<String, Timestamp>)> {
    let running = jobs
        .iter()
        .filter(|j| j.state == JobState::Processing)
        .map(|j| j.id.as_str());
    let since = attempts_started(store, running)?;
    Ok((store.now()?, since))
}

/// How wide a command may be beside the last error in `dlq list`.
const COMMAND_BESIDE_ERROR: usize = 30;
/// How much of a last error `dlq list` shows (`--json` has all of it).
const LAST_ERROR_WIDTH: usize = 70;

fn print_jobs(ctx: &Context, store: &mut Store, jobs: &[Job], columns: Columns) -> Result<()> {
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
    let blocked: Vec<Option<String>> = jobs.iter().map(blocked_cell).collect();
    let state_width = blocked
        .iter()
        .flatten()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(10);
    let (command_width, command_heading) = match columns {
        Columns::Jobs => (60, "COMMAND".to_owned()),
        Columns::DeadLetters => {
            let widest = jobs.iter().map(|j| j.command.chars().count()).max();
            let width = widest.unwrap_or(0).clamp(7, COMMAND_BESIDE_ERROR);
            (width, format!("{:<width$}  LAST ERROR", "COMMAND"))
        }
    };
    // A QUEUE column only when some job is in a named queue: most
    // setups have one queue, and the column would say "default" on each.
    let queue_width = jobs
        .iter()
        .any(|j| j.queue != DEFAULT_QUEUE)
        .then(|| jobs.iter().map(|j| j.queue.len()).max().unwrap_or(0).max(5));
    let queue_column =
        |queue: &str| queue_width.map_or(String::new(), |w| format!("{queue:<w$}  "));
    println!(
        "{}",
        ctx.paint.bold(&format!(
            "{:<id_width$}  {:<state_width$}  {:>4}  {:>8}  {:<when_width$}  {}{command_heading}",
            "ID",
            "STATE",
            "PRI",
            "ATTEMPTS",
            "WHEN",
            queue_column("QUEUE")
        ))
    );
    for ((job, when), blocked) in jobs.iter().zip(&whens).zip(&blocked) {
        let command = clip(&job.command, command_width);
        let rest = match columns {
            Columns::Jobs => command,
            Columns::DeadLetters => format!(
                "{command:<command_width$}  {}",
                clip(job.last_error.as_deref().unwrap_or("-"), LAST_ERROR_WIDTH)
            ),
        };
        println!(
            "{:<id_width$}  {}  {:>4}  {:>8}  {when:<when_width$}  {}{rest}",
            job.id,
            match blocked {
                Some(cell) => format!("{cell:<state_width$}"),
                None => ctx.paint.state(job.state, state_width),
            },
            job.priority,
            job.attempts,
            queue_column(&job.queue),
        );
    }
    Ok(())
}

/// When the current attempt of each of `jobs` started (jobs that have run).
pub fn attempts_started<'a>(
    store: &mut Store,
    jobs: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, Timestamp>> {
    let mut since = HashMap::new();
    for id in jobs {
        if let Some(attempt) = store.attempts(id)?.last() {
            since.insert(id.to_owned(), attempt.started_at);
        }
    }
    Ok(since)
}
