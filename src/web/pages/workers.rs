//! `/workers`: every registered worker on every host, with what it runs and
//! whether it still works (the judgement `queuectl status` shows).
//! `app.js` refreshes it from `/api/workers`.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{NONE, clipped, head, job_link, num, scroll, text, time};
use crate::views::{Liveness, WorkerView};
use maud::{Markup, html};

pub fn workers(ctx: &Ctx, workers: &[WorkerView]) -> Markup {
    let main = html! {
        h1 { "Workers" }
        (scroll(html! {
            table data-table="workers" data-live-list="workers" data-live-key="name" data-live-row="worker" {
                (head(&[text("name"), text("host"), num("pid"), text("unit"), text("liveness"), text("status"), num("slots"), text("running"), text("started"), num("heartbeat")]))
                tbody {
                    @for w in workers {
                        tr data-worker=(w.name) {
                            th scope="row" { (clipped(&w.name)) }
                            td { (clipped(&w.host)) }
                            td.num { (optional(w.pid)) }
                            td { (clipped(w.unit.as_deref().unwrap_or(NONE))) }
                            td { (liveness(w.liveness)) }
                            td data-field="status" data-live="status" { (w.status.as_deref().unwrap_or(NONE)) }
                            td.num { (optional(w.slots)) }
                            td data-field="jobs" { (jobs(&w.jobs)) }
                            td { (time(w.started_at, None)) }
                            td.num data-field="heartbeat" { (heartbeat_age(w.heartbeat_age_seconds)) }
                        }
                    }
                }
            }
        }))
        @if workers.is_empty() {
            p.empty { "No worker is registered. Start some with " code { "queuectl worker start --count 2" } "." }
        }
    };
    page(ctx, Page::Workers, "Workers", Some("/api/workers"), main)
}

/// A worker's liveness as a coloured word (`liveness` in app.js); the
/// title says what it means.
pub fn liveness(liveness: Liveness) -> Markup {
    let meaning = match liveness {
        Liveness::Live => "running and sending heartbeats",
        Liveness::Silent => "no heartbeat for twice the lease: hung, or gone",
        Liveness::Dead => "not running: died without unregistering",
    };
    html! {
        span.liveness data-liveness=(liveness.as_str()) data-live="liveness" data-live-format="liveness" title=(meaning) {
            (liveness.as_str())
        }
    }
}

/// How long ago its last heartbeat was (`ago` in app.js).
pub fn heartbeat_age(seconds: Option<i64>) -> Markup {
    html! {
        span data-live="heartbeat_age_seconds" data-live-format="ago" {
            @match seconds {
                Some(s) => { (super::parts::seconds(s as f64)) " ago" }
                None => (NONE),
            }
        }
    }
}

/// The jobs a worker runs, as links.
pub fn jobs(ids: &[String]) -> Markup {
    html! {
        @if ids.is_empty() { (NONE) }
        @for (i, id) in ids.iter().enumerate() {
            @if i > 0 { " " }
            (job_link(id))
        }
    }
}

fn optional(n: Option<u32>) -> String {
    n.map_or_else(|| NONE.to_owned(), |n| n.to_string())
}
