//! Conformance: unique keys (`unique_key`, `on_duplicate`) on every
//! backend: one unfinished holder per key whatever races, what each policy
//! does, and restarts and revivals that leave a taken key alone.

use super::*;
use crate::domain::EnqueueOutcome;

conformance! {
    four_racing_enqueuers_with_one_unique_key_make_one_job,
    skip_returns_the_unfinished_holders_id,
    replace_updates_a_waiting_job_and_refuses_a_running_one,
    a_replace_gives_the_holder_the_new_jobs_retry_budget,
    reject_names_the_holder_and_rolls_back_the_batch,
    a_finished_job_frees_its_key,
    restart_refuses_a_job_whose_key_is_held_again,
    a_replace_racing_a_claim_applies_before_it_or_not_at_all,
    a_restart_racing_an_enqueue_of_its_key_leaves_one_holder,
}

fn keyed(id: &str, key: &str, policy: &str) -> NewJob {
    parse_job(&format!(
        r#"{{"id":"{id}","command":"run {id}","unique_key":"{key}","on_duplicate":"{policy}"}}"#
    ))
    .unwrap()
}

/// One job enqueued alone; its outcome.
fn enqueue_one(store: &mut Store, job: NewJob, now: Timestamp) -> Result<Enqueued> {
    Ok(store.enqueue_at(&[(1, job)], &DEFAULTS, now)?.remove(0))
}

