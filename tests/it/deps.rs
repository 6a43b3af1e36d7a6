//! Dependencies through the CLI and real workers: `after` in JSON and
//! `add --after`, a chain and a fan-in of a thousand jobs, failure
//! propagation and revival, and what `show` and `list` say about it.

use crate::support::*;
use std::collections::HashMap;
use std::time::Duration;

/// A deadline for a thousand jobs on a loaded machine, not a measure.
const THOUSAND: Duration = Duration::from_secs(600);

/// A command that appends "<id> start <ns>" and "<id> end <ns>" to `log`.
fn logged(log: &std::path::Path) -> String {
    let log = log.display();
    format!(
        "echo \\\"$QUEUECTL_JOB_ID start $(date +%s%N)\\\" >> {log}; echo \\\"$QUEUECTL_JOB_ID end $(date +%s%N)\\\" >> {log}"
    )
}

/// Each job's (start, end) in nanoseconds, from a log [`logged`] wrote.
fn times(log: &std::path::Path) -> HashMap<String, (u128, u128)> {
    let mut times: HashMap<String, (u128, u128)> = HashMap::new();
    for line in read_lines(log) {
        let mut words = line.split(' ');
        let (id, what, at) = (
            words.next().unwrap().to_owned(),
            words.next().unwrap(),
            words.next().unwrap().parse::<u128>().unwrap(),
        );
        let entry = times.entry(id.clone()).or_default();
        match what {
            "start" => {
                assert_eq!(entry.0, 0, "{id} started twice");
                entry.0 = at;
            }
            _ => entry.1 = at,
        }
    }
    times
}

fn wait_all_completed(env: &TestEnv, n: u64) {
    wait_until("every job completed", THOUSAND, || {
        env.count("completed") == n
    });
}

#[test]
fn a_chain_of_1000_runs_in_order() {
    let mut env = TestEnv::new();
    let log = env.path("chain.log");
    let command = logged(&log);
    // Given last first: the batch is inserted dependencies first.
    let batch: String = (0..1000)
        .rev()
        .map(|i| match i {
            0 => format!("{{\"id\":\"c0\",\"command\":\"{command}\"}}\n"),
            _ => format!(
                "{{\"id\":\"c{i}\",\"command\":\"{command}\",\"after\":[\"c{}\"]}}\n",
                i - 1
            ),
        })
        .collect();
    let out = env.run_with_stdin(&["enqueue", "-"], batch);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(env.job("c999")["deps_left"], 1);
    env.spawn_worker("w1");
    env.spawn_worker("w2");
    wait_all_completed(&env, 1000);
    let times = times(&log);
    assert_eq!(times.len(), 1000);
    for i in 1..1000 {
        let (before, this) = (times[&format!("c{}", i - 1)], times[&format!("c{i}")]);
        assert!(
            this.0 > before.1,
            "c{i} started at {} before c{} ended at {}",
            this.0,
            i - 1,
            before.1
        );
    }
}

#[test]
fn a_fan_in_of_1000_runs_the_last_once_all_completed() {
    let mut env = TestEnv::new();
    let log = env.path("fan.log");
    let command = logged(&log);
    let mut batch: String = (0..1000)
        .map(|i| format!("{{\"id\":\"f{i}\",\"command\":\"{command}\"}}\n"))
        .collect();
    let all: Vec<String> = (0..1000).map(|i| format!("\"f{i}\"")).collect();
    batch.push_str(&format!(
        "{{\"id\":\"last\",\"command\":\"{command}\",\"after\":[{}]}}\n",
        all.join(",")
    ));
    let out = env.run_with_stdin(&["enqueue", "-"], batch);
    assert!(out.status.success(), "{}", output_text(&out));
    env.spawn_worker("w1");
    env.spawn_worker("w2");
    wait_all_completed(&env, 1001);
    let times = times(&log);
    let last_start = times["last"].0;
    let latest_end = (0..1000).map(|i| times[&format!("f{i}")].1).max().unwrap();
    assert!(last_start > latest_end, "{last_start} <= {latest_end}");
    assert_eq!(env.job("last")["attempts"], 1);
}

/// Runs the chain head <- mid <- tail, where head fails for good (no
/// retries) until the returned flag file exists: head ends dead, mid and
/// tail cancelled.
fn failed_chain(env: &TestEnv) -> std::path::PathBuf {
    let flag = env.path("flag");
    env.ok(&[
        "add",
        "--id",
        "head",
        "--retries",
        "0",
        "--",
        &format!("test -e {}", flag.display()),
    ]);
    env.ok(&["add", "--id", "mid", "--after", "head", "--", "true"]);
    env.ok(&["add", "--id", "tail", "--after", "mid", "--", "true"]);
    env.ok(&["worker", "run", "--drain"]);
    flag
}

