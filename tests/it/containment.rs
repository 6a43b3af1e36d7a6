//! Attempt containment: a rescue kills only the attempt it rescues (never
//! another queue's job with the same id), and a job that sheds its
//! environment still never runs twice at once when its worker freezes.

use crate::support::{TestEnv, signal, wait_until};
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
