//! The HTML of each page. Until the dashboard's own renderers
//! (`web::pages`) are in, every page is this plain one: the shared
//! navigation and the page's JSON (what its `/api/` endpoint returns) as
//! escaped text, with the action forms where actions are on.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// What every page needs besides its data.
pub struct Ctx {
    /// The token forms post back (only when actions are on).
    pub csrf: Option<String>,
    pub actions: bool,
    /// The queue, as shown to users (a PostgreSQL address without password).
    pub db: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Overview,
    Jobs,
    Job,
    Dlq,
    Workers,
    Queues,
    Schedules,
}

impl Page {
    /// The `data-page` name and the title.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Page::Overview => ("overview", "Overview"),
            Page::Jobs => ("jobs", "Jobs"),
            Page::Job => ("job", "Job"),
            Page::Dlq => ("dlq", "Dead letter"),
            Page::Workers => ("workers", "Workers"),
            Page::Queues => ("queues", "Queues"),
            Page::Schedules => ("schedules", "Schedules"),
        }
    }
}

const NAV: [(&str, &str, &str); 6] = [
    ("overview", "/", "Overview"),
    ("jobs", "/jobs", "Jobs"),
    ("dlq", "/dlq", "Dead letter"),
    ("workers", "/workers", "Workers"),
    ("queues", "/queues", "Queues"),
    ("schedules", "/schedules", "Schedules"),
];

fn layout(ctx: &Ctx, page: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · queuectl" }
            }
            body data-page=(page) {
                nav {
                    @for (name, href, label) in NAV {
                        a data-nav=(name) href=(href) { (label) } " "
                    }
                }
                main {
                    h1 { (title) }
                    p { "Queue: " code { (ctx.db) } }
                    (body)
                }
            }
        }
    }
}

/// `page` showing `data`; a job page's `id` gets its action forms.
pub fn page(ctx: &Ctx, page: Page, id: Option<&str>, data: &Value) -> Markup {
    let (name, title) = page.names();
    let text = serde_json::to_string_pretty(data).expect("values serialize");
    layout(
        ctx,
        name,
        title,
        html! {
            @if let (Some(id), Some(csrf), true) = (id, &ctx.csrf, ctx.actions) {
                @for action in ["retry", "cancel", "restart"] {
                    form method="post" action={ "/jobs/" (id) "/" (action) } {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" data-action=(action) { (action) }
                    }
                }
            }
            p { "This page shows its data as JSON while the dashboard's pages are being built." }
            pre data-field="data" { (text) }
        },
    )
}

/// An error page: what went wrong, in words (never a trace).
pub fn error(ctx: &Ctx, status: u16, message: &str) -> Markup {
    layout(
        ctx,
        "error",
        "Error",
        html! {
            p data-status=(status) { (message) }
        },
    )
}
