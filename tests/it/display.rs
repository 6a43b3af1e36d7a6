//! What a person sees: times in their zone, running clocks, status wording,
//! golden terminal output with colours, and the mistakes a person makes.

use crate::support::{TestEnv, wait_until};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Runs queuectl with `TZ` set to `tz` (unset when `None`).
fn run_in_zone(env: &TestEnv, tz: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = env.cmd();
    match tz {
        Some(tz) => cmd.env("TZ", tz),
        None => cmd.env_remove("TZ"),
    };
    cmd.args(args).output().expect("run queuectl")
}

fn stdout_in_zone(env: &TestEnv, tz: Option<&str>, args: &[&str]) -> String {
    let out = run_in_zone(env, tz, args);
    assert!(
        out.status.success(),
        "queuectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The line of `text` that starts (after indentation) with `label`.
fn line_of<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

#[test]
fn times_print_in_the_tz_zone_and_utc_opts_out() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"later","command":"true","run_at":"2030-01-15T13:05:09Z"}"#);
    let due = |tz: Option<&str>, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["show", "later"]);
        line_of(&stdout_in_zone(&env, tz, &args), "due:").to_owned()
    };
    assert_eq!(
        due(Some("UTC"), &[]),
        "  due:         2030-01-15 13:05:09 UTC"
    );
    assert_eq!(
        due(Some("Europe/Paris"), &[]),
        "  due:         2030-01-15 14:05:09 CET"
    );
    assert_eq!(
        due(Some("Asia/Kolkata"), &[]),
        "  due:         2030-01-15 18:35:09 IST"
    );
    assert_eq!(
        due(Some("Europe/Paris"), &["--utc"]),
        "  due:         2030-01-15 13:05:09 UTC",
        "--utc wins over TZ"
    );
    // Unset: the system's zone, whatever it is here; still a full time.
    assert!(due(None, &[]).starts_with("  due:         2030-01-15 "));
    // JSON is for scripts: RFC 3339 UTC in every zone.
    for tz in ["UTC", "Europe/Paris", "Asia/Kolkata"] {
        let out = stdout_in_zone(&env, Some(tz), &["--json", "show", "later"]);
        let job: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(job["run_at"], "2030-01-15T13:05:09Z", "TZ={tz}");
        assert!(
            job["created_at"].as_str().unwrap().ends_with('Z'),
            "TZ={tz}: {job}"
        );
    }
}

#[test]
fn a_running_attempt_shows_how_long_it_has_run() {
    let mut env = TestEnv::new();
    let gate = env.path("gate");
    env.enqueue(&format!(
        r#"{{"id":"slow","command":"while [ ! -e {} ]; do sleep 0.05; done"}}"#,
        gate.display()
    ));
    env.spawn_worker("w1");
    env.wait_for_state("slow", "processing", WAIT);
    // The clock ticks: wait until it reads at least a second, then check
    // the words around it.
    wait_until("list shows the running clock", WAIT, || {
        let list = env.ok(&["list"]);
        let row = line_of(&list, "slow");
        running_seconds(row).is_some_and(|secs| secs >= 1)
    });
    let show = env.ok(&["show", "slow"]);
    let header = line_of(&show, "#");
    let row = show
        .lines()
        .skip_while(|l| !l.contains("STARTED"))
        .nth(1)
        .unwrap();
    let duration_at = header.find("DURATION").unwrap();
    let outcome_at = header.find("OUTCOME").unwrap();
    let duration = row[duration_at..outcome_at].trim();
    assert!(
        duration.ends_with('s') && duration[..duration.len() - 1].parse::<u32>().is_ok(),
        "a running attempt's duration is its clock so far, got {duration:?}:\n{show}"
    );
    assert_eq!(row[outcome_at..].split_whitespace().next(), Some("running"));
    std::fs::write(&gate, "").unwrap();
    env.wait_for_state("slow", "completed", WAIT);
    let list = env.ok(&["list"]);
    assert!(
        line_of(&list, "slow").contains(" ago "),
        "a finished job says when it finished:\n{list}"
    );
}

