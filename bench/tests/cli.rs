//! queuectl-bench's command line on its own (the suite itself runs through
//! `queuectl bench` in tests/it/bench.rs): usage errors and finding the
//! queuectl binary it measures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bench_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_queuectl-bench"))
}

fn run(program: &Path, args: &[&str], path_env: &Path) -> Output {
    Command::new(program)
        .args(args)
        .env("PATH", path_env)
        .output()
        .expect("run queuectl-bench")
}

#[test]
fn unknown_scenarios_and_sqlite_databases_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&bench_binary(), &["--scenario", "warp-speed"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = run(&bench_binary(), &["--db", "/tmp/some.db"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PostgreSQL server's address"), "{stderr}");
}

#[test]
fn without_a_queuectl_beside_it_or_on_path_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("queuectl-bench");
    if std::fs::hard_link(bench_binary(), &lone).is_err() {
        std::fs::copy(bench_binary(), &lone).unwrap();
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(
        &lone,
        &["--quick", "--dir", dir.path().to_str().unwrap()],
        &empty,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no queuectl binary beside queuectl-bench or on $PATH"),
        "{stderr}"
    );
}
