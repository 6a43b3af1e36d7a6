//! Job output kept honestly: an attempt whose output could not all be
//! stored says so, and output meant for an unreachable journal lands in the
//! job's log file instead of nowhere. The queue keeps each attempt's last
//! 8 KiB, which `show` and `logs` print where the full output is not (on
//! another host, or its log file gone), saying where it is.

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

/// The queue's copy of the end of an attempt's output: the last 8 KiB of
/// `full` after a marker line.
fn kept_tail(full: &str) -> String {
    const KEPT: usize = 8 * 1024;
    assert!(full.len() > KEPT && full.is_ascii());
    format!(
        "[... {} earlier bytes of output not kept ...]\n{}",
        full.len() - KEPT,
        &full[full.len() - KEPT..]
    )
}

#[test]
fn a_100_kib_output_keeps_exactly_its_last_8_kib_in_the_queue_and_logs_here_prints_all() {
    let mut env = TestEnv::new();
    env.spawn_worker("w1");
    // 100 KiB on stdout, then a line on stderr.
    env.enqueue(
        r#"{"id":"big","command":"seq 100000 | head -c 102400; echo; echo from-stderr >&2"}"#,
    );
    env.wait_for_state("big", "completed", WAIT);

    let log = env.job_log("big");
    let full = std::fs::read_to_string(&log).unwrap();
    assert_eq!(full.len(), 102_400 + "\nfrom-stderr\n".len());
    let job = env.job("big");
    let attempt = &job["attempt_history"][0];
    assert_eq!(attempt["output_tail"], kept_tail(&full).as_str());
    assert!(
        attempt["output_tail"]
            .as_str()
            .unwrap()
            .ends_with("\nfrom-stderr\n")
    );

    // On the host that ran it, `logs` prints the full output, as always.
    let out = env.run(&["logs", "big"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), full);
    assert_eq!(text(&out.stderr), "");
    let show = env.ok(&["show", "big"]);
    assert!(!show.contains("kept in the queue"), "{show}");

    // Its log file gone, the tail is what is left, and `logs` says so.
    std::fs::remove_file(&log).unwrap();
    let out = env.run(&["logs", "big"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), kept_tail(&full));
    let notes = text(&out.stderr);
    assert!(
        notes.contains(&format!("attempt 1's log file {} is gone", log.display())),
        "{notes}"
    );
}

#[test]
fn logs_and_show_of_an_attempt_run_on_another_host_print_its_tail_and_where_the_rest_is() {
    another_host_shows_the_kept_tail(TestEnv::new());
}

/// The same on PostgreSQL, the backend that workers on many hosts share.
#[test]
fn on_postgres_logs_and_show_of_an_attempt_run_on_another_host_print_its_tail() {
    if let Some(env) = TestEnv::postgres() {
        another_host_shows_the_kept_tail(env);
    }
}

fn another_host_shows_the_kept_tail(mut env: TestEnv) {
    const HOST: &str = "qtest-web1";
    assert_ne!(queuectl::worker::hostname(), HOST);
    let Some(_worker) = env.spawn_worker_on_host("w1", HOST) else {
        return;
    };
    env.enqueue(r#"{"id":"far","command":"seq 3000; echo oops >&2; exit 3","max_retries":0}"#);
    env.wait_for_state("far", "dead", WAIT);
    let job = env.job("far");
    let attempt = &job["attempt_history"][0];
    assert_eq!(attempt["host"], HOST);
    // The worker's host wrote the log file (this test's hosts share files).
    let log = env.job_log("far");
    let full = std::fs::read_to_string(&log).unwrap();
    let tail = kept_tail(&full);
    assert_eq!(attempt["output_tail"], tail.as_str());
    let location = format!("host {HOST}: {}", log.display());

    // Here, another host: the tail, and where the full output is.
    let out = env.run(&["logs", "far"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), tail);
    let notes = text(&out.stderr);
    assert!(
        notes.contains(&format!("note: attempt 1 ran on host {HOST}; the queue keeps the end of its output (up to 8 KiB)")),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("note: full output: {location}\n")),
        "{notes}"
    );

    let logs = env.json(&["logs", "far"]);
    let kept = &logs["attempts"][0];
    assert_eq!(logs["output"], "", "nothing of it is on this host");
    assert_eq!(kept["host"], HOST);
    assert_eq!(kept["output_here"], false);
    assert_eq!(kept["output_location"], location.as_str());
    assert_eq!(kept["output_tail"], tail.as_str());

    let show = env.ok(&["show", "far"]);
    assert!(show.contains(&format!("full output: {location}")), "{show}");
    assert!(
        show.contains("output of attempt 1, as kept in the queue:\n    [... ")
            && show.ends_with("    3000\n    oops\n"),
        "{show}"
    );

    // On the host that ran it: the full output, as always.
    let out = env
        .cmd_on_host(HOST)
        .unwrap()
        .args(["logs", "far"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), full);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn nul_and_invalid_utf8_in_output_become_replacement_characters_in_the_tail() {
    binary_output_is_kept_as_text(TestEnv::new());
}

/// PostgreSQL's `text` refuses NUL: such output must not fail the finish.
#[test]
fn on_postgres_nul_and_invalid_utf8_in_output_become_replacement_characters() {
    if let Some(env) = TestEnv::postgres() {
        binary_output_is_kept_as_text(env);
    }
}

fn binary_output_is_kept_as_text(mut env: TestEnv) {
    env.spawn_worker("w1");
    env.enqueue(r#"{"id":"bin","command":"printf 'nul:\\000: bad:\\377: ok\\n'"}"#);
    env.wait_for_state("bin", "completed", WAIT);
    let attempt = &env.job("bin")["attempt_history"][0];
    assert_eq!(attempt["output_tail"], "nul:\u{FFFD}: bad:\u{FFFD}: ok\n");
}
