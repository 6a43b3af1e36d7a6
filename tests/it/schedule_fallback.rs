//! Schedules where no systemd manager runs (`--driver workers`): the
//! workers fire them, and the store makes each elapse enqueue exactly once
//! whatever the number of workers. Runs on SQLite, and again on PostgreSQL
//! in CI (`QUEUECTL_TEST_BACKEND=postgres`).

use crate::support::{TestEnv, wait_until};
use jiff::Timestamp;
use serde_json::Value;
use std::time::Duration;

/// The jobs schedule `name` enqueued, oldest first.
fn jobs_of(env: &TestEnv, name: &str) -> Vec<Value> {
    let mut jobs: Vec<Value> = env.json(&["list", "--all"])["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["schedule"] == name)
        .cloned()
        .collect();
    jobs.reverse();
    jobs
}

fn run_at(job: &Value) -> Timestamp {
    job["run_at"].as_str().unwrap().parse().unwrap()
}

/// `schedule add NAME --driver workers --on-calendar daily -- true`.
fn add_daily(env: &TestEnv, name: &str) -> std::process::Output {
    env.run(&[
        "schedule",
        "add",
        name,
        "--driver",
        "workers",
        "--on-calendar",
        "daily",
        "--",
        "true",
    ])
}

#[test]
fn two_workers_without_systemd_enqueue_once_per_elapse() {
    let mut env = TestEnv::new();
    env.ok(&[
        "schedule",
        "add",
        "tick",
        "--driver",
        "workers",
        "--overlap",
        "queue",
        "--on-calendar",
        "*:*:0/1",
        "--",
        "true",
    ]);
    env.spawn_worker("w1");
    env.spawn_worker("w2");
    wait_until("eight elapses fired", Duration::from_secs(60), || {
        jobs_of(&env, "tick").len() >= 8
    });
    env.ok(&["schedule", "remove", "tick"]);
    let jobs = jobs_of(&env, "tick");
    let due: Vec<Timestamp> = jobs.iter().map(run_at).collect();
    for pair in due.windows(2) {
        // One job per elapse, due at it: every second, none twice. (An
        // elapse a busy machine let pass by more than a lease is skipped,
        // not fired late; that leaves a gap, never a repeat.)
        assert!(pair[1] > pair[0], "{due:?}");
        assert_eq!(pair[1].subsec_nanosecond(), 0, "{due:?}");
    }
    let consecutive = due
        .windows(2)
        .filter(|pair| pair[1].duration_since(pair[0]) == jiff::SignedDuration::from_secs(1))
        .count();
    assert!(
        consecutive >= due.len() / 2,
        "mostly consecutive elapses: {due:?}"
    );
}

#[test]
fn schedule_run_enqueues_now_and_list_shows_the_last_job() {
    let env = TestEnv::new();
    env.ok(&[
        "schedule",
        "add",
        "report",
        "--driver",
        "workers",
        "--on-calendar",
        "Mon..Fri 02:00",
        "-e",
        "TOKEN=s3cret",
        "--priority",
        "4",
        "--",
        "make",
        "report",
    ]);
    let id = env.ok(&["schedule", "run", "report"]).trim().to_owned();
    let job = env.job(&id);
    assert_eq!(job["command"], "make report");
    assert_eq!(job["priority"], 4);
    assert_eq!(job["schedule"], "report");
    let list = env.json(&["schedule", "list"]);
    let row = &list["schedules"][0];
    assert_eq!(row["last_job_id"], id.as_str());
    assert_eq!(row["last_job_state"], "pending");
    assert_eq!(row["driver"], "workers");
    assert_eq!(row["job"]["env_keys"], serde_json::json!(["TOKEN"]));
    let shown = env.ok(&["--json", "schedule", "list"]) + &env.ok(&["schedule", "list"]);
    assert!(!shown.contains("s3cret"), "{shown}");
    let text = env.ok(&["schedule", "list"]);
    assert!(
        text.contains("Mon..Fri 02:00") && text.contains(&id),
        "{text}"
    );
    let missing = env.run(&["schedule", "run", "nope"]);
    assert_eq!(missing.status.code(), Some(3));
}

#[test]
fn the_workers_refuse_what_their_calendar_cannot_run() {
    let env = TestEnv::new();
    for (calendar, named) in [
        ("*-*~01", "'~'"),
        ("*:*:1.5", "a fraction of a second"),
        ("Mon..Fri 25:00", "out of range"),
    ] {
        let out = env.run(&[
            "schedule",
            "add",
            "x",
            "--driver",
            "workers",
            "--on-calendar",
            calendar,
            "--",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(2), "{calendar}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{calendar}: {err}");
    }
    for name in ["../x", "a.b", "x@y"] {
        let out = add_daily(&env, name);
        assert_eq!(out.status.code(), Some(2), "{name}");
    }
    let out = env.run(&[
        "schedule",
        "add",
        "x",
        "--on-calendar",
        "daily",
        "--at",
        "2030-01-01T00:00:00Z",
        "--driver",
        "workers",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!env.queue_exists(), "nothing was written");
}

#[test]
fn copy_carries_schedules_with_their_job_and_its_env() {
    let env = TestEnv::new();
    env.ok(&[
        "schedule",
        "add",
        "check",
        "--driver",
        "workers",
        "--on-calendar",
        "Mon..Fri 02:00",
        "-e",
        "TOKEN=s3cret",
        "--",
        r#"test "$TOKEN" = s3cret"#,
    ]);
    let from = env.db_address().into_string().unwrap();
    let target = env.path("copy/target.db");
    let to = target.to_str().unwrap();
    let copied = env.json(&["copy", "--from", &from, "--to", to]);
    assert_eq!(copied["schedules"], 1);
    let there = |args: &[&str]| {
        let mut all = vec!["--db", to];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    let list: Value = serde_json::from_str(&there(&["--json", "schedule", "list"])).unwrap();
    let row = &list["schedules"][0];
    assert_eq!(row["name"], "check");
    assert_eq!(row["on_calendar"], serde_json::json!(["Mon..Fri 02:00"]));
    assert_eq!(row["driver"], "workers");
    assert!(row["next_elapse"].is_string(), "{row}");
    // The env value came along: the job that checks it completes.
    let id = there(&["schedule", "run", "check"]).trim().to_owned();
    there(&["worker", "run", "--drain"]);
    let job: Value = serde_json::from_str(&there(&["--json", "show", &id])).unwrap();
    assert_eq!(job["state"], "completed", "{job}");
}

#[test]
fn a_manager_that_fails_the_timer_leaves_no_units_and_no_new_row() {
    let env = TestEnv::new();
    // A user manager socket that takes a connection and hangs up: chosen as
    // reachable, and then every `systemctl --user` fails.
    let runtime = env.path("runtime");
    std::fs::create_dir_all(runtime.join("systemd")).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(runtime.join("systemd/private")).unwrap();
    std::thread::spawn(move || listener.incoming().for_each(drop));
    let units = env.path("xdg-config/systemd/user");
    let add = |args: &[&str]| {
        let mut cmd = env.cmd();
        // A unit file never holds a password: on PostgreSQL the address goes
        // without it, the password through a pgpass file.
        if let Some(db) = env.postgres_db() {
            cmd.env("QUEUECTL_DB", env.db_shown())
                .env("PGPASSFILE", db.server().passfile());
        }
        cmd.env("XDG_RUNTIME_DIR", &runtime)
            .args(["schedule", "add", "t4"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = add(&["--user", "--on-calendar", "daily", "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no unit files were left behind"),
        "{stderr}"
    );
    assert!(stderr.contains("no schedule was added"), "{stderr}");
    assert!(!units.join("queuectl-schedule-t4.timer").exists());
    assert!(!units.join("queuectl-schedule-t4.service").exists());
    assert_eq!(
        env.json(&["schedule", "list"])["schedules"],
        serde_json::json!([])
    );
    // A replaced schedule comes back as it was.
    assert!(add_daily(&env, "t4").status.success());
    let out = add(&[
        "--user",
        "--replace",
        "--on-calendar",
        "weekly",
        "--",
        "false",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the previous schedule was put back"),
        "{stderr}"
    );
    let rows = env.json(&["schedule", "list"]);
    assert_eq!(rows["schedules"][0]["driver"], "workers", "{rows}");
    assert_eq!(
        rows["schedules"][0]["on_calendar"],
        serde_json::json!(["daily"]),
        "{rows}"
    );
    assert!(!units.join("queuectl-schedule-t4.timer").exists());
}

#[test]
fn schedule_run_names_overlap_replace_when_its_job_runs() {
    let mut env = TestEnv::new();
    env.ok(&[
        "schedule",
        "add",
        "rk",
        "--driver",
        "workers",
        "--overlap",
        "replace",
        "--on-calendar",
        "2099-01-01",
        "--",
        "sleep",
        "30",
    ]);
    let id = env.ok(&["schedule", "run", "rk"]).trim().to_owned();
    env.spawn_worker("w1");
    env.wait_for_state(&id, "processing", Duration::from_secs(30));
    let out = env.run(&["schedule", "run", "rk"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("overlap replace: a running job is not replaced"),
        "{stderr}"
    );
}
