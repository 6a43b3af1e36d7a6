//! `/`: jobs per state, the last hour (chart, failure rate, p50/p95), the
//! live workers and every queue with its counts and lag. `app.js` refreshes it
//! from `/api/overview` and `/api/workers`.

use super::layout::{Page, page};
use super::parts::{NONE, millis, scroll, seconds};
use super::{Ctx, chart};
use crate::domain::JobState;
use crate::store::QueueRow;
use crate::store::dashboard::{MinuteBucket, Overview};
use crate::views::{Liveness, WorkerView};
use maud::{Markup, html};
use std::collections::BTreeMap;

pub fn overview(
    ctx: &Ctx,
    overview: &Overview,
    workers: &[WorkerView],
    queues: &[QueueRow],
) -> Markup {
    // Only the workers that still work: a dead or silent one is on /workers.
    let live: Vec<&WorkerView> = workers
        .iter()
        .filter(|w| w.liveness == Liveness::Live)
        .collect();
    let per_queue = per_queue(overview, queues);
    let totals: BTreeMap<JobState, u64> = JobState::ALL
        .into_iter()
        .map(|state| (state, per_queue.values().map(|c| c.get(state)).sum()))
        .collect();
    let main = html! {
        h1 { "Overview" }
        section.cards aria-label="Jobs per state" {
            @for (state, n) in &totals {
                a.card href=(format!("/jobs?state={state}")) data-state=(state.as_str()) {
                    span.label { (state.as_str()) }
                    span.num data-count=(state.as_str()) { (n) }
                }
            }
            a.card href="/workers" {
                span.label { "live workers" }
                span.num data-count="workers" { (live.len()) }
            }
        }
        section {
            h2 { "Live workers" }
            ul.workers data-list="live-workers" {
                @for w in &live {
                    li data-worker=(w.name) {
                        a href="/workers" { (w.name) }
                        " "
                        span.jobs { (super::workers::jobs(&w.jobs)) }
                    }
                }
            }
            p.empty data-empty="live-workers" hidden[!live.is_empty()] {
                "No live worker. Start some with " code { "queuectl worker start --count 2" } "."
            }
        }
        section {
            h2 { "Last hour" }
            dl.stats {
                div { dt { "failure rate" } dd data-stat="failure-rate" { (failure_rate(&overview.last_hour)) } }
                div { dt { "attempts ended" } dd data-stat="ended" { (ended(&overview.last_hour)) } }
                div { dt { "p50 run time" } dd data-stat="p50" { (millis(overview.duration_p50_ms)) } }
                div { dt { "p95 run time" } dd data-stat="p95" { (millis(overview.duration_p95_ms)) } }
            }
            figure { (chart::last_hour(&overview.last_hour)) }
        }
        section {
            h2 { "Queues" }
            (scroll(html! {
                table data-table="queues" {
                    thead { tr {
                        th scope="col" { "queue" }
                        @for state in JobState::ALL { th.num scope="col" data-col=(state.as_str()) { (state.as_str()) } }
                        th.num scope="col" title="How long the oldest due job has waited" { "lag" }
                    } }
                    tbody {
                        @for (name, counts) in &per_queue {
                            tr data-queue=(name) {
                                th scope="row" {
                                    a href=(format!("/jobs{}", super::parts::query(&[("queue", name)]))) { (name) }
                                    @if counts.paused { " " span.tag { "paused" } }
                                }
                                @for state in JobState::ALL {
                                    td.num data-count=(state.as_str()) { (counts.get(state)) }
                                }
                                td.num data-lag=(name) data-paused=[counts.paused.then_some("")]
                                    title=[counts.paused.then_some("paused on purpose: its lag grows until it is resumed")] {
                                    (lag_text(overview, name, counts.paused))
                                }
                            }
                        }
                    }
                }
            }))
            @if per_queue.is_empty() { p.empty { "No jobs yet." } }
        }
    };
    page(ctx, Page::Overview, "Overview", Some("/api/overview"), main)
}

/// One queue's row: its counts per state and whether it is paused.
#[derive(Default)]
struct QueueCounts {
    jobs: BTreeMap<JobState, u64>,
    paused: bool,
}

impl QueueCounts {
    fn get(&self, state: JobState) -> u64 {
        self.jobs.get(&state).copied().unwrap_or(0)
    }
}

/// Every queue with jobs or settings, by name.
fn per_queue(overview: &Overview, queues: &[QueueRow]) -> BTreeMap<String, QueueCounts> {
    let mut rows: BTreeMap<String, QueueCounts> = BTreeMap::new();
    for q in queues {
        rows.entry(q.name.clone()).or_default();
    }
    for name in &overview.paused {
        rows.entry(name.clone()).or_default().paused = true;
    }
    for c in &overview.counts {
        *rows
            .entry(c.queue.clone())
            .or_default()
            .jobs
            .entry(c.state)
            .or_default() += c.jobs;
    }
    rows
}

/// A queue's lag; 0 s when nothing is due; a paused queue's says so
/// (`lagText` in app.js).
fn lag_text(overview: &Overview, queue: &str, paused: bool) -> String {
    let secs = overview
        .lag
        .iter()
        .find(|l| l.queue == queue)
        .map_or(0.0, |l| l.seconds);
    match paused {
        true => format!("paused {}", seconds(secs)),
        false => seconds(secs),
    }
}

fn ended(hour: &[MinuteBucket]) -> u64 {
    hour.iter().map(|b| b.succeeded + b.failed).sum()
}

/// Failed among the attempts that ended in the hour, as a percentage with
/// one decimal (`percent` in app.js).
fn failure_rate(hour: &[MinuteBucket]) -> String {
    let failed: u64 = hour.iter().map(|b| b.failed).sum();
    match ended(hour) {
        0 => NONE.to_owned(),
        all => format!("{:.1}%", failed as f64 * 100.0 / all as f64),
    }
}
