//! SQLite-only behaviour: files, WAL and durability, schema tags and
//! upgrades, query plans. What both backends share is in the conformance
//! suite (`store/tests.rs`).

use super::*;
use crate::domain::spec::parse_job;
use crate::store::test_support::*;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), Durability::Full).unwrap();
    (dir, store)
}

/// SQLite's plan for `sql` with `params`, one step a line.
fn query_plan(store: &SqliteStore, sql: &str, params: impl rusqlite::Params) -> String {
    let plan: Vec<String> = store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    plan.join("\n")
}

#[test]
fn claim_uses_the_claim_index() {
    let (_dir, store) = open();
    let plan = query_plan(&store, claims::DUE_JOBS, [0, 0, 0, 0]);
    assert!(plan.contains("jobs_claim"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
}

/// `queue list` and every dashboard page read the queues' counts: from
/// the counter tables, never from `jobs` (with 200,000 unfinished jobs,
/// counting them took each page 200-400 ms).
#[test]
fn queue_rows_read_counters_not_jobs() {
    let (_dir, store) = open();
    let plan = query_plan(&store, queues::QUEUE_ROWS, [None::<String>]);
    assert!(plan.contains("queue_counts"), "{plan}");
    assert!(
        !plan
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|word| word == "jobs"),
        "{plan}"
    );
}

/// A bound `LIMIT` made SQLite compile the batch claim again on every run
/// (it may plan differently for another value) until plans were pinned.
#[test]
fn a_batch_claim_is_compiled_once_whatever_its_limit() {
    let (_dir, mut store) = open();
    for i in 0..12 {
        enqueue(
            &mut store,
            &format!(r#"{{"id":"j{i}","command":"x"}}"#),
            at(0),
        );
    }
    for limit in [2, 3, 4] {
        assert_eq!(
            store.at(at(1)).claim(&request("w"), limit).unwrap().len(),
            limit
        );
    }
    let claim = store
        .conn
        .prepare_cached(&claims::claim_sql(false))
        .unwrap();
    assert_eq!(
        claim.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "recompiled"
    );
}

/// A worker's batches vary in size, each size a statement of its own: they
/// must all stay prepared, not push each other out of the cache.
#[test]
fn batches_of_every_size_stay_prepared() {
    let (_dir, mut store) = open();
    let jobs: Vec<_> = (0..3 * 136 + 1)
        .map(|i| (i + 1, NewJob::new(format!("job {i}"))))
        .collect();
    store.enqueue_at(&jobs, &DEFAULTS, at(0)).unwrap();
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let drain = |store: &mut SqliteStore, n: usize| {
        let claimed = store.at(at(1)).claim(&request("w"), n).unwrap();
        assert_eq!(claimed.len(), n);
        let done = finishes(&claimed, &ok);
        store.at(at(2)).finish(&done, &policy(), None).unwrap();
    };
    let runs_of_one_row_finish = |store: &SqliteStore| {
        let one_row = store
            .conn
            .prepare_cached(claims::MOVE_JOBS.text(1).0)
            .unwrap();
        one_row.get_status(rusqlite::StatementStatus::Run)
    };
    // How many runs SQLite counts for one use, on another connection.
    let (_other_dir, mut other) = open();
    enqueue(&mut other, r#"{"id":"x","command":"x"}"#, at(0));
    drain(&mut other, 1);
    let per_use = runs_of_one_row_finish(&other);
    assert!(per_use > 0);
    for _round in 0..3 {
        for n in 1..=16 {
            drain(&mut store, n);
        }
    }
    assert_eq!(
        runs_of_one_row_finish(&store),
        3 * per_use,
        "the one-row finish was prepared again"
    );
}

#[test]
fn refuses_a_newer_schema() {
    let (dir, store) = open();
    store
        .conn
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    drop(store);
    let err = SqliteStore::open(&dir.path().join("q.db"), Durability::Full)
        .err()
        .unwrap();
    assert!(err.to_string().contains("upgrade queuectl"), "{err}");
}

#[test]
fn lock_waits_start_short_and_give_up_after_the_busy_timeout() {
    assert_eq!(pause_before_retry(0), Duration::from_micros(20));
    assert_eq!(pause_before_retry(1), Duration::from_micros(40));
    assert_eq!(pause_before_retry(5), Duration::from_micros(640));
    assert_eq!(pause_before_retry(6), Duration::from_millis(1));
    assert_eq!(pause_before_retry(1000), Duration::from_millis(1));
    let total: Duration = (0..)
        .map(pause_before_retry)
        .take_while(|p| !p.is_zero())
        .sum();
    assert!(
        total >= BUSY_TIMEOUT && total < BUSY_TIMEOUT + Duration::from_millis(2),
        "{total:?}"
    );
}

#[test]
fn check_constraints_still_reject_unknown_states_and_outcomes() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"a","command":"true"}"#, at(0));
    let bad_state = store
        .conn
        .execute("UPDATE jobs SET state = 'paused' WHERE id = 'a'", []);
    assert!(bad_state.is_err(), "unknown state accepted");
    let finished_but_pending = store
        .conn
        .execute("UPDATE jobs SET finished_at = 1 WHERE id = 'a'", []);
    assert!(
        finished_but_pending.is_err(),
        "finish time on a pending job accepted"
    );
    let claimed = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
    let bad_outcome = store.conn.execute(
        "UPDATE attempts SET finished_at = 2, outcome = 'exploded' WHERE job_seq = ?1",
        [claimed.lease.seq],
    );
    assert!(bad_outcome.is_err(), "unknown outcome accepted");
}

#[test]
fn full_durability_syncs_the_wal_itself_after_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = SqliteStore::open(&dir.path().join("full.db"), Durability::Full).unwrap();
    let synchronous: i64 = full
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL inside COMMIT, then our own fsync");
    assert!(full.sync_after_commit);
    enqueue(&mut full, r#"{"command":"true"}"#, at(0));
    full.sync_wal().unwrap();

    let normal = SqliteStore::open(&dir.path().join("normal.db"), Durability::Normal).unwrap();
    assert!(!normal.sync_after_commit);
}

#[test]
fn full_durability_fails_loudly_when_the_database_left_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("q.db"), Durability::Full).unwrap();
    enqueue(&mut store, r#"{"id":"before","command":"true"}"#, at(0));
    // The connection leaves WAL mode (nothing in queuectl does this; another
    // program cannot while a worker has the queue open): its commits now go
    // through a rollback journal with synchronous=NORMAL, which a power loss
    // can undo. The WAL sync that durability full relies on must not pass.
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let job = parse_job(r#"{"id":"after","command":"true"}"#).unwrap();
    let err = store
        .enqueue_at(&[(1, job)], &DEFAULTS, at(1))
        .expect_err("a commit that full durability cannot sync is an error");
    assert!(err.to_string().contains("no longer in WAL mode"), "{err}");
}

#[test]
fn a_queue_without_wal_relies_on_sqlites_own_full_sync() {
    // An in-memory database cannot use WAL, like a filesystem without shared
    // memory: SQLite's synchronous=FULL then syncs inside COMMIT, and there
    // is no WAL for us to sync.
    let mut store = SqliteStore::open(Path::new(":memory:"), Durability::Full).unwrap();
    assert!(
        !Path::new(":memory:").exists(),
        "no file named :memory: in the working directory"
    );
    assert!(!store.sync_after_commit);
    let synchronous: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    enqueue(&mut store, r#"{"id":"j","command":"true"}"#, at(0));
    assert_eq!(store.get("j").unwrap().state, JobState::Pending);
}

#[test]
fn a_new_queue_is_tagged_and_fully_migrated() {
    let (_dir, store) = open();
    let (id, version): (i32, i64) = store
        .conn
        .query_row(
            "SELECT * FROM pragma_application_id, pragma_user_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((id, version), (APPLICATION_ID, SCHEMA_VERSION));
}

#[test]
fn another_applications_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    drop(other);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SqliteStore::open(&path, Durability::Full).err().unwrap();
    assert!(err.to_string().contains("not a queuectl queue"), "{err}");
    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        file_mode, 0o644,
        "its mode is the other application's business"
    );
    let other = Connection::open(&path).unwrap();
    let mode: String = other
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let tables: i64 = other
        .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), tables), ("delete", 1));
}