/// Four connections enqueue a job with the same key at once, 100 times:
/// each round makes exactly one job; under reject the others are refused
/// naming it, under skip they get its id.
fn four_racing_enqueuers_with_one_unique_key_make_one_job(q: &TestQueue) {
    const ROUNDS: usize = 100;
    q.open();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let (db, barrier) = (q.database.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = Store::open(&db, Durability::Normal).unwrap();
                (0..ROUNDS)
                    .map(|round| {
                        let policy = if round % 2 == 0 { "reject" } else { "skip" };
                        let job = keyed(&format!("r{round}-{n}"), &format!("k{round}"), policy);
                        barrier.wait();
                        store
                            .enqueue(&[(1, job)], &DEFAULTS)
                            .map(|mut e| e.remove(0))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<Result<Enqueued>>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut store = q.open();
    for round in 0..ROUNDS {
        let outcomes: Vec<&Result<Enqueued>> = results.iter().map(|r| &r[round]).collect();
        let created: Vec<&Enqueued> = outcomes
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|e| e.outcome == EnqueueOutcome::Created)
            .collect();
        assert_eq!(created.len(), 1, "round {round}: {outcomes:?}");
        let winner = &created[0].id;
        for other in outcomes.iter().filter(
            |r| !matches!(r, Ok(e) if &e.id == winner && e.outcome == EnqueueOutcome::Created),
        ) {
            match (round % 2, other) {
                (0, Err(Error::Conflict(why))) => assert_eq!(
                    why,
                    &format!("unique key 'k{round}' is held by unfinished job '{winner}'")
                ),
                (1, Ok(e)) => assert_eq!(
                    (e.id.as_str(), e.outcome),
                    (winner.as_str(), EnqueueOutcome::Existing)
                ),
                _ => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            store.get(winner).unwrap().unique_key.as_deref(),
            Some(format!("k{round}").as_str())
        );
    }
    assert_eq!(
        store.list(&ListFilter::default(), None).unwrap().total,
        ROUNDS as u64
    );
}

fn skip_returns_the_unfinished_holders_id(q: &TestQueue) {
    let mut store = q.open();
    let first = enqueue_one(&mut store, keyed("a", "k", "reject"), at(0)).unwrap();
    assert_eq!(first, Enqueued::created(&JobId::parse("a").unwrap()));
    let holder = |store: &mut Store, id: &str| {
        let met = enqueue_one(store, keyed(id, "k", "skip"), at(1)).unwrap();
        assert_eq!(
            (met.id.as_str(), met.outcome),
            ("a", EnqueueOutcome::Existing)
        );
        assert!(
            matches!(store.get(id), Err(Error::NotFound(_))),
            "{id} was not added"
        );
    };
    holder(&mut store, "b");
    // Running, then failed and waiting for its retry: still the holder.
    let claimed = store.claim_at(&request("w"), at(2)).unwrap().unwrap();
    holder(&mut store, "c");
    let failed = AttemptResult::new(AttemptOutcome::Failed).with_error("boom");
    store
        .finish_at(&claimed.lease, &failed, &policy(), at(3), None)
        .unwrap();
    assert_eq!(store.get("a").unwrap().state, JobState::Failed);
    holder(&mut store, "d");
    assert_eq!(store.list(&ListFilter::default(), None).unwrap().total, 1);
    // Another key is another job; a skip without a holder creates.
    let other = enqueue_one(&mut store, keyed("e", "other", "skip"), at(4)).unwrap();
    assert_eq!(
        (other.id.as_str(), other.outcome),
        ("e", EnqueueOutcome::Created)
    );
}

fn replace_updates_a_waiting_job_and_refuses_a_running_one(q: &TestQueue) {
    let mut store = q.open();
    let old = parse_job(
        r#"{"id":"a","command":"old","priority":1,"delay":"1h","max_retries":7,"unique_key":"k",
            "cwd":"/old","env":{"OLD":"1"}}"#,
    )
    .unwrap();
    enqueue_one(&mut store, old, at(0)).unwrap();
    let new = parse_job(
        r#"{"id":"b","command":"new","priority":5,"timeout_seconds":9,"unique_key":"k",
            "on_duplicate":"replace","cwd":"/new","env":{"NEW":"2"},"env_file":"creds",
            "queue":"reports"}"#,
    )
    .unwrap();
    let replaced = enqueue_one(&mut store, new, at(10)).unwrap();
    assert_eq!(
        (replaced.id.as_str(), replaced.outcome),
        ("a", EnqueueOutcome::Replaced)
    );
    let job = store.get("a").unwrap();
    assert_eq!((job.command.as_str(), job.priority), ("new", 5));
    assert_eq!(job.run_at, at(10), "due as the new job says");
    assert_eq!(
        (job.max_retries, job.timeout_seconds),
        (DEFAULTS.max_retries, 9)
    );
    assert_eq!(
        job.env.as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["NEW"]
    );
    assert_eq!(
        (job.cwd.as_deref(), job.env_file.as_deref()),
        (Some("/new"), Some("creds"))
    );
    assert_eq!((job.created_at, job.updated_at), (at(0), at(10)));
    assert_eq!(job.queue, "reports");
    assert!(matches!(store.get("b"), Err(Error::NotFound(_))));

    let claimed = store.claim_at(&request("w"), at(11)).unwrap().unwrap();
    assert_eq!(claimed.command, "new");
    let refused = enqueue_one(&mut store, keyed("c", "k", "replace"), at(12)).unwrap_err();
    assert!(
        matches!(&refused, Error::Conflict(why) if why == "unique key 'k' is held by job 'a', which is running: a running job is not replaced"),
        "{refused:?}"
    );
    assert_eq!(
        store.get("a").unwrap().command,
        "new",
        "a running job is left as it is"
    );
    assert!(matches!(store.get("c"), Err(Error::NotFound(_))));
    // Once it ended, replace creates.
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    store
        .finish_at(&claimed.lease, &ok, &policy(), at(13), None)
        .unwrap();
    let created = enqueue_one(&mut store, keyed("c", "k", "replace"), at(14)).unwrap();
    assert_eq!(
        (created.id.as_str(), created.outcome),
        ("c", EnqueueOutcome::Created)
    );
}

/// A replace is a new submission: a holder that failed and waits for its
/// retry is pending again with no failures and no last error, so it has the
/// new job's retries (none: its next failure is its last); its attempts stay.
fn a_replace_gives_the_holder_the_new_jobs_retry_budget(q: &TestQueue) {
    let mut store = q.open();
    enqueue_one(&mut store, keyed("a", "k", "reject"), at(0)).unwrap();
    run_once(&mut store, "a", AttemptOutcome::Failed, at(1));
    let failed = store.get("a").unwrap();
    assert_eq!((failed.state, failed.failures), (JobState::Failed, 1));
    let mut new = keyed("b", "k", "replace");
    new.max_retries = Some(0);
    let replaced = enqueue_one(&mut store, new, at(2)).unwrap();
    assert_eq!(replaced.outcome, EnqueueOutcome::Replaced);
    let job = store.get("a").unwrap();
    assert_eq!(
        (job.state, job.failures, job.last_error.as_deref()),
        (JobState::Pending, 0, None)
    );
    assert_eq!((job.attempts, job.max_retries), (1, 0));
    run_once(&mut store, "a", AttemptOutcome::Failed, at(3));
    let job = store.get("a").unwrap();
    assert_eq!((job.state, job.failures), (JobState::Dead, 1));
}

fn reject_names_the_holder_and_rolls_back_the_batch(q: &TestQueue) {
    let mut store = q.open();
    enqueue_one(&mut store, keyed("holder", "k", "reject"), at(0)).unwrap();
    enqueue_one(&mut store, keyed("waiting", "k2", "reject"), at(0)).unwrap();
    let batch = vec![
        (1, parse_job(r#"{"id":"plain","command":"x"}"#).unwrap()),
        (2, keyed("replacer", "k2", "replace")),
        (3, keyed("fresh", "k3", "reject")),
        (4, keyed("late", "k", "reject")),
    ];
    let err = store.enqueue_at(&batch, &DEFAULTS, at(1)).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(why) if why == "line 4: unique key 'k' is held by unfinished job 'holder'; nothing from this batch was enqueued"),
        "{err:?}"
    );
    for id in ["plain", "fresh", "late"] {
        assert!(
            matches!(store.get(id), Err(Error::NotFound(_))),
            "{id}: nothing from the batch is kept"
        );
    }
    assert_eq!(
        store.get("waiting").unwrap().command,
        "run waiting",
        "the replace was rolled back"
    );
    assert_eq!(store.list(&ListFilter::default(), None).unwrap().total, 2);

    // A key twice in one batch is the input's mistake, whatever the policy.
    let twice = vec![(1, keyed("x", "k9", "skip")), (2, keyed("y", "k9", "skip"))];
    let err = store.enqueue_at(&twice, &DEFAULTS, at(2)).unwrap_err();
    assert!(
        matches!(&err, Error::Input(e) if e.line == Some(2) && e.field.as_deref() == Some("unique_key")),
        "{err:?}"
    );
    // The id taken is told apart from the key held: each constraint by name.
    let err = enqueue_one(&mut store, keyed("holder", "k7", "reject"), at(3)).unwrap_err();
    assert_eq!(err.to_string(), "field 'id': job 'holder' already exists");
    let met = enqueue_one(&mut store, keyed("holder", "k", "skip"), at(3)).unwrap();
    assert_eq!(
        (met.id.as_str(), met.outcome),
        ("holder", EnqueueOutcome::Existing)
    );
    // A CHECK the row fails is neither: the database's own error (SQLite
    // once called every refused insert "already exists").
    let err = enqueue_one(&mut store, NewJob::new(""), at(3)).unwrap_err();
    assert!(
        matches!(err, Error::Database { .. } | Error::Postgres { .. }),
        "{err:?}"
    );
    assert_eq!(store.list(&ListFilter::default(), None).unwrap().total, 2);
}

fn a_finished_job_frees_its_key(q: &TestQueue) {
    let mut store = q.open();
    // Completed, dead, cancelled: each frees the key for the next job.
    enqueue_one(&mut store, keyed("one", "k", "reject"), at(0)).unwrap();
    run_once(&mut store, "one", AttemptOutcome::Succeeded, at(1));
    let mut dead = keyed("two", "k", "reject");
    dead.max_retries = Some(0);
    let two = enqueue_one(&mut store, dead, at(2)).unwrap();
    assert_eq!(two.outcome, EnqueueOutcome::Created);
    run_once(&mut store, "two", AttemptOutcome::Failed, at(3));
    assert_eq!(store.get("two").unwrap().state, JobState::Dead);
    enqueue_one(&mut store, keyed("three", "k", "reject"), at(4)).unwrap();
    store.cancel_at("three", at(5)).unwrap();
    let four = enqueue_one(&mut store, keyed("four", "k", "skip"), at(6)).unwrap();
    assert_eq!(
        (four.id.as_str(), four.outcome),
        ("four", EnqueueOutcome::Created)
    );
    let err = enqueue_one(&mut store, keyed("five", "k", "reject"), at(7)).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(why) if why.contains("'four'")),
        "{err:?}"
    );
    // The finished jobs keep their key, for show.
    assert_eq!(store.get("one").unwrap().unique_key.as_deref(), Some("k"));
}

