//! The CLI's contract: config, status and metrics output, exit codes,
//! completions and the man page.

use crate::support::{TestEnv, binary};

#[test]
fn config_get_and_set_validate_and_keep_comments() {
    let env = TestEnv::with_config("# tuned for the nightly batch\nmax_retries = 3 # keep low\n");
    assert_eq!(env.ok(&["config", "get", "max_retries"]), "3\n");
    env.ok(&["config", "set", "max_retries", "5"]);
    assert_eq!(env.ok(&["config", "get", "max_retries"]), "5\n");
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(
        text.contains("# tuned for the nightly batch") && text.contains("# keep low"),
        "{text}"
    );
    for (key, value) in [
        ("max_retries", "-1"),
        ("backoff_base", "0.5"),
        ("durability", "fast"),
        ("colour", "red"),
    ] {
        let out = env.run(&["config", "set", key, value]);
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(key));
    }
    assert_eq!(
        std::fs::read_to_string(env.config_path()).unwrap(),
        text,
        "rejected sets change nothing"
    );
    let all = env.json(&["config", "get"]);
    assert_eq!(
        all["db_path"],
        env.db_shown(),
        "QUEUECTL_DB wins over the config"
    );
    assert_eq!(all["backoff_base"], 2.0);
    assert_eq!(env.run(&["config", "get", "nope"]).status.code(), Some(2));
}

#[test]
fn a_broken_config_file_is_reported_not_ignored() {
    let env = TestEnv::with_config("max_retries = \"many\"\n");
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_retries"));
}

#[test]
fn status_metrics_and_list_report_counts() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    env.enqueue(r#"{"id":"b","command":"true","delay":"1h"}"#);
    let status = env.json(&["status"]);
    assert_eq!(status["counts"]["pending"], 2);
    assert_eq!(status["counts"]["completed"], 0);
    let metrics = env.json(&["metrics"]);
    assert_eq!(metrics["total"], 2);
    assert!(metrics["success_rate"].is_null());
    let text = env.ok(&["status"]);
    assert!(text.contains("pending 2"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when not on a terminal");
    let list = env.ok(&["list", "--state", "pending"]);
    assert!(
        list.starts_with("ID") && list.contains("a ") && list.contains("b "),
        "{list}"
    );
    assert_eq!(
        env.run(&["list", "--state", "bogus"]).status.code(),
        Some(2)
    );
    assert_eq!(env.run(&["show", "missing"]).status.code(), Some(3));
    let purge = env.json(&["purge", "--older-than", "0s"]);
    assert_eq!(
        purge["purged"],
        serde_json::json!([]),
        "pending jobs are never purged"
    );
}

#[test]
fn purge_removes_finished_jobs_and_their_logs() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"done","command":"echo bye"}"#);
    env.enqueue(r#"{"id":"waiting","command":"true","delay":"1h"}"#);
    env.spawn_worker("w1");
    env.wait_for_state("done", "completed", std::time::Duration::from_secs(20));
    let log = env.job_log("done");
    assert!(log.exists());
    let none = env.json(&["purge", "--older-than", "1h"]);
    assert_eq!(none["purged"], serde_json::json!([]));
    let purged = env.json(&["purge", "--older-than", "0s"]);
    assert_eq!(purged["purged"], serde_json::json!(["done"]));
    assert!(!log.exists());
    assert_eq!(env.run(&["show", "done"]).status.code(), Some(3));
    assert_eq!(env.state("waiting"), "pending");
}

#[test]
fn help_completions_and_man_page_need_no_queue() {
    let run = |args: &[&str]| {
        std::process::Command::new(binary())
            .args(args)
            .env("HOME", "/nonexistent")
            .env("QUEUECTL_CONFIG", "/nonexistent/config.toml")
            .output()
            .unwrap()
    };
    let help = run(&["enqueue", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        // The dynamic script: it calls queuectl back (tests/it/completion.rs).
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && script.contains("QUEUECTL_COMPLETE"),
            "{shell}"
        );
    }
    let man = run(&["man"]);
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH queuectl"));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let env = TestEnv::new();
    let jobs: String = (0..2000)
        .map(|i| format!("{{\"command\":\"true {i}\"}}\n"))
        .collect();
    assert!(
        env.run_with_stdin(&["enqueue", "-"], &jobs)
            .status
            .success()
    );
    let mut child = env
        .cmd()
        .args(["list", "--limit", "2000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "no panic message: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_of_an_unreachable_database_says_so_and_still_lists_this_hosts_workers() {
    let env = TestEnv::new();
    let db = "postgresql://queuectl@127.0.0.1:1/queue";
    let out = env.run(&["--db", db, "status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("queue: postgresql://queuectl@127.0.0.1:1/queue"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unreachable") && stdout.contains("workers"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is unreachable"));
    let out = env.run(&["--db", db, "--json", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["reachable"], false);
    assert!(json["workers"].is_array());
}

/// Each command's own options come first; the global ones (--config, --db,
/// --json, --color, --utc) under "Global options", the same on every command.
#[test]
fn global_options_have_their_own_heading_after_each_commands_own() {
    let globals = ["--config", "--db", "--json", "--color", "--utc"];
    for (words, _) in crate::support::subcommands() {
        if words.first().is_some_and(|w| w == "bench") {
            continue; // its --help is queuectl-bench's own
        }
        let out = std::process::Command::new(binary())
            .args(&words)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let (own, global) = help
            .split_once("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{words:?}: no Global options heading:\n{help}"));
        let global = global.split("\n\n").next().unwrap();
        for flag in globals {
            let listed = |text: &str| {
                text.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{flag} ")))
            };
            assert!(!listed(own), "{words:?}: {flag} among the own options");
            assert!(listed(global), "{words:?}: {flag} not under Global options");
        }
    }
}

/// add and edit share the job-field flags; only add has defaults (edit
/// keeps the job's value), so only add's help names them.
#[test]
fn job_field_defaults_show_on_add_only() {
    let help = |command: &str| {
        let out = std::process::Command::new(binary())
            .args([command, "--help"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (add, edit) = (help("add"), help("edit"));
    for default in [
        "first [default: 0]",
        "[default: the config's max_retries]",
        "[default: the config's timeout_seconds]",
    ] {
        assert!(add.contains(default), "add: {default}\n{add}");
    }
    for flag in ["--priority", "--retries", "--timeout"] {
        let line = edit
            .split(flag)
            .nth(1)
            .unwrap()
            .split(" --")
            .next()
            .unwrap();
        assert!(!line.contains("default"), "edit {flag}: {line}");
    }
    assert!(!edit.contains("add:"), "{edit}");
}
