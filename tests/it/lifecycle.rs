//! A job's life through a real worker: success, output, retries with their
//! stored schedule, the dead letter queue, timeouts, cancellation, order.

use crate::support::{TestEnv, alive, read_lines, wait_until};
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn ts(value: &serde_json::Value) -> Timestamp {
    value.as_str().expect("a timestamp").parse().unwrap()
}

#[test]
fn a_job_runs_to_completion_and_its_output_is_kept() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"hello","command":"echo hello; echo to-stderr >&2"}"#);
    env.spawn_worker("w1");
    env.wait_for_state("hello", "completed", WAIT);
    let job = env.job("hello");
    assert_eq!(job["attempts"], 1);
    let history = job["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["outcome"], "succeeded");
    assert_eq!(history[0]["exit_code"], 0);
    assert_eq!(history[0]["worker"], env.worker_name("w1"));
    let logs = env.ok(&["logs", "hello"]);
    assert!(
        logs.contains("hello\n") && logs.contains("to-stderr\n"),
        "{logs}"
    );
}

#[test]
fn jobs_get_their_env_and_cwd() {
    let mut env = TestEnv::new();
    let dir = env.path("");
    let job = format!(
        r#"{{"id":"ctx","command":"echo $GREETING $QUEUECTL_JOB_ID $QUEUECTL_JOB_ATTEMPT; pwd","env":{{"GREETING":"hi"}},"cwd":"{}"}}"#,
        dir.display()
    );
    env.enqueue(&job);
    env.spawn_worker("w1");
    env.wait_for_state("ctx", "completed", WAIT);
    let logs = env.ok(&["logs", "ctx"]);
    let expected_dir = dir.canonicalize().unwrap();
    assert_eq!(logs, format!("hi ctx 1\n{}\n", expected_dir.display()));
    assert_eq!(
        env.job("ctx")["env_keys"],
        serde_json::json!(["GREETING"]),
        "env values are never shown"
    );
}