#[test]
fn a_file_or_directory_that_is_no_database_is_refused_and_left_untouched() {
    // A mistyped `--db /etc/passwd` (or a symlink to it) must not become 0600.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("passwd");
    std::fs::write(&text, "root:x:0:0\n").unwrap();
    let linked = dir.path().join("linked.db");
    std::os::unix::fs::symlink(&text, &linked).unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    for path in [&text, &folder] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for path in [&text, &linked, &folder] {
        let err = SqliteStore::open(path, Durability::Full).err().unwrap();
        assert!(err.to_string().contains("refusing"), "{err}");
    }
    for path in [&text, &folder] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{} was changed", path.display());
    }
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "root:x:0:0\n");
}

/// Regression: a second writing open in the same process (each `queuectl
/// web` thread opens its own) closed a descriptor of its own on the
/// database to read its header, which dropped the POSIX locks of the
/// process's other connections; another process then deleted the WAL
/// under them and they saw no later commit.
#[test]
fn another_open_in_the_process_keeps_the_first_connections_locks() {
    let (dir, mut first) = open();
    let path = dir.path().join("q.db");
    first.counts().unwrap();
    let held = || locks_held_on(&path);
    assert!(
        held() > 0,
        "an open WAL connection holds a lock on the database"
    );
    let before = held();
    let second = SqliteStore::open_as(&path, Durability::Normal, OpenMode::Existing).unwrap();
    drop(second);
    assert_eq!(held(), before, "the first connection lost its locks");
}

