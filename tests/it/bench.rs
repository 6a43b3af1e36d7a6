//! `queuectl bench` (which runs queuectl-bench beside the binary): runs in
//! its own throwaway directory, leaves the user's queue alone, and reports in
//! the documented JSON shape. Figures are never asserted (they depend on the
//! machine); only the report's structure is.

use crate::support::postgres::PgServer;
use crate::support::{TestEnv, binary, skip_unless_ci};

/// Whether queuectl-bench was built beside the binary under test (a plain
/// `cargo build` or `cargo nextest run` in the workspace builds both).
fn bench_installed() -> bool {
    let beside = binary().with_file_name("queuectl-bench");
    if beside.exists() {
        return true;
    }
    skip_unless_ci(&format!(
        "{} is not built (cargo build -p queuectl-bench)",
        beside.display()
    ));
    false
}

/// A queuectl alone in a directory, with nothing on $PATH, running `args`.
fn run_alone(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let lone = env.path("lone/queuectl");
    std::fs::create_dir_all(lone.parent().unwrap()).unwrap();
    // Made once: copying onto an existing hard link would write into the
    // binary itself.
    if !lone.exists() && std::fs::hard_link(binary(), &lone).is_err() {
        std::fs::copy(binary(), &lone).unwrap();
    }
    let empty = env.path("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    std::process::Command::new(&lone)
        .args(args)
        .env("PATH", &empty)
        .output()
        .unwrap()
}

#[test]
fn bench_without_queuectl_bench_installed_says_where_it_looked_and_how_to_get_it() {
    let env = TestEnv::new();
    let out = run_alone(&env, &["bench", "--quick"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("queuectl-bench is not installed beside this queuectl or on $PATH"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cargo build --release -p queuectl-bench"),
        "{stderr}"
    );
}

#[test]
fn bench_help_without_queuectl_bench_installed_is_queuectls_own() {
    let env = TestEnv::new();
    for help in ["--help", "-h"] {
        let out = run_alone(&env, &["bench", "--quick", help]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{help}: {out:?}");
        assert!(stdout.contains("Usage: queuectl bench"), "{stdout}");
        assert!(stdout.contains("queuectl bench --quick"), "{stdout}");
        assert!(
            stdout.contains("cargo build --release -p queuectl-bench"),
            "{stdout}"
        );
    }
}

#[test]
fn bench_reports_json_in_a_throwaway_dir_and_leaves_the_queue_alone() {
    if !bench_installed() {
        return;
    }
    let env = TestEnv::new();
    let scratch = env.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let report = env.json(&[
        "bench",
        "--quick",
        "--scenario",
        "store",
        "--jobs",
        "40",
        "--dir",
        scratch.to_str().unwrap(),
    ]);
    assert_eq!(report["mode"], "quick");
    assert_eq!(report["durability"], "full");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(report["date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    let rows = report["results"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row["scenario"], "store");
        for key in ["metric", "unit", "baseline_what", "target_text"] {
            assert!(row[key].is_string(), "{key} in {row}");
        }
        assert!(row["figure"].is_number(), "{row}");
        assert!(row["baseline"].is_number(), "{row}");
        assert!(row["met"].is_boolean(), "{row}");
    }
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the bench removes its directory"
    );
    assert!(!env.db().exists(), "the configured queue was never created");
}

#[test]
fn bench_measures_every_worker_shape_and_idle_workers_with_slots() {
    if !bench_installed() {
        return;
    }
    let env = TestEnv::new();
    let report = env.json(&[
        "bench",
        "--quick",
        "--scenario",
        "throughput",
        "--scenario",
        "footprint",
        "--jobs",
        "16",
        "--dir",
        env.path("").to_str().unwrap(),
    ]);
    assert_eq!(
        report["failures"].as_array().unwrap().len(),
        0,
        "{}",
        report["failures"]
    );
    let rows = report["results"].as_array().unwrap();
    let metrics = |scenario: &str| -> Vec<&str> {
        rows.iter()
            .filter(|r| r["scenario"] == scenario)
            .map(|r| r["metric"].as_str().unwrap())
            .collect()
    };
    // Total concurrency 1, 2, 4 and 8, each beside `sh -c true` as wide.
    assert_eq!(
        metrics("throughput"),
        [
            "W=1 x K=1",
            "W=1 x K=2",
            "W=2 x K=1",
            "W=1 x K=4",
            "W=2 x K=2",
            "W=1 x K=8",
            "W=2 x K=4"
        ]
    );
    for row in rows.iter().filter(|r| r["scenario"] == "throughput") {
        assert_eq!(row["target_text"], "ratio >= 0.85", "{row}");
        let metric = row["metric"].as_str().unwrap();
        let (w, k) = metric
            .strip_prefix("W=")
            .and_then(|rest| rest.split_once(" x K="))
            .unwrap();
        let total = w.parse::<usize>().unwrap() * k.parse::<usize>().unwrap();
        assert_eq!(
            row["baseline_what"],
            format!("`sh -c true` spawned and reaped in a loop by {total} thread(s)"),
            "{row}"
        );
    }
    assert_eq!(
        metrics("footprint"),
        [
            "idle worker CPU",
            "idle worker RSS",
            "idle worker CPU, 8 slots",
            "idle worker RSS, 8 slots",
            "busy worker RSS"
        ]
    );
}

#[test]
fn bench_rejects_unknown_scenarios() {
    if !bench_installed() {
        return;
    }
    let env = TestEnv::new();
    let out = env.run(&["bench", "--scenario", "warp-speed"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Scratch databases the benchmark left on the server.
fn scratch_databases(server: &PgServer) -> String {
    server.sql(
        "postgres",
        "SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'queuectl\\_bench\\_%'",
    )
}

#[test]
fn bench_on_postgresql_reports_json_and_leaves_the_server_as_it_was() {
    if !bench_installed() {
        return;
    }
    let Some(server) = PgServer::shared() else {
        return;
    };
    let env = TestEnv::sqlite();
    let named = server.fresh_database();
    let before = scratch_databases(&server);
    let report = env.json(&[
        "bench",
        "--quick",
        "--jobs",
        "40",
        "--db",
        &named.url(),
        "--dir",
        env.path("").to_str().unwrap(),
    ]);
    assert_eq!(report["backend"], "postgresql");
    assert_eq!(report["mode"], "quick");
    for key in ["version", "synchronous_commit", "fsync", "address"] {
        assert!(
            report["server"][key].is_string(),
            "server.{key} in {}",
            report["server"]
        );
    }
    assert!(
        !report["server"]["address"]
            .as_str()
            .unwrap()
            .contains(server.password()),
        "no password in the report"
    );
    assert_eq!(
        report["failures"].as_array().unwrap().len(),
        0,
        "{}",
        report["failures"]
    );
    let rows = report["results"].as_array().unwrap();
    let scenarios: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        scenarios.into_iter().collect::<Vec<_>>(),
        ["blocked", "latency", "store", "throughput"]
    );
    for row in rows {
        for key in ["metric", "unit", "baseline_what"] {
            assert!(row[key].is_string(), "{key} in {row}");
        }
        assert!(row["figure"].is_number(), "{row}");
        assert!(row["baseline"].is_number(), "{row}");
        // On PostgreSQL the issue sets a throughput target for 2 workers x
        // 4 slots only; the other shapes are shown without one.
        let untargeted = row["scenario"] == "throughput" && row["metric"] != "W=2 x K=4";
        assert_eq!(row["target_text"].is_null(), untargeted, "{row}");
        assert_eq!(row["met"].is_null(), untargeted, "{row}");
    }
    let throughput: Vec<&str> = rows
        .iter()
        .filter(|r| r["scenario"] == "throughput")
        .map(|r| r["metric"].as_str().unwrap())
        .collect();
    assert!(throughput.contains(&"W=2 x K=4"), "{throughput:?}");
    assert!(throughput.contains(&"W=1 x K=8"), "{throughput:?}");
    let two_by_four = rows.iter().find(|r| r["metric"] == "W=2 x K=4").unwrap();
    assert_eq!(two_by_four["target_text"], "ratio >= 0.7", "{two_by_four}");
    assert_eq!(
        rows.iter().filter(|r| r["scenario"] == "store").count(),
        4,
        "1 and 4 connections, single jobs and batches of 8"
    );
    assert_eq!(
        scratch_databases(&server),
        before,
        "scratch databases dropped"
    );
    assert_eq!(
        named.sql("SELECT count(*) FROM pg_class WHERE relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema', 'pg_toast'))"),
        "0",
        "the database in --db was never changed"
    );
}

#[test]
fn bench_on_postgresql_needs_a_role_that_may_create_databases() {
    if !bench_installed() {
        return;
    }
    let Some(server) = PgServer::shared() else {
        return;
    };
    let env = TestEnv::sqlite();
    let named = server.fresh_database();
    let role = format!("{}_nocreatedb", named.name());
    server.sql(
        "postgres",
        &format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'bench-pw'"),
    );
    let url = named.url().replacen(
        &format!("{}:{}@", server.user(), server.password()),
        &format!("{role}:bench-pw@"),
        1,
    );
    let out = env.run(&["bench", "--quick", "--scenario", "store", "--db", &url]);
    server.sql("postgres", &format!("DROP ROLE \"{role}\""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("may not create databases"), "{stderr}");
    assert!(!stderr.contains("bench-pw"), "{stderr}");
}

#[test]
fn bench_refuses_an_sqlite_db_and_sqlite_only_scenarios_on_postgresql() {
    if !bench_installed() {
        return;
    }
    let env = TestEnv::sqlite();
    // After `bench` (passed through) and before it (queuectl's global flag,
    // which `queuectl bench` hands on).
    for args in [
        ["bench", "--db", "/tmp/some.db"],
        ["--db", "/tmp/some.db", "bench"],
    ] {
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("PostgreSQL server's address"), "{stderr}");
    }
    let out = env.run(&[
        "bench",
        "--scenario",
        "batch",
        "--db",
        "postgresql://u@127.0.0.1:1/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SQLite only"));
}
