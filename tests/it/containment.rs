//! Attempt containment: a rescue kills only the attempt it rescues (never
//! another queue's job with the same id), and a job that sheds its
//! environment still never runs twice at once when its worker freezes.

use crate::support::{TestEnv, alive, read_lines, signal, wait_until};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A job that waits for `gate` to exist, then says `done`.
fn gated(id: &str, gate: &std::path::Path, done: &str) -> String {
    format!(
        r#"{{"id":"{id}","command":"while [ ! -e {gate} ]; do sleep 0.05; done; echo {done}","max_retries":0}}"#,
        gate = gate.display()
    )
}

/// A job whose processes reset their environment (`env -i`, as `sudo` and
/// most daemons do) and so lose `QUEUECTL_ATTEMPT_TOKEN`. Each run writes
/// `start N` to `trace`, takes `lock` (or writes `OVERLAP` when another run
/// still holds it), and the first run then sleeps far longer than a lease;
/// later ones write `end N` and succeed.
pub fn env_reset_job(id: &str, lock: &Path, trace: &Path) -> String {
    let inner = format!(
        "echo start $0 >> {trace}; exec 9>>{lock}; flock -n 9 || echo OVERLAP >> {trace}; if [ $0 = 1 ]; then sleep 60; fi; echo end $0 >> {trace}",
        trace = trace.display(),
        lock = lock.display()
    );
    format!(r#"{{"id":"{id}","command":"exec env -i /bin/sh -c '{inner}' $QUEUECTL_JOB_ATTEMPT"}}"#)
}

#[test]
fn a_rescue_in_one_queue_leaves_another_queues_job_with_the_same_id_alone() {
    let mut x = TestEnv::with_config("lease_seconds = 3600\nbackoff_max_seconds = 0\n");
    let mut y = TestEnv::new();
    let gate = y.path("gate");
    x.enqueue(r#"{"id":"backup","command":"sleep 30"}"#);
    y.enqueue(&gated("backup", &gate, "y-done"));
    let x_worker = x.spawn_worker("same");
    y.spawn_worker("same");
    x.wait_for_state("backup", "processing", WAIT);
    y.wait_for_state("backup", "processing", WAIT);

    // x's worker dies and comes back under its name: it rescues its job at
    // once, killing what that attempt left.
    signal(x_worker, Signal::SIGKILL);
    x.wait_worker(x_worker, WAIT);
    x.spawn_worker("same");
    wait_until("x's first attempt was rescued", WAIT, || {
        x.job("backup")["attempt_history"][0]["outcome"] == "lease_expired"
    });

    std::fs::write(&gate, "").unwrap();
    y.wait_for_state("backup", "completed", WAIT);
    let history = y.job("backup")["attempt_history"].clone();
    assert_eq!(
        history.as_array().unwrap().len(),
        1,
        "y's run was never killed: {history}"
    );
    assert_eq!(history[0]["outcome"], "succeeded");
    assert!(y.ok(&["logs", "backup"]).contains("y-done"));
}

/// Live queuectl processes of this environment's queue running `kind`
/// ("run" for workers, "supervise" for keepers), from their command lines.
fn queue_processes(env: &TestEnv, kind: &str) -> Vec<u32> {
    let db = env.db();
    let db = db.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            alive(*pid)
                && args.windows(2).any(|w| w[0] == "worker" && w[1] == kind)
                && args.windows(2).any(|w| w[0] == "--db" && w[1] == db)
        })
        .collect()
}

fn registered_workers(env: &TestEnv) -> Vec<(String, u32)> {
    let mut workers: Vec<(String, u32)> = env.json(&["status"])["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["pid"].as_u64().unwrap_or(0) as u32,
            )
        })
        .collect();
    workers.sort();
    workers
}

