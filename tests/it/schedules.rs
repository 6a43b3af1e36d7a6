//! Schedules on a real systemd: `schedule add --user` writes a timer and a
//! service into a private user manager (`support::systemd`), whose fires
//! run `queuectl schedule fire`. These skip with a reason where the harness
//! cannot run, and must run when CI=true. The workers' fallback (no
//! systemd) is in `schedule_fallback.rs`.

use crate::support::wait_until;
use crate::systemd::SystemdQueue;
use jiff::Timestamp;
use queuectl::domain::calendar::Calendar;
use serde_json::Value;
use std::process::Child;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

/// The jobs schedule `name` enqueued.
fn jobs_of(q: &SystemdQueue, name: &str) -> Vec<Value> {
    q.json(&["list", "--all"])["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["schedule"] == name)
        .cloned()
        .collect()
}

fn service(name: &str) -> String {
    format!("queuectl-schedule-{name}.service")
}

fn timer(name: &str) -> String {
    format!("queuectl-schedule-{name}.timer")
}

/// `schedule add NAME --user ARGS` on the private manager.
fn try_add(q: &SystemdQueue, name: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["schedule", "add", name, "--user"];
    all.extend_from_slice(args);
    q.q(&all)
}

/// [`try_add`], which must succeed.
fn add(q: &SystemdQueue, name: &str, args: &[&str]) {
    let out = try_add(q, name, args);
    assert!(
        out.status.success(),
        "schedule add {name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A schedule elapsing every two seconds, running `command`.
fn every_two_seconds(q: &SystemdQueue, name: &str, flags: &[&str], command: &[&str]) {
    add(
        q,
        name,
        &[flags, &["--on-calendar", "*:*:0/2", "--"], command].concat(),
    );
}

/// How many times the schedule's service has run to its end.
fn fires(q: &SystemdQueue, name: &str) -> usize {
    q.sd.unit_log(&service(name))
        .lines()
        .filter(|line| line.starts_with("Finished "))
        .count()
}

/// A worker inside the harness's namespace, killed when dropped.
struct Worker(Child);

impl Worker {
    fn start(q: &SystemdQueue) -> Worker {
        let log = std::fs::File::create(q.path("worker.log")).unwrap();
        Worker(
            q.cli()
                .args(["worker", "run", "--name", "w1"])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_timer_a_few_seconds_ahead_fires_and_enqueues_exactly_once() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    // One elapse only: a date and a time, a few seconds from now.
    let at = Timestamp::from_second(Timestamp::now().as_second() + 10).unwrap();
    let calendar = at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    add(
        &q,
        "once",
        &["--on-calendar", &calendar, "--", "echo", "tick"],
    );
    let unit_dir = q.sd.unit_dir();
    let timer_text = std::fs::read_to_string(unit_dir.join(timer("once"))).unwrap();
    assert!(
        timer_text.contains(&format!("OnCalendar={calendar}\n")),
        "{timer_text}"
    );
    let service_text = std::fs::read_to_string(unit_dir.join(service("once"))).unwrap();
    assert!(
        !service_text.contains("echo"),
        "the job stays in the queue: {service_text}"
    );
    wait_until("the timer fired", WAIT, || fires(&q, "once") == 1);
    let jobs = jobs_of(&q, "once");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["command"], "echo tick");
    let fired_at: Timestamp = jobs[0]["created_at"].as_str().unwrap().parse().unwrap();
    assert!(fired_at >= at, "fired at {fired_at}, not before {at}");
    // Its only elapse is past: nothing more fires.
    let list = q.json(&["schedule", "list", "--user"]);
    let row = &list["schedules"][0];
    assert_eq!(row["last_job_id"], jobs[0]["id"]);
    assert_eq!(row["last_job_state"], "pending");
    assert_eq!(row["next_elapse"], Value::Null, "{row}");
    assert_eq!(fires(&q, "once"), 1);
    assert_eq!(jobs_of(&q, "once").len(), 1);
}

#[test]
fn a_second_elapse_while_the_first_job_runs_is_skipped() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    let _worker = Worker::start(&q);
    every_two_seconds(&q, "slow", &[], &["sleep", "12"]);
    wait_until("two more elapses while the first job runs", WAIT, || {
        fires(&q, "slow") >= 3
    });
    q.ok(&["schedule", "remove", "slow", "--user"]);
    let jobs = jobs_of(&q, "slow");
    assert_eq!(
        jobs.len(),
        1,
        "one job for the elapses while it ran: {jobs:?}"
    );
    assert_eq!(jobs[0]["state"], "processing");
    let log = q.sd.unit_log(&service("slow"));
    assert!(log.contains("skipped: job"), "{log}");
}

#[test]
fn a_second_elapse_while_the_first_job_waits_is_replaced() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    // No worker: the first job waits, and the next elapses update it.
    every_two_seconds(&q, "fresh", &["--overlap", "replace"], &["echo", "v1"]);
    wait_until("the first fire", WAIT, || fires(&q, "fresh") >= 1);
    let first = jobs_of(&q, "fresh");
    every_two_seconds(
        &q,
        "fresh",
        &["--replace", "--overlap", "replace"],
        &["echo", "v2"],
    );
    let before = fires(&q, "fresh");
    wait_until("two more elapses", WAIT, || {
        fires(&q, "fresh") >= before + 2
    });
    q.ok(&["schedule", "remove", "fresh", "--user"]);
    let jobs = jobs_of(&q, "fresh");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], first[0]["id"]);
    assert_eq!(
        jobs[0]["command"], "echo v2",
        "the waiting job took the new template"
    );
}

