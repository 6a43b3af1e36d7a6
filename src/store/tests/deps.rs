//! Conformance: dependencies between jobs (`after`), on every backend.

use super::*;

conformance! {
    a_dependent_is_claimed_only_after_every_dependency_completed,
    two_dependencies_completing_in_one_batch_unblock_their_common_dependent,
    a_dead_dependency_cancels_pending_dependents_transitively_with_the_reason,
    cancelling_a_waiting_dependency_cancels_its_dependents,
    restarting_a_dead_dependency_revives_its_cancelled_dependents,
    a_revived_dependent_with_another_ended_dependency_stays_cancelled_until_that_one_restarts,
    restarting_a_dependent_of_an_ended_dependency_is_refused_until_that_one_restarts,
    restarting_a_completed_dependency_holds_back_dependents_that_never_ran,
    unknown_ids_are_refused_and_batch_ids_accepted,
    a_job_after_an_ended_dependency_is_cancelled_at_once,
    purging_a_completed_dependency_keeps_its_dependent_runnable,
    purging_a_dead_dependency_lets_its_dependent_run_once_restarted,
    export_then_import_keeps_dependencies,
    a_dependency_finishing_while_its_dependent_is_enqueued_never_strands_it,
}

/// Enqueues each of `jobs` (JSON) on its own, in order.
fn enqueue_each(store: &mut Store, jobs: &[&str], now: Timestamp) {
    for job in jobs {
        enqueue(store, job, now);
    }
}

fn state_of(store: &mut Store, id: &str) -> (JobState, u32) {
    let job = store.get(id).unwrap();
    (job.state, job.deps_left)
}

fn claim_all(store: &mut Store, now: Timestamp) -> Vec<String> {
    let claimed = store.at(now).claim(&request("w"), 100).unwrap();
    claimed.into_iter().map(|job| job.id).collect()
}

fn fail_dead(store: &mut Store, id: &str, now: Timestamp) {
    run_once(store, id, AttemptOutcome::Failed, now);
    assert_eq!(store.get(id).unwrap().state, JobState::Dead, "{id}");
}

/// Jobs with their states, as `dependencies` lists them.
type States = Vec<(String, JobState)>;

/// A job's dependencies and dependents.
fn linked(store: &mut Store, id: &str) -> (States, States) {
    let found = store.dependencies(id).unwrap();
    let pairs = |v: Vec<Linked>| v.into_iter().map(|l| (l.id, l.state)).collect();
    (pairs(found.after), pairs(found.dependents))
}

fn a_dependent_is_claimed_only_after_every_dependency_completed(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"a","command":"x"}"#,
            r#"{"id":"b","command":"x","priority":-1}"#,
        ],
        at(0),
    );
    // Highest priority, but blocked: never claimed, never the next event.
    enqueue(
        &mut store,
        r#"{"id":"c","command":"x","priority":9,"after":["a","b"]}"#,
        at(0),
    );
    assert_eq!(state_of(&mut store, "c"), (JobState::Pending, 2));
    let blocked = ListFilter {
        blocked: true,
        ..ListFilter::default()
    };
    let page = store.list(&blocked, None).unwrap();
    assert_eq!((page.total, page.jobs[0].id.as_str()), (1, "c"));
    assert_eq!(
        linked(&mut store, "c").0,
        [
            ("a".into(), JobState::Pending),
            ("b".into(), JobState::Pending)
        ]
    );
    assert_eq!(
        linked(&mut store, "a").1,
        [("c".to_owned(), JobState::Pending)]
    );
    run_once(&mut store, "a", AttemptOutcome::Succeeded, at(1));
    assert_eq!(state_of(&mut store, "c"), (JobState::Pending, 1));
    let b = store.claim_at(&request("w"), at(2)).unwrap().unwrap();
    assert_eq!(b.id, "b");
    assert!(store.claim_at(&request("w"), at(2)).unwrap().is_none());
    // A failure with retries left is no end: c still waits.
    store
        .finish_at(
            &b.lease,
            &AttemptResult::new(AttemptOutcome::Failed),
            &policy(),
            at(2),
            None,
        )
        .unwrap();
    assert_eq!(state_of(&mut store, "c"), (JobState::Pending, 1));
    let b = store.claim_at(&request("w"), at(1000)).unwrap().unwrap();
    let (_, next) = store
        .finish_at(
            &b.lease,
            &AttemptResult::new(AttemptOutcome::Succeeded),
            &policy(),
            at(1000),
            Some(&request("w")),
        )
        .unwrap();
    // Claimed in the same transaction that released it.
    assert_eq!(next.map(|job| job.id).as_deref(), Some("c"));
}

