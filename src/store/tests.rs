use super::*;
use crate::domain::spec::parse_job;
use crate::output::OutputReport;
use std::collections::HashSet;

const DEFAULTS: JobDefaults = JobDefaults {
    max_retries: 2,
    timeout_seconds: 0,
};

fn policy() -> RetryPolicy {
    RetryPolicy {
        backoff_base: 2.0,
        backoff_max: Duration::from_secs(3600),
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db"), Durability::Full).unwrap();
    (dir, store)
}

fn request(worker: &str) -> ClaimRequest {
    ClaimRequest {
        worker: worker.into(),
        lease: Duration::from_secs(30),
        output: Destination::File,
        host: "localhost".into(),
        cgroups: None,
    }
}

fn enqueue(store: &mut Store, json: &str, now: Timestamp) -> String {
    let job = parse_job(json).unwrap();
    store.enqueue(&[(1, job)], &DEFAULTS, now).unwrap()[0].to_string()
}

#[test]
fn claims_by_priority_then_due_time_then_enqueue_order() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"low","command":"x"}"#, at(0));
    enqueue(
        &mut store,
        r#"{"id":"high-late","command":"x","priority":5,"run_at":"2027-01-15T08:00:10Z"}"#,
        at(0),
    );
    enqueue(
        &mut store,
        r#"{"id":"high","command":"x","priority":5}"#,
        at(1),
    );
    enqueue(&mut store, r#"{"id":"low2","command":"x"}"#, at(0));
    enqueue(
        &mut store,
        r#"{"id":"future","command":"x","priority":9,"delay":"1h"}"#,
        at(0),
    );
    let now = at(100);
    let mut order = vec![];
    while let Some(job) = store.claim(&request("w"), now).unwrap() {
        order.push(job.id);
    }
    // at(10) is 2027-01-15T08:00:10Z: same priority as "high" but due later.
    assert_eq!("2027-01-15T08:00:10Z".parse::<Timestamp>().unwrap(), at(10));
    assert_eq!(order, ["high", "high-late", "low", "low2"]);
    assert_eq!(store.get("future").unwrap().state, JobState::Pending);
}

#[test]
fn finish_requires_the_current_lease() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let claimed = store.claim(&request("w1"), at(1)).unwrap().unwrap();
    let mut stale = claimed.lease.clone();
    stale.token ^= 1;
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let (held, next) = store.finish(&stale, &ok, &policy(), at(2), None).unwrap();
    assert!(!held && next.is_none());
    assert_eq!(store.get("j").unwrap().state, JobState::Processing);
    assert_eq!(
        store
            .renew_lease(&stale, Duration::from_secs(5), at(2))
            .unwrap(),
        LeaseStatus::Lost
    );
    assert!(
        store
            .finish(&claimed.lease, &ok, &policy(), at(3), None)
            .unwrap()
            .0
    );
    let job = store.get("j").unwrap();
    assert_eq!(
        (job.state, job.attempts, job.worker),
        (JobState::Completed, 1, None)
    );
    assert_eq!(job.finished_at, Some(at(3)));
}

#[test]
fn failures_back_off_then_die_and_dlq_retry_resets_the_budget() {
    let (_dir, mut store) = open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"false","max_retries":2}"#,
        at(0),
    );
    let mut now = at(0);
    for expected_delay in [2, 4] {
        let job = store.claim(&request("w"), now).unwrap().unwrap();
        let fail = AttemptResult::new(AttemptOutcome::Failed).with_error("exit 1");
        store
            .finish(&job.lease, &fail, &policy(), now, None)
            .unwrap();
        let row = store.get("j").unwrap();
        assert_eq!(row.state, JobState::Failed);
        assert_eq!(
            row.run_at,
            now + jiff::SignedDuration::from_secs(expected_delay)
        );
        assert!(
            store.claim(&request("w"), now).unwrap().is_none(),
            "not due before its backoff"
        );
        now = row.run_at;
    }
    let job = store.claim(&request("w"), now).unwrap().unwrap();
    store
        .finish(
            &job.lease,
            &AttemptResult::new(AttemptOutcome::Failed),
            &policy(),
            now,
            None,
        )
        .unwrap();
    let row = store.get("j").unwrap();
    assert_eq!(
        (row.state, row.attempts, row.failures),
        (JobState::Dead, 3, 3)
    );
    assert_eq!(
        row.last_error.as_deref(),
        Some("exit 1"),
        "the last error is kept"
    );
    assert_eq!(store.attempts("j").unwrap().len(), 3);

    assert!(matches!(
        store.retry_dead(Some("nope"), now),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.retry_dead(Some("j"), now).unwrap(), ["j"]);
    let row = store.get("j").unwrap();
    assert_eq!(
        (row.state, row.failures, row.finished_at),
        (JobState::Pending, 0, None)
    );
    assert!(matches!(
        store.retry_dead(Some("j"), now),
        Err(Error::Conflict(_))
    ));
    let again = store.claim(&request("w"), now).unwrap().unwrap();
    assert_eq!(again.lease.attempt, 4, "history numbering continues");
}

