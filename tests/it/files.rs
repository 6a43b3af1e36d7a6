//! The queue's files on disk: private whatever the umask (or shared with a
//! group when the state directory is setgid), tightened when an older
//! install left them open, never reached through a planted symlink; reading
//! commands create nothing and work on a read-only filesystem.

use crate::support::{TestEnv, wait_until};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Runs queuectl under umask 022, the default that made files world-readable.
fn run_umask_022(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = env.cmd();
    cmd.args(args);
    with_umask_022(&mut cmd).output().expect("run queuectl")
}

fn with_umask_022(cmd: &mut Command) -> &mut Command {
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            Ok(())
        })
    }
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Every file and directory under `dir` (inclusive), with its mode.
fn modes_under(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut found = vec![(dir.to_owned(), mode(dir), true)];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(modes_under(&path));
        } else {
            found.push((path.clone(), mode(&path), false));
        }
    }
    found
}

fn assert_modes(dir: &Path, dir_mode: u32, file_mode: u32) {
    for (path, mode, is_dir) in modes_under(dir) {
        let expected = if is_dir { dir_mode } else { file_mode };
        assert_eq!(mode, expected, "{} is {mode:04o}", path.display());
    }
}

#[test]
fn every_file_is_private_whatever_the_umask() {
    let mut env = TestEnv::new();
    let state = env.db().parent().unwrap().to_owned();
    ok(run_umask_022(
        &env,
        &[
            "enqueue",
            r#"{"id":"talks","command":"echo out; echo err >&2"}"#,
        ],
    ));
    ok(run_umask_022(&env, &["worker", "run", "--drain"]));
    assert!(state.join("logs/talks.log").exists());
    ok(run_umask_022(&env, &["config", "set", "max_retries", "4"]));

    env.mark_supervised();
    ok(run_umask_022(&env, &["worker", "start", "--count", "1"]));
    wait_until("the wake-up socket exists", WAIT, || {
        state.join("wake/1.sock").exists()
    });
    for made in [
        "workers/1.pid",
        "workers/1.log",
        "queue.db-wal",
        "queue.db-shm",
    ] {
        assert!(
            state.join(made).exists(),
            "{made} exists while a worker runs"
        );
    }
    assert_modes(&state, 0o700, 0o600);
    assert_eq!(
        mode(&env.config_path()),
        0o600,
        "config written by `config set`"
    );
    ok(run_umask_022(&env, &["worker", "stop"]));
}

#[test]
fn a_group_shared_state_directory_stays_group_shared_and_no_more() {
    let env = TestEnv::new();
    let state = env.db().parent().unwrap().to_owned();
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o2770)).unwrap();
    ok(run_umask_022(
        &env,
        &["enqueue", r#"{"id":"talks","command":"echo out"}"#],
    ));
    ok(run_umask_022(&env, &["worker", "run", "--drain"]));
    assert_modes(&state, 0o2770, 0o660);
}