fn two_dependencies_completing_in_one_batch_unblock_their_common_dependent(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"a","command":"x"}"#,
            r#"{"id":"b","command":"x"}"#,
            r#"{"id":"c","command":"x"}"#,
            r#"{"id":"all","command":"x","after":["a","b","c"]}"#,
        ],
        at(0),
    );
    let claimed = store.at(at(1)).claim(&request("w"), 3).unwrap();
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let finished = store
        .at(at(2))
        .finish(&finishes(&claimed[..2], &ok), &policy(), None)
        .unwrap();
    assert!(!finished.freed);
    assert_eq!(state_of(&mut store, "all"), (JobState::Pending, 1));
    let finished = store
        .at(at(3))
        .finish(
            &finishes(&claimed[2..], &ok),
            &policy(),
            Some((&request("w"), 4)),
        )
        .unwrap();
    let next: Vec<String> = finished.claimed.into_iter().map(|j| j.id).collect();
    assert_eq!(next, ["all"]);
}

fn a_dead_dependency_cancels_pending_dependents_transitively_with_the_reason(q: &TestQueue) {
    let mut store = q.open();
    let batch = crate::domain::spec::parse_batch(
        r#"[{"id":"head","command":"x","max_retries":0},
            {"id":"mid","command":"x","after":["head"]},
            {"id":"tail","command":"x","after":["mid"]},
            {"id":"other","command":"x"},
            {"id":"both","command":"x","after":["tail","other"]}]"#,
    )
    .unwrap();
    store.enqueue_at(&batch, &DEFAULTS, at(0)).unwrap();
    assert_eq!(store.get("other").unwrap().state, JobState::Pending);
    fail_dead(&mut store, "head", at(1));
    for (id, why) in [
        ("mid", "dependency head is dead"),
        ("tail", "dependency mid is cancelled"),
        ("both", "dependency tail is cancelled"),
    ] {
        let job = store.get(id).unwrap();
        assert_eq!(job.state, JobState::Cancelled, "{id}");
        assert_eq!(job.last_error.as_deref(), Some(why), "{id}");
        assert_eq!(job.finished_at, Some(at(1)), "{id}");
    }
    // The job they shared with it was not theirs to cancel.
    assert_eq!(claim_all(&mut store, at(2)), ["other"]);
}

fn cancelling_a_waiting_dependency_cancels_its_dependents(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"a","command":"x"}"#,
            r#"{"id":"b","command":"x","after":["a"]}"#,
            r#"{"id":"c","command":"x","after":["b"]}"#,
        ],
        at(0),
    );
    let outcome = store
        .at(at(1))
        .act(BulkAction::Cancel, &ids(&["a"]))
        .unwrap();
    assert_eq!(outcome.done_ids(), ["a"]);
    let mut cascaded = outcome.cascaded.clone();
    cascaded.sort();
    assert_eq!(cascaded, ["b", "c"]);
    assert_eq!(
        store.get("b").unwrap().last_error.as_deref(),
        Some("dependency a is cancelled")
    );
    // A running dependency whose cancel is requested: its dependents end
    // when it does.
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"r","command":"x"}"#,
            r#"{"id":"s","command":"x","after":["r"]}"#,
        ],
        at(2),
    );
    let running = store.claim_at(&request("w"), at(3)).unwrap().unwrap();
    let outcome = store
        .at(at(3))
        .act(BulkAction::Cancel, &ids(&["r"]))
        .unwrap();
    assert!(outcome.cascaded.is_empty());
    assert_eq!(state_of(&mut store, "s"), (JobState::Pending, 1));
    store
        .finish_at(
            &running.lease,
            &AttemptResult::new(AttemptOutcome::Cancelled),
            &policy(),
            at(4),
            None,
        )
        .unwrap();
    assert_eq!(state_of(&mut store, "s"), (JobState::Cancelled, 1));
}