#[test]
fn a_second_elapse_with_overlap_queue_enqueues_another() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    every_two_seconds(&q, "each", &["--overlap", "queue"], &["true"]);
    wait_until("three elapses", WAIT, || fires(&q, "each") >= 3);
    q.ok(&["schedule", "remove", "each", "--user"]);
    let fired = fires(&q, "each");
    let jobs = jobs_of(&q, "each");
    assert_eq!(jobs.len(), fired, "one job per fire: {jobs:?}");
}

#[test]
fn schedule_list_shows_the_next_elapse_from_the_manager() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    let expr = "*-*-* 03:17:00 UTC";
    add(&q, "nightly", &["--on-calendar", expr, "--", "true"]);
    let list = q.json(&["schedule", "list", "--user"]);
    let row = &list["schedules"][0];
    assert_eq!(row["name"], "nightly");
    assert_eq!(row["driver"], "systemd");
    let next: Timestamp = row["next_elapse"].as_str().unwrap().parse().unwrap();
    let expected = Calendar::parse(expr)
        .unwrap()
        .next_after(Timestamp::now(), &jiff::tz::TimeZone::UTC)
        .unwrap();
    assert_eq!(next, expected);
    // The manager's own word, as systemctl shows it.
    let shown =
        q.sd.command("systemctl")
            .args([
                "--user",
                "show",
                "--value",
                "-p",
                "NextElapseUSecRealtime",
                &timer("nightly"),
            ])
            .env("TZ", "UTC")
            .output()
            .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).trim().to_owned();
    assert_eq!(
        shown,
        expected.strftime("%a %Y-%m-%d 03:17:00 UTC").to_string()
    );
    let text = q.ok(&["--utc", "schedule", "list", "--user"]);
    assert!(
        text.contains(&expected.strftime("%Y-%m-%d 03:17:00 UTC").to_string()),
        "{text}"
    );
}

#[test]
fn schedule_remove_deletes_units_and_row() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    add(&q, "gone", &["--on-calendar", "hourly", "--", "true"]);
    let unit_dir = q.sd.unit_dir();
    assert!(unit_dir.join(timer("gone")).exists());
    // Replaced by a schedule the workers fire: its timer goes.
    add(&q, "moved", &["--on-calendar", "hourly", "--", "true"]);
    let moved = q
        .cli()
        .args([
            "schedule",
            "add",
            "moved",
            "--replace",
            "--driver",
            "workers",
        ])
        .args(["--on-calendar", "hourly", "--", "true"])
        .output()
        .unwrap();
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(!unit_dir.join(timer("moved")).exists());
    assert!(!unit_dir.join(service("moved")).exists());
    q.ok(&["schedule", "remove", "moved"]);
    q.ok(&["schedule", "remove", "gone", "--user"]);
    assert!(!unit_dir.join(timer("gone")).exists());
    assert!(!unit_dir.join(service("gone")).exists());
    let timers = q.sd.systemctl(&["list-timers", "--all", "--no-legend"]);
    assert!(!String::from_utf8_lossy(&timers.stdout).contains("queuectl-schedule-gone"));
    assert_eq!(
        q.json(&["schedule", "list"])["schedules"],
        serde_json::json!([])
    );
    let again = q.q(&["schedule", "remove", "gone", "--user"]);
    assert_eq!(again.status.code(), Some(3));

    // A unit queuectl did not write is left alone, and so is its row.
    std::fs::write(
        unit_dir.join(timer("theirs")),
        "[Timer]\nOnCalendar=daily\n",
    )
    .unwrap();
    let refused = try_add(&q, "theirs", &["--on-calendar", "daily", "--", "true"]);
    assert_eq!(
        refused.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let refused = q.q(&["schedule", "remove", "theirs", "--user"]);
    assert_eq!(refused.status.code(), Some(4));
    assert_eq!(
        std::fs::read_to_string(unit_dir.join(timer("theirs"))).unwrap(),
        "[Timer]\nOnCalendar=daily\n"
    );
}

