//! The renderers on hostile data: every value from the queue comes out as
//! text, env values never come out, and the DOM hooks the script and the
//! browser tests use are there.

use super::*;
use crate::domain::schedule::{Driver, Overlap};
use crate::domain::{AttemptOutcome, JobState};
use crate::output::Destination;
use crate::store::dashboard::{
    JobCursor, JobSearch, MinuteBucket, Overview, QueueLag, QueueStateCount, SearchPage,
};
use crate::store::schedules::ScheduleRow;
use crate::store::{Attempt, Dependencies, Job, JobPage, Linked, QueueRow, WorkerRow};
use crate::views::{Liveness, WorkerView};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

const SCRIPT: &str = "<script>alert(1)</script>";
const BREAKOUT: &str = r#""><img src=x onerror=alert(1)>"#;
const SECRET: &str = "s3cr3t-value-never-shown";

fn now() -> Timestamp {
    "2026-01-15T13:05:09Z".parse().unwrap()
}

fn ctx(actions: bool) -> Ctx {
    Ctx {
        csrf: Some("tok-123".into()),
        actions,
        now: now(),
        db: format!("/var/lib/queuectl/{SCRIPT}.db"),
    }
}

fn job(id: &str, state: JobState) -> Job {
    Job {
        id: id.into(),
        command: format!("echo {SCRIPT} {BREAKOUT} & true"),
        state,
        priority: 0,
        run_at: now(),
        max_retries: 3,
        timeout_seconds: 60,
        env: Ok(BTreeMap::from([(
            "API_TOKEN".to_owned(),
            SECRET.to_owned(),
        )])),
        env_file: None,
        cwd: Some(BREAKOUT.into()),
        attempts: 2,
        failures: 2,
        created_at: now(),
        updated_at: now(),
        finished_at: Some(now()),
        worker: Some(format!("host/{SCRIPT}")),
        lease_expires_at: None,
        cancel_requested: false,
        last_error: Some(format!("exit 1: {BREAKOUT}\nsecond line")),
        queue: SCRIPT.into(),
        deps_left: 0,
        unique_key: Some(BREAKOUT.into()),
        schedule: None,
    }
}

fn attempt(number: u32, outcome: Option<AttemptOutcome>) -> Attempt {
    Attempt {
        number,
        worker: BREAKOUT.into(),
        started_at: now(),
        finished_at: outcome.map(|_| now()),
        outcome,
        exit_code: outcome.map(|_| 1),
        signal: None,
        error: Some(SCRIPT.into()),
        output: Destination::Journal,
        output_truncated: false,
        host: Some(SCRIPT.into()),
        cgroup: None,
        output_tail: Some(format!("out {SCRIPT}\n{BREAKOUT}\n")),
    }
}

fn queue(name: &str) -> QueueRow {
    QueueRow {
        paused: true,
        waiting: 4,
        ..QueueRow::empty(name)
    }
}

fn worker(name: &str) -> WorkerView {
    worker_beating(name, 0)
}

/// A worker on another host whose last heartbeat was `seconds_ago`, judged
/// as the dashboard judges it (silent after a minute).
fn worker_beating(name: &str, seconds_ago: i64) -> WorkerView {
    let row = WorkerRow {
        name: name.into(),
        pid: 42,
        host: BREAKOUT.into(),
        started_at: now(),
        heartbeat_at: now() - SignedDuration::from_secs(seconds_ago),
        status: SCRIPT.into(),
        unit: Some(BREAKOUT.into()),
        slots: 2,
        jobs: vec![SCRIPT.into()],
    };
    let silent_after = SignedDuration::from_secs(60);
    crate::views::worker_views(&[row], &[], "this host", now(), silent_after).remove(0)
}

fn overview_data() -> Overview {
    let count = |queue: &str, state, jobs| QueueStateCount {
        queue: queue.into(),
        state,
        jobs,
    };
    Overview {
        now: now(),
        counts: vec![
            count("default", JobState::Pending, 5),
            count("default", JobState::Dead, 1),
            count(SCRIPT, JobState::Pending, 2),
            count(SCRIPT, JobState::Completed, 7),
        ],
        lag: vec![QueueLag {
            queue: SCRIPT.into(),
            seconds: 72.4,
        }],
        paused: Vec::new(),
        last_hour: (0..60)
            .map(|i| MinuteBucket {
                start: now() - jiff::SignedDuration::from_mins(60 - i),
                succeeded: 3,
                failed: u64::from(i == 59),
            })
            .collect(),
        duration_p50_ms: Some(250),
        duration_p95_ms: Some(72_000),
    }
}