/// The seconds in a row's "running 12s" (or "running 1m05s"), if any.
fn running_seconds(row: &str) -> Option<u64> {
    let rest = &row[row.find("running ")? + "running ".len()..];
    let clock = rest.split_whitespace().next()?;
    let (minutes, seconds) = match clock.split_once('m') {
        Some((m, s)) => (m.parse::<u64>().ok()?, s),
        None => (0, clock),
    };
    Some(minutes * 60 + seconds.strip_suffix('s')?.parse::<u64>().ok()?)
}

// ----- mistakes -----

#[test]
fn a_config_flag_naming_no_file_is_an_error() {
    let env = TestEnv::new();
    let missing = env.path("nowhere/config.toml");
    let with_missing = |args: &[&str]| {
        env.cmd()
            .arg("--config")
            .arg(&missing)
            .args(args)
            .output()
            .unwrap()
    };
    let commands: &[&[&str]] = &[
        &["enqueue", r#"{"command":"true"}"#],
        &["list"],
        &["show", "job1"],
        &["status"],
        &["metrics"],
        &["dlq", "list"],
        &["purge"],
        &["config", "get"],
        &["worker", "start"],
        &["worker", "run", "--drain"],
    ];
    for args in commands {
        let out = with_missing(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("config file {} does not exist", missing.display())),
            "{args:?}: {stderr}"
        );
    }
    assert!(!env.queue_exists(), "nothing ran: no queue was made");
    // Naming where it goes, and what creates it, work.
    let path = with_missing(&["config", "path"]);
    assert!(path.status.success());
    assert_eq!(
        String::from_utf8_lossy(&path.stdout).trim(),
        missing.display().to_string()
    );
    std::fs::create_dir(env.path("nowhere")).unwrap();
    assert!(
        with_missing(&["config", "set", "max_retries", "7"])
            .status
            .success()
    );
    assert_eq!(
        String::from_utf8_lossy(&with_missing(&["config", "get", "max_retries"]).stdout),
        "7\n",
        "config set created the file the flag named"
    );
    // Commands that read no config do not look.
    let elsewhere = env.path("also-missing.toml");
    for args in [&["completions", "bash"][..], &["man"]] {
        let out = env
            .cmd()
            .arg("--config")
            .arg(&elsewhere)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
    }
}

