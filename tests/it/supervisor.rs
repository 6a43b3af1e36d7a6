//! `worker start/stop` with the process supervisor (no systemd): start N,
//! scale down gracefully, restart a crashed worker, stop and wait.

use crate::support::{TestEnv, alive, can_unshare_mounts, signal, wait_until};
use nix::sys::signal::Signal;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn worker_pids(env: &TestEnv) -> Vec<(String, u32)> {
    let status = env.json(&["status"]);
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["heartbeat_at"].is_string())
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["pid"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

#[test]
fn start_scale_restart_and_stop() {
    let mut env = TestEnv::new();
    env.mark_supervised();
    let report = env.json(&["worker", "start", "--count", "3"]);
    assert_eq!(report["started"], serde_json::json!(["1", "2", "3"]));
    let names: Vec<_> = worker_pids(&env).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["1", "2", "3"],
        "all three registered before start returned"
    );

    // Starting again starts nothing new.
    let again = env.json(&["worker", "start", "--count", "3"]);
    assert_eq!(again["already_running"], serde_json::json!(["1", "2", "3"]));

    // A crashed worker is restarted by its keeper.
    let (_, pid_of_2) = worker_pids(&env)
        .into_iter()
        .find(|(n, _)| n == "2")
        .unwrap();
    signal(pid_of_2, Signal::SIGKILL);
    wait_until("worker 2 is back with a new pid", WAIT, || {
        worker_pids(&env)
            .iter()
            .any(|(n, p)| n == "2" && *p != pid_of_2 && alive(*p))
    });

    // Scale down to 1 while instance 3 runs a job: it finishes the job first.
    let gate = env.path("gate");
    env.enqueue(&format!(
        r#"{{"id":"busy","command":"while [ ! -e {} ]; do sleep 0.05; done"}}"#,
        gate.display()
    ));
    env.wait_for_state("busy", "processing", WAIT);
    let holder = env.job("busy")["worker"].as_str().unwrap().to_owned();
    // Let the job finish only once its worker was told to stop (if the
    // scale-down stops it at all), so the stop must wait for it.
    let holder_log = env.path(&format!("state/workers/{holder}.log"));
    let env_ref = &env;
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            if holder != "1" {
                wait_until("the holder is stopping", WAIT, || {
                    std::fs::read_to_string(&holder_log)
                        .is_ok_and(|log| log.contains("stop requested"))
                });
            }
            std::fs::write(&gate, "").unwrap();
        });
        env_ref.json(&["worker", "start", "--count", "1"])
    });
    assert_eq!(report["stopped"], serde_json::json!(["2", "3"]));
    if holder != "1" {
        assert_eq!(
            env.state("busy"),
            "completed",
            "worker {holder} finished its job before it stopped"
        );
    }
    env.wait_for_state("busy", "completed", WAIT);
    let history = env.job("busy")["attempt_history"].clone();
    assert_eq!(
        history.as_array().unwrap().len(),
        1,
        "never interrupted: {history}"
    );
    let names: Vec<_> = worker_pids(&env).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["1"]);

    let stopped = env.json(&["worker", "stop"]);
    assert_eq!(stopped["stopped"], serde_json::json!(["1"]));
    assert!(worker_pids(&env).is_empty());
    assert_eq!(
        env.json(&["worker", "stop"])["stopped"],
        serde_json::json!([])
    );
}

#[test]
fn a_kept_worker_feeds_its_keepers_watchdog_through_a_job_longer_than_its_timeout() {
    // Lease 2 s: the keeper's watchdog kills a worker silent for 1 s. The
    // keeper cannot set WATCHDOG_PID (it learns the pid after the exec), so
    // the worker must ping on WATCHDOG_USEC alone, as with libsystemd.
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.enqueue(r#"{"id":"long","command":"sleep 4","max_retries":0}"#);
    env.ok(&["worker", "start", "--count", "1"]);
    env.wait_for_state("long", "completed", WAIT);
    let job = env.job("long");
    assert_eq!(job["attempts"], 1, "one run, never cut short: {job}");
    let keeper_log = std::fs::read_to_string(env.path("state/workers/1.log")).unwrap_or_default();
    assert!(
        !keeper_log.contains("stopped pinging"),
        "a healthy worker was taken for frozen:\n{keeper_log}"
    );
}

#[test]
fn a_worker_start_that_fails_leaves_no_keeper_behind() {
    // The queue file is on a read-only mount: it opens, but the worker
    // cannot register, and fails at every start. Before the fix its keeper
    // went on restarting it after `worker start` had reported failure.
    if !can_unshare_mounts() {
        return;
    }
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.enqueue(r#"{"command":"true"}"#);
    let script = r#"mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && exec "$0" worker start --count 1"#;
    let out = env
        .cmd_in_private_mounts(script)
        .arg(env.db())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not become ready"), "{stderr}");
    let db = env.db().into_os_string().into_encoded_bytes();
    let keepers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.windows(db.len()).any(|w| w == db.as_slice()))
                && alive(*pid)
        })
        .collect();
    assert!(keepers.is_empty(), "still running: {keepers:?}");
}

