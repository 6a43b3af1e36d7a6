//! Unique jobs through the CLI: `add --unique-key`, `enqueue` with
//! `unique_key`/`on_duplicate`, and what each policy prints and exits with,
//! against real processes racing on one queue.

use crate::support::{TestEnv, output_text};
use std::process::Stdio;

/// `add --unique-key KEY [--on-duplicate POLICY] -- true`.
fn add_keyed(
    env: &TestEnv,
    key: &str,
    policy: Option<&str>,
    command: &str,
) -> std::process::Output {
    let mut args = vec!["add", "--unique-key", key];
    if let Some(policy) = policy {
        args.extend(["--on-duplicate", policy]);
    }
    args.extend(["--", command]);
    env.run(&args)
}

#[test]
fn four_concurrent_add_processes_with_one_key_make_one_job() {
    const ROUNDS: usize = 10;
    let env = TestEnv::new();
    for round in 0..ROUNDS {
        let key = format!("nightly-{round}");
        let children: Vec<_> = (0..4)
            .map(|_| {
                env.cmd()
                    .args(["add", "--unique-key", &key, "--", "true"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start queuectl add")
            })
            .collect();
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:#?}",
            outputs.iter().map(output_text).collect::<Vec<_>>()
        );
        let id = String::from_utf8_lossy(&winners[0].stdout)
            .trim()
            .to_owned();
        for loser in outputs.iter().filter(|o| !o.status.success()) {
            assert_eq!(loser.status.code(), Some(4), "{}", output_text(loser));
            assert_eq!(
                String::from_utf8_lossy(&loser.stderr).trim(),
                format!("queuectl: unique key '{key}' is held by unfinished job '{id}'")
            );
            assert!(loser.stdout.is_empty());
        }
        assert_eq!(env.job(&id)["unique_key"], key.as_str());
    }
    assert_eq!(env.json(&["list", "--all"])["total"], ROUNDS);
}

#[test]
fn skip_prints_the_existing_id_and_exits_0() {
    let env = TestEnv::new();
    let first = add_keyed(&env, "report:2026-12-01", None, "make report");
    assert!(first.status.success(), "{}", output_text(&first));
    let id = String::from_utf8_lossy(&first.stdout).trim().to_owned();

    let again = add_keyed(&env, "report:2026-12-01", Some("skip"), "make report");
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&format!(
            "unique key 'report:2026-12-01' is held by unfinished job '{id}': nothing enqueued"
        )),
        "{}",
        output_text(&again)
    );
    let json = env.json(&[
        "enqueue",
        r#"{"command":"make report","unique_key":"report:2026-12-01","on_duplicate":"skip"}"#,
    ]);
    assert_eq!(
        json,
        serde_json::json!({"enqueued": 0, "ids": [id], "jobs": [{"id": id, "outcome": "existing"}]})
    );
    assert_eq!(env.json(&["list", "--all"])["total"], 1);

    // A large batch gets one count line on stderr, not a line per job.
    let batch = |policy: &str| -> String {
        (0..25)
            .map(|i| format!("{{\"command\":\"true\",\"unique_key\":\"b{i}\",\"on_duplicate\":\"{policy}\"}}\n"))
            .collect()
    };
    let first = env.run_with_stdin(&["enqueue", "-"], batch("reject"));
    assert!(
        first.status.success() && first.stderr.is_empty(),
        "{}",
        output_text(&first)
    );
    let again = env.run_with_stdin(&["enqueue", "-"], batch("skip"));
    assert!(again.status.success(), "{}", output_text(&again));
    assert_eq!(again.stdout, first.stdout, "the same 25 ids, the holders'");
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "queuectl: 25 job(s) met an unfinished job holding their unique key: 25 skipped, 0 replaced"
    );

    // replace gives the waiting holder the new settings, under its own id.
    let replaced = add_keyed(
        &env,
        "report:2026-12-01",
        Some("replace"),
        "make report --full",
    );
    assert!(replaced.status.success(), "{}", output_text(&replaced));
    assert_eq!(String::from_utf8_lossy(&replaced.stdout).trim(), id);
    assert_eq!(env.job(&id)["command"], "make report --full");
    let shown = env.ok(&["show", &id]);
    assert!(shown.contains("unique key:  report:2026-12-01"), "{shown}");
    assert_eq!(env.json(&["list", "--all"])["total"], 26);
}