fn schedule(name: &str) -> ScheduleRow {
    ScheduleRow {
        name: name.into(),
        on_calendar: vec!["*-*-* 03:00:00".into()],
        time_zone: "UTC".into(),
        job: serde_json::json!({
            "command": format!("backup {SCRIPT}"),
            "env": { "DB_PASSWORD": SECRET },
        }),
        overlap: Overlap::Skip,
        persistent: false,
        randomized_delay: Duration::ZERO,
        driver: Driver::Workers,
        host: None,
        managed: false,
        next_elapse_at: Some(now()),
        last_job_id: Some(BREAKOUT.into()),
        last_job_state: Some(JobState::Completed),
        last_fired_at: Some(now()),
        created_at: now(),
        updated_at: now(),
    }
}

/// Every page, rendered with hostile values everywhere, actions on or off.
fn every_page(actions: bool) -> Vec<(&'static str, String)> {
    let ctx = ctx(actions);
    let deps = Dependencies {
        after: vec![Linked {
            id: SCRIPT.into(),
            state: JobState::Completed,
        }],
        dependents: vec![Linked {
            id: BREAKOUT.into(),
            state: JobState::Pending,
        }],
    };
    let search = JobSearch {
        states: vec![JobState::Dead],
        queue: Some(BREAKOUT.into()),
        text: Some(SCRIPT.into()),
        before: None,
        limit: 50,
    };
    let found = SearchPage {
        jobs: vec![
            job(SCRIPT, JobState::Dead),
            job(BREAKOUT, JobState::Pending),
        ],
        next: Some(JobCursor(41)),
        scanned_all: true,
    };
    let dead = JobPage {
        jobs: vec![job(SCRIPT, JobState::Dead)],
        total: 3,
    };
    let attempts = [
        attempt(1, Some(AttemptOutcome::Failed)),
        attempt(2, Some(AttemptOutcome::TimedOut)),
    ];
    vec![
        (
            "overview",
            overview(
                &ctx,
                &overview_data(),
                &[worker(SCRIPT), worker("w2")],
                &[queue(BREAKOUT)],
            )
            .into_string(),
        ),
        (
            "jobs",
            jobs(&ctx, &search, &found, &[queue(SCRIPT)]).into_string(),
        ),
        (
            "job",
            super::job(&ctx, &job(SCRIPT, JobState::Dead), &attempts, &deps).into_string(),
        ),
        ("dlq", dlq(&ctx, &dead).into_string()),
        (
            "workers",
            workers(&ctx, &[worker(SCRIPT), worker(BREAKOUT)]).into_string(),
        ),
        (
            "queues",
            queues(&ctx, &[queue(SCRIPT), queue(BREAKOUT)]).into_string(),
        ),
        (
            "schedules",
            schedules(&ctx, &[schedule(SCRIPT), schedule(BREAKOUT)]).into_string(),
        ),
        ("error", error(&ctx, 404, BREAKOUT).into_string()),
    ]
}

#[test]
fn hostile_values_come_out_as_text_on_every_page() {
    for actions in [false, true] {
        for (page, html) in every_page(actions) {
            assert!(!html.contains("<script>alert"), "{page}: {html}");
            assert!(!html.contains("<img"), "{page}: {html}");
            assert!(
                !html.contains(SCRIPT) && !html.contains(BREAKOUT),
                "{page}: {html}"
            );
            // The values are there, escaped.
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{page}: {html}"
            );
            if page != "error" {
                assert!(
                    html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
                    "{page}: {html}"
                );
            }
        }
    }
}

#[test]
fn no_page_shows_an_env_value() {
    for (page, html) in every_page(true) {
        assert!(!html.contains(SECRET), "{page} shows an env value");
    }
    let job_page = &every_page(false)[2].1;
    assert!(job_page.contains("<code>API_TOKEN</code>"), "{job_page}");
}