fn restarting_a_dead_dependency_revives_its_cancelled_dependents(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"head","command":"x","max_retries":0}"#,
            r#"{"id":"mid","command":"x","after":["head"]}"#,
            r#"{"id":"tail","command":"x","after":["mid"]}"#,
            r#"{"id":"mine","command":"x","after":["head"]}"#,
        ],
        at(0),
    );
    // Cancelled by the user, not by head's end: left alone.
    store
        .at(at(1))
        .act(BulkAction::Cancel, &ids(&["mine"]))
        .unwrap();
    fail_dead(&mut store, "head", at(2));
    let outcome = store
        .at(at(3))
        .act(BulkAction::RetryDead, &ids(&["head"]))
        .unwrap();
    let mut cascaded = outcome.cascaded.clone();
    cascaded.sort();
    assert_eq!(cascaded, ["mid", "tail"]);
    for (id, left) in [("mid", 1), ("tail", 1)] {
        let job = store.get(id).unwrap();
        assert_eq!(
            (job.state, job.deps_left),
            (JobState::Pending, left),
            "{id}"
        );
        assert_eq!((job.last_error, job.finished_at), (None, None), "{id}");
    }
    assert_eq!(store.get("mine").unwrap().state, JobState::Cancelled);
    // Then the chain runs in order, each job once the one before ended.
    for id in ["head", "mid", "tail"] {
        run_once(&mut store, id, AttemptOutcome::Succeeded, at(4));
    }
    assert_eq!(claim_all(&mut store, at(5)), Vec::<String>::new());
}

fn a_revived_dependent_with_another_ended_dependency_stays_cancelled_until_that_one_restarts(
    q: &TestQueue,
) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"x","command":"x","max_retries":0}"#,
            r#"{"id":"y","command":"x","max_retries":0}"#,
            r#"{"id":"j","command":"x","after":["x","y"]}"#,
        ],
        at(0),
    );
    fail_dead(&mut store, "x", at(1));
    fail_dead(&mut store, "y", at(2));
    assert_eq!(
        store.get("j").unwrap().last_error.as_deref(),
        Some("dependency x is dead")
    );
    let outcome = store
        .at(at(3))
        .act(BulkAction::Restart, &ids(&["x"]))
        .unwrap();
    assert!(outcome.cascaded.is_empty());
    let j = store.get("j").unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.last_error.as_deref(), Some("dependency y is dead"));
    let outcome = store
        .at(at(4))
        .act(BulkAction::Restart, &ids(&["y"]))
        .unwrap();
    assert_eq!(outcome.cascaded, ["j"]);
    assert_eq!(state_of(&mut store, "j"), (JobState::Pending, 2));
}

fn restarting_a_dependent_of_an_ended_dependency_is_refused_until_that_one_restarts(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"d","command":"x","max_retries":0}"#,
            r#"{"id":"x","command":"x","after":["d"]}"#,
            r#"{"id":"y","command":"x","after":["x"]}"#,
            r#"{"id":"free","command":"x"}"#,
        ],
        at(0),
    );
    store
        .at(at(1))
        .act(BulkAction::Cancel, &ids(&["free"]))
        .unwrap();
    fail_dead(&mut store, "d", at(2));
    let ended = |id: &str, dependency: &str, state| Refused {
        id: id.into(),
        state: Some(JobState::Cancelled),
        blocked_by: Some(Blocked::DependencyEnded {
            dependency: dependency.into(),
            state,
        }),
    };
    // Named: each refused with the dependency that ended, nothing changed.
    let outcome = store
        .at(at(3))
        .act(BulkAction::Restart, &ids(&["x", "y"]))
        .unwrap();
    assert!(outcome.done.is_empty());
    assert_eq!(
        outcome.refused,
        [
            ended("x", "d", JobState::Dead),
            ended("y", "x", JobState::Cancelled)
        ]
    );
    let message = outcome.refused[0].error(BulkAction::Restart);
    assert!(matches!(message, Error::Conflict(_)), "{message:?}");
    assert_eq!(
        message.to_string(),
        "job 'x' was not restarted: dependency d is dead: restart d first"
    );
    assert_eq!(state_of(&mut store, "x"), (JobState::Cancelled, 1));
    assert_eq!(state_of(&mut store, "y"), (JobState::Cancelled, 1));
    // A filter restarts the others and reports these, never skips them.
    let cancelled = Selection::filter(BulkAction::Restart, &[JobState::Cancelled], None).unwrap();
    let outcome = store
        .at(at(4))
        .act(BulkAction::Restart, &cancelled)
        .unwrap();
    assert_eq!(outcome.done_ids(), ["free"]);
    let mut refused = outcome.refused.clone();
    refused.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        refused,
        [
            ended("x", "d", JobState::Dead),
            ended("y", "x", JobState::Cancelled)
        ]
    );
    assert_eq!(state_of(&mut store, "x"), (JobState::Cancelled, 1));
    // Named with the dependency: its restart revives them, all done.
    let outcome = store
        .at(at(5))
        .act(BulkAction::Restart, &ids(&["d", "x"]))
        .unwrap();
    assert_eq!(outcome.done_ids(), ["d", "x"]);
    assert!(outcome.refused.is_empty(), "{:?}", outcome.refused);
    assert_eq!(outcome.cascaded, ["y"]);
    assert_eq!(state_of(&mut store, "x"), (JobState::Pending, 1));
    run_once(&mut store, "free", AttemptOutcome::Succeeded, at(6));
    for id in ["d", "x", "y"] {
        run_once(&mut store, id, AttemptOutcome::Succeeded, at(6));
    }
    assert_eq!(claim_all(&mut store, at(7)), Vec::<String>::new());
}