#[test]
fn failures_retry_max_retries_times_then_go_to_the_dlq() {
    let mut env = TestEnv::new(); // backoff_max_seconds = 0: retries are due at once
    env.enqueue(r#"{"id":"flaky","command":"echo attempt $QUEUECTL_JOB_ATTEMPT >&2; exit 3","max_retries":2}"#);
    env.spawn_worker("w1");
    env.wait_for_state("flaky", "dead", WAIT);
    let job = env.job("flaky");
    // max_retries = 2: the first run plus two retries.
    assert_eq!(
        (job["attempts"].as_u64(), job["failures"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(job["last_error"], "exit code 3: attempt 3");
    let history = job["attempt_history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .all(|a| a["outcome"] == "failed" && a["exit_code"] == 3)
    );
    let dlq = env.json(&["dlq", "list"]);
    assert_eq!(dlq["total"], 1);
    assert_eq!(dlq["jobs"][0]["id"], "flaky");

    // dlq retry: back to pending with a fresh budget, runs again.
    env.ok(&["dlq", "retry", "flaky"]);
    env.wait_for_state("flaky", "dead", WAIT);
    assert_eq!(env.job("flaky")["attempts"], 6);
    assert_eq!(env.run(&["dlq", "retry", "nope"]).status.code(), Some(3));
    env.enqueue(r#"{"id":"fine","command":"true"}"#);
    env.wait_for_state("fine", "completed", WAIT);
    assert_eq!(
        env.run(&["dlq", "retry", "fine"]).status.code(),
        Some(4),
        "only dead jobs can be retried"
    );
}

#[test]
fn retry_delays_follow_the_backoff_in_the_stored_schedule() {
    let mut env = TestEnv::with_config(
        "lease_seconds = 2\nbackoff_base = 7\nbackoff_max_seconds = 3600\nmax_retries = 4\n",
    );
    env.enqueue(r#"{"id":"later","command":"false"}"#);
    env.spawn_worker("w1");
    env.wait_for_state("later", "failed", WAIT);
    let job = env.job("later");
    let finished = ts(&job["attempt_history"][0]["finished_at"]);
    // First retry waits backoff_base^1 = 7 s after the failure.
    assert_eq!(
        ts(&job["run_at"]).duration_since(finished),
        SignedDuration::from_secs(7)
    );
    assert_eq!(job["failures"], 1);
    // And it is not run early: the worker, idle, leaves it alone.
    assert_eq!(env.state("later"), "failed");
    assert_eq!(env.job("later")["attempts"], 1);
}

#[test]
fn a_missing_command_fails_with_exit_127_into_the_dlq() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"typo","command":"no-such-command-here --flag","max_retries":0}"#);
    env.spawn_worker("w1");
    env.wait_for_state("typo", "dead", WAIT);
    let job = env.job("typo");
    assert_eq!(job["attempt_history"][0]["exit_code"], 127);
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("exit code 127") && error.contains("not found"),
        "{error}"
    );
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let mut env = TestEnv::new();
    let pid_file = env.path("grandchild.pid");
    let job = format!(
        r#"{{"id":"slow","command":"sleep 300 & echo $! > {}; wait","timeout_seconds":1,"max_retries":0}}"#,
        pid_file.display()
    );
    env.enqueue(&job);
    env.spawn_worker("w1");
    env.wait_for_state("slow", "dead", WAIT);
    let job = env.job("slow");
    assert_eq!(job["attempt_history"][0]["outcome"], "timed_out");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 1s")
    );
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        "the background sleep is killed too",
        Duration::from_secs(5),
        || !alive(grandchild),
    );
}

#[test]
fn a_job_that_ignores_sigterm_is_killed_after_the_grace() {
    let mut env = TestEnv::new(); // kill_grace_seconds = 1
    env.enqueue(r#"{"id":"stubborn","command":"trap '' TERM; sleep 300","timeout_seconds":1,"max_retries":0}"#);
    env.spawn_worker("w1");
    env.wait_for_state("stubborn", "dead", WAIT);
    let attempt = &env.job("stubborn")["attempt_history"][0];
    assert_eq!(attempt["outcome"], "timed_out");
}

#[test]
fn cancel_stops_waiting_and_running_jobs() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"later","command":"true","delay":"1h"}"#);
    assert_eq!(env.ok(&["cancel", "later"]).trim(), "cancelled job 'later'");
    assert_eq!(env.state("later"), "cancelled");
    assert_eq!(env.run(&["cancel", "later"]).status.code(), Some(4));
    assert_eq!(env.run(&["cancel", "ghost"]).status.code(), Some(3));

    let marker = env.path("running");
    env.enqueue(&format!(
        r#"{{"id":"long","command":"touch {}; sleep 300"}}"#,
        marker.display()
    ));
    env.spawn_worker("w1");
    wait_until("the long job started", WAIT, || marker.exists());
    env.ok(&["cancel", "long"]);
    env.wait_for_state("long", "cancelled", WAIT);
    let job = env.job("long");
    assert_eq!(job["attempt_history"][0]["outcome"], "cancelled");
    assert_eq!(job["failures"], 0);
}

#[test]
fn jobs_run_by_priority_then_due_time_and_never_early() {
    let mut env = TestEnv::new();
    let out = env.path("order");
    let job = |id: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","command":"echo {id} >> {}"{extra}}}"#,
            out.display()
        )
    };
    env.enqueue(&job("low-1", ""));
    env.enqueue(&job("high", r#","priority":10"#));
    env.enqueue(&job("low-2", ""));
    env.enqueue(&job("mid", r#","priority":5"#));
    env.enqueue(&job("scheduled", r#","priority":99,"delay":"2s""#));
    env.spawn_worker("w1");
    wait_until("all five ran", WAIT, || read_lines(&out).len() == 5);
    assert_eq!(
        read_lines(&out),
        ["high", "mid", "low-1", "low-2", "scheduled"]
    );
    let scheduled = env.job("scheduled");
    let started = ts(&scheduled["attempt_history"][0]["started_at"]);
    assert!(started >= ts(&scheduled["run_at"]), "ran before its run_at");
}

#[test]
fn logs_follow_a_running_job_until_it_ends() {
    let mut env = TestEnv::new();
    let gate = env.path("gate");
    env.enqueue(&format!(
        r#"{{"id":"chatty","command":"echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second"}}"#,
        gate.display()
    ));
    env.spawn_worker("w1");
    env.wait_for_state("chatty", "processing", WAIT);
    let mut follow = env
        .cmd()
        .args(["logs", "-f", "chatty"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "first\n");
    std::fs::write(&gate, "").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "second\n");
    let status = follow.wait().unwrap();
    assert!(status.success(), "logs -f exits when the job is done");
}