#[test]
fn reject_exits_4() {
    let env = TestEnv::new();
    let holder =
        env.enqueue(r#"{"id":"holder","command":"true","unique_key":"k","max_retries":0}"#);
    let second = add_keyed(&env, "k", None, "true");
    assert_eq!(second.status.code(), Some(4), "{}", output_text(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stderr).trim(),
        format!("queuectl: unique key 'k' is held by unfinished job '{holder}'")
    );
    // A batch with one refused job enqueues none of them.
    let batch =
        "{\"id\":\"fine\",\"command\":\"true\"}\n{\"command\":\"true\",\"unique_key\":\"k\"}\n";
    let out = env.run_with_stdin(&["enqueue", "-"], batch);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "queuectl: line 2: unique key 'k' is held by unfinished job 'holder'; nothing from this batch was enqueued"
    );
    assert_eq!(
        env.json(&["list", "--all"])["total"],
        1,
        "the batch was rolled back"
    );

    // Input mistakes are exit 2, named by flag.
    let long = "k".repeat(201);
    let out = add_keyed(&env, &long, None, "true");
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--unique-key: must be 1 to 200 characters long"),
        "{}",
        output_text(&out)
    );
    let out = env.run(&["add", "--on-duplicate", "skip", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));

    // Restarting a finished job whose key another job holds is refused too.
    env.ok(&["cancel", "holder"]);
    let taker = String::from_utf8_lossy(&add_keyed(&env, "k", None, "true").stdout)
        .trim()
        .to_owned();
    let out = env.run(&["restart", "holder"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "queuectl: job 'holder' was not restarted: unique key 'k' is held by unfinished job '{taker}'"
        )
    );
    assert_eq!(env.state("holder"), "cancelled");
}

/// `restart` and `dlq retry` by filter report each job they leave for its
/// key's holder as a restart by id does, and exit 4; more than 20 get a
/// count line, and `--json` lists each under `failed`.
#[test]
fn a_filter_reports_the_jobs_it_leaves_for_their_keys_holder() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "a", "--unique-key", "K", "--", "true"]);
    env.ok(&["add", "--id", "c", "--", "true"]);
    env.ok(&["worker", "run", "--drain"]);
    env.ok(&[
        "add",
        "--id",
        "b",
        "--unique-key",
        "K",
        "--delay",
        "1h",
        "--",
        "true",
    ]);
    let out = env.run(&["restart", "--all"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "job 'c' is pending again\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "queuectl: job 'a' was not restarted: unique key 'K' is held by unfinished job 'b'\n\
         queuectl: 1 of 2 job(s) not restarted\n"
    );
    assert_eq!(env.state("a"), "completed");

    let out = env.run(&["--json", "restart", "--state", "completed"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restarted"], serde_json::json!([]));
    assert_eq!(report["failed"][0]["id"], "a");
    assert_eq!(report["failed"][0]["state"], "completed");

    env.ok(&[
        "add",
        "--id",
        "d1",
        "--unique-key",
        "D",
        "--retries",
        "0",
        "--",
        "false",
    ]);
    env.ok(&["cancel", "b", "c"]);
    env.ok(&["worker", "run", "--drain"]);
    env.ok(&[
        "add",
        "--id",
        "d2",
        "--unique-key",
        "D",
        "--delay",
        "1h",
        "--",
        "true",
    ]);
    let out = env.run(&["dlq", "retry", "--all"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "queuectl: job 'd1' was not retried: unique key 'D' is held by unfinished job 'd2'"
    );
    assert!(out.stdout.is_empty(), "{}", output_text(&out));
    assert_eq!(env.state("d1"), "dead");

    // 25 cancelled jobs whose keys were taken again: one count line.
    let batch = |prefix: &str| -> String {
        (0..25)
            .map(|i| format!("{{\"id\":\"{prefix}{i}\",\"command\":\"true\",\"delay\":\"1h\",\"unique_key\":\"many-{i}\"}}\n"))
            .collect()
    };
    assert!(
        env.run_with_stdin(&["enqueue", "-"], batch("old"))
            .status
            .success()
    );
    env.ok(&["cancel", "--state", "pending"]);
    assert!(
        env.run_with_stdin(&["enqueue", "-"], batch("new"))
            .status
            .success()
    );
    let out = env.run(&["restart", "--state", "cancelled"]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "queuectl: 25 of 28 job(s) not restarted: an unfinished job holds each one's unique key \
         (--json lists each)\n",
        "b, c and d2 were restarted with them"
    );
}