#[test]
fn a_frozen_kept_workers_job_that_shed_its_environment_never_overlaps_its_rerun() {
    // The process backend: the keeper's watchdog kills the frozen worker and
    // then everything its job left (the keeper is their subreaper), before
    // the lease (5 s) could expire and the other worker run the job again.
    let mut env = TestEnv::with_config(
        "lease_seconds = 5\nbackoff_max_seconds = 0\nsupervisor = \"process\"\n",
    );
    env.mark_supervised();
    env.ok(&["worker", "start", "--count", "2"]);
    let trace = env.path("trace");
    env.enqueue(&env_reset_job("shed", &env.path("lock"), &trace));
    wait_until("the first run holds the lock", WAIT, || {
        read_lines(&trace) == ["start 1"]
    });
    let holder = env.job("shed")["worker"].as_str().unwrap().to_owned();
    let (_, frozen) = registered_workers(&env)
        .into_iter()
        .find(|(name, _)| *name == holder)
        .unwrap();
    signal(frozen, Signal::SIGSTOP);
    env.wait_for_state("shed", "completed", WAIT);
    assert_eq!(
        read_lines(&trace),
        ["start 1", "start 2", "end 2"],
        "no overlap"
    );
    let history = env.job("shed")["attempt_history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[0]["outcome"], "lease_expired", "{history}");
    assert_eq!(history[1]["outcome"], "succeeded", "{history}");
    assert!(!alive(frozen), "the keeper killed the frozen worker");
    let keeper_log = std::fs::read_to_string(env.path(&format!("state/workers/{holder}.log")))
        .unwrap_or_default();
    assert!(keeper_log.contains("stopped pinging"), "{keeper_log}");
}

#[test]
fn two_concurrent_starts_leave_no_hidden_worker_and_stop_ends_them_all() {
    let mut env = TestEnv::new();
    env.mark_supervised();
    let env_ref = &env;
    let four = std::thread::scope(|scope| {
        let four = scope.spawn(|| env_ref.json(&["worker", "start", "--count", "4"]));
        scope.spawn(|| env_ref.json(&["worker", "start", "--count", "5"]));
        four.join().unwrap()
    });
    // One ran after the other: 5 workers, unless "4" came last and stopped
    // the fifth.
    let last = if four["stopped"] == serde_json::json!(["5"]) {
        4
    } else {
        5
    };
    let expected: Vec<String> = (1..=last).map(|n| n.to_string()).collect();
    let registered = registered_workers(&env);
    let names: Vec<String> = registered.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, expected, "status shows each instance once");
    let mut shown: Vec<u32> = registered.iter().map(|(_, pid)| *pid).collect();
    let mut running = queue_processes(&env, "run");
    shown.sort();
    running.sort();
    assert_eq!(
        shown, running,
        "status shows every live worker, and only those"
    );
    assert_eq!(
        queue_processes(&env, "supervise").len(),
        last,
        "one keeper each"
    );

    let stopped = env.json(&["worker", "stop"]);
    assert_eq!(stopped["stopped"], serde_json::json!(expected));
    assert!(queue_processes(&env, "run").is_empty());
    assert!(queue_processes(&env, "supervise").is_empty());
    assert!(registered_workers(&env).is_empty());
}

#[test]
fn a_keeper_without_a_pid_file_is_still_shown_and_stopped() {
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.enqueue(r#"{"id":"first","command":"true"}"#); // creates the queue
    let db = env.db();
    let keeper = env
        .cmd()
        .args([
            "--db",
            db.to_str().unwrap(),
            "worker",
            "supervise",
            "--instance",
            "7",
        ])
        .spawn()
        .unwrap();
    let keeper = env.adopt(keeper);
    let pid_file = env.path("state/workers/7.pid");
    wait_until("keeper 7's worker registered", WAIT, || {
        pid_file.exists() && registered_workers(&env).iter().any(|(name, _)| name == "7")
    });
    // What a second, racing keeper used to leave: a live keeper whose pid
    // file is gone.
    std::fs::remove_file(&pid_file).unwrap();
    let status = env.json(&["status"]);
    let shown = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["name"] == "7")
        .count();
    assert_eq!(shown, 1, "{status}");
    assert!(
        status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["alive"] == true),
        "{status}"
    );
    let stopped = env.json(&["worker", "stop"]);
    assert_eq!(stopped["stopped"], serde_json::json!(["7"]));
    assert!(!alive(keeper));
    assert!(queue_processes(&env, "run").is_empty());
}

#[test]
fn every_attempt_gets_a_token_of_its_own() {
    let mut env = TestEnv::new();
    let tokens = env.path("tokens");
    env.enqueue(&format!(
        r#"{{"id":"twice","command":"echo $QUEUECTL_ATTEMPT_TOKEN >> {}; [ $QUEUECTL_JOB_ATTEMPT = 2 ]","max_retries":1}}"#,
        tokens.display()
    ));
    env.spawn_worker("w1");
    env.wait_for_state("twice", "completed", WAIT);
    let seen = read_lines(&tokens);
    assert_eq!(seen.len(), 2, "{seen:?}");
    for token in &seen {
        assert!(
            token.len() == 16 && token.chars().all(|c| c.is_ascii_hexdigit()),
            "64 random bits in hex: {token:?}"
        );
    }
    assert_ne!(seen[0], seen[1], "a new token for each attempt");
}
