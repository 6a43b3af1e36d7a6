//! `/jobs/{id}`: one job: its spec (env names, never values), its
//! dependencies and dependents, every attempt, the output tail the queue
//! kept, and the journalctl command for the full output. `app.js`
//! refreshes the state and counters from `/api/jobs/{id}`.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{
    NONE, first_line, head, job_action, job_href, job_link, num, scroll, state, text, time,
};
use crate::domain::duration::{elapsed, took};
use crate::domain::echo::shell_word;
use crate::output::{Destination, OUTPUT_TAIL_BYTES};
use crate::store::{Attempt, BulkAction, Dependencies, Job, Linked};
use maud::{Markup, html};

/// The actions a job page offers, in order.
const ACTIONS: [BulkAction; 3] = [
    BulkAction::RetryDead,
    BulkAction::Restart,
    BulkAction::Cancel,
];

pub fn job(ctx: &Ctx, job: &Job, attempts: &[Attempt], deps: &Dependencies) -> Markup {
    let id = job.id.as_str();
    let here = job_href(id);
    let main = html! {
        h1.job-title {
            "Job " code data-field="id" { (id) } " "
            span data-field="state" data-live="state" data-live-format="state" data-state=(job.state.as_str()) {
                (job.state.as_str())
            }
        }
        @if ctx.actions {
            div.actions {
                @for action in ACTIONS {
                    @if action.applies_to().contains(&job.state) {
                        (job_action(ctx, id, action, &here))
                    }
                }
            }
        }
        (spec(job, deps))
        @if !deps.after.is_empty() || !deps.dependents.is_empty() {
            section {
                h2 { "Dependencies" }
                (linked("Waits for", "after", &deps.after))
                (linked("Waited for by", "dependents", &deps.dependents))
            }
        }
        section {
            h2 { "Attempts" }
            (attempt_table(ctx, attempts))
            @if attempts.is_empty() { p.empty { "Not run yet." } }
        }
        (output(id, attempts))
    };
    let title = format!("Job {id}");
    let poll = format!("/api{here}");
    page(ctx, Page::Job, &title, Some(&poll), main)
}

/// The job as submitted and where it stands.
fn spec(job: &Job, deps: &Dependencies) -> Markup {
    let timeout = match job.timeout_seconds {
        0 => "none".to_owned(),
        secs => elapsed(jiff::SignedDuration::from_secs(secs.into())),
    };
    html! {
        dl.spec {
            dt { "command" } dd { pre.command data-field="command" { (job.command) } }
            dt { "queue" } dd data-field="queue" { (job.queue) }
            dt { "runs" } dd {
                span data-live="attempts" { (job.attempts) } " run(s), "
                span data-live="failures" { (job.failures) } " failure(s) of max_retries " (job.max_retries)
            }
            dt { "priority" } dd { (job.priority) }
            dt { "timeout" } dd { (timeout) }
            dt { "created" } dd { (time(Some(job.created_at), None)) }
            dt { "due" } dd { (time(Some(job.run_at), Some("run_at"))) }
            dt { "finished" } dd { (time(job.finished_at, Some("finished_at"))) }
            dt { "worker" } dd data-live="worker" { (job.worker.as_deref().unwrap_or(NONE)) }
            @if job.deps_left > 0 {
                dt { "blocked" } dd { "waiting for " (job.deps_left) " of its " (deps.after.len()) " dependencies to complete" }
            }
            @if job.cancel_requested {
                dt { "cancel" } dd { "requested: the job ends cancelled however this attempt ends" }
            }
            dt { "env" } dd data-field="env" {
                // Values may be secrets: names only.
                @match &job.env {
                    Ok(vars) if vars.is_empty() => { (NONE) }
                    Ok(vars) => {
                        @for (i, name) in vars.keys().enumerate() {
                            @if i > 0 { ", " }
                            code { (name) }
                        }
                    }
                    Err(corrupt) => { strong { "corrupt: " (corrupt.to_string()) } }
                }
            }
            @if let Some(file) = &job.env_file { dt { "env file" } dd { code { (file) } } }
            @if let Some(cwd) = &job.cwd { dt { "cwd" } dd { code { (cwd) } } }
            @if let Some(key) = &job.unique_key { dt { "unique key" } dd { code { (key) } } }
            @if let Some(schedule) = &job.schedule { dt { "schedule" } dd { a href="/schedules" { (schedule) } } }
            dt { "last error" } dd {
                // No box around nothing: a job without an error shows a dash
                // (which app.js replaces by the error text if one comes).
                @match &job.last_error {
                    Some(error) => pre.error data-field="error" data-live="last_error" { (error) },
                    None => span data-field="error" data-live="last_error" { (NONE) },
                }
            }
        }
    }
}