fn restart_refuses_a_job_whose_key_is_held_again(q: &TestQueue) {
    let mut store = q.open();
    let mut dead = keyed("old", "k", "reject");
    dead.max_retries = Some(0);
    enqueue_one(&mut store, dead, at(0)).unwrap();
    run_once(&mut store, "old", AttemptOutcome::Failed, at(1));
    enqueue_one(&mut store, keyed("new", "k", "reject"), at(2)).unwrap();
    for action in [BulkAction::Restart, BulkAction::RetryDead] {
        let outcome = store.at(at(3)).act(action, &ids(&["old"])).unwrap();
        assert!(outcome.done.is_empty(), "{action:?}");
        let refused = &outcome.refused[0];
        assert_eq!(
            refused.blocked_by,
            Some(Blocked::KeyTaken {
                key: "k".into(),
                holder: "new".into()
            })
        );
        let why = refused.error(action).to_string();
        assert!(
            why.contains("unique key 'k' is held by unfinished job 'new'"),
            "{why}"
        );
        // A filter reports the job it chose but left for the key's holder,
        // as the named one; one too young for it is not reported.
        let filtered = Selection::filter(action, &[], None).unwrap();
        let outcome = store.at(at(3)).act(action, &filtered).unwrap();
        assert!(outcome.done.is_empty(), "{action:?}");
        assert_eq!(outcome.refused, std::slice::from_ref(refused), "{action:?}");
        let older = Selection::filter(action, &[], Some(Duration::from_secs(3600))).unwrap();
        let outcome = store.at(at(3)).act(action, &older).unwrap();
        assert!(outcome.refused.is_empty(), "{outcome:?}");
    }
    assert_eq!(store.get("old").unwrap().state, JobState::Dead);

    // Once the holder finished, the old job may have the key again, and of
    // two finished jobs of one key restarted at once only one gets it.
    run_once(&mut store, "new", AttemptOutcome::Succeeded, at(4));
    let outcome = store
        .at(at(5))
        .act(BulkAction::Restart, &ids(&["old", "new"]))
        .unwrap();
    assert_eq!(outcome.done.len(), 1, "{outcome:?}");
    let (restarted, refused) = (&outcome.done[0].id, &outcome.refused[0]);
    assert_eq!(
        refused.blocked_by,
        Some(Blocked::KeyTaken {
            key: "k".into(),
            holder: restarted.clone()
        })
    );
    assert_eq!(store.get(restarted).unwrap().state, JobState::Pending);

    // A filter restarts one job per free key and every job without a key.
    store.cancel_at(restarted, at(6)).unwrap();
    enqueue_one(
        &mut store,
        parse_job(r#"{"id":"plain","command":"x"}"#).unwrap(),
        at(6),
    )
    .unwrap();
    store.cancel_at("plain", at(6)).unwrap();
    let every = Selection::filter(BulkAction::Restart, &[], None).unwrap();
    let outcome = store.at(at(7)).act(BulkAction::Restart, &every).unwrap();
    let mut done = outcome.done_ids();
    done.sort();
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done.contains(&"plain".to_string()), "{done:?}");
    // The other job of the key is reported, held by the one restarted.
    let keyed = done.iter().find(|id| *id != "plain").unwrap();
    assert_eq!(outcome.refused.len(), 1, "{outcome:?}");
    assert_eq!(
        outcome.refused[0].blocked_by,
        Some(Blocked::KeyTaken {
            key: "k".into(),
            holder: keyed.clone()
        })
    );
    let waiting = store
        .list(&ListFilter::states(&[JobState::Pending]), None)
        .unwrap();
    assert_eq!(waiting.total, 2);
}