#[test]
fn an_install_left_open_is_tightened_with_a_warning() {
    let env = TestEnv::new();
    let state = env.db().parent().unwrap().to_owned();
    env.enqueue(r#"{"id":"old","command":"echo old"}"#);
    env.ok(&["worker", "run", "--drain"]);
    for (path, _, is_dir) in modes_under(&state) {
        let open = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).unwrap();
    }
    let warnings = ok(run_umask_022(&env, &["enqueue", r#"{"command":"true"}"#]));
    assert!(
        warnings.contains("was accessible to other users"),
        "{warnings}"
    );
    assert_modes(&state, 0o700, 0o600);
}

#[test]
fn a_directory_chosen_with_db_is_not_changed_but_the_queue_in_it_is_private() {
    let env = TestEnv::new();
    let project = env.path("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("README"), "mine").unwrap();
    std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = project.join("queue.db");
    let out = env
        .cmd()
        .env("QUEUECTL_DB", &db)
        .args(["enqueue", r#"{"command":"true"}"#])
        .output()
        .unwrap();
    ok(out);
    assert_eq!(mode(&project), 0o755, "the user's directory is left alone");
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn job_logs_never_follow_a_planted_symlink() {
    let env = TestEnv::new();
    let state = env.db().parent().unwrap().to_owned();
    env.enqueue(r#"{"id":"victim","command":"echo planted-output"}"#);
    let outside = env.path("outside.txt");
    std::fs::write(&outside, "precious\n").unwrap();
    std::fs::create_dir_all(state.join("logs")).unwrap();
    std::os::unix::fs::symlink(&outside, state.join("logs/victim.log")).unwrap();

    env.ok(&["worker", "run", "--drain"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    assert_eq!(env.state("victim"), "completed", "the job itself ran");
    let logs = env.run(&["logs", "victim"]);
    assert!(
        !String::from_utf8_lossy(&logs.stdout).contains("precious"),
        "`logs` does not read through the link"
    );
    assert!(String::from_utf8_lossy(&logs.stderr).contains("symlink"));

    env.ok(&["purge", "--older-than", "0s"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
}

#[test]
fn purge_never_removes_through_a_symlinked_logs_directory() {
    let env = TestEnv::new();
    let state = env.db().parent().unwrap().to_owned();
    env.enqueue(r#"{"id":"gone","command":"true"}"#);
    env.ok(&["worker", "run", "--drain"]);
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("gone.log"), "keep").unwrap();
    let _ = std::fs::remove_dir_all(state.join("logs"));
    std::os::unix::fs::symlink(&elsewhere, state.join("logs")).unwrap();
    let _ = env.run(&["purge", "--older-than", "0s"]);
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("gone.log")).unwrap(),
        "keep"
    );
}

#[test]
fn reading_commands_create_nothing_and_say_no_queue() {
    let env = TestEnv::new();
    let state = env.db().parent().unwrap().to_owned();
    for args in [
        &["status"][..],
        &["list"],
        &["show", "x"],
        &["logs", "x"],
        &["metrics"],
        &["dlq", "list"],
        &["cancel", "x"],
        &["dlq", "retry", "--all"],
        &["purge"],
    ] {
        let out = env.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim(),
            format!("queuectl: no queue at {}", env.db().display()),
            "{args:?}"
        );
        assert!(!state.exists(), "{args:?} created {}", state.display());
    }
}

#[test]
fn reading_a_queue_changes_no_file() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    let state = env.db().parent().unwrap().to_owned();
    let before = modes_under(&state);
    for args in [&["status"][..], &["list"], &["show", "a"], &["metrics"]] {
        env.ok(args);
    }
    // SQLite's companions of a WAL database, which a reader may need to
    // create, are the only additions, and as private as the database.
    let companions = ["queue.db-wal", "queue.db-shm"].map(|name| state.join(name));
    let after: Vec<_> = modes_under(&state)
        .into_iter()
        .filter(|(path, mode, _)| !(companions.contains(path) && *mode == 0o600))
        .collect();
    assert_eq!(after, before, "nothing else created or changed");
}

/// `wrapper` (e.g. `unshare`, `setpriv`) with the environment `env.cmd()`
/// gives queuectl, and `$Q` naming the binary; None (the test skips) when
/// this machine cannot run it, unless CI=true.
fn wrapped(env: &TestEnv, wrapper: &str, needs_root: bool) -> Option<Command> {
    let usable = Command::new(wrapper).arg("--version").output();
    if !usable.is_ok_and(|o| o.status.success())
        || (needs_root && !nix::unistd::geteuid().is_root())
    {
        let reason = format!("this test needs {wrapper} and root; skipping");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {reason}"
        );
        eprintln!("{reason}");
        return None;
    }
    let queuectl = env.cmd();
    let mut cmd = Command::new(wrapper);
    for (key, value) in queuectl.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("Q", queuectl.get_program());
    Some(cmd)
}

/// Runs the shell `script` ($Q is the binary) with the state directory
/// bind-mounted read-only over itself, in a private mount namespace that
/// nothing outside sees.
fn with_state_read_only(env: &TestEnv, script: &str) -> Option<Output> {
    let dir = env.db().parent().unwrap().display().to_string();
    let script = format!(
        "mount --bind '{dir}' '{dir}' && mount -o remount,bind,ro '{dir}' || exit 99\n{script}"
    );
    let mut cmd = wrapped(env, "unshare", true)?;
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    Some(cmd.output().unwrap())
}

#[test]
fn on_a_read_only_filesystem_reading_works_and_writing_says_read_only() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    env.enqueue(r#"{"id":"b","command":"true"}"#);
    let state = env.db().parent().unwrap().to_owned();
    assert!(
        !state.join("queue.db-shm").exists(),
        "a clean close left no -shm, the hard case for a read-only open"
    );
    let script = "\"$Q\" list || exit 10
         \"$Q\" show a >/dev/null || exit 11
         \"$Q\" enqueue '{\"command\":\"true\"}'; echo \"enqueue=$?\" >&2
         \"$Q\" cancel a; echo \"cancel=$?\" >&2";
    let Some(out) = with_state_read_only(&env, script) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout}\nstderr {stderr}"
    );
    assert!(stdout.contains('a') && stdout.contains('b'), "{stdout}");
    assert!(stderr.contains("enqueue=1"), "{stderr}");
    assert!(stderr.contains("cancel=1"), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(!stderr.contains("unable to open database file"), "{stderr}");
}

#[test]
fn on_a_read_only_filesystem_a_queue_needing_an_upgrade_says_so() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    env.sql("PRAGMA user_version = 1");
    let script = "exec \"$Q\" list";
    let Some(out) = with_state_read_only(&env, script) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("schema version 1, older than") && stderr.contains("read-only"),
        "{stderr}"
    );
}

#[test]
fn on_a_read_only_mount_a_reader_sees_a_live_writers_commits() {
    let mut env = TestEnv::new();
    env.enqueue(r#"{"id":"a","command":"true"}"#);
    env.spawn_worker("live");
    wait_until("the worker registered", WAIT, || {
        env.registered_workers() == 1
    });
    env.enqueue(r#"{"id":"late","command":"true","delay":"1h"}"#);
    let state = env.db().parent().unwrap().to_owned();
    assert!(
        state.join("queue.db-shm").exists(),
        "the writer's -shm is in use"
    );
    let script = "exec \"$Q\" --json list";
    let Some(out) = with_state_read_only(&env, script) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<_> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids, ["late", "a"], "newest first");
}

/// Runs queuectl as another user (uid and gid `id`, no other groups).
fn run_as(env: &TestEnv, id: u32, args: &[&str]) -> Option<Output> {
    let mut cmd = wrapped(env, "setpriv", true)?;
    cmd.args([
        &format!("--reuid={id}"),
        &format!("--regid={id}"),
        "--clear-groups",
    ])
    .arg(crate::support::binary())
    .args(args);
    Some(cmd.output().unwrap())
}

#[test]
fn a_group_shares_the_queue_and_nobody_else_reads_it() {
    const MEMBER: u32 = 65534; // nobody:nogroup
    const OUTSIDER: u32 = 54321;
    let env = TestEnv::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(env.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = env.db().parent().unwrap().to_owned();
    std::fs::create_dir(&state).unwrap();
    nix::unistd::chown(&state, None, Some(nix::unistd::Gid::from_raw(MEMBER))).ok();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o2770)).unwrap();
    env.enqueue(r#"{"id":"by-owner","command":"true"}"#);
    // Left too open by its owner: a member cannot fix that, and must not be refused.
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o664)).unwrap();

    let Some(member) = run_as(
        &env,
        MEMBER,
        &["enqueue", r#"{"id":"by-member","command":"true"}"#],
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&member.stderr);
    assert!(member.status.success(), "{stderr}");
    assert!(stderr.contains("only its owner can tighten it"), "{stderr}");
    let listed = run_as(&env, MEMBER, &["list"]).unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("by-member"));

    let outsider = run_as(&env, OUTSIDER, &["list"]).unwrap();
    let stderr = String::from_utf8_lossy(&outsider.stderr);
    assert_eq!(outsider.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(!stderr.contains("no queue"), "{stderr}");
}
