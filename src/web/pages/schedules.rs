//! `/schedules`: every schedule, when it fires and its last job. A
//! schedule's job template is shown by its command only: its env values
//! stay in the store.

use super::Ctx;
use super::layout::{Page, page};
use super::parts::{NONE, head, job_link, scroll, state, text, time};
use crate::store::schedules::ScheduleRow;
use maud::{Markup, html};

pub fn schedules(ctx: &Ctx, schedules: &[ScheduleRow]) -> Markup {
    let main = html! {
        h1 { "Schedules" }
        (scroll(html! {
            table data-table="schedules" data-live-list="schedules" data-live-key="name" data-live-row="schedule" {
                (head(&[text("name"), text("on calendar"), text("command"), text("driver"), text("overlap"), text("next"), text("last job"), text("last fired")]))
                tbody {
                    @for s in schedules {
                        tr data-schedule=(s.name) {
                            th scope="row" { (s.name) }
                            td {
                                @for (i, line) in s.on_calendar.iter().enumerate() {
                                    @if i > 0 { br; }
                                    code { (line) }
                                }
                                " " span.muted { (s.time_zone) }
                            }
                            td.command { code { (s.job.get("command").and_then(|c| c.as_str()).unwrap_or(NONE)) } }
                            td {
                                (s.driver.as_str())
                                @if let Some(host) = &s.host { " on " (host) }
                            }
                            td { (s.overlap.as_str()) }
                            td { (time(s.next_elapse_at, Some("next_elapse_at"))) }
                            td {
                                @match (&s.last_job_id, s.last_job_state) {
                                    (Some(id), Some(st)) => { (job_link(id)) " " (state(st, Some("last_job_state"))) }
                                    (Some(id), None) => { (job_link(id)) " " span.muted { "purged" } }
                                    (None, _) => { (NONE) }
                                }
                            }
                            td { (time(s.last_fired_at, Some("last_fired_at"))) }
                        }
                    }
                }
            }
        }))
        @if schedules.is_empty() { p.empty { "No schedule. Add one with " code { "queuectl schedule add" } "." } }
    };
    page(
        ctx,
        Page::Schedules,
        "Schedules",
        Some("/api/schedules"),
        main,
    )
}
