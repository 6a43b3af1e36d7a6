//! Every kind of bad input is refused with a message naming the field (and
//! line), a non-zero exit, and a queue left exactly as it was.

use crate::support::TestEnv;

/// The queue's jobs in enqueue order (`list` shows the newest first).
fn jobs_in_queue(env: &TestEnv) -> Vec<String> {
    let mut ids: Vec<String> = env.json(&["list", "--all"])["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    ids
}

fn assert_refused(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code for {needle}: stderr {stderr}"
    );
    assert!(stderr.starts_with("queuectl: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");
    assert!(out.stdout.is_empty(), "nothing printed on stdout");
}

#[test]
fn bad_single_jobs_are_refused_and_change_nothing() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"existing","command":"true"}"#);
    let before = jobs_in_queue(&env);
    for (input, needle) in [
        (r#"{"command":"true""#, "malformed JSON"),
        ("not json", "malformed JSON"),
        (
            r#"{"command":"true","colour":"red"}"#,
            "field 'colour': unknown field",
        ),
        (r#"{"command":42}"#, "field 'command': expected a string"),
        (r#"{"command":""}"#, "field 'command': must not be empty"),
        (r#"{"priority":1}"#, "field 'command': is required"),
        (
            r#"{"id":"existing","command":"true"}"#,
            "job 'existing' already exists",
        ),
        (r#"{"id":"../etc","command":"true"}"#, "field 'id'"),
        (
            r#"{"command":"true","run_at":"next tuesday"}"#,
            "field 'run_at': invalid RFC 3339",
        ),
        (
            r#"{"command":"true","delay":"soon"}"#,
            "field 'delay': invalid duration",
        ),
        (
            r#"{"command":"true","max_retries":-1}"#,
            "field 'max_retries'",
        ),
        (
            r#"{"command":"true","timeout_seconds":-5}"#,
            "field 'timeout_seconds'",
        ),
        (
            r#"{"command":"true","priority":"high"}"#,
            "field 'priority'",
        ),
        (r#"{"command":"true","env":{"A":1}}"#, "field 'env'"),
    ] {
        assert_refused(&env.run(&["enqueue", input]), needle);
    }
    assert_eq!(jobs_in_queue(&env), before);
}

#[test]
fn a_bad_line_in_a_file_or_stdin_rejects_the_whole_batch() {
    let env = TestEnv::new();
    let batch = "{\"id\":\"a\",\"command\":\"true\"}\n{\"id\":\"b\",\"command\":\"true\"}\n\n{\"id\":\"c\",\"command\":\"true\",\"delay\":\"5 fortnights\"}\n";
    let file = env.path("jobs.jsonl");
    std::fs::write(&file, batch).unwrap();
    assert_refused(
        &env.run(&["enqueue", "--file", file.to_str().unwrap()]),
        "line 4: field 'delay'",
    );
    assert_refused(
        &env.run_with_stdin(&["enqueue", "-"], batch),
        "line 4: field 'delay'",
    );
    let dup = "{\"id\":\"a\",\"command\":\"true\"}\n{\"id\":\"a\",\"command\":\"true\"}\n";
    assert_refused(
        &env.run_with_stdin(&["enqueue", "-"], dup),
        "line 2: field 'id': duplicate id 'a'",
    );
    assert!(!env.queue_exists(), "refused input creates no queue");

    env.enqueue(r#"{"id":"b","command":"true"}"#);
    let clash = "{\"id\":\"x\",\"command\":\"true\"}\n{\"id\":\"b\",\"command\":\"true\"}\n";
    assert_refused(
        &env.run_with_stdin(&["enqueue", "-"], clash),
        "line 2: field 'id': job 'b' already exists",
    );
    assert_eq!(jobs_in_queue(&env), ["b"]);
    let missing = env.run(&[
        "enqueue",
        "--file",
        env.path("missing.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "an unreadable file is an I/O failure"
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

#[test]
fn batches_from_file_and_stdin_are_enqueued_in_order() {
    let env = TestEnv::new();
    let file = env.path("jobs.json");
    std::fs::write(
        &file,
        r#"[{"id":"f1","command":"true"},{"id":"f2","command":"true"}]"#,
    )
    .unwrap();
    assert_eq!(
        env.ok(&["enqueue", "--file", file.to_str().unwrap()]),
        "f1\nf2\n"
    );
    let out = env.run_with_stdin(
        &["enqueue", "-"],
        "{\"id\":\"s1\",\"command\":\"true\"}\n{\"command\":\"true\"}\n",
    );
    assert!(out.status.success());
    let ids: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], "s1");
    assert_eq!(ids[1].len(), 26, "generated ids are ULIDs: {}", ids[1]);
    assert_eq!(jobs_in_queue(&env), ["f1", "f2", "s1", ids[1].as_str()]);
}

#[test]
fn invalid_utf8_on_stdin_or_in_a_file_is_an_input_error() {
    let env = TestEnv::new();
    let bytes = b"{\"command\":\"echo \xff\xfe\"}\n";
    let out = env.run_with_stdin(&["enqueue", "-"], bytes);
    assert_refused(&out, "not valid UTF-8");
    let file = env.path("jobs.jsonl");
    std::fs::write(&file, bytes).unwrap();
    assert_refused(
        &env.run(&["enqueue", "--file", file.to_str().unwrap()]),
        "not valid UTF-8",
    );
}

#[test]
fn nul_bytes_and_reserved_env_names_are_refused_at_enqueue() {
    let env = TestEnv::new();
    for (input, needle) in [
        (
            r#"{"command":"pwd","cwd":"/tmp\u0000/x"}"#,
            "field 'cwd': must not contain NUL bytes",
        ),
        (
            r#"{"command":"echo a\u0000b"}"#,
            "field 'command': must not contain NUL bytes",
        ),
        (r#"{"command":"true","env":{"A\u0000":"1"}}"#, "field 'env'"),
        (
            r#"{"command":"true","env":{"QUEUECTL_JOB_ID":"other"}}"#,
            "field 'env': variable QUEUECTL_JOB_ID is reserved",
        ),
        (
            r#"{"command":"true","env":{"x-y":"s3cret"}}"#,
            "field 'env': invalid variable name 'x-y'",
        ),
        (
            r#"{"command":"true","env_file":"../up"}"#,
            "field 'env_file'",
        ),
    ] {
        assert_refused(&env.run(&["enqueue", input]), needle);
    }
    assert!(!env.queue_exists());
}

#[test]
fn long_values_are_cut_in_messages() {
    let env = TestEnv::new();
    let huge = "k".repeat(1 << 20);
    std::fs::write(env.config_path(), format!("{huge} = 1\n")).unwrap();
    let out = env.run(&["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        &stderr[..stderr.len().min(300)]
    );
    assert!(stderr.len() < 1000, "{} bytes of error", stderr.len());
    assert!(stderr.contains("unknown key 'kkkk") && stderr.contains("(cut, 1048576 bytes in all)"));

    let env = TestEnv::new();
    let out = env.run_with_stdin(
        &["enqueue", "-"],
        format!(r#"{{"command":"true","{huge}":1}}"#),
    );
    assert_refused(&out, "(cut, 1048576 bytes in all)");
    assert!(
        out.stderr.len() < 1000,
        "{} bytes of error",
        out.stderr.len()
    );

    // Arguments too (at most 128 KiB each on Linux).
    env.enqueue(r#"{"command":"true"}"#);
    let long = "z".repeat(100_000);
    for args in [
        &["show", long.as_str()][..],
        &["cancel", &long],
        &["list", "--state", &long],
        &["purge", "--older-than", &long],
        &["worker", "run", "--name", &long],
        &["config", "get", &long],
        &["config", "set", &long, "1"],
    ] {
        let out = env.run(args);
        assert!(!out.status.success(), "{}", args[0]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.len() < 1000,
            "{}: {} bytes of error",
            args[0],
            stderr.len()
        );
        assert!(
            stderr.contains("(cut, 100000 bytes in all)"),
            "{}: {stderr}",
            args[0]
        );
    }
}

#[test]
fn a_queue_from_a_newer_queuectl_is_a_database_error() {
    let env = TestEnv::new();
    if env.skips_on_postgres("sets the schema version with SQLite's PRAGMA user_version") {
        return;
    }
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    env.sql("PRAGMA user_version = 999");
    for args in [&["list"][..], &["enqueue", r#"{"command":"true"}"#]] {
        let out = env.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("schema version 999, newer"), "{stderr}");
    }
}

/// `enqueue --help`'s own example: an array on the command line is one
/// batch, as in a file (all or nothing, positions named like lines).
#[test]
fn an_array_given_as_the_argument_is_a_batch() {
    let env = TestEnv::new();
    let bad = r#"[{"id":"x","command":"true"},{"command":"true","delay":"soon"}]"#;
    assert_refused(&env.run(&["enqueue", bad]), "line 2: field 'delay'");
    assert!(!env.queue_exists(), "refused input creates no queue");
    let out = env.ok(&[
        "enqueue",
        r#"[{"id":"a","command":"make"},{"id":"t","command":"./test.sh","after":["a"]}]"#,
    ]);
    assert_eq!(out, "a\nt\n");
    assert_eq!(jobs_in_queue(&env), ["a", "t"]);
    let waiting = env.ok(&["show", "t", "--json"]);
    assert!(waiting.contains("\"a\""), "{waiting}");
}
