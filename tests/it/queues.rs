//! Named queues through the CLI and real workers: a `parallel` limit holds
//! across eight worker processes, a paused queue waits, workers serve only
//! their queues, and the config's queue settings reach the queue when a
//! worker starts. Runs on PostgreSQL too (`QUEUECTL_TEST_BACKEND`).

use crate::support::{TEST_CONFIG, TestEnv, output_text, read_lines, wait_until};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Job `id` of `queue`: marks itself running in `running/` and records how
/// many of its queue run with it, itself included.
fn counting_job(env: &TestEnv, queue: &str, id: &str) -> String {
    let running = env.path(&format!("running-{queue}"));
    std::fs::create_dir_all(&running).unwrap();
    format!(
        r#"{{"id":"{id}","queue":"{queue}","command":"mkdir {running}/{id}; ls {running} | wc -l >> {counts}; sleep 0.3; rmdir {running}/{id}"}}"#,
        running = running.display(),
        counts = env.path(&format!("counts-{queue}")).display(),
    )
}

fn most_at_once(env: &TestEnv, queue: &str) -> usize {
    read_lines(&env.path(&format!("counts-{queue}")))
        .iter()
        .map(|n| n.trim().parse::<usize>().unwrap())
        .max()
        .unwrap_or(0)
}

