//! The frame every page shares: head (assets only, nothing inline), the
//! navigation, the footer with the live-update status; and the error page.

use super::Ctx;
use super::parts::at;
use crate::web::assets;
use maud::{DOCTYPE, Markup, html};

/// Which page is drawn: its `data-page` and `data-nav` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Overview,
    Jobs,
    Job,
    Dlq,
    Workers,
    Queues,
    Schedules,
    Error,
}

impl Page {
    pub fn name(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Jobs => "jobs",
            Page::Job => "job",
            Page::Dlq => "dlq",
            Page::Workers => "workers",
            Page::Queues => "queues",
            Page::Schedules => "schedules",
            Page::Error => "error",
        }
    }

    /// The navigation entry it belongs to (a job is one of the jobs).
    fn section(self) -> Option<Page> {
        match self {
            Page::Job => Some(Page::Jobs),
            Page::Error => None,
            other => Some(other),
        }
    }
}

/// The navigation, in order: page, path, label.
const NAV: [(Page, &str, &str); 6] = [
    (Page::Overview, "/", "Overview"),
    (Page::Jobs, "/jobs", "Jobs"),
    (Page::Dlq, "/dlq", "Dead letter"),
    (Page::Workers, "/workers", "Workers"),
    (Page::Queues, "/queues", "Queues"),
    (Page::Schedules, "/schedules", "Schedules"),
];

/// A whole page. `poll` is the JSON endpoint app.js refreshes it from
/// (none: the page stays as served).
pub fn page(ctx: &Ctx, page: Page, title: &str, poll: Option<&str>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · queuectl" }
                link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body data-page=(page.name()) data-poll=[poll] {
                header.top {
                    a.brand href="/" { "queuectl" }
                    nav aria-label="Pages" {
                        @for (entry, path, label) in NAV {
                            a href=(path) data-nav=(entry.name())
                                aria-current=[(page.section() == Some(entry)).then_some("page")] { (label) }
                        }
                    }
                    @if !ctx.db.is_empty() {
                        span.db title="The queue this dashboard reads" { (ctx.db) }
                    }
                }
                main { (main) }
                footer {
                    "Read at " time datetime=(ctx.now.to_string()) { (at(ctx.now)) }
                    @if poll.is_some() {
                        " · " span data-live-status { "updates every 3 s when JavaScript runs" }
                    }
                }
            }
        }
    }
}

/// A page saying what went wrong (`status` is the HTTP status), never
/// more than `message`: no stack trace, no query.
pub fn error(ctx: &Ctx, status: u16, message: &str) -> Markup {
    let title = format!("{status} {}", reason(status));
    page(
        ctx,
        Page::Error,
        &title,
        None,
        html! {
            h1 { (title) }
            p.error data-field="error" { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// The reason phrase of the statuses the dashboard answers with.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflict",
        413 => "Payload too large",
        500 => "Internal server error",
        503 => "Service unavailable",
        _ => "Error",
    }
}