/// A `replace` and a claim of its holder at the same moment, over two
/// connections: the claimed command is the new one exactly when the replace
/// reported `Replaced`; a refused replace (the holder was running) changed
/// nothing; a replace after the holder finished made a job of its own.
fn a_replace_racing_a_claim_applies_before_it_or_not_at_all(q: &TestQueue) {
    let mut store = q.open();
    let results = race(
        q,
        &mut store,
        40,
        |store, i| {
            let mut job = keyed(&format!("race-{i}"), &format!("k{i}"), "reject");
            job.command = "original".into();
            enqueue_one(store, job, at(0)).unwrap();
        },
        |store, i| {
            let mut job = keyed(&format!("new-{i}"), &format!("k{i}"), "replace");
            job.command = "replaced".into();
            enqueue_one(store, job, at(1))
        },
        // A job an earlier round's late replace made is run and passed over.
        |store, i| claim_until(store, &format!("race-{i}")).command,
    );
    for (i, (replace, command)) in results.iter().enumerate() {
        let holder = format!("race-{i}");
        match replace {
            Ok(e) if e.outcome == EnqueueOutcome::Replaced => {
                assert_eq!(
                    (e.id.as_str(), command.as_str()),
                    (holder.as_str(), "replaced")
                );
            }
            Ok(e) => {
                assert_eq!(e.outcome, EnqueueOutcome::Created, "race-{i}");
                assert_eq!(
                    command, "original",
                    "race-{i}: it finished before the replace"
                );
            }
            Err(Error::Conflict(why)) => {
                assert!(why.contains("which is running"), "{why}");
                assert_eq!(
                    command, "original",
                    "race-{i}: a refused replace changed nothing"
                );
            }
            Err(e) => panic!("race-{i}: {e}"),
        }
    }
}

