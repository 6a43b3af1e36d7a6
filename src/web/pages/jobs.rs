//! `/jobs`: jobs newest first, filtered by state, queue and text, one page
//! at a time (the next page's link carries the cursor). Works without
//! JavaScript; `app.js` refreshes the states of the rows shown.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{clipped, head, job_link, num, query, scroll, state, text, time};
use crate::domain::JobState;
use crate::store::QueueRow;
use crate::store::dashboard::{JobSearch, SEARCH_SCAN_ROWS, SearchPage};
use maud::{Markup, html};

pub fn jobs(ctx: &Ctx, search: &JobSearch, page_: &SearchPage, queues: &[QueueRow]) -> Markup {
    // Several states (`?state=pending,failed`) are kept as one choice.
    let names: Vec<&str> = search.states.iter().map(|s| s.as_str()).collect();
    let state_text = names.join(",");
    let several = (names.len() > 1).then(|| names.join(" or "));
    let queue_text = search.queue.as_deref().unwrap_or("");
    let contains = search.text.as_deref().unwrap_or("");
    let before = search.before.map(|c| c.to_string()).unwrap_or_default();
    // A page size asked for stays asked for on the next page (the default
    // is left out of the links).
    let limit = if search.limit == crate::web::api::DEFAULT_PAGE {
        String::new()
    } else {
        search.limit.to_string()
    };
    let filters = [
        ("state", state_text.as_str()),
        ("queue", queue_text),
        ("q", contains),
        ("limit", limit.as_str()),
    ];
    let here = query(&with_cursor(&filters, &before));
    let next_href = page_.next.map(|next| {
        let cursor = next.to_string();
        format!("/jobs{}", query(&with_cursor(&filters, &cursor)))
    });
    let poll = format!("/api/jobs{here}");
    let main = html! {
        h1 { "Jobs" }
        form.filter method="get" action="/jobs" data-form="filter" role="search" {
            label {
                "state "
                select name="state" {
                    option value="" selected[names.is_empty()] { "any" }
                    @for s in JobState::ALL {
                        option value=(s.as_str()) selected[names == [s.as_str()]] { (s.as_str()) }
                    }
                    @if let Some(label) = &several {
                        option value=(state_text) selected { (label) }
                    }
                }
            }
            label {
                "queue "
                input name="queue" list="queue-names" value=(queue_text) placeholder="any" size="12";
            }
            datalist #queue-names {
                @for q in queues { option value=(q.name) {} }
            }
            label.grow {
                "id or command contains "
                input type="search" name="q" value=(contains) placeholder="text";
            }
            @if !limit.is_empty() { input type="hidden" name="limit" value=(limit); }
            button type="submit" { "Filter" }
            @if !here.is_empty() { a href="/jobs" { "clear" } }
        }
        (scroll(html! {
            table data-table="jobs" data-live-list="jobs" data-live-key="id" data-live-row="job" {
                (head(&[text("id"), text("state"), text("queue"), text("command"), num("runs"), text("created"), text("finished")]))
                tbody {
                    @for job in &page_.jobs {
                        tr data-job=(job.id) {
                            td { (job_link(&job.id)) }
                            @let blocked = (job.state == JobState::Pending && job.deps_left > 0)
                                .then(|| format!("blocked: waiting for {} dependencies", job.deps_left));
                            // "blocked" is drawn by the style sheet: the cell's text stays the state.
                            td data-field="state" data-blocked=[blocked.is_some().then_some("")] title=[blocked] {
                                (state(job.state, Some("state")))
                            }
                            td { (clipped(&job.queue)) }
                            td.command { code { (job.command) } }
                            td.num data-live="attempts" { (job.attempts) }
                            td { (time(Some(job.created_at), None)) }
                            td { (time(job.finished_at, Some("finished_at"))) }
                        }
                    }
                }
            }
        }))
        @if !page_.scanned_all {
            // The store read its bound of jobs without filling the page.
            p.empty data-field="scanned" {
                "Stopped after reading " (SEARCH_SCAN_ROWS) " jobs: older jobs may match too (older »)."
            }
        } @else if page_.jobs.is_empty() {
            p.empty { "No job matches." }
        }
        nav.pager aria-label="Pages of jobs" {
            @if search.before.is_some() {
                a href=(format!("/jobs{}", query(&filters))) data-nav="first" { "« newest" }
            }
            @if let Some(href) = next_href {
                a href=(href) data-nav="next" rel="next" { "older »" }
            }
        }
    };
    page(ctx, Page::Jobs, "Jobs", Some(&poll), main)
}

/// The filters and the `before` cursor, as query pairs.
fn with_cursor<'a>(filters: &[(&'a str, &'a str)], cursor: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut pairs = filters.to_vec();
    pairs.push(("before", cursor));
    pairs
}