#[test]
fn expired_leases_are_rescued_as_failed_attempts() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let job = store
        .claim(&request("dead-worker"), at(0))
        .unwrap()
        .unwrap();
    let held = store.held_attempts(Holder::ExpiredBy(at(29))).unwrap();
    assert!(held.is_empty());
    assert!(
        store
            .rescue_expired(&held, &policy(), at(29))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_lease_expiry().unwrap(), Some(at(30)));
    let held = store.held_attempts(Holder::ExpiredBy(at(31))).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        store.rescue_expired(&held, &policy(), at(31)).unwrap(),
        ["j"]
    );
    let row = store.get("j").unwrap();
    assert_eq!((row.state, row.failures), (JobState::Failed, 1));
    assert!(row.last_error.unwrap().contains("dead-worker"));
    let history = store.attempts("j").unwrap();
    assert_eq!(history[0].outcome, Some(AttemptOutcome::LeaseExpired));
    // The late worker's finish changes nothing.
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    assert!(
        !store
            .finish(&job.lease, &ok, &policy(), at(32), None)
            .unwrap()
            .0
    );
    assert_eq!(store.get("j").unwrap().state, JobState::Failed);
}

#[test]
fn interrupted_attempts_do_not_spend_retries() {
    let (_dir, mut store) = open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"x","max_retries":0}"#,
        at(0),
    );
    let job = store.claim(&request("w"), at(0)).unwrap().unwrap();
    let (_, next) = store
        .finish(
            &job.lease,
            &AttemptResult::new(AttemptOutcome::Interrupted),
            &policy(),
            at(1),
            Some(&request("w")),
        )
        .unwrap();
    let again = next.expect("back in the queue and claimable at once");
    assert_eq!((again.lease.attempt, again.lease.failures), (2, 0));
}