/// One side of the job's dependencies, each job with its state.
fn linked(heading: &str, field: &str, jobs: &[Linked]) -> Markup {
    if jobs.is_empty() {
        return html! {};
    }
    html! {
        h3 { (heading) }
        ul.linked data-field=(field) {
            @for j in jobs {
                li data-job=(j.id) { (job_link(&j.id)) " " (state(j.state, None)) }
            }
        }
    }
}

fn attempt_table(ctx: &Ctx, attempts: &[Attempt]) -> Markup {
    scroll(html! {
        table data-table="attempts" data-live-list="attempt_history" data-live-key="number" data-live-row="attempt" {
            (head(&[num("#"), text("worker"), text("host"), text("started"), num("duration"), text("outcome"), num("exit"), text("error")]))
            tbody {
                @for a in attempts {
                    @let error = a.error.as_deref().unwrap_or("");
                    tr data-attempt=(a.number) {
                        td.num { (a.number) }
                        td { (a.worker) }
                        td { (a.host.as_deref().unwrap_or(NONE)) }
                        td { (time(Some(a.started_at), None)) }
                        td.num { (duration(ctx, a)) }
                        @let outcome = a.outcome.map_or("running", |o| o.as_str());
                        td data-field="outcome" data-outcome=(outcome) data-live="outcome" data-live-format="outcome" {
                            (outcome)
                        }
                        td.num { (exit(a)) }
                        td data-field="error" title=[(!error.is_empty()).then_some(error)]
                            data-live="error" data-live-format="firstline" { (first_line(error)) }
                    }
                }
            }
        }
    })
}

/// How long an attempt took, or has run so far.
fn duration(ctx: &Ctx, a: &Attempt) -> String {
    match a.duration() {
        Some(d) => jiff::SignedDuration::try_from(d).map_or_else(|_| NONE.to_owned(), took),
        None => format!("running {}", elapsed(ctx.now.duration_since(a.started_at))),
    }
}

/// Exit code, or the signal that ended it.
fn exit(a: &Attempt) -> String {
    match (a.exit_code, a.signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => NONE.to_owned(),
    }
}

/// The latest attempt's output tail as the queue kept it, and where the
/// full output of every attempt is.
fn output(id: &str, attempts: &[Attempt]) -> Markup {
    let latest = attempts.last();
    let tail = latest.and_then(|a| a.output_tail.as_deref());
    let files: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.output == Destination::File)
        .collect();
    html! {
        section {
            h2 { "Output" }
            @match (latest, tail) {
                (Some(a), Some(_)) => p.note {
                    "The end of attempt " (a.number) "'s output, as the queue keeps it (up to "
                    (OUTPUT_TAIL_BYTES / 1024) " KiB)"
                    @if a.output_truncated { "; some of it could not be stored" }
                    ":"
                },
                (Some(a), None) => p.note {
                    "The queue kept no output of attempt " (a.number)
                    " (still running, or it did not end normally)."
                },
                (None, _) => p.note { "No attempt yet." },
            }
            pre.output data-field="output" { (tail.unwrap_or("")) }
            p {
                "Full output, on the host that ran it: "
                code data-field="journalctl" { (format!("journalctl QUEUECTL_JOB_ID={}", shell_word(id))) }
            }
            @if !files.is_empty() {
                p.note {
                    "Attempts whose output went to a log file (not the journal): "
                    @for (i, a) in files.iter().enumerate() {
                        @if i > 0 { ", " }
                        (a.number) " on " (a.host.as_deref().unwrap_or("its host"))
                    }
                    "; read it there with "
                    code { (format!("queuectl logs {}", shell_word(id))) }
                    "."
                }
            }
        }
    }
}
