//! `/queues`: every queue with settings or unfinished jobs: its limit,
//! whether it is paused, and its waiting, running and blocked jobs.
//! `app.js` refreshes it from `/api/queues`.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{NONE, head, num, query, scroll, text};
use crate::store::QueueRow;
use maud::{Markup, html};

pub fn queues(ctx: &Ctx, queues: &[QueueRow]) -> Markup {
    let main = html! {
        h1 { "Queues" }
        (scroll(html! {
            table data-table="queues" data-live-list="queues" data-live-key="name" data-live-row="queue" {
                (head(&[text("queue"), num("parallel"), text("paused"), num("waiting"), num("running"), num("blocked")]))
                tbody {
                    @for q in queues {
                        tr data-queue=(q.name) {
                            th scope="row" { a href=(format!("/jobs{}", query(&[("queue", &q.name)]))) { (q.name) } }
                            td.num { (q.parallel.map_or_else(|| NONE.to_owned(), |n| n.to_string())) }
                            td data-live="paused" data-live-format="yesno" { (if q.paused { "yes" } else { "no" }) }
                            td.num data-live="waiting" { (q.waiting) }
                            td.num data-live="running" { (q.running) }
                            td.num data-live="blocked" { (q.blocked) }
                        }
                    }
                }
            }
        }))
        @if queues.is_empty() { p.empty { "No queue has settings or unfinished jobs." } }
    };
    page(ctx, Page::Queues, "Queues", Some("/api/queues"), main)
}