#[test]
fn a_missing_default_config_means_the_defaults() {
    // $QUEUECTL_CONFIG is how queuectl hands the path to its own workers
    // (unit drop-in, process keeper): it may name a file not written yet.
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("QUEUECTL_CONFIG", env.path("not-yet.toml"))
        .args(["config", "get", "max_retries"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
}

#[test]
fn a_kept_worker_restarts_when_its_config_file_is_gone() {
    // The process keeper hands the config on by $QUEUECTL_CONFIG: a
    // restarted worker whose config file was removed runs with the
    // defaults (a --config naming it would refuse to start).
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.ok(&["worker", "start", "--count", "1"]);
    // Status from here on reads a copy, so it stays on the process supervisor.
    let copy = env.path("copy.toml");
    std::fs::copy(env.config_path(), &copy).unwrap();
    let worker_pid = || {
        let out = env
            .cmd()
            .arg("--config")
            .arg(&copy)
            .args(["--json", "status"])
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status["workers"][0]["heartbeat_at"]
            .is_string()
            .then(|| status["workers"][0]["pid"].as_u64().unwrap() as u32)
    };
    let first = worker_pid().expect("the worker registered before start returned");
    std::fs::remove_file(env.config_path()).unwrap();
    crate::support::signal(first, nix::sys::signal::Signal::SIGKILL);
    wait_until("the keeper restarted the worker", WAIT, || {
        worker_pid().is_some_and(|pid| pid != first && crate::support::alive(pid))
    });
    // Put it back for the environment's own `worker stop`.
    std::fs::copy(&copy, env.config_path()).unwrap();
}

#[test]
fn worker_start_or_stop_with_user_and_no_user_manager_fails() {
    let env = TestEnv::new();
    let runtime = env.path("runtime");
    std::fs::create_dir(&runtime).unwrap();
    for (runtime_dir, why) in [
        (
            Some(&runtime),
            "$XDG_RUNTIME_DIR/systemd/private is missing",
        ),
        (None, "$XDG_RUNTIME_DIR is not set"),
    ] {
        for args in [
            &["worker", "start", "--user"][..],
            &["worker", "stop", "--user"],
        ] {
            let mut cmd = env.cmd();
            match runtime_dir {
                Some(dir) => cmd.env("XDG_RUNTIME_DIR", dir),
                None => cmd.env_remove("XDG_RUNTIME_DIR"),
            };
            let out = cmd.args(args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains("no systemd user manager is reachable")
                    && stderr.contains(why)
                    && stderr.contains("leave out --user"),
                "{args:?}: {stderr}"
            );
        }
    }
    // status shows the queue, then fails the same way.
    env.enqueue(r#"{"id":"waiting","command":"true"}"#);
    let out = env
        .cmd()
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["status", "--user"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no systemd user manager is reachable"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jobs:"));
    // Nothing fell back to processes.
    assert_eq!(env.registered_workers(), 0);
    assert!(!env.path("state/workers").exists());
}

// ----- status -----

/// Checks that `status`'s worker table lines up: every row's cells start
/// (or, for the numbers, end) where their column's header does.
pub(crate) fn assert_worker_columns_line_up(text: &str) {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let at = lines
        .iter()
        .position(|l| {
            let l: String = l.iter().collect();
            l.trim_start().starts_with("NAME") && l.contains("STATUS")
        })
        .unwrap_or_else(|| panic!("no worker table in:\n{text}"));
    let header = &lines[at];
    let rows: Vec<&Vec<char>> = lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with(&[' ', ' ']) && l.len() > 2)
        .collect();
    assert!(!rows.is_empty(), "no workers in:\n{text}");
    // Header words: (start, end, name).
    let mut columns = vec![];
    let mut start = None;
    for (i, c) in header.iter().chain([&' ']).enumerate() {
        match (c, start) {
            (' ', Some(s)) => {
                columns.push((s, i, header[s..i].iter().collect::<String>()));
                start = None;
            }
            (' ', None) => {}
            (_, None) => start = Some(i),
            _ => {}
        }
    }
    let cell = |row: &Vec<char>, i: usize| row.get(i).copied().unwrap_or(' ');
    for row in rows {
        let shown: String = row.iter().collect();
        for (start, end, name) in &columns {
            if name == "PID" || name == "SLOTS" {
                assert!(
                    cell(row, end - 1) != ' ' && cell(row, *end) == ' ',
                    "{name} does not end under its header:\n{text}\nrow: {shown}"
                );
            } else {
                assert!(
                    cell(row, start - 1) == ' ' && cell(row, *start) != ' ',
                    "{name} does not start under its header:\n{text}\nrow: {shown}"
                );
            }
        }
    }
}

#[test]
fn status_speaks_of_processes_and_its_columns_line_up() {
    let mut env = TestEnv::new();
    env.mark_supervised();
    env.ok(&["worker", "start", "--count", "1"]);
    env.spawn_worker("w");
    env.spawn_worker("a-much-longer-worker-name");
    wait_until("three workers registered", WAIT, || {
        env.registered_workers() == 3
    });
    let gate = env.path("gate");
    env.enqueue(&format!(
        r#"{{"id":"held","command":"while [ ! -e {} ]; do sleep 0.05; done"}}"#,
        gate.display()
    ));
    env.wait_for_state("held", "processing", WAIT);
    let text = env.ok(&["status"]);
    std::fs::write(&gate, "").unwrap();
    assert!(text.contains("workers (process supervisor):"), "{text}");
    let header = line_of(&text, "NAME");
    assert!(
        header.contains(" PROCESS ") && !header.contains("UNIT"),
        "processes, not units:\n{text}"
    );
    assert!(
        !text.contains("active") && !text.contains("systemd"),
        "no systemd words for processes:\n{text}"
    );
    let kept = line_of(&text, &env.worker_name("1"));
    assert!(kept.contains(" running "), "the kept process runs:\n{text}");
    let holder = text
        .lines()
        .find(|l| l.contains("held (running "))
        .unwrap_or_else(|| panic!("the running job shows its clock:\n{text}"));
    assert!(holder.contains("1/1"), "{holder}");
    // STATUS follows the JOB column (never "idle" beside a running job, as
    // the worker's own text could be for up to a second), without repeating it.
    assert!(holder.trim_end().ends_with(" busy"), "{holder}");
    assert!(!text.contains("(attempt "), "{text}");
    let idle = text.lines().filter(|l| l.trim_end().ends_with(" idle"));
    assert_eq!(idle.count(), 2, "the other two are idle:\n{text}");
    assert_worker_columns_line_up(&text);
}

// ----- golden terminal output -----

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What the terminal got, with colours, in `TZ` Europe/Paris.
fn as_seen(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["--color", "always"];
    all.extend_from_slice(args);
    stdout_in_zone(env, Some("Europe/Paris"), &all)
}

/// Compares line by line, so a failure shows the first differing line
/// with its escape codes visible.
fn assert_golden(got: &str, expected: &str) {
    for (n, (line, want)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(
            line.escape_debug().to_string(),
            want.escape_debug().to_string(),
            "line {}; whole output:\n{got}",
            n + 1
        );
    }
    assert_eq!(got, expected, "same lines, different count or ending");
}

/// A queue holding one job in each state, its times set relative to now
/// at half-day (or half-hour) offsets, so that the ages printed stay the
/// same however long the test takes.
fn queue_of_every_state() -> Option<TestEnv> {
    let env = TestEnv::new();
    if env.skips_on_postgres("the fixture's times are set with SQL on the SQLite file") {
        return None;
    }
    for job in [
        r#"{"id":"build","command":"make all"}"#,
        r#"{"id":"deploy","command":"./deploy.sh --env prod","priority":5}"#,
        r#"{"id":"report","command":"make report"}"#,
        r#"{"id":"sync","command":"rsync -a src/ dst/","priority":-1}"#,
        r#"{"id":"flaky","command":"curl -fsS https://example.com"}"#,
        r#"{"id":"old","command":"true"}"#,
    ] {
        env.enqueue(job);
    }
    let now = now_ms();
    let ago = |ms: i64| now - ms;
    env.sql(&format!(
        "UPDATE jobs SET created_at = {c}, updated_at = {c} WHERE 1;
         UPDATE jobs SET state = 'completed', attempts = 1, finished_at = {build}
          WHERE id = 'build';
         UPDATE jobs SET state = 'dead', attempts = 4, failures = 4, finished_at = {dead},
                last_error = 'exit code 1'
          WHERE id = 'deploy';
         UPDATE jobs SET run_at = {report} WHERE id = 'report';
         UPDATE jobs SET state = 'processing', attempts = 1, worker = 'w1', lease_token = 1,
                lease_expires_at = {lease}
          WHERE id = 'sync';
         INSERT INTO attempts (job_seq, number, worker, started_at, output)
           SELECT seq, 1, 'w1', {started}, 'file' FROM jobs WHERE id = 'sync';
         UPDATE jobs SET state = 'failed', attempts = 2, failures = 2, run_at = {retry}
          WHERE id = 'flaky';
         UPDATE jobs SET state = 'cancelled', finished_at = {cancelled} WHERE id = 'old';",
        c = ago(60 * DAY_MS),
        build = ago(2 * DAY_MS + 12 * HOUR_MS),
        dead = ago(40 * DAY_MS + 12 * HOUR_MS),
        report = now + 5 * DAY_MS + 12 * HOUR_MS,
        lease = now + 365 * DAY_MS,
        started = ago(3 * DAY_MS + 30 * MINUTE_MS),
        retry = now + 3 * HOUR_MS + 30 * MINUTE_MS,
        cancelled = ago(7 * HOUR_MS + 30 * MINUTE_MS),
    ));
    Some(env)
}

#[test]
fn golden_list_with_colours() {
    let Some(env) = queue_of_every_state() else {
        return;
    };
    let expected = "\
\x1b[1mID      STATE        PRI  ATTEMPTS  WHEN           COMMAND\x1b[0m
old     cancelled      0         0  7h ago         true
flaky   \x1b[33mfailed    \x1b[0m     0         2  in 3h          curl -fsS https://example.com
sync    \x1b[36mprocessing\x1b[0m    -1         1  running 3d00h  rsync -a src/ dst/
report  pending        0         0  in 5d          make report
deploy  \x1b[31mdead      \x1b[0m     5         4  40d ago        ./deploy.sh --env prod
build   \x1b[32mcompleted \x1b[0m     0         1  2d ago         make all
";
    assert_golden(&as_seen(&env, &["list"]), expected);
}

#[test]
fn golden_dlq_list_with_last_errors() {
    let Some(env) = queue_of_every_state() else {
        return;
    };
    let expected = "\
\x1b[1mID      STATE        PRI  ATTEMPTS  WHEN     COMMAND                 LAST ERROR\x1b[0m
deploy  \x1b[31mdead      \x1b[0m     5         4  40d ago  ./deploy.sh --env prod  exit code 1
";
    assert_golden(&as_seen(&env, &["dlq", "list"]), expected);
}

#[test]
fn golden_status_with_colours() {
    let Some(env) = queue_of_every_state() else {
        return;
    };
    let expected = "\
\x1b[1mqueue:\x1b[0m <queue>
\x1b[1mjobs: \x1b[0m pending 1  \x1b[36mprocessing\x1b[0m 1  \x1b[32mcompleted\x1b[0m 1  \x1b[33mfailed\x1b[0m 1  \x1b[31mdead\x1b[0m 1  cancelled 1
\x1b[1mworkers (process supervisor):\x1b[0m
  none running (start some with: queuectl worker start --count 2)
";
    // Only the queue's path varies: it is this test's temp dir.
    let seen = as_seen(&env, &["status"]).replacen(&env.db_shown(), "<queue>", 1);
    assert_golden(&seen, expected);
}

#[test]
fn golden_show_with_colours_in_a_fixed_zone() {
    let env = TestEnv::new();
    if env.skips_on_postgres("the fixture's times are set with SQL on the SQLite file") {
        return;
    }
    env.enqueue(
        r#"{"id":"deploy","command":"./deploy.sh --env prod","priority":5,"max_retries":1,
            "timeout_seconds":300,"cwd":"/srv/app","env":{"TOKEN":"s3cret"}}"#,
    );
    // 2026-01-15T13:05:09.250Z, then a retry that timed out a day later.
    let t0: i64 = 1_768_482_309_250;
    env.sql(&format!(
        "UPDATE jobs SET state = 'dead', attempts = 2, failures = 2, created_at = {t0},
                run_at = {retry}, updated_at = {end}, finished_at = {end},
                last_error = 'timed out after 300s'
          WHERE id = 'deploy';
         INSERT INTO attempts (job_seq, number, worker, started_at, finished_at, outcome,
                               exit_code, signal, error, output)
           SELECT seq, 1, 'w1', {s1}, {e1}, 'failed', 1, NULL, 'exit code 1', 'file'
             FROM jobs WHERE id = 'deploy';
         INSERT INTO attempts (job_seq, number, worker, started_at, finished_at, outcome,
                               exit_code, signal, error, output)
           SELECT seq, 2, 'worker-two', {retry}, {end}, 'timed_out', NULL, 9,
                  'timed out after 300s', 'file'
             FROM jobs WHERE id = 'deploy';",
        s1 = t0 + 1_000,
        e1 = t0 + 1_420,
        retry = t0 + DAY_MS,
        end = t0 + DAY_MS + 300_200,
    ));
    // Its output is here, so show adds no note about where it went.
    let log = env.job_log("deploy");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "").unwrap();
    let expected = "\
\x1b[1mdeploy\x1b[0m  \x1b[31mdead\x1b[0m
  command:     ./deploy.sh --env prod
  priority:    5
  attempts:    2 run(s), 2 failure(s) of max_retries 1
  timeout:     300s
  created:     2026-01-15 14:05:09 CET
  finished:    2026-01-16 14:10:09 CET
  cwd:         /srv/app
  env:         TOKEN
  last error:  timed out after 300s

  \x1b[1m#  WORKER      STARTED                  DURATION  OUTCOME    EXIT  ERROR\x1b[0m
  1  w1          2026-01-15 14:05:10 CET  420ms     failed     1     exit code 1
  2  worker-two  2026-01-16 14:05:09 CET  5m00s     timed_out  sig9  timed out after 300s
";
    assert_golden(&as_seen(&env, &["show", "deploy"]), expected);
}
