//! Crashes and stops: kill -9 mid-job, graceful stop, a second signal, and a
//! queue that survives worker restarts.

use crate::support::{TestEnv, alive, read_lines, signal, wait_until};
use nix::sys::signal::Signal;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_killed_workers_job_runs_again_after_its_lease_expires() {
    let mut env = TestEnv::new(); // lease_seconds = 2
    let runs = env.path("runs");
    let child_pid = env.path("child.pid");
    // The first attempt hangs in a child process; later attempts finish.
    env.enqueue(&format!(
        r#"{{"id":"victim","command":"echo run $QUEUECTL_JOB_ATTEMPT >> {runs}; if [ $QUEUECTL_JOB_ATTEMPT = 1 ]; then sleep 300 & echo $! > {pid}; wait; fi"}}"#,
        runs = runs.display(),
        pid = child_pid.display()
    ));
    let doomed = env.spawn_worker("doomed");
    wait_until("the first attempt is running", WAIT, || {
        child_pid.exists() && read_lines(&runs).len() == 1
    });
    let orphan: u32 = std::fs::read_to_string(&child_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(doomed, Signal::SIGKILL);
    env.wait_worker(doomed, WAIT);
    assert_eq!(
        env.state("victim"),
        "processing",
        "still held by the dead worker's lease"
    );

    env.spawn_worker("rescuer");
    env.wait_for_state("victim", "completed", WAIT);
    assert_eq!(read_lines(&runs), ["run 1", "run 2"]);
    assert!(
        !alive(orphan),
        "the first run's leftover process was killed before the re-run"
    );
    let job = env.job("victim");
    let first = &job["attempt_history"][0];
    assert_eq!(first["outcome"], "lease_expired");
    assert!(
        first["error"].as_str().unwrap().contains(&format!(
            "worker '{}' stopped renewing",
            env.worker_name("doomed")
        )),
        "{first}"
    );
    assert_eq!(job["attempt_history"][1]["outcome"], "succeeded");
    assert_eq!(job["failures"], 1, "the lost attempt counts as a failure");
}

#[test]
fn sigterm_lets_the_running_job_finish_then_exits_zero() {
    let mut env = TestEnv::new();
    let gate = env.path("gate");
    let done = env.path("done");
    env.enqueue(&format!(
        r#"{{"id":"important","command":"while [ ! -e {} ]; do sleep 0.05; done; echo finished > {}"}}"#,
        gate.display(),
        done.display()
    ));
    env.enqueue(r#"{"id":"next","command":"true"}"#);
    let worker = env.spawn_worker("w1");
    env.wait_for_state("important", "processing", WAIT);
    signal(worker, Signal::SIGTERM);
    // The worker keeps waiting for its job, however long it takes.
    wait_until("the stop is acknowledged", WAIT, || {
        env.worker_log("w1").contains("stop requested")
    });
    assert!(alive(worker), "worker waits for its job");
    std::fs::write(&gate, "").unwrap();
    let status = env.wait_worker(worker, WAIT);
    assert_eq!(status.code(), Some(0));
    assert_eq!(env.state("important"), "completed");
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "finished\n");
    assert_eq!(
        env.state("next"),
        "pending",
        "nothing new is claimed after the stop signal"
    );
}

#[test]
fn a_second_signal_stops_the_job_and_returns_it_to_the_queue() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"long","command":"sleep 300","max_retries":0}"#);
    let worker = env.spawn_worker("w1");
    env.wait_for_state("long", "processing", WAIT);
    signal(worker, Signal::SIGTERM);
    wait_until("the stop is acknowledged", WAIT, || {
        env.worker_log("w1").contains("stop requested")
    });
    signal(worker, Signal::SIGINT);
    assert_eq!(env.wait_worker(worker, WAIT).code(), Some(0));
    let job = env.job("long");
    assert_eq!(
        job["state"], "pending",
        "back in the queue, not dead, despite max_retries 0"
    );
    assert_eq!(job["failures"], 0);
    assert_eq!(job["attempt_history"][0]["outcome"], "interrupted");
}

#[test]
fn an_idle_worker_exits_at_once_on_sigterm() {
    let mut env = TestEnv::new();
    let worker = env.spawn_worker("idle");
    wait_until("the worker registered", WAIT, || {
        env.registered_workers() > 0
    });
    signal(worker, Signal::SIGTERM);
    assert_eq!(env.wait_worker(worker, WAIT).code(), Some(0));
    assert!(
        env.json(&["status"])["workers"]
            .as_array()
            .unwrap()
            .is_empty(),
        "it unregistered"
    );
}

#[test]
fn the_queue_survives_worker_restarts() {
    let mut env = TestEnv::new();
    let out = env.path("out");
    for i in 0..5 {
        env.enqueue(&format!(
            r#"{{"id":"a{i}","command":"echo a{i} >> {}"}}"#,
            out.display()
        ));
    }
    let first = env.spawn_worker("w1");
    wait_until("the first batch ran", WAIT, || read_lines(&out).len() == 5);
    signal(first, Signal::SIGTERM);
    env.wait_worker(first, WAIT);

    for i in 0..5 {
        env.enqueue(&format!(
            r#"{{"id":"b{i}","command":"echo b{i} >> {}"}}"#,
            out.display()
        ));
    }
    assert_eq!(env.count("pending"), 5, "queued while no worker runs");
    let crashed = env.spawn_worker("w2");
    signal(crashed, Signal::SIGKILL);
    env.wait_worker(crashed, WAIT);
    env.spawn_worker("w3");
    wait_until("everything ran", WAIT, || env.count("completed") == 10);
    let mut lines = read_lines(&out);
    lines.sort();
    assert_eq!(lines.len(), 10, "each job ran once: {lines:?}");
    lines.dedup();
    assert_eq!(lines.len(), 10);
}

#[test]
fn a_worker_restarted_under_its_name_recovers_its_job_at_once() {
    // A lease long enough that only the restart, not expiry, can explain the recovery.
    let mut env = TestEnv::with_config("lease_seconds = 3600\nbackoff_max_seconds = 0\n");
    let runs = env.path("runs");
    env.enqueue(&format!(
        r#"{{"id":"resumed","command":"echo run >> {}; if [ $QUEUECTL_JOB_ATTEMPT = 1 ]; then sleep 300; fi"}}"#,
        runs.display()
    ));
    let first = env.spawn_worker("same");
    wait_until("the first attempt is running", WAIT, || {
        read_lines(&runs).len() == 1
    });
    signal(first, Signal::SIGKILL);
    env.wait_worker(first, WAIT);
    env.spawn_worker("same");
    env.wait_for_state("resumed", "completed", WAIT);
    let job = env.job("resumed");
    assert_eq!(job["attempt_history"][0]["outcome"], "lease_expired");
    assert!(
        job["attempt_history"][0]["error"]
            .as_str()
            .unwrap()
            .contains("restarted")
    );
}

#[test]
fn a_second_worker_cannot_take_a_live_workers_name() {
    let mut env = TestEnv::new();
    env.spawn_worker("unique");
    wait_until("the first worker registered", WAIT, || {
        env.registered_workers() == 1
    });
    let out = env.run(&["worker", "run", "--name", "unique"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by a running worker"));
}
