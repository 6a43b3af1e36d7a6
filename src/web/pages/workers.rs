//! `/workers`: every registered worker on every host, with what it runs.
//! `app.js` refreshes it from `/api/workers`.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{NONE, head, job_link, num, scroll, text, time};
use crate::store::WorkerRow;
use maud::{Markup, html};

pub fn workers(ctx: &Ctx, workers: &[WorkerRow]) -> Markup {
    let main = html! {
        h1 { "Workers" }
        (scroll(html! {
            table data-table="workers" data-live-list="workers" data-live-key="name" data-live-row="worker" {
                (head(&[text("name"), text("host"), num("pid"), text("unit"), text("status"), num("slots"), text("running"), text("started"), text("heartbeat")]))
                tbody {
                    @for w in workers {
                        tr data-worker=(w.name) {
                            th scope="row" { (w.name) }
                            td { (w.host) }
                            td.num { (w.pid) }
                            td { (w.unit.as_deref().unwrap_or(NONE)) }
                            td data-field="status" data-live="status" { (w.status) }
                            td.num { (w.slots) }
                            td data-field="jobs" {
                                @if w.jobs.is_empty() { (NONE) }
                                @for (i, id) in w.jobs.iter().enumerate() {
                                    @if i > 0 { " " }
                                    (job_link(id))
                                }
                            }
                            td { (time(Some(w.started_at), None)) }
                            td { (time(Some(w.heartbeat_at), Some("heartbeat_at"))) }
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
