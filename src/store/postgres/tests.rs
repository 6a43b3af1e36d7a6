//! PostgreSQL-only behaviour: schema tags and migrations, connection loss,
//! LISTEN/NOTIFY, query plans, copying to and from SQLite. What both
//! backends share is in the conformance suite (`store/tests.rs`).

use super::testing::TestDatabase;
use super::*;
use crate::config::Durability;
use crate::error::Error;
use crate::store::test_support::*;
use crate::store::{Database, Store};
use std::sync::{Arc, Barrier, mpsc};

fn server() -> Option<TestDatabase> {
    TestDatabase::create()
}

fn open(db: &TestDatabase, mode: OpenMode) -> Result<PgStore> {
    PgStore::open_as(&db.target(), mode)
}

#[test]
fn migrations_run_once_when_four_hosts_start_at_once() {
    let Some(db) = server() else { return };
    let start = Arc::new(Barrier::new(4));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (target, start) = (db.target(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                PgStore::open_as(&target, OpenMode::Create).map(|_| ())
            })
        })
        .collect();
    for open in opens {
        open.join().unwrap().unwrap();
    }
    let mut admin = db.admin();
    let version: String = admin
        .query_one(
            "SELECT value FROM queuectl_meta WHERE key = 'schema_version'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, schema::SCHEMA_VERSION.to_string());
    let tables: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 9,
        "queuectl_meta, jobs, attempts, workers, job_deps, queues, schedules, \
         histograms, attempt_minutes"
    );
}

#[test]
fn reading_and_existing_opens_never_create_a_queue() {
    let Some(db) = server() else { return };
    for mode in [OpenMode::ReadOnly, OpenMode::Existing] {
        let err = open(&db, mode).err().expect("no queue there");
        assert!(matches!(err, Error::NoQueue(_)), "{mode:?}: {err}");
    }
    let tables: i64 = db
        .admin()
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was created");
}

#[test]
fn a_read_only_open_writes_nothing() {
    let Some(db) = server() else { return };
    let mut store = Store::open(&db.database(), Durability::Full).unwrap();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let mut reader = open(&db, OpenMode::ReadOnly).unwrap();
    assert_eq!(reader.get("j").unwrap().id, "j");
    let err = reader.cancel("j").unwrap_err();
    assert!(err.to_string().contains("read-only transaction"), "{err}");
    assert_eq!(
        store.get("j").unwrap().state,
        crate::domain::JobState::Pending
    );
}

#[test]
fn another_applications_schema_is_refused_untouched() {
    let Some(db) = server() else { return };
    db.admin()
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY)")
        .unwrap();
    let err = open(&db, OpenMode::Create).err().expect("refused");
    assert!(err.to_string().contains("is not a queuectl queue"), "{err}");
    let ours: i64 = db
        .admin()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('queuectl_meta', 'jobs')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ours, 0);
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(db) = server() else { return };
    drop(open(&db, OpenMode::Create).unwrap());
    db.admin()
        .batch_execute("UPDATE queuectl_meta SET value = '99' WHERE key = 'schema_version'")
        .unwrap();
    for mode in [OpenMode::Create, OpenMode::ReadOnly] {
        let err = open(&db, mode).err().expect("refused");
        assert!(
            matches!(err, Error::SchemaTooNew { found: 99, .. }),
            "{mode:?}: {err}"
        );
    }
}

#[test]
fn times_are_the_servers_unless_a_test_pins_them() {
    let Some(db) = server() else { return };
    let mut store = open(&db, OpenMode::Create).unwrap();
    let server_now = |store: &mut PgStore| store.now().unwrap();
    let before = server_now(&mut store);
    store.pin_clock(Some(at(5))).unwrap();
    assert_eq!(server_now(&mut store), at(5));
    store.pin_clock(None).unwrap();
    let after = server_now(&mut store);
    assert!(after >= before, "{before} .. {after}");
    // An enqueue takes its time from the server.
    let mut store = Store::open(&db.database(), Durability::Full).unwrap();
    let ids = store
        .enqueue(&[(1, crate::domain::NewJob::new("x"))], &DEFAULTS)
        .unwrap();
    let job = store.get(&ids[0].id).unwrap();
    let now = store.now().unwrap();
    assert!(job.run_at >= before && job.run_at <= now, "{}", job.run_at);
    assert_eq!(job.created_at, job.run_at);
}

