//! `queuectl copy`: a queue's jobs and history moved to another queue, never
//! into one that holds jobs, never from one with running jobs; and a queue
//! taken from SQLite to PostgreSQL and back through the CLI, job for job.

use crate::support::postgres::PgServer;
use crate::support::{TestEnv, wait_until};
use std::time::Duration;

#[test]
fn a_queue_is_copied_with_its_history_and_a_filled_target_is_refused() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"ok","command":"echo done","env":{"TOKEN":"s3cr3t"}}"#);
    env.enqueue(r#"{"id":"bad","command":"exit 3","max_retries":0}"#);
    env.enqueue(r#"{"id":"later","command":"true","delay":"1h","priority":7}"#);
    env.spawn_worker("w1");
    env.wait_for_state("ok", "completed", Duration::from_secs(20));
    env.wait_for_state("bad", "dead", Duration::from_secs(20));

    let target = env.path("copy/target.db");
    let from = env.db_address();
    let args = [
        "--json",
        "copy",
        "--from",
        from.to_str().unwrap(),
        "--to",
        target.to_str().unwrap(),
    ];
    let report: serde_json::Value = serde_json::from_str(&env.ok(&args)).unwrap();
    assert_eq!(
        (report["jobs"].as_u64(), report["attempts"].as_u64()),
        (Some(3), Some(2))
    );

    let copied = |id: &str| -> serde_json::Value {
        let out = env.ok(&["--db", target.to_str().unwrap(), "--json", "show", id]);
        serde_json::from_str(&out).unwrap()
    };
    for id in ["ok", "bad", "later"] {
        let (a, b) = (env.job(id), copied(id));
        for field in [
            "state",
            "command",
            "priority",
            "run_at",
            "attempts",
            "failures",
            "created_at",
            "finished_at",
            "last_error",
            "env_keys",
        ] {
            assert_eq!(a[field], b[field], "{id}.{field}");
        }
        assert_eq!(a["attempt_history"], b["attempt_history"], "{id}");
    }
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(4), "a target with jobs is refused");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("already holds 3 job(s)"), "{said}");
    assert!(!said.contains("s3cr3t") && !String::from_utf8_lossy(&out.stdout).contains("s3cr3t"));
}

#[test]
fn a_queue_with_running_jobs_is_not_copied() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"slow","command":"sleep 30"}"#);
    env.spawn_worker("w1");
    wait_until("the job to run", Duration::from_secs(20), || {
        env.state("slow") == "processing"
    });
    let target = env.path("t.db");
    let out = env.run(&[
        "copy",
        "--from",
        env.db_address().to_str().unwrap(),
        "--to",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop its workers first"));
    assert!(
        !target.exists(),
        "nothing is created when the copy is refused"
    );
}

/// Every job of the queue at `db`, as `show --json` prints it, in list order.
fn every_job_shown(env: &TestEnv, db: &str) -> Vec<serde_json::Value> {
    let list = env.ok(&["--db", db, "--json", "list", "--all"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            let id = job["id"].as_str().unwrap();
            serde_json::from_str(&env.ok(&["--db", db, "--json", "show", id])).unwrap()
        })
        .collect()
}

#[test]
fn a_queue_copied_to_postgresql_and_back_shows_every_job_as_it_was() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let env = TestEnv::sqlite();
    env.enqueue(r#"{"id":"ok","command":"echo done; echo oops >&2","env":{"TOKEN":"s3cr3t"}}"#);
    env.enqueue(r#"{"id":"bad","command":"exit 3","max_retries":0}"#);
    env.enqueue(r#"{"id":"again","command":"exit 4","max_retries":5}"#);
    env.enqueue(r#"{"id":"later","command":"true","delay":"1h","priority":7,"timeout_seconds":9}"#);
    env.enqueue(r#"{"id":"dropped","command":"true","delay":"1h"}"#);
    env.enqueue(r#"{"id":"odd.id_1-x","command":"printf 'ünï x\\ty'","cwd":"/tmp","env_file":"/etc/q.env"}"#);
    env.ok(&["cancel", "dropped"]);
    std::fs::write(
        env.config_path(),
        "lease_seconds = 2\nbackoff_base = 600\nsupervisor = \"process\"\n",
    )
    .unwrap();
    env.ok(&["worker", "run", "--drain"]);
    assert_eq!(env.state("again"), "failed", "waits for its retry");

    let original = env.db_address().into_string().unwrap();
    let shown = every_job_shown(&env, &original);
    assert_eq!(shown.len(), 6);

    let database = server.fresh_database();
    let back = env.path("back/queue.db").display().to_string();
    for (from, to) in [
        (original.clone(), database.url()),
        (database.url(), back.clone()),
    ] {
        env.ok(&["copy", "--from", &from, "--to", &to]);
    }
    assert_eq!(
        every_job_shown(&env, &database.url()),
        shown,
        "in PostgreSQL"
    );
    assert_eq!(every_job_shown(&env, &back), shown, "back in SQLite");
}

/// The user's report: a paused, limited queue and a schedule, copied to
/// SQLite and to PostgreSQL, stay paused, limited and scheduled there, and
/// the paused queue's job does not run on the target.
#[test]
fn a_copy_keeps_queue_settings_and_schedules_and_a_paused_queue_stays_paused() {
    let server = PgServer::shared();
    let env = TestEnv::sqlite();
    let job = env.ok(&["add", "--queue", "sq", "--", "true"]);
    let job = job.trim();
    env.ok(&["queue", "pause", "sq"]);
    env.ok(&["queue", "set", "sq", "--parallel", "1"]);
    env.ok(&[
        "schedule",
        "add",
        "s",
        "--on-calendar",
        "daily",
        "--driver",
        "workers",
        "-e",
        "TOKEN=s3cr3t",
        "--",
        "true",
    ]);
    let from = env.db_address().into_string().unwrap();
    let schedule_row = |db: &str| {
        let mut row = env.json(&["--db", db, "schedule", "list"])["schedules"][0].clone();
        row.as_object_mut().unwrap().remove("last_job_state");
        row
    };
    let original = schedule_row(&from);
    let mut targets = vec![env.path("copy/target.db").display().to_string()];
    let database = server.as_ref().map(|s| s.fresh_database());
    targets.extend(database.as_ref().map(|d| d.url()));
    for to in &targets {
        let out = env.run(&["copy", "--from", &from, "--to", to]);
        let (said, noted) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{said}{noted}");
        assert!(
            said.starts_with(
                "copied 1 job(s) with 0 attempt(s), 1 queue setting(s) and 1 schedule(s)"
            ),
            "{said}"
        );
        assert!(!said.contains("s3cr3t") && !noted.contains("s3cr3t"));
        let queues = env.json(&["--db", to, "queue", "list"]);
        let sq = queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "sq");
        let sq = sq.unwrap_or_else(|| panic!("{queues}"));
        assert_eq!(
            (&sq["parallel"], &sq["paused"]),
            (&1.into(), &true.into()),
            "{to}"
        );
        assert_eq!(schedule_row(to), original, "{to}");
        env.ok(&["--db", to, "worker", "run", "--drain"]);
        let shown = env.json(&["--db", to, "show", job]);
        assert_eq!(
            shown["state"], "pending",
            "the paused queue's job waits in {to}"
        );
        let again = env.run(&["copy", "--from", &from, "--to", to]);
        assert_eq!(again.status.code(), Some(4), "a filled target is refused");
    }
}
