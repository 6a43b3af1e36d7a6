//! `/dlq`: the dead letter queue, newest first, each job with its last
//! error and (actions on) a retry button; a purge form for old finished
//! jobs. `app.js` refreshes it from `/api/dlq`.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{
    clipped, first_line, form_fields, head, job_action, job_link, num, scroll, text, time,
};
use crate::store::{BulkAction, JobPage};
use maud::{Markup, html};

pub fn dlq(ctx: &Ctx, dead: &JobPage) -> Markup {
    let mut columns = vec![
        text("id"),
        text("queue"),
        text("command"),
        num("runs"),
        text("died"),
        text("last error"),
    ];
    if ctx.actions {
        columns.push(text("action"));
    }
    let main = html! {
        h1 { "Dead letter" }
        p.note {
            "Jobs whose retries are spent. "
            @if dead.total > dead.jobs.len() as u64 {
                "The newest " (dead.jobs.len()) " of " span data-live="total" { (dead.total) } "."
            } @else {
                span data-live="total" { (dead.total) } " in all."
            }
        }
        (scroll(html! {
            table data-table="dlq" data-live-list="jobs" data-live-key="id" data-live-row="job" {
                (head(&columns))
                tbody {
                    @for job in &dead.jobs {
                        @let error = job.last_error.as_deref().unwrap_or("");
                        tr data-job=(job.id) {
                            td { (job_link(&job.id)) }
                            td { (clipped(&job.queue)) }
                            td.command { code { (job.command) } }
                            td.num data-live="attempts" { (job.attempts) }
                            td { (time(job.finished_at, None)) }
                            td.error data-field="error" title=[(!error.is_empty()).then_some(error)]
                                data-live="last_error" data-live-format="firstline" { (first_line(error)) }
                            @if ctx.actions { td { (job_action(ctx, &job.id, BulkAction::RetryDead, "/dlq")) } }
                        }
                    }
                }
            }
        }))
        @if dead.jobs.is_empty() { p.empty { "No dead jobs." } }
        @if let Some(token) = ctx.form_token() {
            section {
                h2 { "Purge" }
                form.purge method="post" action="/dlq/purge" data-form="purge" {
                    (form_fields(token, "/dlq"))
                    label {
                        "Delete finished jobs (completed, dead, cancelled) that finished more than "
                        input name="older_than" value="7d" size="6" required pattern="[0-9smhd ]+"
                            title="a duration: 30m, 12h, 7d";
                        " ago, with their history. "
                    }
                    button type="submit" data-action="purge"
                        data-confirm="Delete every completed, dead and cancelled job this old, in every queue, with its history? This cannot be undone." { "Purge" }
                }
            }
        }
    };
    page(ctx, Page::Dlq, "Dead letter", Some("/api/dlq"), main)
}