#[test]
fn cancel_pending_running_and_finished() {
    let (_dir, mut store) = open();
    enqueue(
        &mut store,
        r#"{"id":"waiting","command":"x","delay":"1h"}"#,
        at(0),
    );
    enqueue(&mut store, r#"{"id":"running","command":"x"}"#, at(0));
    assert_eq!(
        store.cancel("waiting", at(1)).unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(store.get("waiting").unwrap().state, JobState::Cancelled);
    let job = store.claim(&request("w"), at(1)).unwrap().unwrap();
    assert_eq!(job.id, "running");
    assert_eq!(
        store.cancel("running", at(2)).unwrap(),
        CancelResult::Requested { worker: "w".into() }
    );
    assert_eq!(
        store
            .renew_lease(&job.lease, Duration::from_secs(30), at(3))
            .unwrap(),
        LeaseStatus::CancelRequested
    );
    assert!(matches!(
        store.cancel("waiting", at(4)),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.cancel("ghost", at(4)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn a_job_whose_cancel_was_requested_ends_cancelled_even_if_it_succeeded() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"quick","command":"x"}"#, at(0));
    enqueue(&mut store, r#"{"id":"lost","command":"x"}"#, at(0));
    let quick = store.claim(&request("w"), at(1)).unwrap().unwrap();
    let _lost = store.claim(&request("w2"), at(1)).unwrap().unwrap();
    for id in ["quick", "lost"] {
        assert!(matches!(
            store.cancel(id, at(2)).unwrap(),
            CancelResult::Requested { .. }
        ));
    }
    // The job exits 0 before its worker notices the cancel.
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    assert!(
        store
            .finish(&quick.lease, &ok, &policy(), at(3), None)
            .unwrap()
            .0
    );
    let job = store.get("quick").unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.last_error.unwrap().contains("ended first (succeeded)"));
    let attempts = store.attempts("quick").unwrap();
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Succeeded));
    // A rescued job (its worker died) whose cancel was requested: cancelled too.
    let held = store.held_attempts(Holder::Worker("w2")).unwrap();
    let rescued = store.rescue_held_by("w2", &held, &policy(), at(4)).unwrap();
    assert_eq!(rescued, ["lost"]);
    assert_eq!(store.get("lost").unwrap().state, JobState::Cancelled);
    assert_eq!(store.get("lost").unwrap().failures, 1);
}

#[test]
fn finish_records_where_the_output_went_and_whether_it_was_cut() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"a","command":"x"}"#, at(0));
    enqueue(&mut store, r#"{"id":"b","command":"x"}"#, at(0));
    let journal = ClaimRequest {
        output: Destination::Journal,
        ..request("w")
    };
    let a = store.claim(&journal, at(1)).unwrap().unwrap();
    let b = store.claim(&journal, at(1)).unwrap().unwrap();
    let mut result = AttemptResult::new(AttemptOutcome::Succeeded);
    result.output = Some(OutputReport {
        destination: Destination::File,
        truncated: true,
    });
    store
        .finish(&a.lease, &result, &policy(), at(2), None)
        .unwrap();
    let attempt = &store.attempts("a").unwrap()[0];
    assert_eq!(
        (attempt.output, attempt.output_truncated),
        (Destination::File, true)
    );
    // No report (a rescue): what the claim recorded stays.
    store
        .finish(
            &b.lease,
            &AttemptResult::new(AttemptOutcome::LeaseExpired),
            &policy(),
            at(2),
            None,
        )
        .unwrap();
    let attempt = &store.attempts("b").unwrap()[0];
    assert_eq!(
        (attempt.output, attempt.output_truncated),
        (Destination::Journal, false)
    );
}

#[test]
fn duplicate_ids_reject_the_whole_batch() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"a","command":"x"}"#, at(0));
    let batch = vec![
        (1, parse_job(r#"{"id":"b","command":"x"}"#).unwrap()),
        (2, parse_job(r#"{"id":"a","command":"y"}"#).unwrap()),
    ];
    let err = store.enqueue(&batch, &DEFAULTS, at(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: field 'id': job 'a' already exists"
    );
    assert!(
        matches!(store.get("b"), Err(Error::NotFound(_))),
        "nothing from the batch is kept"
    );
    assert_eq!(store.counts().unwrap()[&JobState::Pending], 1);
}

#[test]
fn counts_follow_every_transition_and_purge() {
    let (_dir, mut store) = open();
    for i in 0..5 {
        enqueue(
            &mut store,
            &format!(r#"{{"id":"j{i}","command":"x"}}"#),
            at(0),
        );
    }
    for _ in 0..3 {
        let job = store.claim(&request("w"), at(1)).unwrap().unwrap();
        store
            .finish(
                &job.lease,
                &AttemptResult::new(AttemptOutcome::Succeeded),
                &policy(),
                at(2),
                None,
            )
            .unwrap();
    }
    store.claim(&request("w"), at(3)).unwrap().unwrap();
    let counts = store.counts().unwrap();
    assert_eq!(
        (
            counts[&JobState::Pending],
            counts[&JobState::Processing],
            counts[&JobState::Completed]
        ),
        (1, 1, 3)
    );
    assert_eq!(
        store.purge(at(2)).unwrap().len(),
        0,
        "finished_at < cutoff only"
    );
    assert_eq!(store.purge(at(3)).unwrap().len(), 3);
    let counts = store.counts().unwrap();
    assert_eq!(counts[&JobState::Completed], 0);
    assert_eq!(counts.values().sum::<u64>(), 2);
    let metrics = store.metrics(at(4)).unwrap();
    assert_eq!(metrics.total, 2);
}

#[test]
fn claim_uses_the_claim_index() {
    let (_dir, store) = open();
    let plan: Vec<String> = store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {NEXT_DUE_JOB}"))
        .unwrap()
        .query_map([0, 0, 0, 0], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("jobs_claim"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
}

#[test]
fn concurrent_claimers_never_share_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut store = Store::open(&path, Durability::Normal).unwrap();
    let jobs: Vec<_> = (0..400)
        .map(|i| (i + 1, NewJob::new(format!("job {i}"))))
        .collect();
    store.enqueue(&jobs, &DEFAULTS, at(0)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path, Durability::Normal).unwrap();
                let req = request(&format!("w{w}"));
                let mut mine = vec![];
                let mut next = store.claim(&req, at(1)).unwrap();
                while let Some(job) = next {
                    mine.push(job.id.clone());
                    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
                    next = store
                        .finish(&job.lease, &ok, &policy(), at(1), Some(&req))
                        .unwrap()
                        .1;
                }
                mine
            })
        })
        .collect();
    let all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (400, 400));
    assert_eq!(store.counts().unwrap()[&JobState::Completed], 400);
}

#[test]
fn refuses_a_newer_schema() {
    let (dir, store) = open();
    store
        .conn
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    drop(store);
    let err = Store::open(&dir.path().join("q.db"), Durability::Full)
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
    let claimed = store.claim(&request("w"), at(1)).unwrap().unwrap();
    let bad_outcome = store.conn.execute(
        "UPDATE attempts SET finished_at = 2, outcome = 'exploded' WHERE job_seq = ?1",
        [claimed.lease.seq],
    );
    assert!(bad_outcome.is_err(), "unknown outcome accepted");
}

#[test]
fn full_durability_syncs_the_wal_itself_after_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = Store::open(&dir.path().join("full.db"), Durability::Full).unwrap();
    let synchronous: i64 = full
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL inside COMMIT, then our own fsync");
    assert!(full.sync_after_commit);
    enqueue(&mut full, r#"{"command":"true"}"#, at(0));
    full.sync_wal().unwrap();

    let normal = Store::open(&dir.path().join("normal.db"), Durability::Normal).unwrap();
    assert!(!normal.sync_after_commit);
}

#[test]
fn full_durability_fails_loudly_when_the_database_left_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("q.db"), Durability::Full).unwrap();
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
        .enqueue(&[(1, job)], &DEFAULTS, at(1))
        .expect_err("a commit that full durability cannot sync is an error");
    assert!(err.to_string().contains("no longer in WAL mode"), "{err}");
}

