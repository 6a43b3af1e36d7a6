//! Worker slots (`concurrency = K`): one worker runs up to K jobs at once,
//! never more; STATUS and `queuectl status` show every slot; a graceful stop
//! waits for all of them; finished attempts that end together are recorded
//! together; a kill -9 with full slots runs each job again, once.

use crate::support::notify::NotifyListener;
use crate::support::{TEST_CONFIG, TestEnv, alive, read_lines, signal, wait_until};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn env_with_slots(slots: u32) -> TestEnv {
    TestEnv::with_config(&format!("{TEST_CONFIG}concurrency = {slots}\n"))
}

/// Jobs that mark themselves running (a file per job in `running/`), log
/// how many were running when they started, wait for `gate`, then unmark.
struct GatedJobs {
    running: PathBuf,
    starts: PathBuf,
    gate: PathBuf,
    pids: PathBuf,
}

impl GatedJobs {
    fn new(env: &TestEnv) -> GatedJobs {
        let running = env.path("running");
        std::fs::create_dir(&running).unwrap();
        GatedJobs {
            running,
            starts: env.path("starts"),
            gate: env.path("gate"),
            pids: env.path("pids"),
        }
    }

    fn enqueue(&self, env: &TestEnv, id: &str) {
        let mark = self.running.join(id);
        env.enqueue(&format!(
            r#"{{"id":"{id}","command":"touch {mark}; echo $$ >> {pids}; ls {running} | wc -l >> {starts}; while [ ! -e {gate} ]; do sleep 0.02; done; rm {mark}"}}"#,
            mark = mark.display(),
            pids = self.pids.display(),
            running = self.running.display(),
            starts = self.starts.display(),
            gate = self.gate.display(),
        ));
    }

    fn started(&self) -> usize {
        read_lines(&self.starts).len()
    }

    /// The most jobs any starting job saw running, itself included.
    fn most_at_once(&self) -> usize {
        read_lines(&self.starts)
            .iter()
            .map(|n| n.trim().parse::<usize>().unwrap())
            .max()
            .unwrap_or(0)
    }

    fn pids(&self) -> Vec<u32> {
        read_lines(&self.pids)
            .iter()
            .map(|p| p.trim().parse().unwrap())
            .collect()
    }

    fn open(&self) {
        std::fs::write(&self.gate, "").unwrap();
    }
}

fn spawn_worker_with_notify(env: &mut TestEnv, name: &str, socket: &Path) -> u32 {
    let log = std::fs::File::create(env.path(&format!("worker-{name}.log"))).unwrap();
    let child = env
        .cmd()
        .args(["worker", "run", "--name", name])
        .env("NOTIFY_SOCKET", socket)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start worker");
    env.adopt(child)
}