fn queue_row(env: &TestEnv, name: &str) -> serde_json::Value {
    let listed = env.json(&["queue", "list"]);
    listed["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("queue {name} not listed: {listed}"))
}

/// The headline: eight workers, a queue that allows two at once. Each job
/// records how many of its queue were running when it started; the most
/// is two (reached, and never passed), while the default queue beside it
/// runs as wide as the workers go.
#[test]
fn eight_workers_never_run_more_than_parallel_jobs_of_a_queue() {
    let mut env = TestEnv::new();
    for i in 0..16 {
        env.enqueue(&counting_job(&env, "limited", &format!("l{i}")));
    }
    for i in 0..8 {
        env.enqueue(&counting_job(&env, "default", &format!("d{i}")));
    }
    env.ok(&["queue", "set", "limited", "--parallel", "2"]);
    for w in 0..8 {
        env.spawn_worker(&format!("w{w}"));
    }
    wait_until("every job completed", WAIT, || env.count("completed") == 24);
    assert_eq!(
        most_at_once(&env, "limited"),
        2,
        "the limit, reached and never passed"
    );
    assert!(
        most_at_once(&env, "default") > 2,
        "the default queue is not held to the limit"
    );
    assert_eq!(
        read_lines(&env.path("counts-limited")).len(),
        16,
        "each job ran once"
    );
}

#[test]
fn queue_pause_holds_jobs_and_resume_runs_them() {
    let mut env = TestEnv::new();
    // It would be claimed first, were its queue running.
    env.enqueue(r#"{"id":"report","queue":"reports","command":"true","priority":9}"#);
    env.enqueue(r#"{"id":"other","command":"true"}"#);
    let paused = env.ok(&["queue", "pause", "reports"]);
    assert_eq!(paused.trim(), "queue 'reports': no limit, paused");
    env.spawn_worker("w1");
    env.wait_for_state("other", "completed", WAIT);
    assert_eq!(env.state("report"), "pending");
    let row = queue_row(&env, "reports");
    assert_eq!(
        (row["paused"].as_bool(), row["waiting"].as_u64()),
        (Some(true), Some(1)),
        "{row}"
    );
    let text = env.ok(&["queue", "list"]);
    assert!(text.starts_with("NAME"), "{text}");
    // Resuming wakes the idle worker: no poll interval to wait for.
    let resumed = env.json(&["queue", "resume", "reports"]);
    assert_eq!(resumed["paused"], false);
    env.wait_for_state("report", "completed", WAIT);
}

#[test]
fn worker_queues_flag_and_env_restrict_claims() {
    let mut env = TestEnv::new();
    for queue in ["a", "b", "c"] {
        env.enqueue(&format!(
            r#"{{"id":"{queue}1","queue":"{queue}","command":"true"}}"#
        ));
    }
    let flag = env
        .cmd()
        .args(["worker", "run", "--name", "wa", "--queues", "a"])
        .spawn()
        .unwrap();
    env.adopt(flag);
    let by_env = env
        .cmd()
        .args(["worker", "run", "--name", "wb"])
        .env("QUEUECTL_QUEUES", "b")
        .spawn()
        .unwrap();
    env.adopt(by_env);
    env.wait_for_state("a1", "completed", WAIT);
    env.wait_for_state("b1", "completed", WAIT);
    let ran_on = |id: &str| {
        env.job(id)["attempt_history"][0]["worker"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(ran_on("a1"), env.worker_name("wa"));
    assert_eq!(ran_on("b1"), env.worker_name("wb"));
    assert_eq!(env.state("c1"), "pending", "nobody serves c");
    let listed = env.json(&["list", "--queue", "c"]);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["jobs"][0]["id"], "c1");
}

#[test]
fn config_queue_limits_apply_at_worker_start() {
    let mut env = TestEnv::with_config(&format!(
        "{TEST_CONFIG}worker_queues = \"held,default\"\n[queues.held]\nparallel = 1\npaused = true\n"
    ));
    env.enqueue(r#"{"id":"h","queue":"held","command":"true","priority":9}"#);
    env.enqueue(r#"{"id":"d","command":"true"}"#);
    env.enqueue(r#"{"id":"x","queue":"elsewhere","command":"true"}"#);
    env.spawn_worker("w1");
    env.wait_for_state("d", "completed", WAIT);
    let row = queue_row(&env, "held");
    assert_eq!(
        (row["parallel"].as_u64(), row["paused"].as_bool()),
        (Some(1), Some(true)),
        "{row}"
    );
    assert_eq!(env.state("h"), "pending");
    assert_eq!(env.state("x"), "pending", "worker_queues leaves it out");
    env.ok(&["queue", "resume", "held"]);
    env.wait_for_state("h", "completed", WAIT);
}

#[test]
fn queue_names_and_limits_are_checked() {
    let env = TestEnv::new();
    let out = env.run(&["queue", "pause", "emails"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no queue yet: {}",
        output_text(&out)
    );
    assert!(!env.queue_exists(), "queue pause made no queue");
    for (args, needle) in [
        (
            &["queue", "set", "a b", "--parallel", "2"][..],
            "queue name 'a b'",
        ),
        (
            &["queue", "set", "emails", "--parallel", "0"][..],
            "parallel must be from 1",
        ),
        (&["queue", "set", "emails"][..], "give --parallel"),
        (&["add", "--queue", "a/b", "--", "true"][..], "--queue: "),
        (&["list", "--queue", "a b"][..], "--queue: queue name 'a b'"),
        (
            &["worker", "run", "--queues", "a,,b"][..],
            "empty queue name",
        ),
    ] {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(
            output_text(&out).contains(needle),
            "{args:?}: {}",
            output_text(&out)
        );
    }
    let id = env.ok(&["add", "--queue", "emails", "--", "true"]);
    let id = id.trim();
    assert_eq!(env.job(id)["queue"], "emails");
    env.ok(&["edit", id, "--queue", "slow"]);
    assert_eq!(env.job(id)["queue"], "slow");
    let set = env.json(&["queue", "set", "slow", "--parallel", "3"]);
    assert_eq!(
        (set["parallel"].as_u64(), set["waiting"].as_u64()),
        (Some(3), Some(1)),
        "{set}"
    );
    let unset = env.json(&["queue", "set", "slow", "--parallel", "none"]);
    assert_eq!(unset["parallel"], serde_json::Value::Null);
}

/// `worker start --queues` (process supervisor here; systemd instances get
/// a drop-in instead, see `units::queues_drop_in`): the started workers
/// serve those queues only.
#[test]
fn workers_started_with_queues_serve_only_them() {
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.enqueue(r#"{"id":"mine","queue":"emails","command":"true"}"#);
    env.enqueue(r#"{"id":"other","command":"true"}"#);
    let report = env.json(&["worker", "start", "--count", "1", "--queues", "emails"]);
    assert_eq!(report["started"], serde_json::json!(["1"]), "{report}");
    env.wait_for_state("mine", "completed", WAIT);
    // Serving every queue, the worker would have claimed `other` in the
    // transaction that recorded `mine`.
    assert_eq!(env.state("other"), "pending");
}

/// Like systemd's drop-in (see `units::queues_drop_in`): a second `worker
/// start --queues` restarts the supervised workers that serve others.
#[test]
fn supervised_workers_started_for_other_queues_are_restarted() {
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.enqueue(r#"{"id":"report","queue":"reports","command":"true"}"#);
    let start = |queues: &str| env.json(&["worker", "start", "--count", "1", "--queues", queues]);
    assert_eq!(start("emails")["started"], serde_json::json!(["1"]));
    let again = start("emails");
    assert_eq!(
        again["already_running"],
        serde_json::json!(["1"]),
        "{again}"
    );
    assert_eq!(env.state("report"), "pending", "an emails worker took it");
    let moved = start("reports");
    assert_eq!(moved["restarted"], serde_json::json!(["1"]), "{moved}");
    env.wait_for_state("report", "completed", WAIT);
}

/// `QUEUECTL_QUEUES=` (set, empty) is every queue, as an empty
/// `worker_queues` is; a bad value is reported as the variable's.
#[test]
fn an_empty_queues_variable_serves_every_queue() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"mail","queue":"emails","command":"true"}"#);
    let run = |value: &str| {
        env.cmd()
            .args(["worker", "run", "--drain"])
            .env("QUEUECTL_QUEUES", value)
            .output()
            .unwrap()
    };
    let bad = run("a b");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{}", output_text(&bad));
    assert!(
        stderr.contains("$QUEUECTL_QUEUES: queue name 'a b'") && !stderr.contains("--queues"),
        "{stderr}"
    );
    let empty = run("");
    assert!(empty.status.success(), "{}", output_text(&empty));
    assert_eq!(env.state("mail"), "completed");
}

/// A paused queue shows where its jobs do: `add` says the job waits,
/// `show` names the queue (and the schedule), `list` gets a QUEUE column;
/// pausing a queue with no jobs yet says so (a typo would pass silently).
#[test]
fn a_paused_queue_is_visible_at_add_show_and_list() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"plain","command":"true"}"#);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    let plain = env.ok(&["list"]);
    assert!(!plain.contains("QUEUE"), "one queue: no column\n{plain}");
    let ahead = env.run(&["queue", "pause", "mail"]);
    assert!(ahead.status.success(), "{}", output_text(&ahead));
    assert!(
        stderr(&ahead).contains("queue 'mail' has no jobs yet; pausing it ahead of them"),
        "{}",
        output_text(&ahead)
    );
    let added = env.run(&["add", "--id", "m1", "--queue", "mail", "--", "true"]);
    assert!(added.status.success(), "{}", output_text(&added));
    assert!(
        stderr(&added)
            .contains("queue 'mail' is paused: the job waits until `queuectl queue resume mail`"),
        "{}",
        output_text(&added)
    );
    let again = env.run(&["queue", "pause", "mail"]);
    assert_eq!(stderr(&again), "", "it has a job now");
    let shown = env.ok(&["show", "m1"]);
    assert!(
        shown.contains("  queue:       mail (paused: `queuectl queue resume mail`)\n"),
        "{shown}"
    );
    assert!(
        !env.ok(&["show", "plain"]).contains("queue:"),
        "default queue"
    );
    let listed = env.ok(&["list"]);
    let header = listed.lines().next().unwrap();
    assert!(
        header.contains("WHEN") && header.contains("QUEUE    COMMAND"),
        "{listed}"
    );
    assert!(listed.contains("mail     true"), "{listed}");
    let add: Vec<&str> = "schedule add nightly --driver workers --on-calendar daily -- true"
        .split(' ')
        .collect();
    env.ok(&add);
    let fired = env.ok(&["schedule", "fire", "nightly"]);
    let shown = env.ok(&["show", fired.trim()]);
    assert!(shown.contains("  schedule:    nightly\n"), "{shown}");
}

/// The config's `[queues.NAME]` comes back at each worker start: a
/// `queue resume` or `queue set` it contradicts is warned about.
#[test]
fn queue_changes_the_config_undoes_are_warned_about() {
    let env = TestEnv::with_config(&format!(
        "{TEST_CONFIG}[queues.rep]\nparallel = 1\npaused = true\n"
    ));
    env.enqueue(r#"{"id":"r","queue":"rep","command":"true"}"#);
    let stderr = |args: &[&str]| {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let config = env.config_path().display().to_string();
    let resumed = stderr(&["queue", "resume", "rep"]);
    assert!(
        resumed.contains(&format!(
            "warning: {config} sets [queues.rep] paused = true: the next worker start sets it back"
        )),
        "{resumed}"
    );
    let widened = stderr(&["queue", "set", "rep", "--parallel", "3", "--paused", "true"]);
    assert!(
        widened.contains("[queues.rep] parallel = 1") && !widened.contains("paused ="),
        "{widened}"
    );
    assert_eq!(stderr(&["queue", "set", "rep", "--parallel", "1"]), "");
}