#[test]
fn a_calendar_systemd_refuses_writes_nothing() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    for bad in [
        "Mon..Fri 25:00",
        "daily\nOnCalendar=minutely",
        "tomorrow-ish",
    ] {
        let out = try_add(&q, "bad", &["--on-calendar", bad, "--", "true"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nor where the system manages the unit files (NixOS).
    let managed = q
        .cli()
        .args([
            "schedule",
            "add",
            "bad",
            "--user",
            "--on-calendar",
            "daily",
            "--",
            "true",
        ])
        .env("QUEUECTL_UNITS_MANAGED", "1")
        .output()
        .unwrap();
    assert_eq!(managed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&managed.stderr).contains("services.queuectl.schedules"));
    let unit_dir = q.sd.unit_dir();
    assert!(!unit_dir.join(timer("bad")).exists());
    assert!(!unit_dir.join(service("bad")).exists());
    assert!(!q.path("state/queue.db").exists(), "no queue was made");
}

#[test]
fn unsafe_schedule_names_are_refused() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    for name in ["../x", "a.b", "x@y", "a b", "a%i", ""] {
        let out = try_add(&q, name, &["--on-calendar", "daily", "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{name:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid schedule name"), "{name:?}: {err}");
    }
    let written: Vec<_> = std::fs::read_dir(q.sd.unit_dir())
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        written
            .iter()
            .all(|f| !f.to_string_lossy().contains("schedule")),
        "{written:?}"
    );
}

#[test]
fn a_declared_schedule_is_removed_only_once_its_timer_is_gone() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    // As the NixOS module's service fires it: the row is written, managed.
    let spec = q.path("nightly.json");
    std::fs::write(
        &spec,
        r#"{"on_calendar":["daily"],"job":{"command":"true"}}"#,
    )
    .unwrap();
    q.ok(&[
        "schedule",
        "fire",
        "nightly",
        "--spec",
        spec.to_str().unwrap(),
    ]);
    let list = q.json(&["schedule", "list", "--user"]);
    assert_eq!(list["schedules"][0]["managed"], true);
    // The system's own timer (no queuectl marker), as NixOS installs it.
    let unit_dir = q.sd.unit_dir();
    std::fs::create_dir_all(&unit_dir).unwrap();
    std::fs::write(
        unit_dir.join(timer("nightly")),
        "[Timer]\nOnCalendar=daily\n",
    )
    .unwrap();
    q.sd.systemctl(&["daemon-reload"]);
    let refused = q.q(&["schedule", "remove", "nightly", "--user"]);
    assert_eq!(refused.status.code(), Some(4));
    assert!(unit_dir.join(timer("nightly")).exists());
    // Its declaration gone, the row goes too.
    std::fs::remove_file(unit_dir.join(timer("nightly"))).unwrap();
    q.sd.systemctl(&["daemon-reload"]);
    q.ok(&["schedule", "remove", "nightly", "--user"]);
    assert_eq!(
        q.json(&["schedule", "list", "--user"])["schedules"],
        serde_json::json!([])
    );
}

#[test]
fn schedule_list_outside_a_reachable_manager_still_lists_every_row() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    add(&q, "t1", &["--on-calendar", "daily", "--", "true"]);
    // In here /run/systemd/system exists but no system bus answers: the
    // system scope is not there, and listing it must not fail.
    let out = q.q(&["schedule", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("t1"), "{stdout}");
}