/// A restart of a finished job and an enqueue of a new job with its key at
/// the same moment, over two connections: exactly one of them takes the
/// key, and neither fails with anything but the refusal that names the
/// other (on PostgreSQL the restart's check cannot see an enqueue that
/// commits after it looked; the index refuses, and it runs again).
fn a_restart_racing_an_enqueue_of_its_key_leaves_one_holder(q: &TestQueue) {
    let rounds = 60;
    let mut store = q.open();
    let results = race(
        q,
        &mut store,
        rounds,
        |store, i| {
            let old = keyed(&format!("old-{i}"), &format!("k{i}"), "reject");
            enqueue_one(store, old, at(0)).unwrap();
            store.cancel_at(&format!("old-{i}"), at(0)).unwrap();
        },
        |store, i| {
            enqueue_one(
                store,
                keyed(&format!("new-{i}"), &format!("k{i}"), "reject"),
                at(1),
            )
        },
        |store, i| {
            store
                .at(at(1))
                .act(BulkAction::Restart, &ids(&[&format!("old-{i}")]))
        },
    );
    for (i, (enqueue, restart)) in results.iter().enumerate() {
        let created = match enqueue {
            Ok(e) => e.outcome == EnqueueOutcome::Created,
            Err(Error::Conflict(why)) => {
                assert!(why.contains(&format!("'old-{i}'")), "{why}");
                false
            }
            Err(e) => panic!("round {i}: {e}"),
        };
        let outcome = restart
            .as_ref()
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        if let Some(refused) = outcome.refused.first() {
            let taken = Blocked::KeyTaken {
                key: format!("k{i}"),
                holder: format!("new-{i}"),
            };
            assert_eq!(refused.blocked_by.as_ref(), Some(&taken), "round {i}");
        }
        let restarted = !outcome.done.is_empty();
        assert!(
            created != restarted,
            "round {i}: created {created}, restarted {restarted}"
        );
    }
    let pending = store
        .list(&ListFilter::states(&[JobState::Pending]), None)
        .unwrap()
        .total;
    assert_eq!(pending, rounds as u64);
}
