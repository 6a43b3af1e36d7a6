//! The JSON API: each endpoint reads through the store and builds its shape
//! with the same function as the matching CLI `--json` (`crate::views`), so
//! `/api/queues` and `queuectl queue list --json` cannot disagree. The HTML
//! pages read the same data through the functions here.

use super::http::Request;
use crate::domain::{JobState, QueueName, echo};
use crate::error::{Error, Result};
use crate::store::dashboard::{JobCursor, JobSearch, SEARCH_LIMIT_MAX};
use crate::store::{JobPage, ListFilter, Store};
use crate::views::{self, WorkerView};
use serde_json::{Value, json};

/// A jobs page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 50;
/// As many dead jobs as `dlq list` shows by default.
pub const DLQ_PAGE: u32 = 100;

/// `/api/status`: `status --json`, without the supervisor's view (that
/// needs this host's systemctl; `supervisor` and each `unit_state` are null).
pub fn status(store: &mut Store, host: &str) -> Result<Value> {
    let counts = store.counts()?;
    let workers = workers(store, host)?;
    Ok(views::status(
        &store.database().to_string(),
        true,
        None,
        &counts,
        &workers,
    ))
}

/// The registered workers as `status` shows them (no supervisor's view).
pub fn workers(store: &mut Store, host: &str) -> Result<Vec<WorkerView>> {
    let registered = store.workers()?;
    let now = store.now()?;
    Ok(views::worker_views(
        &registered,
        &[],
        host,
        now,
        super::metrics::silent_after(),
    ))
}

/// `/api/workers`: the workers part of `status --json`.
pub fn workers_json(store: &mut Store, host: &str) -> Result<Value> {
    Ok(json!({ "workers": workers(store, host)? }))
}

/// The search a jobs request asks for: `state` (repeated or
/// comma-separated), `queue`, `q`, `before`, `limit`.
pub fn job_search(request: &Request) -> Result<JobSearch> {
    let states = request
        .params("state")
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<JobState>()
                .map_err(|why| Error::Invalid(format!("state: {why}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let queue = request
        .param("queue")
        .map(|name| {
            QueueName::parse(name)
                .map(|q| q.to_string())
                .map_err(|why| Error::Invalid(format!("queue name '{}' {why}", echo::shown(name))))
        })
        .transpose()?;
    let before = request
        .param("before")
        .map(|text| {
            text.parse::<i64>().map(JobCursor).map_err(|_| {
                Error::Invalid(format!(
                    "before: '{}' is not a cursor this server gave",
                    echo::shown(text)
                ))
            })
        })
        .transpose()?;
    let limit = match request.param("limit") {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=SEARCH_LIMIT_MAX).contains(&n) => n,
            _ => {
                return Err(Error::Invalid(format!(
                    "limit must be from 1 to {SEARCH_LIMIT_MAX}, not '{}'",
                    echo::shown(text)
                )));
            }
        },
    };
    Ok(JobSearch {
        states,
        queue,
        text: request.param("q").map(str::to_owned),
        before,
        limit,
    })
}

/// `/api/jobs`: one page of the search as `list --search --json` prints it
/// (each job as `list --json` has it, the next page's cursor, whether
/// every job was read).
pub fn jobs(store: &mut Store, search: &JobSearch) -> Result<Value> {
    Ok(serde_json::to_value(store.search_jobs(search)?).expect("a page serializes"))
}

/// `/api/jobs/{id}`: `show --json`.
pub fn job(store: &mut Store, id: &str) -> Result<Value> {
    let job = store.get(id)?;
    let attempts = store.attempts(id)?;
    let deps = store.dependencies(id)?;
    Ok(views::job_detail(&job, &attempts, &deps))
}

/// The dead jobs `dlq list` shows by default: the newest [`DLQ_PAGE`].
pub fn dead_jobs(store: &mut Store) -> Result<JobPage> {
    store.list(&ListFilter::states(&[JobState::Dead]), Some(DLQ_PAGE))
}

/// `/api/dlq`: `dlq list --json`.
pub fn dlq(store: &mut Store) -> Result<Value> {
    Ok(serde_json::to_value(dead_jobs(store)?).expect("jobs serialize"))
}

/// `/api/queues`: `queue list --json`.
pub fn queues(store: &mut Store) -> Result<Value> {
    Ok(views::queue_list(&store.queues()?))
}

/// `/api/schedules`: `schedule list --json` as far as the queue knows it
/// (a systemd timer's next elapse is this host's manager's to say: null).
pub fn schedules(store: &mut Store, host: &str) -> Result<Value> {
    Ok(views::schedule_list(&store.schedules()?, host, None))
}

/// `/api/overview`: the overview page's figures.
pub fn overview(store: &mut Store) -> Result<Value> {
    Ok(serde_json::to_value(store.overview()?).expect("an overview serializes"))
}