#[test]
fn a_queue_without_wal_relies_on_sqlites_own_full_sync() {
    // An in-memory database cannot use WAL, like a filesystem without shared
    // memory: SQLite's synchronous=FULL then syncs inside COMMIT, and there
    // is no WAL for us to sync.
    let mut store = Store::open(Path::new(":memory:"), Durability::Full).unwrap();
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
    let err = Store::open(&path, Durability::Full).err().unwrap();
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
        let err = Store::open(path, Durability::Full).err().unwrap();
        assert!(err.to_string().contains("refusing"), "{err}");
    }
    for path in [&text, &folder] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{} was changed", path.display());
    }
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "root:x:0:0\n");
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
    let store = Store::open(&path, Durability::Full).unwrap();
    assert_eq!(store.get("old").unwrap().state, JobState::Pending);
    let id: i32 = store
        .conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, APPLICATION_ID);
}

#[test]
fn a_rescue_names_the_attempt_and_finishes_only_the_attempts_it_was_given() {
    let (_dir, mut store) = open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let mut contained = request("w");
    contained.cgroups = Some("/system.slice/queuectl-worker@w.service".into());
    let job = store.claim(&contained, at(0)).unwrap().unwrap();
    let held = store.held_attempts(Holder::ExpiredBy(at(31))).unwrap();
    let token = job.lease.attempt_token();
    assert_eq!(token.len(), 16, "64 random bits, in hex: {token}");
    assert_eq!(held.len(), 1);
    assert_eq!(
        (
            held[0].job_id.as_str(),
            held[0].token.as_str(),
            held[0].host.as_deref()
        ),
        ("j", token.as_str(), Some("localhost"))
    );
    let cgroup = format!("/system.slice/queuectl-worker@w.service/attempt-{token}");
    assert_eq!(held[0].cgroup.as_deref(), Some(cgroup.as_str()));
    assert_eq!(job.cgroup.as_deref(), Some(cgroup.as_str()));

    // Rescued with an empty list, nothing happens: no attempt was ended.
    assert!(
        store
            .rescue_expired(&[], &policy(), at(31))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get("j").unwrap().state, JobState::Processing);
    // A stale list (the job was rescued and claimed again since) does not
    // touch the new attempt.
    assert_eq!(
        store.rescue_expired(&held, &policy(), at(31)).unwrap(),
        ["j"]
    );
    let again = store.claim(&request("w2"), at(40)).unwrap().unwrap();
    assert_ne!(again.lease.attempt_token(), token);
    assert!(
        store
            .rescue_expired(&held, &policy(), at(100))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get("j").unwrap().state, JobState::Processing);
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
    let claimed = store.claim(&request("w"), at(2)).unwrap().unwrap();
    assert_eq!((claimed.id.as_str(), claimed.env), ("j", Err(CorruptEnv)));
}

#[test]
fn env_file_is_stored_and_handed_to_the_worker() {
    let (_dir, mut store) = open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"x","env_file":"backup-env"}"#,
        at(0),
    );
    assert_eq!(
        store.get("j").unwrap().env_file.as_deref(),
        Some("backup-env")
    );
    let claimed = store.claim(&request("w"), at(1)).unwrap().unwrap();
    assert_eq!(claimed.env_file.as_deref(), Some("backup-env"));
}

#[test]
fn a_reading_open_creates_nothing_and_upgrades_an_older_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/q.db");
    let err = Store::open_as(&path, Durability::Full, OpenMode::ReadOnly)
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
    let store = Store::open_as(&path, Durability::Full, OpenMode::ReadOnly).unwrap();
    assert!(store.list(None, 10).unwrap().is_empty());
    let version: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}
