//! Many workers and enqueuers on one queue: each job runs exactly once.

use crate::support::{TestEnv, read_lines, wait_until};
use std::collections::BTreeMap;
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
