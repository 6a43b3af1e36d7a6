//! `restart`, and the bulk forms of `cancel`, `restart`, `dlq retry` and
//! `purge`: several ids (each acted on or reported), filters, what they
//! print and their exit codes.

use crate::support::*;
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Enqueues `n` jobs named `{prefix}{i}`, waiting an hour, in one batch.
fn enqueue_waiting(env: &TestEnv, prefix: &str, n: usize) {
    let batch: String = (0..n)
        .map(|i| format!("{{\"id\":\"{prefix}{i}\",\"command\":\"true\",\"delay\":\"1h\"}}\n"))
        .collect();
    let out = env.run_with_stdin(&["enqueue", "-"], batch);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn restart_runs_finished_jobs_again_keeping_their_history() {
    let mut env = TestEnv::new();
    let runs = env.path("runs");
    env.enqueue(&format!(
        r#"{{"id":"done","command":"echo run >> {}"}}"#,
        runs.display()
    ));
    env.enqueue(r#"{"id":"broken","command":"exit 3","max_retries":0}"#);
    env.enqueue(r#"{"id":"later","command":"true","delay":"1h"}"#);
    env.ok(&["worker", "run", "--drain"]);
    assert_eq!(env.state("done"), "completed");
    assert_eq!(env.state("broken"), "dead");

    let out = env.ok(&["restart", "done", "broken"]);
    assert_eq!(
        out,
        "job 'done' is pending again\njob 'broken' is pending again\n"
    );
    let job = env.job("broken");
    assert_eq!(
        (job["state"].as_str(), job["failures"].as_u64()),
        (Some("pending"), Some(0))
    );
    assert!(job["finished_at"].is_null());

    // A worker already waiting is woken for them; the history continues.
    env.spawn_worker("w1");
    env.wait_for_state("done", "completed", WAIT);
    env.wait_for_state("broken", "dead", WAIT);
    let numbers: Vec<u64> = env.job("done")["attempt_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(read_lines(&runs), ["run", "run"]);
    assert_eq!(
        env.job("broken")["attempts"],
        2,
        "a fresh budget: one more run"
    );

    // Waiting jobs are refused naming their state; unknown ids exit 3.
    let out = env.run(&["restart", "later"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        stderr(&out),
        "queuectl: job 'later' is pending; only completed, dead or cancelled jobs can be restarted\n"
    );
    assert_eq!(env.state("later"), "pending");
    let out = env.run(&["restart", "ghost"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out), "queuectl: job 'ghost' not found\n");
}

#[test]
fn a_running_job_is_not_restarted() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"long","command":"sleep 300"}"#);
    env.spawn_worker("w1");
    env.wait_for_state("long", "processing", WAIT);
    let out = env.run(&["--json", "restart", "long"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("job 'long' is processing"),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restarted"], json!([]));
    assert_eq!(report["failed"][0]["state"], "processing");
    env.ok(&["cancel", "long"]);
    env.wait_for_state("long", "cancelled", WAIT);
}

#[test]
fn several_ids_are_acted_on_one_by_one_and_the_rest_reported() {
    let env = TestEnv::new();
    enqueue_waiting(&env, "j", 4);
    env.ok(&["cancel", "j2"]);

    let out = env.run(&["cancel", "j0", "ghost", "j1", "j2", "j0"]);
    assert_eq!(out.status.code(), Some(3), "a missing job: exit 3");
    assert_eq!(stdout(&out), "cancelled job 'j0'\ncancelled job 'j1'\n");
    assert_eq!(
        stderr(&out),
        "queuectl: job 'ghost' not found\n\
         queuectl: job 'j2' is already cancelled; nothing to cancel\n\
         queuectl: 2 of 4 job(s) not cancelled\n"
    );
    assert_eq!(env.state("j1"), "cancelled");
    assert_eq!(env.state("j3"), "pending", "not named");

    // Only wrong states: exit 4. JSON lists both sides.
    let out = env.run(&["--json", "dlq", "retry", "j0", "j3"]);
    assert_eq!(out.status.code(), Some(4));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["retried"], json!([]));
    let failed: Vec<(&str, &str)> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["state"].as_str().unwrap()))
        .collect();
    assert_eq!(failed, [("j0", "cancelled"), ("j3", "pending")]);
    assert!(
        report["failed"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not in the dead letter queue")
    );

    let out = env.run(&["--json", "purge", "j0", "j3", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["purged"], json!(["j0"]));
    assert_eq!(report["failed"][0]["id"], "j3");
    assert_eq!(report["failed"][1]["state"], Value::Null);
    assert_eq!(env.run(&["show", "j0"]).status.code(), Some(3));

    let out = env.json(&["cancel", "j3"]);
    assert_eq!(
        out,
        json!({"cancelled": ["j3"], "requested": [], "failed": []})
    );
}

#[test]
fn filters_act_on_the_matching_jobs_and_print_a_count_when_many() {
    let env = TestEnv::new();
    enqueue_waiting(&env, "w", 30);

    assert_eq!(
        env.ok(&["cancel", "--state", "pending", "--older-than", "1h"]),
        "no jobs cancelled\n",
        "enqueued just now"
    );
    assert_eq!(
        env.ok(&["cancel", "--state", "pending,failed"]),
        "cancelled 30 jobs; 0 of them running, to be stopped and marked cancelled\n"
    );
    assert_eq!(env.count("cancelled"), 30);
    assert_eq!(
        env.ok(&["restart", "--state", "cancelled", "--older-than", "1h"]),
        "no jobs restarted\n",
        "cancelled just now"
    );
    let restarted = env.json(&["restart", "--all"]);
    assert_eq!(restarted["restarted"].as_array().unwrap().len(), 30);
    assert_eq!(env.count("pending"), 30);
    assert_eq!(env.ok(&["purge", "--all"]), "no jobs purged\n");

    env.ok(&["cancel", "--all"]);
    assert_eq!(env.ok(&["dlq", "retry", "--all"]), "no jobs retried\n");
    assert_eq!(
        env.ok(&["purge", "--state", "cancelled"]),
        "purged 30 finished jobs\n"
    );
    assert_eq!(env.json(&["status"])["counts"]["cancelled"], 0);
}

#[test]
fn a_selection_must_be_explicit_and_fit_the_command() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true","delay":"1h"}"#);
    for (args, says) in [
        (
            &["cancel"][..],
            "cancel: name job ids, or choose jobs with --all, --state or --older-than",
        ),
        (&["restart"], "restart: name job ids"),
        (&["dlq", "retry"], "dlq retry: name job ids"),
        (
            &["cancel", "--state", "completed"],
            "--state completed: not a state jobs can be cancelled from (choose among pending, failed, processing)",
        ),
        (
            &["restart", "--state", "pending"],
            "choose among completed, dead, cancelled",
        ),
        (
            &["dlq", "retry", "--state", "cancelled"],
            "choose among dead",
        ),
        (
            &["purge", "--state", "processing"],
            "choose among completed, dead, cancelled",
        ),
        (&["cancel", "--state", "bogus"], "bogus"),
        (&["restart", "--older-than", "soon"], "--older-than"),
        (&["cancel", "a", "--all"], "cannot be used with"),
        (&["purge", "a", "--state", "dead"], "cannot be used with"),
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(env.state("a"), "pending", "nothing changed");
}

/// `retention_seconds = 0` keeps finished jobs forever: a bare `purge`
/// (which purges what retention would) must not read it as "older than 0 s",
/// which is every finished job.
#[test]
fn a_bare_purge_with_retention_off_refuses_instead_of_deleting_everything() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    env.ok(&["cancel", "a"]);
    env.ok(&["config", "set", "retention_seconds", "0"]);
    let out = env.run(&["purge"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("retention_seconds is 0"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.state("a"), "cancelled", "kept");
    assert_eq!(env.ok(&["purge", "--older-than", "0s"]), "purged job 'a'\n");
}