fn restarting_a_completed_dependency_holds_back_dependents_that_never_ran(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"a","command":"x"}"#,
            r#"{"id":"ran","command":"x","after":["a"]}"#,
            r#"{"id":"waits","command":"x","after":["a"]}"#,
        ],
        at(0),
    );
    run_once(&mut store, "a", AttemptOutcome::Succeeded, at(1));
    run_once(&mut store, "ran", AttemptOutcome::Succeeded, at(2));
    assert_eq!(state_of(&mut store, "waits"), (JobState::Pending, 0));
    store
        .at(at(3))
        .act(BulkAction::Restart, &ids(&["a"]))
        .unwrap();
    assert_eq!(state_of(&mut store, "waits"), (JobState::Pending, 1));
    assert_eq!(state_of(&mut store, "ran"), (JobState::Completed, 0));
    // a runs first (the only job due), then what waited for it.
    run_once(&mut store, "a", AttemptOutcome::Succeeded, at(4));
    assert_eq!(claim_all(&mut store, at(5)), ["waits"]);
}

fn unknown_ids_are_refused_and_batch_ids_accepted(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"stored","command":"x"}"#, at(0));
    let batch = crate::domain::spec::parse_batch(
        "{\"id\":\"b\",\"command\":\"x\",\"after\":[\"a\",\"stored\"]}\n\
         {\"id\":\"a\",\"command\":\"x\"}\n\
         {\"command\":\"x\",\"after\":[\"b\",\"nowhere\"]}",
    )
    .unwrap();
    let err = store.enqueue_at(&batch, &DEFAULTS, at(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: field 'after': no job 'nowhere' in the queue or in this batch"
    );
    assert_eq!(err.exit_code(), 2);
    // Nothing of the batch stayed, not even the count on the stored job.
    assert!(matches!(store.get("a"), Err(Error::NotFound(_))));
    let batch = &batch[..2];
    let ids = store.enqueue_at(batch, &DEFAULTS, at(1)).unwrap();
    // Ids in input order, dependencies inserted first.
    assert_eq!(
        ids.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(state_of(&mut store, "b"), (JobState::Pending, 2));
    assert_eq!(claim_all(&mut store, at(2)), ["stored", "a"]);
    let cycle = crate::domain::spec::parse_batch(
        r#"[{"id":"p","command":"x","after":["q"]},{"id":"q","command":"x","after":["p"]}]"#,
    )
    .unwrap();
    let err = store.enqueue_at(&cycle, &DEFAULTS, at(3)).unwrap_err();
    assert!(err.to_string().contains("p -> q -> p"), "{err}");
}

fn a_job_after_an_ended_dependency_is_cancelled_at_once(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"dead","command":"x","max_retries":0}"#,
        at(0),
    );
    fail_dead(&mut store, "dead", at(1));
    let batch = crate::domain::spec::parse_batch(
        r#"[{"id":"j","command":"x","after":["dead"]},{"id":"k","command":"x","after":["j"]}]"#,
    )
    .unwrap();
    store.enqueue_at(&batch, &DEFAULTS, at(2)).unwrap();
    let j = store.get("j").unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.last_error.as_deref(), Some("dependency dead is dead"));
    assert_eq!(j.finished_at, Some(at(2)));
    let k = store.get("k").unwrap();
    assert_eq!(k.last_error.as_deref(), Some("dependency j is cancelled"));
    // Their causes are recorded: restarting the dead one revives both.
    let outcome = store
        .at(at(3))
        .act(BulkAction::RetryDead, &ids(&["dead"]))
        .unwrap();
    let mut cascaded = outcome.cascaded.clone();
    cascaded.sort();
    assert_eq!(cascaded, ["j", "k"]);
}

fn purging_a_completed_dependency_keeps_its_dependent_runnable(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"a","command":"x"}"#,
            r#"{"id":"other","command":"x"}"#,
            r#"{"id":"b","command":"x","after":["a","other"]}"#,
        ],
        at(0),
    );
    run_once(&mut store, "a", AttemptOutcome::Succeeded, at(1));
    assert_eq!(store.purge_before(at(2)).unwrap(), ["a"]);
    assert_eq!(
        linked(&mut store, "b").0,
        [("other".into(), JobState::Pending)]
    );
    assert_eq!(state_of(&mut store, "b"), (JobState::Pending, 1));
    run_once(&mut store, "other", AttemptOutcome::Succeeded, at(3));
    assert_eq!(claim_all(&mut store, at(4)), ["b"]);
}

