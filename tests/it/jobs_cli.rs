//! The everyday job commands: `add` (a shell command from the command
//! line), `enqueue`'s hint when given one, `edit` (by flags and in an
//! editor, racing a worker), `wait` (its exit codes), and `logs` by
//! attempt. Runs on PostgreSQL too (.ci/run).

use crate::support::{TestEnv, output_text, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn refused(env: &TestEnv, args: &[&str], code: i32, needle: &str) -> String {
    let out = env.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        output_text(&out)
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    stderr
}

#[test]
fn add_joins_the_words_into_one_quoted_command_run_in_the_current_directory() {
    let mut env = TestEnv::new();
    let dir = env.path("");
    let out = env
        .cmd()
        .current_dir(&dir)
        .args([
            "add", "--id", "words", "--", "printf", "%s|", "a b", "it's", "$HOME",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "words\n");
    env.ok(&["add", "--id", "line", "--", "echo one && pwd"]);
    let json = env.json(&[
        "add",
        "--id",
        "flags",
        "--priority",
        "-3",
        "--delay",
        "1h",
        "--retries",
        "7",
        "--timeout",
        "2m",
        "--env",
        "GREETING=hi",
        "--env-file",
        "/etc/x.env",
        "--cwd",
        "/tmp",
        "--",
        "true",
    ]);
    assert_eq!(
        json,
        serde_json::json!({"enqueued": 1, "ids": ["flags"], "jobs": [{"id": "flags", "outcome": "created"}]})
    );
    let flags = env.job("flags");
    assert_eq!(flags["priority"], -3);
    assert_eq!(
        (
            flags["max_retries"].as_u64(),
            flags["timeout_seconds"].as_u64()
        ),
        (Some(7), Some(120))
    );
    assert_eq!(flags["env_keys"], serde_json::json!(["GREETING"]));
    assert_eq!(
        (flags["cwd"].as_str(), flags["env_file"].as_str()),
        (Some("/tmp"), Some("/etc/x.env"))
    );
    env.ok(&[
        "add",
        "--id",
        "at",
        "--at",
        "2030-05-01T10:00:00Z",
        "--",
        "true",
    ]);
    assert_eq!(env.job("at")["run_at"], "2030-05-01T10:00:00Z");
    let local = env
        .cmd()
        .env("TZ", "Asia/Tokyo")
        .args([
            "add",
            "--id",
            "local",
            "--at",
            "2030-05-01 19:00",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(local.status.success(), "{}", output_text(&local));
    assert_eq!(env.job("local")["run_at"], "2030-05-01T10:00:00Z");
    // A local time that daylight saving skips or repeats is not guessed,
    // by add or edit; an offset says which is meant.
    for (args, why) in [
        (
            &["add", "--at", "2026-03-08 02:30", "--", "true"][..],
            "does not exist",
        ),
        (
            &["add", "--at", "2026-11-01 01:30", "--", "true"],
            "happens twice",
        ),
        (
            &["edit", "local", "--at", "2026-11-01 01:30"],
            "happens twice",
        ),
    ] {
        let out = env
            .cmd()
            .env("TZ", "America/New_York")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(why) && stderr.contains("offset"),
            "{stderr}"
        );
    }
    assert_eq!(env.job("local")["run_at"], "2030-05-01T10:00:00Z");

    env.spawn_worker("w1");
    env.wait_for_state("words", "completed", WAIT);
    env.wait_for_state("line", "completed", WAIT);
    assert_eq!(
        env.job("words")["command"],
        "printf '%s|' 'a b' \"it's\" '$HOME'"
    );
    assert_eq!(
        env.ok(&["logs", "words"]),
        "%s|a b|it's|$HOME|".replace("%s|", "")
    );
    // Added without --cwd from the test's own directory.
    let expected_dir = std::env::current_dir().unwrap();
    assert_eq!(
        env.ok(&["logs", "line"]),
        format!("one\n{}\n", expected_dir.display())
    );
}

#[test]
fn add_refuses_bad_flags_by_name_never_showing_env_values() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "taken", "--", "true"]);
    for (args, needle) in [
        (
            vec!["add", "--env", "TOKEN:s3cret", "--", "true"],
            "--env: expected NAME=VALUE",
        ),
        (vec!["add", "--env", "=s3cret", "--", "true"], "--env:"),
        (
            vec!["add", "--env", "QUEUECTL_X=s3cret", "--", "true"],
            "--env:",
        ),
        // Names sh would drop: they could never reach the job.
        (
            vec!["add", "--env", "bad name=s3cret", "--", "true"],
            "--env: invalid variable name 'bad name'",
        ),
        (
            vec!["add", "--env", "x-y=s3cret", "--", "true"],
            "--env: invalid variable name 'x-y'",
        ),
        (
            vec!["add", "--at", "tomorrow", "--", "true"],
            "--at: cannot read \"tomorrow\"",
        ),
        (
            vec!["add", "--delay", "soon", "--", "true"],
            "--delay: invalid duration",
        ),
        (
            vec!["add", "--timeout", "soon", "--", "true"],
            "--timeout: invalid duration",
        ),
        (
            vec!["add", "--retries", "99999", "--", "true"],
            "--retries: 99999 is too large",
        ),
        (
            vec!["add", "--priority", "9999999999", "--", "true"],
            "--priority: expected an integer",
        ),
        (vec!["add", "--id", "../x", "--", "true"], "--id:"),
        (
            vec!["add", "--id", "taken", "--", "true"],
            "--id: job 'taken' already exists",
        ),
        (
            vec!["add", "--env-file", "rel/path", "--", "true"],
            "--env-file:",
        ),
        (vec!["add", "--", " "], "COMMAND: must not be empty"),
        (
            vec!["add", "--cwd", "/nonexistent/dir", "--", "true"],
            "--cwd: /nonexistent/dir: no such directory on this host",
        ),
        (
            vec!["add", "--cwd", "/etc/passwd", "--", "true"],
            "--cwd: /etc/passwd: not a directory",
        ),
        (
            vec![
                "add",
                "--delay",
                "5m",
                "--at",
                "2030-01-01T00:00:00Z",
                "--",
                "true",
            ],
            "cannot be used with",
        ),
        (vec!["add", "true"], "error:"),
        (vec!["add"], "error:"),
    ] {
        let stderr = refused(&env, &args, 2, needle);
        assert!(!stderr.contains("s3cret"), "{args:?}: {stderr}");
    }
    let ids: Vec<_> = env.json(&["list"])["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids, ["taken"], "nothing else was enqueued");
}

#[test]
fn add_stores_cwd_canonical_and_a_missing_cwd_fails_the_attempt_naming_it() {
    let env = TestEnv::new();
    let dir = env.path("");
    let inner = dir.join("x");
    std::fs::create_dir(&inner).unwrap();
    std::os::unix::fs::symlink(&inner, dir.join("link")).unwrap();
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap().display().to_string();
    for (id, given, expected) in [
        ("up", "..", canonical(&dir)),
        ("linked", "../link", canonical(&inner)),
    ] {
        let out = env
            .cmd()
            .current_dir(&inner)
            .args(["add", "--id", id, "--cwd", given, "--", "true"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        assert_eq!(env.job(id)["cwd"], expected.as_str(), "{given}");
    }
    // JSON takes any absolute path (a worker may be on another host); an
    // attempt whose directory is missing says so.
    env.enqueue(r#"{"id":"nowhere","command":"true","cwd":"/nonexistent/dir","max_retries":0}"#);
    env.enqueue(
        r#"{"id":"shell","command":"true | true","cwd":"/nonexistent/dir","max_retries":0}"#,
    );
    env.run(&["worker", "run", "--drain"]);
    for id in ["nowhere", "shell"] {
        assert_eq!(env.state(id), "dead", "{id}");
        let job = env.job(id);
        let error = job["attempt_history"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            error,
            "cannot start job: working directory /nonexistent/dir: No such file or directory",
            "{id}"
        );
    }
}

#[test]
fn enqueue_given_a_shell_command_points_to_add() {
    let env = TestEnv::new();
    let stderr = refused(&env, &["enqueue", "echo hi"], 2, "queuectl add -- echo hi");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    refused(
        &env,
        &["enqueue", "make && ./deploy"],
        2,
        "queuectl add -- 'make && ./deploy'",
    );
    // JSON keeps its own error.
    let stderr = refused(&env, &["enqueue", r#"{"command":"x""#], 2, "malformed JSON");
    assert!(!stderr.contains("queuectl add"), "{stderr}");
}

/// An `$EDITOR` that records the file's mode, its directory's mode and its
/// path, then applies `sed_expr` to it.
fn recording_editor(env: &TestEnv, sed_expr: &str) -> String {
    let script = env.path("editor.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nstat -c '%a' \"$1\" \"$(dirname \"$1\")\" > {seen}\necho \"$1\" >> {seen}\nsed -i '{sed_expr}' \"$1\"\n",
            seen = env.path("seen").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[test]
fn edit_changes_a_waiting_job_by_flags_or_in_a_private_file_in_the_editor() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "j", "--delay", "1h", "--", "echo old"]);
    let edited = env.json(&[
        "edit",
        "j",
        "--priority",
        "5",
        "--command",
        "echo new",
        "--retries",
        "4",
    ]);
    assert_eq!(
        (edited["priority"].as_i64(), edited["command"].as_str()),
        (Some(5), Some("echo new"))
    );
    assert_eq!(edited["max_retries"], 4);
    env.ok(&["edit", "j", "--at", "2031-01-01T00:00:00Z"]);
    assert_eq!(env.job("j")["run_at"], "2031-01-01T00:00:00Z");

    let editor = recording_editor(
        &env,
        "s/^priority = 5$/priority = 9/; s/^timeout_seconds = .*/timeout_seconds = 30/",
    );
    let out = env
        .cmd()
        .env("EDITOR", &editor)
        .env_remove("VISUAL")
        .args(["edit", "j"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let job = env.job("j");
    assert_eq!(
        (job["priority"].as_i64(), job["timeout_seconds"].as_i64()),
        (Some(9), Some(30))
    );
    assert_eq!(job["command"], "echo new", "untouched fields stay");
    let seen = std::fs::read_to_string(env.path("seen")).unwrap();
    let seen: Vec<&str> = seen.lines().collect();
    assert_eq!(
        &seen[..2],
        ["600", "700"],
        "the file and its directory are private"
    );
    assert!(
        !std::path::Path::new(seen[2]).exists(),
        "the file is removed afterwards"
    );
    assert!(
        !std::path::Path::new(seen[2]).parent().unwrap().exists(),
        "and its directory"
    );

    // Unchanged: nothing to do. Invalid: exit 2, nothing changed.
    let out = env
        .cmd()
        .env("VISUAL", "true")
        .args(["edit", "j"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged"));
    let bad = recording_editor(&env, "s/^priority = .*/priority = \"high\"/");
    let out = env
        .cmd()
        .env("VISUAL", &bad)
        .args(["edit", "j"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("field 'priority'"));
    assert_eq!(env.job("j")["priority"], 9);
    // No editor named and no terminal: vi would draw into a pipe; refused,
    // pointing to the flags.
    let out = env
        .cmd()
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .stdin(std::process::Stdio::null())
        .args(["edit", "j"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("$VISUAL and $EDITOR are not set")
            && stderr.contains("queuectl edit j --command"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", output_text(&out));

    refused(
        &env,
        &["edit", "ghost", "--priority", "1"],
        3,
        "job 'ghost' not found",
    );
    refused(
        &env,
        &["edit", "j", "--delay", "soon"],
        2,
        "--delay: invalid duration",
    );
    refused(
        &env,
        &["edit", "j", "--command", ""],
        2,
        "--command: must not be empty",
    );
    env.ok(&["cancel", "j"]);
    refused(
        &env,
        &["edit", "j", "--priority", "1"],
        4,
        "job 'j' is cancelled",
    );
    let out = env
        .cmd()
        .env("VISUAL", "true")
        .args(["edit", "j"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
}

#[test]
fn an_edit_of_a_job_that_started_while_in_the_editor_changes_nothing() {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "j", "--", "echo original"]);
    // The editor changes the command, then a worker runs the job before
    // the editor exits.
    let script = env.path("editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/^command = .*/command = \"echo edited\"/' \"$1\"\n\"$QUEUECTL\" worker run --drain --name editor-race >/dev/null 2>&1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .cmd()
        .env("VISUAL", &script)
        .env("QUEUECTL", crate::support::binary())
        .args(["edit", "j"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("started meanwhile"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.job("j")["command"], "echo original");
    assert_eq!(env.ok(&["logs", "j"]), "original\n");
}

/// Adds job "gated" (with `flags`): `before`, then a wait until the
/// returned file exists, then `after` (either may be empty).
fn add_gated(env: &TestEnv, flags: &[&str], before: &str, after: &str) -> std::path::PathBuf {
    let gate = env.path("go");
    let wait = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    let command = [before, &wait, after]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let mut args = vec!["add", "--id", "gated"];
    args.extend(flags);
    args.extend(["--", &command]);
    env.ok(&args);
    gate
}

#[test]
fn wait_blocks_until_jobs_end_and_exits_by_how_they_ended() {
    let mut env = TestEnv::new();
    let gate = add_gated(&env, &[], "", "");
    env.ok(&["add", "--id", "fails", "--retries", "0", "--", "exit 3"]);
    env.ok(&["add", "--id", "later", "--delay", "1h", "--", "true"]);
    env.ok(&["add", "--id", "cancelled", "--delay", "1h", "--", "true"]);
    env.ok(&["cancel", "cancelled"]);
    refused(
        &env,
        &["wait", "gated", "ghost"],
        3,
        "job 'ghost' not found",
    );
    refused(&env, &["wait"], 2, "error:");

    let mut waiting = env.cmd().args(["wait", "gated"]).spawn().unwrap();
    env.spawn_worker("w1");
    env.wait_for_state("gated", "processing", WAIT);
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "wait returned while its job runs"
    );
    std::fs::write(&gate, "").unwrap();
    let status = waiting.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(env.state("gated"), "completed");
    env.wait_for_state("fails", "dead", WAIT);

    for (args, code, needle) in [
        // Every job that did not complete is named, with how it ended.
        (
            &["wait", "gated", "cancelled", "fails"][..],
            5,
            "2 jobs did not complete: 'cancelled' cancelled, 'fails' dead",
        ),
        (
            &["wait", "gated", "cancelled"],
            6,
            "job 'cancelled' ended cancelled",
        ),
        (
            &["wait", "gated", "later", "--timeout", "1"],
            7,
            "1 of 2 job(s) did not end within 1s",
        ),
        // A duration, as add's --timeout takes.
        (
            &["wait", "later", "--timeout", "1s"],
            7,
            "1 of 1 job(s) did not end within 1s",
        ),
        (&["wait", "later", "--timeout", "soon"], 2, "--timeout"),
    ] {
        refused(&env, args, code, needle);
    }
    let out = env.run(&["--json", "wait", "gated", "fails"]);
    assert_eq!(out.status.code(), Some(5), "{}", output_text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["jobs"][1]["id"], "fails");
    assert_eq!(json["jobs"][1]["state"], "dead");
    // --all: every job unfinished now (only "later"), here with a timeout.
    let out = env.run(&["--json", "wait", "--all", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(7), "{}", output_text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["jobs"],
        serde_json::json!([{"id": "later", "state": "pending", "attempts": 0, "last_error": null}])
    );
    env.ok(&["edit", "later", "--delay", "0s"]);
    let out = env.run(&["wait", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // The worker may have run it already: then there is nothing to wait for.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.stdout.is_empty() && (stderr.is_empty() || stderr == "nothing to wait for\n"),
        "no progress off a terminal: {}",
        output_text(&out)
    );
    wait_until("later completed", WAIT, || {
        env.state("later") == "completed"
    });
    let out = env.run(&["wait", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        (
            &*String::from_utf8_lossy(&out.stdout),
            &*String::from_utf8_lossy(&out.stderr)
        ),
        ("", "nothing to wait for\n")
    );
}

#[test]
fn logs_follow_exits_as_wait_does() {
    let mut env = TestEnv::new();
    env.ok(&["add", "--id", "ok", "--", "echo fine"]);
    env.ok(&[
        "add",
        "--id",
        "bad",
        "--retries",
        "0",
        "--",
        "echo broken; exit 1",
    ]);
    env.ok(&["add", "--id", "gone", "--delay", "1h", "--", "true"]);
    env.ok(&["cancel", "gone"]);
    env.spawn_worker("w1");
    let out = env.run(&["logs", "-f", "ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");
    let out = env.run(&["logs", "-f", "bad"]);
    assert_eq!(out.status.code(), Some(5), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "broken\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("job 'bad' ended dead"));
    refused(
        &env,
        &["logs", "-f", "gone"],
        6,
        "job 'gone' ended cancelled",
    );
    // Without -f, how the job ended does not matter.
    assert_eq!(env.run(&["logs", "bad"]).status.code(), Some(0));
}

#[test]
fn logs_follow_says_how_an_attempt_it_showed_running_ended() {
    let mut env = TestEnv::new();
    let gate = add_gated(
        &env,
        &["--retries", "1"],
        "echo before",
        "echo after; exit 1",
    );
    env.spawn_worker("w1");
    env.wait_for_state("gated", "processing", WAIT);
    // Decorated (--color always stands in for a terminal).
    let mut follow = env
        .cmd()
        .args(["--color", "always", "logs", "-f", "gated"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let mut shown = Vec::new();
    while !shown.iter().any(|l: &String| l.contains("before")) {
        shown.push(seen.recv_timeout(WAIT).expect("logs -f showed the attempt"));
    }
    assert!(
        shown[0].contains("── attempt 1 · worker ") && shown[0].ends_with("· running\x1b[0m"),
        "{shown:?}"
    );
    std::fs::write(&gate, "").unwrap();
    shown.extend(seen.iter());
    assert_eq!(follow.wait().unwrap().code(), Some(5));
    let at = |needle: &str| {
        shown
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {shown:?}"))
    };
    let ended = at("── attempt 1 ended · exit 1");
    assert_eq!(ended, at("after") + 1, "{shown:?}");
    assert!(ended < at("── attempt 2 · "), "{shown:?}");
    // Attempt 2's end is said too when its header said running.
    let second = &shown[at("── attempt 2 · ")];
    assert_eq!(
        second.contains("running"),
        shown
            .iter()
            .any(|l| l.contains("── attempt 2 ended · exit 1")),
        "{shown:?}"
    );
    // Piped without decoration: the raw bytes only.
    let piped = env.run(&["logs", "-f", "gated"]);
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout),
        "before\nafter\nbefore\nafter\n"
    );
}

/// Attempt 1 prints on stderr and fails; attempts 2 and 3 print two lines
/// on stdout; the third succeeds. One stream per attempt, so the order of
/// lines is the job's own.
const FLAKY: &str = "if [ $QUEUECTL_JOB_ATTEMPT = 1 ]; then echo 'err 1' >&2; exit 1; fi; \
                     echo \"out $QUEUECTL_JOB_ATTEMPT a\"; echo \"out $QUEUECTL_JOB_ATTEMPT b\"; \
                     [ $QUEUECTL_JOB_ATTEMPT -ge 3 ]";

#[test]
fn logs_shows_attempts_apart_one_attempt_or_the_last_lines_of_each() {
    let mut env = TestEnv::new();
    env.ok(&["add", "--id", "flaky", "--retries", "2", "--", FLAKY]);
    env.spawn_worker("w1");
    env.wait_for_state("flaky", "completed", WAIT);
    // Piped: exactly what the job printed.
    let all = "err 1\nout 2 a\nout 2 b\nout 3 a\nout 3 b\n";
    assert_eq!(env.ok(&["logs", "flaky"]), all);
    assert_eq!(
        env.ok(&["logs", "flaky", "--attempt", "2"]),
        "out 2 a\nout 2 b\n"
    );
    assert_eq!(
        env.ok(&["logs", "flaky", "--lines", "1"]),
        "err 1\nout 2 b\nout 3 b\n"
    );
    assert_eq!(
        env.ok(&["logs", "flaky", "-n", "5", "--attempt", "3"]),
        "out 3 a\nout 3 b\n"
    );
    let json = env.json(&["logs", "flaky", "--attempt", "1"]);
    assert_eq!(json["output"], "err 1\n");
    assert_eq!(json["attempts"].as_array().unwrap().len(), 1);
    refused(
        &env,
        &["logs", "flaky", "--attempt", "4"],
        3,
        "job 'flaky' has no attempt 4 (it has 3)",
    );
    refused(&env, &["logs", "ghost"], 3, "job 'ghost' not found");
    refused(&env, &["logs", "flaky", "--lines", "x"], 2, "error:");
    // Attempt numbers start at 1: 0 is bad input, not a missing attempt.
    refused(&env, &["logs", "flaky", "--attempt", "0"], 2, "--attempt");

    // Decorated (--color always stands in for a terminal): a header per
    // attempt, stderr lines marked.
    let shown = env.ok(&["--color", "always", "--utc", "logs", "flaky"]);
    let worker = env.worker_name("w1");
    let headers: Vec<&str> = shown.lines().filter(|l| l.contains("── attempt")).collect();
    assert_eq!(headers.len(), 3, "{shown}");
    for (n, ending) in [(1, "exit 1"), (2, "exit 1"), (3, "exit 0")] {
        let header = headers[n - 1];
        assert!(
            header.starts_with(&format!(
                "\x1b[1m── attempt {n} · worker {worker} · started 20"
            )),
            "{header:?}"
        );
        assert!(
            header.ends_with(&format!(" UTC · {ending}\x1b[0m")),
            "{header:?}"
        );
    }
    assert!(shown.contains("\x1b[31m│\x1b[0m err 1\n"), "{shown:?}");
    assert!(
        shown.contains("\nout 2 a\nout 2 b\n"),
        "stdout unmarked: {shown:?}"
    );
    let one = env.ok(&[
        "--color",
        "always",
        "logs",
        "flaky",
        "--attempt",
        "3",
        "--lines",
        "1",
    ]);
    assert_eq!(one.lines().count(), 2, "{one:?}");
    assert!(one.ends_with("\x1b[0m\nout 3 b\n"), "{one:?}");

    // The log's index goes with the log.
    let log = env.job_log("flaky");
    let index = std::path::PathBuf::from(format!("{}.idx", log.display()));
    assert!(log.exists() && index.exists());
    // A log without its index (from before indexes) is shown whole, unlabelled.
    std::fs::remove_file(&index).unwrap();
    assert_eq!(env.ok(&["--color", "always", "logs", "flaky"]), all);
    std::fs::write(&index, "1 o 0\n").unwrap();
    env.ok(&["purge", "--older-than", "0s"]);
    assert!(!log.exists() && !index.exists());
}

/// A tmux session of its own (socket in a temp dir), killed on drop.
struct Tmux {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// A 120x30 session running `sh`; `None` (printing why) without tmux,
    /// a panic instead under CI=true.
    fn start() -> Option<Tmux> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            crate::support::skip_unless_ci("tmux is not installed (Debian: apt install tmux)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let out = tmux
            .command()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "30",
                "sh",
            ])
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux: {}", output_text(&out));
        Some(tmux)
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// Types `line` into the shell and presses Enter.
    fn type_line(&self, line: &str) {
        let out = self
            .command()
            .args(["send-keys", "-l", line])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        let out = self
            .command()
            .args(["send-keys", "Enter"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
    }

    /// The screen as a person sees it, colours as escape sequences.
    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-e"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let mut screen = String::new();
        let seen = crate::support::wait_until_or(WAIT, || {
            screen = self.screen();
            screen.contains(text)
        });
        assert!(
            seen,
            "the terminal never showed {text:?}; it shows:\n{screen}"
        );
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

/// A script that runs queuectl with this environment's variables, for
/// typing at the terminal (`<script> wait job1`).
fn typed_queuectl(env: &TestEnv) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let cmd = env.cmd();
    // `env` takes its -u options before the assignments.
    let (mut unset, mut set) = (String::new(), String::new());
    for (name, value) in cmd.get_envs() {
        let name = name.to_string_lossy();
        match value {
            Some(value) => set.push_str(&format!(" {name}={}", quote(value))),
            None => unset.push_str(&format!(" -u {name}")),
        }
    }
    let line = format!("exec env{unset}{set}");
    let script = env.path("q");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{line} {} \"$@\"\n", quote(cmd.get_program())),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[test]
fn at_a_terminal_wait_draws_its_progress_then_a_clean_line_and_logs_mark_attempts() {
    let Some(tmux) = Tmux::start() else {
        return;
    };
    let mut env = TestEnv::new();
    env.ok(&["add", "--id", "flaky", "--retries", "2", "--", FLAKY]);
    env.spawn_worker("w1");
    env.wait_for_state("flaky", "completed", WAIT);
    let gate = add_gated(&env, &[], "", "");
    env.wait_for_state("gated", "processing", WAIT);

    let q = typed_queuectl(&env);
    tmux.type_line(&format!("{q} wait flaky gated; echo \"wait-exit=$?\""));
    let live = tmux.wait_for("1/2 done · 1 running · 0 dead");
    assert!(!live.contains("wait-exit=0"), "{live}");
    std::fs::write(&gate, "").unwrap();
    let done = tmux.wait_for("wait-exit=0");
    let lines: Vec<&str> = done.lines().filter(|l| l.contains(" done · ")).collect();
    assert_eq!(
        lines,
        ["2/2 done · 0 running · 0 dead"],
        "one clean final line:\n{done}"
    );

    tmux.type_line("clear");
    tmux.type_line(&format!("{q} --utc logs flaky"));
    let screen = tmux.wait_for("out 3 b");
    let worker = env.worker_name("w1");
    for n in 1..=3 {
        assert!(
            screen.contains(&format!("── attempt {n} · worker {worker} · started ")),
            "attempt {n}'s header:\n{screen}"
        );
    }
    assert!(screen.contains("· exit 1"), "{screen}");
    // The stderr line carries the red mark; stdout lines none.
    let err_line = screen.lines().find(|l| l.contains("err 1")).unwrap();
    let mark = err_line.find('│').expect("a marked stderr line");
    assert!(err_line[mark..].ends_with(" err 1"), "{err_line:?}");
    assert!(err_line[..mark].contains("\x1b[31m"), "red: {err_line:?}");
    let out_line = screen.lines().find(|l| l.contains("out 2 a")).unwrap();
    assert!(!out_line.contains('│'), "{out_line:?}");

    // Colour off (--color never, as NO_COLOR does; the test's environment
    // drops NO_COLOR) takes the colour away, not the headers and marks.
    tmux.type_line("clear");
    tmux.type_line(&format!(
        "{q} --color never --utc logs flaky; echo logs-\"\"done"
    ));
    let plain = tmux.wait_for("logs-done");
    let header = plain.lines().find(|l| l.contains("── attempt 3 · worker "));
    assert_eq!(header.map(|h| h.contains('\x1b')), Some(false), "{plain:?}");
    let err_line = plain.lines().find(|l| l.contains("err 1")).unwrap();
    assert_eq!(err_line, "│ err 1", "no colour");
}
