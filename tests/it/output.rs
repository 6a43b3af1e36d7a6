//! Job output kept honestly: an attempt whose output could not all be
//! stored says so, and output meant for an unreachable journal lands in the
//! job's log file instead of nowhere.

use crate::support::TestEnv;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn output_cut_by_a_full_disk_is_recorded_and_reported() {
    let mut env = TestEnv::new();
    let logs = env.path("state/logs");
    std::fs::create_dir_all(&logs).unwrap();
    // 64 KiB for logs/, only in the worker's mount namespace.
    let setup = format!("mount -t tmpfs -o size=64k tmpfs '{}'", logs.display());
    let Some(worker) = env.spawn_worker_in_namespace("w1", &setup) else {
        return;
    };
    // About 580 KiB of output.
    env.enqueue(r#"{"id":"big","command":"seq 100000"}"#);
    env.wait_for_state("big", "completed", WAIT);

    let job = env.job("big");
    let attempt = &job["attempt_history"][0];
    assert_eq!(attempt["outcome"], "succeeded", "the job itself did fine");
    assert_eq!(attempt["output_truncated"], true, "{job}");
    let show = env.ok(&["show", "big"]);
    assert!(
        show.contains("attempt 1: output truncated"),
        "show says so: {show}"
    );

    // What was kept is there, and `logs` says the rest is missing.
    let out = env
        .cmd_in_namespace_of(worker)
        .args(["logs", "big"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kept = text(&out.stdout);
    assert!(
        kept.starts_with("1\n2\n3\n"),
        "{}",
        &kept[..kept.len().min(40)]
    );
    assert!(kept.len() < 100_000 && !kept.contains("\n100000\n"));
    assert!(
        text(&out.stderr).contains("the output of attempt 1 is incomplete"),
        "{}",
        text(&out.stderr)
    );
    let out = env
        .cmd_in_namespace_of(worker)
        .args(["--json", "logs", "big"])
        .output()
        .unwrap();
    let logs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(logs["truncated"], true);
    assert_eq!(logs["attempts"][0]["output_truncated"], true);
    assert!(logs["output"].as_str().unwrap().starts_with("1\n2\n"));
}

#[test]
fn output_meant_for_an_unreachable_journal_goes_to_the_log_file() {
    let mut env = TestEnv::with_config(
        "lease_seconds = 2\nkill_grace_seconds = 1\nsupervisor = \"process\"\noutput = \"journal\"\n",
    );
    // An empty /run/systemd: no journal socket for this worker. (Where
    // there is no /run/systemd at all, there is no journal either.)
    let setup = "[ ! -d /run/systemd ] || mount -t tmpfs tmpfs /run/systemd";
    if env.spawn_worker_in_namespace("w1", setup).is_none() {
        return;
    }
    env.enqueue(r#"{"id":"talker","command":"echo out; echo err >&2"}"#);
    env.enqueue(r#"{"id":"quiet","command":"true"}"#);
    env.wait_for_state("talker", "completed", WAIT);
    env.wait_for_state("quiet", "completed", WAIT);

    let attempt = &env.job("talker")["attempt_history"][0];
    assert_eq!(attempt["output"], "file", "the fallback is recorded");
    assert_eq!(attempt["output_truncated"], false);
    let out = env.run(&["logs", "talker"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\nerr\n");
    assert_eq!(text(&out.stderr), "");

    // A job that printed nothing: said plainly, not "journalctl failed".
    let out = env.run(&["logs", "quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr).trim(),
        "job 'quiet' has no output: its attempt printed nothing"
    );
    assert!(env.worker_log("w1").contains("the journal is unreachable"));
}