#[test]
fn a_failed_chain_head_cancels_the_rest_and_restart_revives_it() {
    let env = TestEnv::new();
    let flag = failed_chain(&env);
    assert_eq!(env.state("head"), "dead");
    for (id, why) in [
        ("mid", "dependency head is dead"),
        ("tail", "dependency mid is cancelled"),
    ] {
        let job = env.job(id);
        assert_eq!(job["state"], "cancelled", "{id}");
        assert_eq!(job["last_error"], why, "{id}");
        assert_eq!(job["attempts"], 0, "{id}");
    }
    // A job added after a dead one is cancelled at once, with a warning.
    let out = env.run(&["add", "--id", "late", "--after", "head", "--", "true"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("job 'late' was cancelled at once: dependency head is dead"),
        "{}",
        output_text(&out)
    );
    std::fs::write(&flag, "").unwrap();
    let out = env.ok(&["dlq", "retry", "head"]);
    for line in [
        "job 'head' is pending again",
        "job 'mid' pending again with its dependency",
        "job 'tail' pending again with its dependency",
        "job 'late' pending again with its dependency",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    env.ok(&["worker", "run", "--drain"]);
    for id in ["head", "mid", "tail", "late"] {
        assert_eq!(env.state(id), "completed", "{id}");
    }
}

#[test]
fn restarting_a_dependent_of_a_dead_job_is_refused_until_that_job_restarts() {
    let env = TestEnv::new();
    let flag = failed_chain(&env);
    assert_eq!(env.state("mid"), "cancelled");
    // Named: exit 4 naming the dependency; nothing changes.
    let out = env.run(&["restart", "mid"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("job 'mid' was not restarted: dependency head is dead: restart head first"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.job("mid")["state"], "cancelled");
    assert_eq!(env.job("mid")["deps_left"], 1);
    // A filter reports them too, in --json among the failures.
    let out = env.run(&["--json", "restart", "--state", "cancelled"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restarted"], serde_json::json!([]));
    let mut failed: Vec<(String, String)> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["state"], "cancelled", "{f}");
            (
                f["id"].as_str().unwrap().into(),
                f["error"].as_str().unwrap().into(),
            )
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            (
                "mid".to_owned(),
                "job 'mid' was not restarted: dependency head is dead: restart head first"
                    .to_owned()
            ),
            (
                "tail".to_owned(),
                "job 'tail' was not restarted: dependency mid is cancelled: restart mid first"
                    .to_owned()
            )
        ]
    );
    assert_eq!(env.state("tail"), "cancelled");
    // Restarting the dependency revives them; the chain then completes.
    std::fs::write(&flag, "").unwrap();
    let out = env.ok(&["restart", "head"]);
    assert!(
        out.contains("job 'mid' pending again with its dependency"),
        "{out}"
    );
    env.ok(&["worker", "run", "--drain"]);
    for id in ["head", "mid", "tail"] {
        assert_eq!(env.state(id), "completed", "{id}");
    }
}

#[test]
fn cancel_cascades_to_waiting_dependents() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "a", "--delay", "1h", "--", "true"]);
    env.ok(&["add", "--id", "b", "--after", "a", "--", "true"]);
    let out = env.ok(&["cancel", "a"]);
    assert_eq!(
        out,
        "cancelled job 'a'\njob 'b' cancelled with its dependency\n"
    );
    assert_eq!(env.job("b")["last_error"], "dependency a is cancelled");
    env.ok(&["add", "--id", "c", "--delay", "1h", "--", "true"]);
    env.ok(&["add", "--id", "d", "--after", "c", "--", "true"]);
    let report = env.json(&["cancel", "c"]);
    assert_eq!(
        report,
        serde_json::json!({"cancelled": ["c"], "dependents": ["d"], "requested": [], "failed": []})
    );
}

#[test]
fn show_lists_dependencies_and_dependents() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "a", "--", "true"]);
    env.ok(&["add", "--id", "b", "--delay", "1h", "--", "true"]);
    env.ok(&[
        "add", "--id", "c", "--after", "a", "--after", "b", "--", "true",
    ]);
    env.ok(&["add", "--id", "d", "--after", "c", "--", "true"]);
    env.ok(&["worker", "run", "--drain"]);
    let shown = env.ok(&["show", "c"]);
    for line in [
        "blocked:     waiting for 1 of its 2 dependencies to complete",
        "after:       a (completed), b (pending)",
        "dependents:  d (pending)",
    ] {
        assert!(shown.contains(line), "{line}:\n{shown}");
    }
    let job = env.job("c");
    assert_eq!(job["deps_left"], 1);
    assert_eq!(
        job["after"],
        serde_json::json!([{"id":"a","state":"completed"},{"id":"b","state":"pending"}])
    );
    assert_eq!(
        job["dependents"],
        serde_json::json!([{"id":"d","state":"pending"}])
    );
}

#[test]
fn list_shows_blocked_jobs() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "a", "--delay", "1h", "--", "true"]);
    env.ok(&["add", "--id", "b", "--after", "a", "--", "true"]);
    let list = env.ok(&["list"]);
    let b = list.lines().find(|l| l.starts_with("b ")).expect(&list);
    assert!(b.contains("blocked (1)"), "{list}");
    let a = list.lines().find(|l| l.starts_with("a ")).expect(&list);
    assert!(a.contains("pending"), "{list}");
    let blocked = env.json(&["list", "--blocked"]);
    assert_eq!(blocked["total"], 1);
    assert_eq!(blocked["jobs"][0]["id"], "b");
    assert_eq!(blocked["jobs"][0]["deps_left"], 1);
}

/// `out` is an input error (exit 2) saying `message`.
fn refused(out: &std::process::Output, message: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", output_text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{message}: {}", output_text(out));
}

#[test]
fn add_after_an_unknown_id_exits_2() {
    let env = TestEnv::new();
    let out = env.run(&["add", "--after", "nope", "--", "true"]);
    refused(&out, "--after: no job 'nope' in the queue or in this batch");
    let cycle = "{\"id\":\"p\",\"command\":\"true\",\"after\":[\"q\"]}\n\
                 {\"id\":\"q\",\"command\":\"true\",\"after\":[\"p\"]}\n";
    let out = env.run_with_stdin(&["enqueue", "-"], cycle);
    refused(
        &out,
        "line 1: field 'after': jobs wait for each other in a cycle: p -> q -> p",
    );
    // Nothing was enqueued.
    assert_eq!(env.count("pending"), 0);
}