/// How many POSIX locks this process holds on `path` (from /proc/locks).
fn locks_held_on(path: &std::path::Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).unwrap().ino();
    let pid = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(4) == Some(&pid.as_str())
                && fields
                    .get(5)
                    .is_some_and(|id| id.rsplit(':').next() == Some(&inode.to_string()))
        })
        .count()
}

#[test]
fn an_untagged_queue_from_migration_one_is_upgraded_and_keeps_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let old = Connection::open(&path).unwrap();
    old.execute_batch(MIGRATIONS[0]).unwrap();
    old.execute_batch("PRAGMA user_version = 1").unwrap();
    old.execute(
        "INSERT INTO jobs (id, command, state, run_at, max_retries, timeout_seconds, created_at, updated_at)
         VALUES ('old', 'true', 'pending', 0, 3, 0, 0, 0)",
        [],
    )
    .unwrap();
    drop(old);
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    assert_eq!(store.get("old").unwrap().state, JobState::Pending);
    let id: i32 = store
        .conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, APPLICATION_ID);
}

#[test]
fn a_corrupt_env_column_is_reported_not_read_as_empty() {
    let (_dir, mut store) = open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"x","env":{"A":"1"}}"#,
        at(0),
    );
    enqueue(&mut store, r#"{"id":"plain","command":"x"}"#, at(1));
    store
        .conn
        .execute("UPDATE jobs SET env = '{\"A\": 1' WHERE id = 'j'", [])
        .unwrap();
    assert_eq!(store.get("j").unwrap().env, Err(CorruptEnv));
    assert_eq!(store.get("plain").unwrap().env, Ok(BTreeMap::new()));
    let shown = serde_json::to_value(store.get("j").unwrap()).unwrap();
    assert_eq!(shown["env_keys"], serde_json::Value::Null);
    assert!(shown["env_error"].as_str().unwrap().contains("corrupt"));
    let claimed = store.claim_at(&request("w"), at(2)).unwrap().unwrap();
    assert_eq!((claimed.id.as_str(), claimed.env), ("j", Err(CorruptEnv)));
}

