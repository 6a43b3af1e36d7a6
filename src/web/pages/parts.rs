//! Small pieces every page uses: times, states, links to jobs, the action
//! forms. Their text matches what `app.js` writes when it refreshes them
//! (its `formats`), so a refresh changes nothing that did not change.

use super::Ctx;
use crate::domain::JobState;
use crate::domain::duration::{elapsed, took};
pub use crate::domain::percent::encode;
use crate::store::BulkAction;
use jiff::{SignedDuration, Timestamp, Unit};
use maud::{Markup, html};

/// Shown where a value is absent.
pub const NONE: &str = "—";

/// A time to the second in UTC (`time` in app.js).
pub fn at(t: Timestamp) -> String {
    let t = t.round(Unit::Second).unwrap_or(t);
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `at` of an optional time, or [`NONE`].
pub fn at_or_none(t: Option<Timestamp>) -> String {
    t.map_or_else(|| NONE.to_owned(), at)
}

/// A `<time>` element, refreshed from the JSON field `live` when given.
pub fn time(t: Option<Timestamp>, live: Option<&str>) -> Markup {
    html! {
        time datetime=[t.map(|t| t.to_string())] data-live=[live] data-live-format=[live.map(|_| "time")] {
            (at_or_none(t))
        }
    }
}

/// A job state as a coloured word: the text is exactly the state's name.
pub fn state(state: JobState, live: Option<&str>) -> Markup {
    html! {
        span.state data-state=(state.as_str()) data-live=[live] data-live-format=[live.map(|_| "state")] {
            (state.as_str())
        }
    }
}

/// Milliseconds as the pages show them (`ms` in app.js).
pub fn millis(ms: Option<i64>) -> String {
    ms.map_or_else(
        || NONE.to_owned(),
        |ms| took(SignedDuration::from_millis(ms)),
    )
}

/// Seconds of waiting (lag) as the pages show them (`seconds` in app.js).
pub fn seconds(secs: f64) -> String {
    let d = SignedDuration::try_from_secs_f64(secs.max(0.0)).unwrap_or(SignedDuration::MAX);
    elapsed(d)
}

/// The page of a job.
pub fn job_href(id: &str) -> String {
    format!("/jobs/{}", encode(id))
}

/// A link to a job, its id as code: a long id is cut short with an
/// ellipsis (the whole of it in the title) so it cannot widen its table.
pub fn job_link(id: &str) -> Markup {
    html! { a.clip href=(job_href(id)) title=(id) { code { (id) } } }
}

/// A name from the queue (queue, worker, host, unit) in a table cell: a
/// long one is cut short with an ellipsis, the whole of it in the title.
pub fn clipped(text: &str) -> Markup {
    html! { span.clip title=(text) { (text) } }
}

/// A query string (`?a=1&b=2`) of the pairs whose value is not empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A one-button form posting `action` (`retry`, `cancel`, `restart`) for
/// the job `id`, which leads back to the page at `back`; nothing when
/// actions are off. `app.js` hides it once the job is in none of the
/// states it applies to, and asks before a cancel, which cannot be undone
/// (without the script the button posts at once).
pub fn job_action(ctx: &Ctx, id: &str, action: BulkAction, back: &str) -> Markup {
    let (name, label) = match action {
        BulkAction::RetryDead => ("retry", "Retry"),
        BulkAction::Restart => ("restart", "Restart"),
        BulkAction::Cancel => ("cancel", "Cancel"),
        // Not an action on one job (the dead letter's purge form).
        BulkAction::Purge => return html! {},
    };
    let confirm =
        matches!(action, BulkAction::Cancel).then_some("Cancel this job? It will not run again.");
    let Some(token) = ctx.form_token() else {
        return html! {};
    };
    let states: Vec<&str> = action.applies_to().iter().map(|s| s.as_str()).collect();
    html! {
        form.action method="post" action=(format!("{}/{name}", job_href(id))) data-states=(states.join(" ")) {
            (form_fields(token, back))
            button type="submit" data-action=(name) data-confirm=[confirm] { (label) }
        }
    }
}

/// The hidden fields every action form carries: its CSRF token, and the
/// page the server sends the browser back to (`back`).
pub fn form_fields(token: &str, back: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(token);
        input type="hidden" name="back" value=(back);
    }
}

/// A table inside its own horizontally scrolling box (phones).
pub fn scroll(table: Markup) -> Markup {
    html! { div.scroll { (table) } }
}

/// The first line of a message, for table cells (the full text is the
/// cell's title).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A column of a table's header: its label, and whether it holds numbers
/// (right-aligned).
pub struct Col(&'static str, bool);

pub const fn text(label: &'static str) -> Col {
    Col(label, false)
}

pub const fn num(label: &'static str) -> Col {
    Col(label, true)
}

/// A table's header row.
pub fn head(columns: &[Col]) -> Markup {
    html! {
        thead { tr {
            @for Col(label, numeric) in columns {
                th.num[*numeric] scope="col" { (label) }
            }
        } }
    }
}