#[test]
fn worker_start_refuses_another_applications_database_and_makes_nothing_beside_it() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.path("state")).unwrap();
    env.sql("CREATE TABLE notes (body TEXT);");
    let out = env.run(&["worker", "start", "--count", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a queuectl queue"), "{stderr}");
    assert!(
        !env.path("state/workers").exists(),
        "workers/ made beside it"
    );
}

#[test]
fn worker_stop_at_a_mistyped_path_creates_nothing() {
    let env = TestEnv::new();
    let missing = env.path("typo/queue.db");
    let out = env.ok(&["--db", missing.to_str().unwrap(), "worker", "stop"]);
    assert_eq!(out.trim(), "no workers were running");
    assert!(!env.path("typo").exists(), "worker stop made a directory");
}

/// Two hosts sharing a PostgreSQL queue and (as containers may) one pid
/// namespace: `worker start/stop` on one never counts or stops the other's
/// keepers, though they name the same database.
#[test]
fn worker_start_and_stop_leave_another_hosts_keepers_alone() {
    let Some(mut env) = TestEnv::postgres() else {
        return;
    };
    env.mark_supervised();
    let on_web2 = |args: &[&str]| {
        let mut cmd = env
            .cmd_on_host("web2")
            .expect("root can make a UTS namespace");
        cmd.env("QUEUECTL_STATE_DIR", env.path("web2-state"))
            .args(args)
            .output()
            .unwrap()
    };
    let started = on_web2(&["--json", "worker", "start", "--count", "1"]);
    assert!(started.status.success(), "{started:?}");
    let web2_keeper = std::fs::read_dir(env.path("web2-state"))
        .unwrap()
        .map(|e| e.unwrap().path().join("workers/1.pid"))
        .find(|p| p.exists())
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .trim()
                .parse::<u32>()
                .unwrap()
        })
        .expect("web2's keeper has a pid file");

    let here: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "worker", "start", "--count", "2"])).unwrap();
    assert_eq!(here["started"], serde_json::json!(["1", "2"]), "{here}");
    let stopped: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "worker", "stop"])).unwrap();
    assert_eq!(
        stopped["stopped"],
        serde_json::json!(["1", "2"]),
        "{stopped}"
    );
    assert!(alive(web2_keeper), "web2's keeper was left alone");

    let stopped = on_web2(&["--json", "worker", "stop"]);
    assert!(stopped.status.success(), "{stopped:?}");
    wait_until("web2's keeper stops", Duration::from_secs(20), || {
        !alive(web2_keeper)
    });
}

#[test]
fn a_stop_past_its_timeout_kills_every_worker_and_their_jobs() {
    let mut env =
        TestEnv::with_config(&format!("{}concurrency = 2\n", crate::support::TEST_CONFIG));
    env.mark_supervised();
    env.ok(&["worker", "start", "--count", "2"]);
    let pids = env.path("pids");
    for n in 0..4 {
        env.enqueue(&format!(
            r#"{{"id":"long{n}","command":"echo $$ >> {}; exec sleep 60"}}"#,
            pids.display()
        ));
    }
    wait_until("four jobs run in two workers", WAIT, || {
        env.count("processing") == 4 && crate::support::read_lines(&pids).len() == 4
    });
    let workers = worker_pids(&env);
    assert_eq!(workers.len(), 2);
    let out = env.run(&["worker", "stop", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("did not stop in time").count(),
        2,
        "both keepers are reported: {stderr}"
    );
    for (name, pid) in workers {
        wait_until(&format!("worker {name} is gone"), WAIT, || !alive(pid));
    }
    for pid in crate::support::read_lines(&pids) {
        let pid: u32 = pid.trim().parse().unwrap();
        wait_until("its jobs are gone", WAIT, || !alive(pid));
    }
}
