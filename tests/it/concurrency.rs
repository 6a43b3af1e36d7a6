//! Many workers and enqueuers on one queue: each job runs exactly once.

use crate::support::{TestEnv, read_lines, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[test]
fn four_workers_and_four_enqueuers_run_every_job_exactly_once() {
    let mut env = TestEnv::new();
    let out = env.path("ids");
    for w in 1..=4 {
        env.spawn_worker(&format!("w{w}"));
    }
    // Four enqueuers at once, each 200 jobs: 50 one at a time, 150 in a batch.
    let env_ref = &env;
    std::thread::scope(|scope| {
        for e in 0..4 {
            let out = out.clone();
            scope.spawn(move || {
                let job = |i: usize| {
                    format!(
                        r#"{{"id":"e{e}-{i}","command":"echo e{e}-{i} >> {}"}}"#,
                        out.display()
                    )
                };
                for i in 0..50 {
                    env_ref.enqueue(&job(i));
                }
                let batch: String = (50..200).map(|i| job(i) + "\n").collect();
                let result = env_ref.run_with_stdin(&["enqueue", "-"], &batch);
                assert!(
                    result.status.success(),
                    "{}",
                    String::from_utf8_lossy(&result.stderr)
                );
            });
        }
    });
    wait_until("all 800 jobs completed", Duration::from_secs(120), || {
        env.count("completed") == 800
    });
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in read_lines(&out) {
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(seen.len(), 800, "every job ran");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    let status = env.json(&["status"]);
    assert_eq!(status["counts"]["processing"], 0);
}

/// `cancel` of a running job promises "it will be stopped and marked
/// cancelled". Jobs here end within 200 ms, mostly before their worker
/// notices the cancel (it looks 250 ms after the start at the earliest):
/// the promise must hold anyway.
#[test]
fn every_running_job_whose_cancel_was_answered_ends_cancelled() {
    const JOBS: usize = 400;
    const CANCELS: usize = 200;
    let mut env = TestEnv::new();
    let enqueue = |env: &TestEnv, ids: std::ops::Range<usize>| {
        let pauses = ["0.05", "0.1", "0.15", "0.2"];
        let batch: String = ids
            .map(|i| {
                format!(
                    r#"{{"id":"j{i}","command":"sleep {}"}}"#,
                    pauses[i % pauses.len()]
                ) + "\n"
            })
            .collect();
        let out = env.run_with_stdin(&["enqueue", "-"], &batch);
        assert!(out.status.success());
    };
    enqueue(&env, 0..JOBS);
    let mut enqueued = JOBS;
    for w in 1..=4 {
        env.spawn_worker(&format!("w{w}"));
    }
    let mut answers: BTreeMap<String, String> = BTreeMap::new();
    while answers.len() < CANCELS {
        let running = env.json(&["list", "--state", "processing"]);
        let ids: Vec<String> = running["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .filter(|id| !answers.contains_key(id))
            .collect();
        if ids.is_empty() && env.count("pending") == 0 {
            // Where each command is slow (a loaded machine), the jobs can
            // all end before 200 cancels reached them: more jobs, then.
            assert!(enqueued < 10 * JOBS, "ran out of running jobs to cancel");
            enqueue(&env, enqueued..enqueued + JOBS / 4);
            enqueued += JOBS / 4;
            continue;
        }
        // The cancels of one listing go out at once: one after another,
        // the jobs (50-200 ms each) often end first where each command
        // costs more (a PostgreSQL login, a loaded machine).
        let wanted: Vec<String> = ids.into_iter().take(CANCELS - answers.len()).collect();
        let env = &env;
        let answered: Vec<(String, String)> = std::thread::scope(|scope| {
            let cancels: Vec<_> = wanted
                .into_iter()
                .map(|id| {
                    scope.spawn(move || {
                        let answer = cancel_answer(env, &id);
                        (id, answer)
                    })
                })
                .collect();
            cancels
                .into_iter()
                .map(|cancel| cancel.join().unwrap())
                .collect()
        });
        answers.extend(answered);
    }
    wait_until("every job finished", Duration::from_secs(120), || {
        let status = env.json(&["status"]);
        ["pending", "processing", "failed"]
            .iter()
            .all(|state| status["counts"][state] == 0)
    });
    let jobs = env.json(&["list", "--all"]);
    assert_eq!(jobs["total"], enqueued);
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), enqueued, "no job lost");
    let requested: BTreeSet<&str> = answers
        .iter()
        .filter(|(_, answer)| *answer == "requested")
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        requested.len() >= CANCELS / 4,
        "too few cancels reached a running job to test anything: {answers:?}"
    );
    let broken: Vec<String> = jobs
        .iter()
        .filter(|job| requested.contains(job["id"].as_str().unwrap()))
        .filter(|job| job["state"] != "cancelled")
        .map(|job| format!("{} {}", job["id"], job["state"]))
        .collect();
    assert!(
        broken.is_empty(),
        "promised cancelled, but ended otherwise ({} of {}): {broken:?}",
        broken.len(),
        requested.len()
    );
    for job in jobs {
        let expected = match answers.get(job["id"].as_str().unwrap()).map(String::as_str) {
            Some("requested" | "cancelled") => "cancelled",
            _ => "completed",
        };
        assert_eq!(job["state"], expected, "{job}");
    }
}

/// `cancel ID`'s answer: "cancelled", "requested", or "too late" (exit 4:
/// it finished before the cancel arrived, so nothing was promised).
fn cancel_answer(env: &TestEnv, id: &str) -> String {
    let out = env.run(&["--json", "cancel", id]);
    match out.status.code() {
        Some(0) => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if v["cancelled"] == serde_json::json!([id]) {
                "cancelled".to_owned()
            } else {
                assert_eq!(v["requested"][0]["id"], id, "{v}");
                "requested".to_owned()
            }
        }
        Some(4) => "too late".to_owned(),
        other => panic!(
            "cancel {id}: {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