#[test]
fn pages_have_no_inline_script_or_style() {
    for (page, html) in every_page(true) {
        assert_eq!(html.matches("<script").count(), 1, "{page}");
        assert!(
            html.contains(r#"<script src="/assets/app.js?v="#),
            "{page}: {html}"
        );
        assert!(!html.contains("style="), "{page}: an inline style");
        assert!(!html.contains("<style"), "{page}: an inline style sheet");
        assert!(!html.contains("javascript:"), "{page}");
        for tag in tags(&html) {
            // Outside the quoted values (a value never holds a raw quote).
            let handler = tag
                .split('"')
                .step_by(2)
                .flat_map(str::split_whitespace)
                .any(|word| word.starts_with("on") && word.contains('='));
            assert!(!handler, "{page}: an event handler in {tag}");
        }
        assert!(html.contains(r#"<link rel="stylesheet" href="/assets/app.css?v="#));
    }
}

#[test]
fn every_page_has_the_frame_and_its_hooks() {
    for (page, html) in every_page(false) {
        assert!(html.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            html.contains(&format!(r#"<body data-page="{page}""#)),
            "{page}: {html}"
        );
        assert!(html.contains("<main>"), "{page}");
        for nav in ["overview", "jobs", "dlq", "workers", "queues", "schedules"] {
            assert!(
                html.contains(&format!(r#"data-nav="{nav}""#)),
                "{page} lacks nav {nav}"
            );
        }
    }
    let pages: BTreeMap<_, _> = every_page(true).into_iter().collect();
    let hooks: &[(&str, &[&str])] = &[
        (
            "overview",
            &[
                r#"data-poll="/api/overview""#,
                r#"<span class="num" data-count="pending">7</span>"#,
                r#"<span class="num" data-count="completed">7</span>"#,
                r#"<span class="num" data-count="dead">1</span>"#,
                r#"<span class="num" data-count="workers">2</span>"#,
                r#"<table data-table="queues">"#,
                r#"<tr data-queue="default">"#,
                r#"<td class="num" data-count="pending">5</td>"#,
                r#"data-lag="&lt;script&gt;alert(1)&lt;/script&gt;">1m12s</td>"#,
                r#"<td class="num" data-lag="default">0s</td>"#,
                r#"<svg class="chart" data-chart="last-hour""#,
                r#"data-stat="p50">250ms</dd>"#,
                r#"data-stat="p95">1m12s</dd>"#,
                r#"data-stat="failure-rate">0.6%</dd>"#,
                // A queue with settings and no jobs has a row too.
                r#"<tr data-queue="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">"#,
            ],
        ),
        (
            "jobs",
            &[
                r#"<table data-table="jobs""#,
                r#"<tr data-job="&lt;script&gt;alert(1)&lt;/script&gt;">"#,
                r#"<td data-field="state">"#,
                r#"<form class="filter" method="get" action="/jobs" data-form="filter""#,
                r#"<select name="state">"#,
                r#"<option value="dead" selected>dead</option>"#,
                r#"<input name="queue""#,
                r#"name="q" value="&lt;script&gt;alert(1)&lt;/script&gt;""#,
                // The next page keeps the filters, percent-encoded.
                r#"href="/jobs?state=dead&amp;queue=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E&amp;q=%3Cscript%3Ealert%281%29%3C%2Fscript%3E&amp;before=41" data-nav="next""#,
                r#"href="/jobs/%3Cscript%3Ealert%281%29%3C%2Fscript%3E""#,
            ],
        ),
        (
            "job",
            &[
                r#"<code data-field="id">&lt;script&gt;alert(1)&lt;/script&gt;</code>"#,
                r#"data-field="state" data-live="state" data-live-format="state" data-state="dead">dead</span>"#,
                r#"<pre class="command" data-field="command">echo &lt;script&gt;"#,
                r#"<table data-table="attempts""#,
                r#"<tr data-attempt="2">"#,
                r#"data-outcome="timed_out" data-live="outcome" data-live-format="outcome">timed_out</td>"#,
                r#"<pre class="output" data-field="output">out &lt;script&gt;"#,
                r#"<code data-field="journalctl">journalctl QUEUECTL_JOB_ID='&lt;script&gt;alert(1)&lt;/script&gt;'</code>"#,
                r#"data-poll="/api/jobs/%3Cscript%3Ealert%281%29%3C%2Fscript%3E""#,
                r#"<li data-job="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">"#,
            ],
        ),
        (
            "dlq",
            &[
                r#"<table data-table="dlq""#,
                r#"<tr data-job="&lt;script&gt;alert(1)&lt;/script&gt;">"#,
                r#"data-field="error" title="exit 1: &quot;&gt;&lt;img src=x onerror=alert(1)&gt;"#,
                r#"data-field="error""#,
            ],
        ),
        (
            "workers",
            &[
                r#"<table data-table="workers""#,
                r#"<tr data-worker="&lt;script&gt;alert(1)&lt;/script&gt;">"#,
                r#"<tr data-worker="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">"#,
            ],
        ),
        (
            "queues",
            &[
                r#"<table data-table="queues""#,
                r#"<tr data-queue="&lt;script&gt;alert(1)&lt;/script&gt;">"#,
            ],
        ),
        (
            "schedules",
            &[
                r#"<table data-table="schedules""#,
                r#"<code>backup &lt;script&gt;alert(1)&lt;/script&gt;</code>"#,
            ],
        ),
    ];
    for (page, expected) in hooks {
        let html = &pages[page];
        for hook in *expected {
            assert!(html.contains(hook), "{page} lacks {hook}:\n{html}");
        }
    }
}

#[test]
fn action_buttons_only_with_actions_on_and_a_token() {
    for (page, html) in every_page(false) {
        assert!(!html.contains("data-action"), "{page}");
        assert!(!html.contains(r#"method="post""#), "{page}");
        assert!(!html.contains("tok-123"), "{page}");
    }
    let on: BTreeMap<_, _> = every_page(true).into_iter().collect();
    // A dead job: retry and restart, not cancel.
    let job = &on["job"];
    let form = r#"<form class="action" method="post" action="/jobs/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/retry" data-states="dead"><input type="hidden" name="csrf" value="tok-123"><input type="hidden" name="back" value="/jobs/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"><button type="submit" data-action="retry">"#;
    assert!(job.contains(form), "{job}");
    assert!(job.contains(r#"data-action="restart""#));
    // Each form names the states it applies to (app.js hides it after).
    assert!(job.contains(r#"/retry" data-states="dead">"#), "{job}");
    assert!(job.contains(r#"/restart" data-states="completed dead cancelled">"#));
    assert!(!job.contains(r#"data-action="cancel""#));
    let dlq = &on["dlq"];
    assert!(dlq.contains(r#"data-action="retry""#), "{dlq}");
    // The dead letter's forms lead back to it.
    assert_eq!(
        dlq.matches(r#"<input type="hidden" name="back" value="/dlq">"#)
            .count(),
        2,
        "{dlq}"
    );
    assert!(dlq.contains(r#"action="/dlq/purge""#), "{dlq}");
    assert!(dlq.contains(r#"name="older_than""#), "{dlq}");
    // Actions on but no token: no form (it would fail its CSRF check).
    let tokenless = Ctx {
        csrf: None,
        ..ctx(true)
    };
    let page = dlq_page(&tokenless);
    assert!(!page.contains("data-action"), "{page}");
}

fn dlq_page(ctx: &Ctx) -> String {
    let dead = JobPage {
        jobs: vec![job("j1", JobState::Dead)],
        total: 1,
    };
    dlq(ctx, &dead).into_string()
}

#[test]
fn a_running_job_can_be_cancelled_and_says_how_long_it_has_run() {
    let ctx = ctx(true);
    let running = Job {
        finished_at: None,
        ..job("j1", JobState::Processing)
    };
    let mut current = attempt(3, None);
    current.started_at = now() - jiff::SignedDuration::from_secs(75);
    current.output_tail = None;
    let html = super::job(&ctx, &running, &[current], &Dependencies::default()).into_string();
    assert!(html.contains(r#"data-action="cancel""#), "{html}");
    assert!(!html.contains(r#"data-action="retry""#));
    assert!(html.contains("running 1m15s"), "{html}");
    assert!(html.contains(
        r#"data-outcome="running" data-live="outcome" data-live-format="outcome">running</td>"#
    ));
    assert!(html.contains("The queue kept no output of attempt 3"));
    assert!(html.contains(r#"<pre class="output" data-field="output"></pre>"#));
    assert!(html.contains(r#"<code data-field="journalctl">journalctl QUEUECTL_JOB_ID=j1</code>"#));
}

#[test]
fn the_first_page_of_jobs_has_no_cursor_and_the_last_no_next_link() {
    let ctx = ctx(false);
    let html = jobs(
        &ctx,
        &JobSearch {
            limit: 50,
            ..JobSearch::default()
        },
        &SearchPage {
            jobs: vec![],
            next: None,
            scanned_all: true,
        },
        &[],
    )
    .into_string();
    assert!(html.contains(r#"data-poll="/api/jobs""#), "{html}");
    assert!(!html.contains(r#"data-nav="next""#));
    assert!(html.contains(r#"<option value="" selected>any</option>"#));
    assert!(html.contains("No job matches."));
}

#[test]
fn a_page_that_stopped_at_the_read_bound_says_so_and_links_older() {
    let html = jobs(
        &ctx(false),
        &JobSearch {
            text: Some("nothing".into()),
            limit: 50,
            ..JobSearch::default()
        },
        &SearchPage {
            jobs: vec![],
            next: Some(JobCursor(900_001)),
            scanned_all: false,
        },
        &[],
    )
    .into_string();
    assert!(html.contains(r#"data-field="scanned""#), "{html}");
    assert!(!html.contains("No job matches."), "{html}");
    assert!(html.contains("before=900001"), "{html}");
}

#[test]
fn several_states_stay_chosen_across_pages() {
    let search = JobSearch {
        states: vec![JobState::Pending, JobState::Failed],
        limit: 50,
        ..JobSearch::default()
    };
    let page = SearchPage {
        jobs: vec![job("j1", JobState::Failed)],
        next: Some(JobCursor(7)),
        scanned_all: true,
    };
    let html = jobs(&ctx(false), &search, &page, &[]).into_string();
    assert!(
        html.contains(r#"<option value="pending,failed" selected>pending or failed</option>"#),
        "{html}"
    );
    assert!(html.contains(r#"href="/jobs?state=pending%2Cfailed&amp;before=7" data-nav="next""#));
    assert!(html.contains(r#"data-poll="/api/jobs?state=pending%2Cfailed""#));
    assert!(!html.contains(r#"<option value="" selected>"#));
}

#[test]
fn the_error_page_says_the_status_and_the_message_only() {
    let html = error(
        &ctx(false),
        503,
        "the queue cannot be read: database is locked",
    )
    .into_string();
    assert!(html.contains("<h1>503 Service unavailable</h1>"), "{html}");
    assert!(html.contains("the queue cannot be read: database is locked"));
    assert!(html.contains(r#"<body data-page="error">"#));
    // Nothing to poll: an error page stays as it is.
    assert!(!html.contains("data-poll"));
}

#[test]
fn asset_urls_carry_their_hash() {
    let html = error(&ctx(false), 404, "no such page").into_string();
    for name in ["app.css", "app.js", "favicon.svg"] {
        assert!(html.contains(&crate::web::assets::url(name)), "{name}");
    }
}

/// The tags of a page (`<` … `>`): data never holds a raw `<`, so each is
/// one the renderer wrote.
fn tags(html: &str) -> impl Iterator<Item = &str> {
    html.split('<')
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or(rest))
}

#[test]
fn the_overview_counts_and_lists_only_live_workers() {
    let mut dead = worker_beating("died", 75);
    dead.liveness = Liveness::Dead;
    let workers = [worker("w1"), worker_beating("hung", 75), dead];
    let html = overview(&ctx(false), &overview_data(), &workers, &[]).into_string();
    assert!(
        html.contains(r#"<span class="num" data-count="workers">1</span>"#),
        "{html}"
    );
    assert!(html.contains(r#"<li data-worker="w1">"#), "{html}");
    assert!(!html.contains("hung") && !html.contains("died"), "{html}");
    assert!(
        html.contains(r#"data-empty="live-workers" hidden"#),
        "{html}"
    );

    let html = overview(&ctx(false), &overview_data(), &workers[1..], &[]).into_string();
    assert!(
        html.contains(r#"<span class="num" data-count="workers">0</span>"#),
        "{html}"
    );
    assert!(
        !html.contains(r#"data-empty="live-workers" hidden"#),
        "{html}"
    );
}

#[test]
fn the_workers_page_marks_silent_and_dead_workers_and_shows_heartbeat_ages() {
    let mut dead = worker_beating("died", 5);
    dead.liveness = Liveness::Dead;
    let workers = [worker_beating("w1", 3), worker_beating("hung", 75), dead];
    let html = super::workers(&ctx(false), &workers).into_string();
    let row = |name: &str| {
        let start = html.find(&format!(r#"<tr data-worker="{name}">"#)).unwrap();
        let end = start + html[start..].find("</tr>").unwrap();
        html[start..end].to_owned()
    };
    let (live, hung, died) = (row("w1"), row("hung"), row("died"));
    assert!(live.contains(r#"data-liveness="live""#), "{live}");
    assert!(live.contains(">3s ago</span>"), "{live}");
    assert!(hung.contains(r#"data-liveness="silent""#), "{hung}");
    assert!(hung.contains(">1m15s ago</span>"), "{hung}");
    assert!(died.contains(r#"data-liveness="dead""#), "{died}");
    assert!(died.contains(">5s ago</span>"), "{died}");
}

#[test]
fn the_next_page_keeps_the_page_size_and_every_filter() {
    let search = JobSearch {
        states: vec![JobState::Pending, JobState::Failed],
        queue: Some("mail".into()),
        text: Some("a b".into()),
        before: Some(JobCursor(99)),
        limit: 3,
    };
    let page_ = SearchPage {
        jobs: vec![],
        next: Some(JobCursor(17)),
        scanned_all: true,
    };
    let html = jobs(&ctx(false), &search, &page_, &[]).into_string();
    assert!(
        html.contains(r#"href="/jobs?state=pending%2Cfailed&amp;queue=mail&amp;q=a%20b&amp;limit=3&amp;before=17" data-nav="next""#),
        "{html}"
    );
    // Filtering again keeps the page size too.
    assert!(
        html.contains(r#"<input type="hidden" name="limit" value="3">"#),
        "{html}"
    );
    // The default size is not spelled out.
    let html = jobs(
        &ctx(false),
        &JobSearch {
            limit: 50,
            ..search
        },
        &page_,
        &[],
    )
    .into_string();
    assert!(!html.contains("limit"), "{html}");
}

#[test]
fn purge_and_cancel_ask_first_and_retry_does_not() {
    let dlq = dlq_page(&ctx(true));
    let purge = &dlq[dlq.find(r#"data-action="purge""#).unwrap()..];
    assert!(
        purge[..purge.find('>').unwrap()].contains(r#"data-confirm="Delete every"#),
        "{dlq}"
    );
    assert!(
        dlq.contains(r#"<button type="submit" data-action="retry">Retry</button>"#),
        "{dlq}"
    );
    let running = Job {
        finished_at: None,
        ..job("j1", JobState::Processing)
    };
    let html = super::job(&ctx(true), &running, &[], &Dependencies::default()).into_string();
    assert!(
        html.contains(r#"data-action="cancel" data-confirm="Cancel this job? It will not run again.">Cancel</button>"#),
        "{html}"
    );
    // The script that asks: a click on such a button, answered no, posts nothing.
    let script = std::str::from_utf8(crate::web::assets::asset("app.js").unwrap().bytes).unwrap();
    assert!(script.contains("closest('button[data-confirm]')"));
    assert!(script.contains("window.confirm(button.dataset.confirm)"));
}

#[test]
fn a_paused_queues_lag_says_paused() {
    let mut data = overview_data();
    data.paused = vec![SCRIPT.into()];
    let html = overview(&ctx(false), &data, &[], &[]).into_string();
    assert!(
        html.contains(r#"data-lag="&lt;script&gt;alert(1)&lt;/script&gt;" data-paused="" title="paused on purpose: its lag grows until it is resumed">paused 1m12s</td>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="num" data-lag="default">0s</td>"#),
        "{html}"
    );
}

#[test]
fn long_ids_and_names_are_cut_short_with_the_whole_in_a_title() {
    let long = "x".repeat(60);
    let search = JobSearch {
        limit: 50,
        ..JobSearch::default()
    };
    let found = SearchPage {
        jobs: vec![Job {
            queue: long.clone(),
            ..job(&long, JobState::Pending)
        }],
        next: None,
        scanned_all: true,
    };
    let html = jobs(&ctx(false), &search, &found, &[]).into_string();
    assert!(
        html.contains(&format!(
            r#"<a class="clip" href="/jobs/{long}" title="{long}"><code>{long}</code></a>"#
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            r#"<span class="clip" title="{long}">{long}</span>"#
        )),
        "{html}"
    );
    let css = std::str::from_utf8(crate::web::assets::asset("app.css").unwrap().bytes).unwrap();
    assert!(css.contains(".clip {") && css.contains("text-overflow: ellipsis;"));
}

#[test]
fn a_job_without_an_error_has_no_error_box() {
    let done = Job {
        last_error: None,
        ..job("j1", JobState::Completed)
    };
    let html = super::job(&ctx(false), &done, &[], &Dependencies::default()).into_string();
    assert!(!html.contains(r#"<pre class="error""#), "{html}");
    assert!(
        html.contains(r#"<span data-field="error" data-live="last_error">—</span>"#),
        "{html}"
    );
    let failed = super::job(
        &ctx(false),
        &job("j1", JobState::Dead),
        &[],
        &Dependencies::default(),
    )
    .into_string();
    assert!(
        failed.contains(r#"<pre class="error" data-field="error""#),
        "{failed}"
    );
}