#[test]
fn a_reading_open_creates_nothing_and_upgrades_an_older_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/q.db");
    let err = SqliteStore::open_as(&path, Durability::Full, OpenMode::ReadOnly)
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoQueue(_)), "{err}");
    assert!(!dir.path().join("state").exists());

    std::fs::create_dir(dir.path().join("state")).unwrap();
    let old = Connection::open(&path).unwrap();
    old.execute_batch(MIGRATIONS[0]).unwrap();
    old.execute_batch(MIGRATIONS[1]).unwrap();
    old.execute_batch("PRAGMA user_version = 2").unwrap();
    drop(old);
    let mut store = SqliteStore::open_as(&path, Durability::Full, OpenMode::ReadOnly).unwrap();
    assert!(
        store
            .list(&ListFilter::default(), Some(10))
            .unwrap()
            .jobs
            .is_empty()
    );
    let version: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Jobs of a queue from before workflows (migration 8) keep their states
/// and are claimed in the same order by the claim's new index.
#[test]
fn migration_008_keeps_every_job_and_its_claim_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let old = Connection::open(&path).unwrap();
    for migration in &MIGRATIONS[..7] {
        old.execute_batch(migration).unwrap();
    }
    old.execute_batch("PRAGMA user_version = 7").unwrap();
    old.execute_batch(PRE_WORKFLOW_JOBS).unwrap();
    drop(old);
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    assert_pre_workflow_jobs_kept(&mut store);
}

/// A queue from before the dashboard's counters (migration 9) keeps its
/// jobs and gets its counters from the history it holds.
#[test]
fn migration_009_counts_the_history_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let old = Connection::open(&path).unwrap();
    for migration in &MIGRATIONS[..8] {
        old.execute_batch(migration).unwrap();
    }
    old.execute_batch(&format!(
        "PRAGMA user_version = 8; PRAGMA application_id = {APPLICATION_ID}"
    ))
    .unwrap();
    old.execute_batch(PRE_STATS_HISTORY).unwrap();
    drop(old);
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    assert_pre_stats_history_counted(&mut store);
    let counts = store.counts().unwrap();
    assert_eq!(
        (
            counts[&JobState::Completed],
            counts[&JobState::Dead],
            counts[&JobState::Pending]
        ),
        (1, 1, 1)
    );
}

/// A queue from before the blocked counters (migration 11) gets them from
/// the jobs it holds: `queue list` counts the blocked jobs already there.
#[test]
fn migration_011_counts_the_blocked_jobs_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    for job in [
        r#"{"id":"a","command":"x","queue":"q"}"#,
        r#"{"id":"b","command":"x","queue":"q","after":["a"]}"#,
        r#"{"id":"c","command":"x","queue":"r","after":["a","b"]}"#,
    ] {
        enqueue(&mut store, job, at(0));
    }
    // Back to version 10: migration 11 runs again on the next open.
    store
        .conn
        .execute_batch(
            "DROP TRIGGER jobs_blocked_insert; DROP TRIGGER jobs_blocked_delete;
             DROP TRIGGER jobs_blocked_leave; DROP TRIGGER jobs_blocked_enter;
             DROP TABLE blocked_counts; PRAGMA user_version = 10",
        )
        .unwrap();
    drop(store);
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    let blocked: Vec<(String, u64, u64)> = store
        .queues()
        .unwrap()
        .into_iter()
        .map(|q| (q.name, q.waiting, q.blocked))
        .collect();
    assert_eq!(blocked, [("q".into(), 2, 1), ("r".into(), 1, 1)]);
}

/// Workers starting together on a new queue: one creates it while the
/// others look at what the file holds. A look that read the tag before a
/// creator's commit and the tables after it refused the new queue as
/// another application's database.
#[test]
fn many_opens_of_a_new_queue_at_once_all_succeed() {
    for _ in 0..400 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let start = std::sync::Arc::new(std::sync::Barrier::new(6));
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    SqliteStore::open(&path, Durability::Normal).map(|_| ())
                })
            })
            .collect();
        for open in opens {
            open.join().unwrap().unwrap();
        }
    }
}