fn purging_a_dead_dependency_lets_its_dependent_run_once_restarted(q: &TestQueue) {
    let mut store = q.open();
    enqueue_each(
        &mut store,
        &[
            r#"{"id":"a","command":"x","max_retries":0}"#,
            r#"{"id":"b","command":"x","after":["a"]}"#,
        ],
        at(0),
    );
    fail_dead(&mut store, "a", at(1));
    assert_eq!(state_of(&mut store, "b"), (JobState::Cancelled, 1));
    store
        .at(at(2))
        .act(BulkAction::Purge, &ids(&["a"]))
        .unwrap();
    assert_eq!(state_of(&mut store, "b"), (JobState::Cancelled, 0));
    store
        .at(at(3))
        .act(BulkAction::Restart, &ids(&["b"]))
        .unwrap();
    assert_eq!(claim_all(&mut store, at(4)), ["b"]);
}

fn export_then_import_keeps_dependencies(q: &TestQueue) {
    let mut source = q.open();
    enqueue_each(
        &mut source,
        &[
            r#"{"id":"a","command":"x","max_retries":0}"#,
            r#"{"id":"b","command":"x"}"#,
            r#"{"id":"c","command":"x","after":["a","b"]}"#,
            r#"{"id":"d","command":"x","after":["b"]}"#,
        ],
        at(0),
    );
    fail_dead(&mut source, "a", at(1));
    let exported = source.export().unwrap();
    let target = q.another();
    let mut copy = target.open();
    copy.import(&exported, &[], &[]).unwrap();
    for id in ["a", "b", "c", "d"] {
        assert_eq!(linked(&mut copy, id), linked(&mut source, id), "{id}");
        assert_eq!(state_of(&mut copy, id), state_of(&mut source, id), "{id}");
    }
    // The copy carries on as the source would: b's end releases d, and
    // a's restart revives c, which then waits for a alone.
    run_once(&mut copy, "b", AttemptOutcome::Succeeded, at(2));
    assert_eq!(state_of(&mut copy, "d"), (JobState::Pending, 0));
    let outcome = copy
        .at(at(3))
        .act(BulkAction::RetryDead, &ids(&["a"]))
        .unwrap();
    assert_eq!(outcome.cascaded, ["c"]);
    assert_eq!(state_of(&mut copy, "c"), (JobState::Pending, 1));
}

/// Two connections, 200 rounds: a dependency's finish and the enqueue of a
/// job after it race. Whichever wins, the job ends up free to run (the
/// dependency completed) or cancelled (it died), never waiting for a
/// dependency that already ended.
fn a_dependency_finishing_while_its_dependent_is_enqueued_never_strands_it(q: &TestQueue) {
    let mut finisher = q.open();
    let enqueuer = std::sync::Arc::new(std::sync::Mutex::new(q.open()));
    for round in 0..200 {
        let dep = format!("dep{round}");
        let job = format!("job{round}");
        enqueue(
            &mut finisher,
            &format!(r#"{{"id":"{dep}","command":"x","max_retries":0}}"#),
            at(round),
        );
        let claimed = finisher
            .claim_at(&request("w"), at(round))
            .unwrap()
            .unwrap();
        let outcome = match round % 2 {
            0 => AttemptOutcome::Succeeded,
            _ => AttemptOutcome::Failed,
        };
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racing = {
            let (barrier, enqueuer) = (barrier.clone(), enqueuer.clone());
            let text = format!(r#"{{"id":"{job}","command":"x","after":["{dep}"]}}"#);
            std::thread::spawn(move || {
                let job = parse_job(&text).unwrap();
                barrier.wait();
                let mut store = enqueuer.lock().unwrap();
                store.at(at(round)).enqueue(&[(1, job)], &DEFAULTS).unwrap();
            })
        };
        barrier.wait();
        finisher
            .finish_at(
                &claimed.lease,
                &AttemptResult::new(outcome),
                &policy(),
                at(round),
                None,
            )
            .unwrap();
        racing.join().unwrap();
        let expected = match outcome {
            AttemptOutcome::Succeeded => (JobState::Pending, 0),
            _ => (JobState::Cancelled, 1),
        };
        assert_eq!(state_of(&mut finisher, &job), expected, "round {round}");
        if expected.0 == JobState::Pending {
            run_once(&mut finisher, &job, AttemptOutcome::Succeeded, at(round));
        }
    }
}