#[test]
fn a_worker_runs_up_to_its_slots_at_once_and_shows_each() {
    // A long lease: its maintenance heartbeat comes every 20 s, so the
    // status text seen below was recorded because it changed.
    let config = TEST_CONFIG.replace("lease_seconds = 2", "lease_seconds = 60");
    let mut env = TestEnv::with_config(&format!("{config}concurrency = 3\n"));
    let jobs = GatedJobs::new(&env);
    for id in ["a", "b", "c", "d", "e"] {
        jobs.enqueue(&env, id);
    }
    let socket = env.path("notify.sock");
    let messages = NotifyListener::bind(&socket);
    spawn_worker_with_notify(&mut env, "w", &socket);
    wait_until("three jobs run at once", WAIT, || {
        env.count("processing") == 3
    });
    wait_until("the three have started", WAIT, || jobs.started() == 3);
    assert_eq!(env.count("pending"), 2, "two wait for a free slot");

    // STATUS names every busy slot.
    wait_until("STATUS shows 3/3 busy", WAIT, || {
        messages.seen("STATUS=running 3/3: ").is_some()
    });
    let status = env.json(&["status"]);
    let worker = &status["workers"][0];
    assert_eq!(worker["slots"], 3, "{status}");
    let mut running: Vec<String> = worker["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap().to_owned())
        .collect();
    running.sort();
    assert_eq!(running, ["a", "b", "c"], "{status}");
    let recorded = |env: &TestEnv| {
        env.json(&["status"])["workers"][0]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Within a second; the maintenance heartbeat would take 20 s.
    wait_until(
        "the worker's row has the new status text",
        Duration::from_secs(10),
        || recorded(&env).starts_with("running 3/3: "),
    );
    let text = env.ok(&["status"]);
    assert!(text.contains("SLOTS"), "{text}");
    assert!(text.contains(" 3/3 "), "{text}");

    jobs.open();
    wait_until("every job completed", WAIT, || env.count("completed") == 5);
    assert_eq!(jobs.most_at_once(), 3, "never more jobs at once than slots");
}

#[test]
fn a_graceful_stop_waits_for_every_slot_and_claims_nothing_more() {
    let mut env = env_with_slots(3);
    let jobs = GatedJobs::new(&env);
    for id in ["a", "b", "c", "d"] {
        jobs.enqueue(&env, id);
    }
    let worker = env.spawn_worker("w");
    wait_until("three jobs started", WAIT, || jobs.started() == 3);
    signal(worker, Signal::SIGTERM);
    wait_until("the stop is seen", WAIT, || {
        env.json(&["status"])["workers"][0]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("stopping: "))
    });
    assert!(alive(worker), "the worker waits for its running jobs");
    jobs.open();
    assert!(env.wait_worker(worker, WAIT).success());
    for id in ["a", "b", "c"] {
        assert_eq!(env.state(id), "completed", "{id}");
    }
    assert_eq!(env.state("d"), "pending", "nothing claimed after the stop");
}

#[test]
fn a_second_signal_kills_every_slot_and_returns_the_jobs() {
    let mut env = env_with_slots(2);
    let jobs = GatedJobs::new(&env);
    for id in ["a", "b"] {
        jobs.enqueue(&env, id);
    }
    let worker = env.spawn_worker("w");
    wait_until("both jobs started", WAIT, || jobs.started() == 2);
    signal(worker, Signal::SIGTERM);
    signal(worker, Signal::SIGINT);
    assert!(env.wait_worker(worker, WAIT).success());
    for pid in jobs.pids() {
        assert!(!alive(pid), "job process {pid} was killed");
    }
    for id in ["a", "b"] {
        let job = env.job(id);
        assert_eq!(job["state"], "pending", "{job}");
        assert_eq!(job["attempt_history"][0]["outcome"], "interrupted", "{job}");
    }
}

#[test]
fn cancel_and_timeout_stop_only_their_own_slot() {
    let mut env = env_with_slots(3);
    let jobs = GatedJobs::new(&env);
    jobs.enqueue(&env, "keep");
    jobs.enqueue(&env, "cancel-me");
    env.enqueue(r#"{"id":"slow","command":"sleep 60","timeout_seconds":1}"#);
    env.spawn_worker("w");
    wait_until("all three run", WAIT, || env.count("processing") == 3);
    env.ok(&["cancel", "cancel-me"]);
    env.wait_for_state("cancel-me", "cancelled", WAIT);
    wait_until("slow times out", WAIT, || {
        env.job("slow")["attempt_history"][0]["outcome"] == "timed_out"
    });
    assert_eq!(env.state("keep"), "processing", "the other slot runs on");
    jobs.open();
    env.wait_for_state("keep", "completed", WAIT);
}

#[test]
fn attempts_that_end_while_the_queue_is_busy_are_recorded_in_one_transaction() {
    let mut env = TestEnv::sqlite();
    std::fs::write(env.config_path(), format!("{TEST_CONFIG}concurrency = 4\n")).unwrap();
    let jobs = GatedJobs::new(&env);
    for id in ["a", "b", "c", "d"] {
        jobs.enqueue(&env, id);
    }
    env.spawn_worker("w");
    wait_until("four jobs started", WAIT, || jobs.started() == 4);
    // Hold the write lock: the worker's first recording waits for it while
    // the other jobs end; they must then go in together, not one by one.
    let db = rusqlite::Connection::open(env.db()).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    jobs.open();
    for pid in jobs.pids() {
        wait_until("every job process has ended", WAIT, || !alive(pid));
    }
    db.execute_batch("COMMIT").unwrap();
    wait_until("all four completed", WAIT, || env.count("completed") == 4);
    let mut recorded_at: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| env.job(id)["attempt_history"][0]["finished_at"].to_string())
        .collect();
    recorded_at.sort();
    recorded_at.dedup();
    assert!(
        recorded_at.len() <= 2,
        "four attempts recorded in {} transactions: {recorded_at:?}",
        recorded_at.len()
    );
}

#[test]
fn a_kill_9_with_full_slots_runs_each_job_again_once() {
    let mut env = env_with_slots(3);
    let jobs = GatedJobs::new(&env);
    for id in ["a", "b", "c"] {
        jobs.enqueue(&env, id);
    }
    let doomed = env.spawn_worker("w");
    wait_until("three jobs started", WAIT, || jobs.started() == 3);
    let first_runs = jobs.pids();
    signal(doomed, Signal::SIGKILL);
    env.wait_worker(doomed, WAIT);
    for pid in &first_runs {
        wait_until("the dead worker's jobs die with it", WAIT, || !alive(*pid));
    }
    jobs.open();
    // Under the same name, the new worker takes the dead one's jobs back.
    env.spawn_worker("w");
    wait_until("all three completed", WAIT, || env.count("completed") == 3);
    for id in ["a", "b", "c"] {
        let job = env.job(id);
        let outcomes: Vec<&str> = job["attempt_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["lease_expired", "succeeded"], "{job}");
    }
}

#[test]
fn slots_must_be_between_1_and_256() {
    let env = TestEnv::new();
    for bad in ["0", "257", "x"] {
        let out = env.run(&["worker", "run", "--concurrency", bad]);
        assert_eq!(out.status.code(), Some(2), "--concurrency {bad}");
    }
    let out = env.run(&["config", "set", "concurrency", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an integer from 1 to 256"),
        "{out:?}"
    );
    env.ok(&["config", "set", "concurrency", "8"]);
    assert_eq!(env.ok(&["config", "get", "concurrency"]).trim(), "8");
}

#[test]
fn systemd_hears_of_status_changes_at_most_ten_times_a_second_and_of_the_last_one() {
    let mut env = env_with_slots(2);
    let socket = env.path("notify.sock");
    let messages = NotifyListener::bind(&socket);
    let batch: String = (0..300).map(|_| "{\"command\":\"true\"}\n").collect();
    let started = std::time::Instant::now();
    spawn_worker_with_notify(&mut env, "w", &socket);
    wait_until("READY=1", WAIT, || messages.seen("READY=1").is_some());
    env.run_with_stdin(&["enqueue", "-"], &batch);
    wait_until("all 300 completed", WAIT, || env.count("completed") == 300);
    wait_until("the last status says idle", WAIT, || {
        messages
            .messages()
            .iter()
            .rev()
            .find(|m| m.contains("STATUS="))
            .is_some_and(|m| m.contains("STATUS=idle"))
    });
    let elapsed_ms = started.elapsed().as_millis() as usize;
    let statuses = messages
        .messages()
        .iter()
        .filter(|m| m.contains("STATUS=running"))
        .count();
    assert!(statuses >= 1, "the running jobs were shown");
    assert!(
        statuses <= elapsed_ms / 100 + 2,
        "{statuses} status messages in {elapsed_ms} ms for 300 jobs"
    );
}

#[test]
fn a_retry_that_falls_due_while_another_slot_runs_is_not_missed_by_drain() {
    // The first retry waits 1 s (backoff capped at 1 s).
    // Leases long enough that their expiry is no reason to look again.
    let config = TEST_CONFIG
        .replace("backoff_max_seconds = 0", "backoff_max_seconds = 1")
        .replace("lease_seconds = 2", "lease_seconds = 60");
    let env = TestEnv::with_config(&format!("{config}concurrency = 3\n"));
    env.enqueue(r#"{"id":"flaky","command":"exit 1","max_retries":1}"#);
    env.enqueue(r#"{"id":"slow","command":"sleep 2"}"#);
    let out = env.run(&["worker", "run", "--drain", "--name", "w"]);
    assert!(out.status.success(), "{out:?}");
    let flaky = env.job("flaky");
    assert_eq!(
        flaky["state"], "dead",
        "the retry ran before drain ended: {flaky}"
    );
    assert_eq!(flaky["attempt_history"].as_array().unwrap().len(), 2);
    assert_eq!(env.state("slow"), "completed");
}