/// Ends this test's other sessions on the server (those whose last
/// statement matches `last_query`), as a restart or a network cut would.
fn kill_connections(db: &TestDatabase, last_query: &str) {
    let killed = db
        .admin()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1",
            &[&last_query],
        )
        .unwrap();
    assert!(killed > 0, "no session ran {last_query}");
}

#[test]
fn a_lost_connection_is_unreachable_once_then_the_next_call_reconnects() {
    let Some(db) = server() else { return };
    let mut store = open(&db, OpenMode::Create).unwrap();
    store.pin_clock(Some(at(7))).unwrap();
    store.counts().unwrap();
    kill_connections(&db, "%");
    let err = store.counts().unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert_eq!(err.exit_code(), 1);
    // Reconnected, with the session's settings again.
    assert_eq!(store.now().unwrap(), at(7));
}

#[test]
fn listen_for_work_wakes_a_worker_when_another_host_enqueues() {
    let Some(db) = server() else { return };
    let mut listener = open(&db, OpenMode::Create).unwrap();
    let (woken, wake_ups) = mpsc::channel();
    let wake: crate::store::WakeFn = Box::new(move || woken.send(()).is_ok());
    assert!(listener.listen_for_work(wake).unwrap());
    let mut other = Store::open(&db.database(), Durability::Full).unwrap();
    enqueue(&mut other, r#"{"id":"j","command":"x"}"#, at(0));
    wake_ups
        .recv_timeout(Duration::from_secs(30))
        .expect("a wake-up after the enqueue");
    // The listener's connection is cut: it reconnects and wakes the worker
    // (notifications may have been missed), then still forwards new ones.
    kill_connections(&db, "LISTEN %");
    wake_ups
        .recv_timeout(Duration::from_secs(30))
        .expect("a wake-up after reconnecting");
    while wake_ups.try_recv().is_ok() {}
    let job = other.claim_at(&request("w"), at(1)).unwrap().unwrap();
    let interrupted = AttemptResult::new(crate::domain::AttemptOutcome::Interrupted);
    other
        .finish_at(&job.lease, &interrupted, &policy(), at(2), None)
        .unwrap();
    wake_ups
        .recv_timeout(Duration::from_secs(30))
        .expect("a wake-up when an interrupted job is due again");
}

#[test]
fn the_claim_reads_the_claim_index_in_order() {
    let Some(db) = server() else { return };
    let plan = claim_plan(
        &db,
        concat!(
            "EXPLAIN ",
            claims::candidates!(every_queue),
            " SELECT * FROM candidates"
        ),
        None,
    );
    assert!(plan.contains("jobs_claim"), "{plan}");
    assert!(!plan.contains("Sort"), "no sort step: {plan}");
}

/// A worker of some queues reads each of them in claim order (a range of
/// `jobs_claim_queue` each), never the whole claim index past other
/// queues' jobs.
#[test]
fn a_claim_of_named_queues_reads_each_queue_in_order() {
    let Some(db) = server() else { return };
    let plan = claim_plan(
        &db,
        concat!(
            "EXPLAIN ",
            claims::candidates!(named_queues),
            " SELECT * FROM candidates"
        ),
        Some(vec!["a".to_owned(), "b".to_owned()]),
    );
    assert!(plan.contains("Index Scan using jobs_claim_queue"), "{plan}");
    assert!(
        plan.contains("queue >= mine.queue"),
        "a range of it: {plan}"
    );
    assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
}

/// The plan of a claim's candidates (`explain`: EXPLAIN of them) over 2,000
/// due jobs of queue `default`, for a worker serving `queues`.
fn claim_plan(db: &TestDatabase, explain: &str, queues: Option<Vec<String>>) -> String {
    use postgres::types::Type;
    let mut store = Store::open(&db.database(), Durability::Full).unwrap();
    let jobs: Vec<_> = (0..2000)
        .map(|i| (i + 1, crate::domain::NewJob::new(format!("job {i}"))))
        .collect();
    // Due by the server's clock, which plans the statement.
    store.enqueue(&jobs, &DEFAULTS).unwrap();
    let mut admin = db.admin();
    admin.batch_execute("ANALYZE jobs").unwrap();
    // $1 (the worker) and $3-$7 are the claim's; this part uses $2, $8, $9.
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
    ];
    let statement = admin.prepare_typed(explain, &types).unwrap();
    let (no_ints, no_texts) = (Vec::<i64>::new(), Vec::<String>::new());
    let plan: Vec<String> = admin
        .query(
            &statement,
            &[
                &"w", &10_i64, &0_i64, &no_ints, &no_texts, &"", &"", &queues, &no_texts,
            ],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    plan.join("\n")
}

#[test]
fn a_queue_copied_from_sqlite_to_postgres_and_back_is_the_same() {
    let Some(db) = server() else { return };
    let sqlite = TestQueue::sqlite();
    let mut source = sqlite.open();
    fill_with_every_kind_of_job(&mut source);
    let original = source.export().unwrap();
    let mut pg = Store::open(&db.database(), Durability::Full).unwrap();
    pg.import(&original, &[], &[]).unwrap();
    let in_pg = pg.export().unwrap();
    assert_eq!(snapshot(&in_pg), snapshot(&original));
    let back = TestQueue::sqlite();
    let mut back_store = back.open();
    back_store.import(&in_pg, &[], &[]).unwrap();
    assert_eq!(snapshot(&back_store.export().unwrap()), snapshot(&original));
    // The copied queue works on: the processing job's lease still holds.
    let running = in_pg.iter().find(|r| r.job.id == "running").unwrap();
    assert!(running.lease_token.is_some());
    let job = pg.claim_at(&request("w2"), at(10)).unwrap().unwrap();
    assert_eq!(job.id, "retry", "failed before, due again; seq order kept");
    assert!(matches!(pg.database(), Database::Postgres(_)));
}

/// Jobs of a queue from before workflows (migration 5) keep their states
/// and are claimed in the same order by the claim's new index.
#[test]
fn migration_005_keeps_every_job_and_its_claim_order() {
    let Some(db) = server() else { return };
    let mut admin = db.admin();
    for migration in &schema::MIGRATIONS[..4] {
        admin.batch_execute(migration).unwrap();
    }
    admin
        .batch_execute("UPDATE queuectl_meta SET value = '4' WHERE key = 'schema_version'")
        .unwrap();
    admin.batch_execute(PRE_WORKFLOW_JOBS).unwrap();
    let mut store = open(&db, OpenMode::Existing).unwrap();
    assert_pre_workflow_jobs_kept(&mut store);
}

/// A queue from before the dashboard's counters (migration 6) keeps its
/// jobs and gets its counters from the history it holds.
#[test]
fn migration_006_counts_the_history_already_there() {
    let Some(db) = server() else { return };
    let mut admin = db.admin();
    for migration in &schema::MIGRATIONS[..5] {
        admin.batch_execute(migration).unwrap();
    }
    admin
        .batch_execute("UPDATE queuectl_meta SET value = '5' WHERE key = 'schema_version'")
        .unwrap();
    admin.batch_execute(PRE_STATS_HISTORY).unwrap();
    let mut store = open(&db, OpenMode::Existing).unwrap();
    assert_pre_stats_history_counted(&mut store);
}

/// Two transactions counting the same key at once: the second neither waits
/// for the first's counter row (a statement timeout of 1 s would fail it)
/// nor loses a count; it takes a shard of its own, and readers sum them.
#[test]
fn counters_of_one_key_never_make_a_writer_wait() {
    let Some(db) = server() else { return };
    drop(open(&db, OpenMode::Create).unwrap());
    let (mut first, mut second) = (db.admin(), db.admin());
    let observe = "SELECT queuectl_observe('duration', 'mail', 'succeeded', 20)";
    let mut holding = first.transaction().unwrap();
    holding.batch_execute(observe).unwrap();
    second
        .batch_execute(&format!(
            "BEGIN; SET LOCAL statement_timeout = '1s'; {observe}; COMMIT"
        ))
        .unwrap();
    holding.commit().unwrap();
    let row = first
        .query_one(
            "SELECT count(*), sum(observations)::bigint, sum(b01)::bigint FROM histograms
             WHERE kind = 'duration' AND queue = 'mail' AND outcome = 'succeeded'",
            &[],
        )
        .unwrap();
    let (shards, observations, within_50ms): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((shards, observations, within_50ms), (2, 2, 2));
}
