//! The conformance suite: every test here runs against each backend (the
//! `sqlite` and `postgres` modules the macro below makes), so both keep the
//! same semantics. Clocks are pinned ([`Backend::pin_clock`]) so backoff and
//! lease expiry are checked exactly. Backend-specific tests (files, WAL,
//! schema tags) live beside each backend.

use super::test_support::*;
use super::*;
use crate::domain::JobId;
use crate::domain::spec::parse_job;
use crate::domain::{AttemptOutcome, JobEdit, JobState, NewJob};
use crate::error::Error;
use crate::output::{Destination, OutputReport};
use jiff::Timestamp;
use std::collections::HashSet;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::TestQueue::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(queue) = super::TestQueue::postgres() {
                    super::$name(&queue);
                }
            })*
        }
    };
}

mod dashboard;
mod deps;
mod unique;

conformance! {
    claims_by_priority_then_due_time_then_enqueue_order,
    finish_requires_the_current_lease,
    failures_back_off_then_die_and_dlq_retry_resets_the_budget,
    expired_leases_are_rescued_as_failed_attempts,
    interrupted_attempts_do_not_spend_retries,
    cancel_pending_running_and_finished,
    a_job_whose_cancel_was_requested_ends_cancelled_even_if_it_succeeded,
    finish_records_where_the_output_went_and_whether_it_was_cut,
    duplicate_ids_reject_the_whole_batch,
    counts_follow_every_transition_and_purge,
    concurrent_claimers_never_share_a_job,
    a_rescue_names_the_attempt_and_finishes_only_the_attempts_it_was_given,
    env_file_is_stored_and_handed_to_the_worker,
    the_output_tail_is_recorded_read_and_copied_with_its_attempt,
    a_batch_claim_takes_up_to_n_in_order_each_with_its_own_lease_and_attempt,
    a_batch_finish_records_the_held_leases_and_ignores_the_stale,
    next_event_in_is_the_next_due_job_or_lease_expiry,
    concurrent_rescuers_end_each_attempt_once,
    export_then_import_gives_the_same_queue,
    workers_are_registered_with_host_unit_slots_and_jobs,
    concurrent_batch_claimers_never_share_a_job,
    batches_larger_than_one_statement_keep_claim_order_and_every_outcome,
    a_batch_finish_ends_a_cancelled_job_cancelled_and_the_others_as_they_ended,
    a_stale_and_the_current_lease_of_one_job_in_one_batch,
    renewing_several_leases_tells_each_whether_it_is_held_or_cancelled,
    job_ids_match_a_prefix_newest_first_in_a_state_if_asked,
    restart_requeues_finished_jobs_keeping_their_history,
    named_jobs_are_acted_on_one_by_one_and_the_rest_reported,
    filters_select_by_state_and_age_in_chunks_each_job_once,
    edit_changes_a_waiting_job_and_refuses_the_others,
    an_edit_racing_a_claim_applies_before_it_or_not_at_all,
    a_list_is_newest_first_with_the_total_its_filter_matches,
    restarts_racing_a_worker_never_touch_a_running_job,
}

fn claims_by_priority_then_due_time_then_enqueue_order(q: &TestQueue) {
    let mut store = q.open();
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
    while let Some(job) = store.claim_at(&request("w"), now).unwrap() {
        order.push(job.id);
    }
    // at(10) is 2027-01-15T08:00:10Z: same priority as "high" but due later.
    assert_eq!("2027-01-15T08:00:10Z".parse::<Timestamp>().unwrap(), at(10));
    assert_eq!(order, ["high", "high-late", "low", "low2"]);
    assert_eq!(store.get("future").unwrap().state, JobState::Pending);
}

fn finish_requires_the_current_lease(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let claimed = store.claim_at(&request("w1"), at(1)).unwrap().unwrap();
    let mut stale = claimed.lease.clone();
    stale.token ^= 1;
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let (held, next) = store
        .finish_at(&stale, &ok, &policy(), at(2), None)
        .unwrap();
    assert!(!held && next.is_none());
    assert_eq!(store.get("j").unwrap().state, JobState::Processing);
    assert_eq!(
        store
            .renew_at(&stale, Duration::from_secs(5), at(2))
            .unwrap(),
        LeaseStatus::Lost
    );
    assert!(
        store
            .finish_at(&claimed.lease, &ok, &policy(), at(3), None)
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

fn failures_back_off_then_die_and_dlq_retry_resets_the_budget(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"false","max_retries":2}"#,
        at(0),
    );
    let mut now = at(0);
    for expected_delay in [2, 4] {
        let job = store.claim_at(&request("w"), now).unwrap().unwrap();
        let fail = AttemptResult::new(AttemptOutcome::Failed).with_error("exit 1");
        store
            .finish_at(&job.lease, &fail, &policy(), now, None)
            .unwrap();
        let row = store.get("j").unwrap();
        assert_eq!(row.state, JobState::Failed);
        assert_eq!(
            row.run_at,
            now + jiff::SignedDuration::from_secs(expected_delay)
        );
        assert!(
            store.claim_at(&request("w"), now).unwrap().is_none(),
            "not due before its backoff"
        );
        now = row.run_at;
    }
    let job = store.claim_at(&request("w"), now).unwrap().unwrap();
    store
        .finish_at(
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
        store.retry_dead_at(Some("nope"), now),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.retry_dead_at(Some("j"), now).unwrap(), ["j"]);
    let row = store.get("j").unwrap();
    assert_eq!(
        (row.state, row.failures, row.finished_at),
        (JobState::Pending, 0, None)
    );
    assert!(matches!(
        store.retry_dead_at(Some("j"), now),
        Err(Error::Conflict(_))
    ));
    let again = store.claim_at(&request("w"), now).unwrap().unwrap();
    assert_eq!(again.lease.attempt, 4, "history numbering continues");
}

fn expired_leases_are_rescued_as_failed_attempts(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let job = store
        .claim_at(&request("dead-worker"), at(0))
        .unwrap()
        .unwrap();
    let held = store.held_expired_at(at(29)).unwrap();
    assert!(held.is_empty());
    assert!(
        store
            .rescue_expired_at(&held, &policy(), at(29))
            .unwrap()
            .is_empty()
    );
    store.pin_clock(Some(at(29))).unwrap();
    assert_eq!(
        store.next_event_in(&request("w")).unwrap(),
        Some(Duration::from_millis(1001)),
        "just after the lease runs out at at(30)"
    );
    let held = store.held_expired_at(at(31)).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        store.rescue_expired_at(&held, &policy(), at(31)).unwrap(),
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
            .finish_at(&job.lease, &ok, &policy(), at(32), None)
            .unwrap()
            .0
    );
    assert_eq!(store.get("j").unwrap().state, JobState::Failed);
}

fn interrupted_attempts_do_not_spend_retries(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"x","max_retries":0}"#,
        at(0),
    );
    let job = store.claim_at(&request("w"), at(0)).unwrap().unwrap();
    let (_, next) = store
        .finish_at(
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

fn cancel_pending_running_and_finished(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"waiting","command":"x","delay":"1h"}"#,
        at(0),
    );
    enqueue(&mut store, r#"{"id":"running","command":"x"}"#, at(0));
    assert_eq!(
        store.cancel_at("waiting", at(1)).unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(store.get("waiting").unwrap().state, JobState::Cancelled);
    let job = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
    assert_eq!(job.id, "running");
    assert_eq!(
        store.cancel_at("running", at(2)).unwrap(),
        CancelResult::Requested { worker: "w".into() }
    );
    assert_eq!(
        store
            .renew_at(&job.lease, Duration::from_secs(30), at(3))
            .unwrap(),
        LeaseStatus::CancelRequested
    );
    assert!(matches!(
        store.cancel_at("waiting", at(4)),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.cancel_at("ghost", at(4)),
        Err(Error::NotFound(_))
    ));
}

fn a_job_whose_cancel_was_requested_ends_cancelled_even_if_it_succeeded(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"quick","command":"x"}"#, at(0));
    enqueue(&mut store, r#"{"id":"lost","command":"x"}"#, at(0));
    let quick = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
    let _lost = store.claim_at(&request("w2"), at(1)).unwrap().unwrap();
    for id in ["quick", "lost"] {
        assert!(matches!(
            store.cancel_at(id, at(2)).unwrap(),
            CancelResult::Requested { .. }
        ));
    }
    // The job exits 0 before its worker notices the cancel.
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    assert!(
        store
            .finish_at(&quick.lease, &ok, &policy(), at(3), None)
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
    let rescued = store
        .rescue_held_by_at("w2", &held, &policy(), at(4))
        .unwrap();
    assert_eq!(rescued, ["lost"]);
    assert_eq!(store.get("lost").unwrap().state, JobState::Cancelled);
    assert_eq!(store.get("lost").unwrap().failures, 1);
}

fn finish_records_where_the_output_went_and_whether_it_was_cut(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"a","command":"x"}"#, at(0));
    enqueue(&mut store, r#"{"id":"b","command":"x"}"#, at(0));
    let journal = ClaimRequest {
        output: Destination::Journal,
        ..request("w")
    };
    let a = store.claim_at(&journal, at(1)).unwrap().unwrap();
    let b = store.claim_at(&journal, at(1)).unwrap().unwrap();
    let mut result = AttemptResult::new(AttemptOutcome::Succeeded);
    result.output = Some(OutputReport {
        destination: Destination::File,
        truncated: true,
    });
    store
        .finish_at(&a.lease, &result, &policy(), at(2), None)
        .unwrap();
    let attempt = &store.attempts("a").unwrap()[0];
    assert_eq!(
        (attempt.output, attempt.output_truncated),
        (Destination::File, true)
    );
    // No report (a rescue): what the claim recorded stays.
    store
        .finish_at(
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

fn duplicate_ids_reject_the_whole_batch(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"a","command":"x"}"#, at(0));
    let batch = vec![
        (1, parse_job(r#"{"id":"b","command":"x"}"#).unwrap()),
        (2, parse_job(r#"{"id":"a","command":"y"}"#).unwrap()),
    ];
    let err = store.enqueue_at(&batch, &DEFAULTS, at(1)).unwrap_err();
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

fn counts_follow_every_transition_and_purge(q: &TestQueue) {
    let mut store = q.open();
    enqueue_numbered(&mut store, 5, at(0));
    for _ in 0..3 {
        let job = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
        store
            .finish_at(
                &job.lease,
                &AttemptResult::new(AttemptOutcome::Succeeded),
                &policy(),
                at(2),
                None,
            )
            .unwrap();
    }
    store.claim_at(&request("w"), at(3)).unwrap().unwrap();
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
        store.purge_before(at(2)).unwrap().len(),
        0,
        "finished_at < cutoff only"
    );
    assert_eq!(store.purge_before(at(3)).unwrap().len(), 3);
    let counts = store.counts().unwrap();
    assert_eq!(counts[&JobState::Completed], 0);
    assert_eq!(counts.values().sum::<u64>(), 2);
    let metrics = store.metrics().unwrap();
    assert_eq!(metrics.total, 2);
}

fn concurrent_claimers_never_share_a_job(q: &TestQueue) {
    drain_from_four_connections(q, 1);
}

/// Four connections, each a worker with 8 slots: every transaction finishes
/// the last batch and claims the next.
fn concurrent_batch_claimers_never_share_a_job(q: &TestQueue) {
    drain_from_four_connections(q, 8);
}

/// Four connections drain 400 jobs at once, `slots` per transaction: each
/// job is claimed once, finished once, with one attempt.
fn drain_from_four_connections(q: &TestQueue, slots: usize) {
    let mut store = q.open();
    let jobs: Vec<_> = (0..400)
        .map(|i| (i + 1, NewJob::new(format!("job {i}"))))
        .collect();
    store.enqueue_at(&jobs, &DEFAULTS, at(0)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let db = q.database.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&db, Durability::Normal).unwrap();
                let req = request(&format!("w{w}"));
                let ok = AttemptResult::new(AttemptOutcome::Succeeded);
                let mut mine = vec![];
                let mut batch = store.at(at(1)).claim(&req, slots).unwrap();
                while !batch.is_empty() {
                    mine.extend(batch.iter().map(|job| job.id.clone()));
                    let done: Vec<Finish> = batch
                        .iter()
                        .map(|job| Finish {
                            lease: &job.lease,
                            result: &ok,
                        })
                        .collect();
                    let finished = store
                        .at(at(1))
                        .finish(&done, &policy(), Some((&req, slots)))
                        .unwrap();
                    assert!(finished.held.iter().all(|&held| held), "w{w}");
                    batch = finished.claimed;
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
    for id in all.iter().step_by(20) {
        assert_eq!(store.attempts(id).unwrap().len(), 1, "{id}");
    }
}

fn a_rescue_names_the_attempt_and_finishes_only_the_attempts_it_was_given(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let mut contained = request("w");
    contained.cgroups = Some("/system.slice/queuectl-worker@w.service".into());
    let job = store.claim_at(&contained, at(0)).unwrap().unwrap();
    let held = store.held_expired_at(at(31)).unwrap();
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
            .rescue_expired_at(&[], &policy(), at(31))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get("j").unwrap().state, JobState::Processing);
    // A stale list (the job was rescued and claimed again since) does not
    // touch the new attempt.
    assert_eq!(
        store.rescue_expired_at(&held, &policy(), at(31)).unwrap(),
        ["j"]
    );
    let again = store.claim_at(&request("w2"), at(40)).unwrap().unwrap();
    assert_ne!(again.lease.attempt_token(), token);
    assert!(
        store
            .rescue_expired_at(&held, &policy(), at(100))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get("j").unwrap().state, JobState::Processing);
}

fn env_file_is_stored_and_handed_to_the_worker(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"j","command":"x","env_file":"backup-env"}"#,
        at(0),
    );
    assert_eq!(
        store.get("j").unwrap().env_file.as_deref(),
        Some("backup-env")
    );
    let claimed = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
    assert_eq!(claimed.env_file.as_deref(), Some("backup-env"));
}

fn the_output_tail_is_recorded_read_and_copied_with_its_attempt(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"ran","command":"x"}"#, at(0));
    enqueue(&mut store, r#"{"id":"lost","command":"x"}"#, at(0));
    let ran = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
    let lost = store.claim_at(&request("w"), at(1)).unwrap().unwrap();
    assert_eq!(
        store.attempts("ran").unwrap()[0].output_tail,
        None,
        "running"
    );
    // Everything a tail may hold: lines of both streams, a cut marker,
    // characters beyond ASCII, the replacement character.
    let tail = format!(
        "{}out é €\nerr \u{FFFD}\nlast",
        crate::output::tail_cut_marker(12_345)
    );
    let result = AttemptResult {
        output_tail: Some(tail.clone()),
        ..AttemptResult::new(AttemptOutcome::Failed)
    };
    store
        .finish_at(&ran.lease, &result, &policy(), at(2), None)
        .unwrap();
    // A rescue (its worker died) records no tail.
    store
        .finish_at(
            &lost.lease,
            &AttemptResult::new(AttemptOutcome::LeaseExpired),
            &policy(),
            at(2),
            None,
        )
        .unwrap();
    assert_eq!(
        store.attempts("ran").unwrap()[0].output_tail.as_deref(),
        Some(tail.as_str())
    );
    assert_eq!(store.attempts("lost").unwrap()[0].output_tail, None);

    // The second attempt's tail is its own; the first keeps its.
    let again = store.claim_at(&request("w"), at(10)).unwrap().unwrap();
    assert_eq!(again.id, "ran");
    let second = AttemptResult {
        output_tail: Some(String::new()),
        ..AttemptResult::new(AttemptOutcome::Succeeded)
    };
    store
        .finish_at(&again.lease, &second, &policy(), at(11), None)
        .unwrap();
    let tails: Vec<_> = store
        .attempts("ran")
        .unwrap()
        .into_iter()
        .map(|a| a.output_tail)
        .collect();
    assert_eq!(tails, [Some(tail.clone()), Some(String::new())]);

    // A copied queue carries the tails.
    let exported = store.export().unwrap();
    let target = q.another();
    let mut copy = target.open();
    copy.import(&exported, &[], &[]).unwrap();
    for id in ["ran", "lost"] {
        let tails = |s: &mut Store| -> Vec<_> {
            s.attempts(id)
                .unwrap()
                .into_iter()
                .map(|a| a.output_tail)
                .collect()
        };
        assert_eq!(tails(&mut copy), tails(&mut store), "{id}");
    }
}

fn a_batch_claim_takes_up_to_n_in_order_each_with_its_own_lease_and_attempt(q: &TestQueue) {
    let mut store = q.open();
    for (id, priority) in [("a", 0), ("b", 3), ("c", 0), ("d", 7), ("e", 0)] {
        enqueue(
            &mut store,
            &format!(r#"{{"id":"{id}","command":"x","priority":{priority}}}"#),
            at(0),
        );
    }
    let mut contained = request("w");
    contained.cgroups = Some("/w.service".into());
    let first = store.at(at(1)).claim(&contained, 3).unwrap();
    let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["d", "b", "a"]);
    let tokens: HashSet<i64> = first.iter().map(|c| c.lease.token).collect();
    assert_eq!(tokens.len(), 3, "each job its own lease token");
    for claimed in &first {
        let cgroup = format!("/w.service/attempt-{}", claimed.lease.attempt_token());
        assert_eq!(claimed.cgroup.as_deref(), Some(cgroup.as_str()));
        let attempts = store.attempts(&claimed.id).unwrap();
        assert_eq!(attempts.len(), 1);
        let attempt = &attempts[0];
        assert_eq!(
            (attempt.number, attempt.worker.as_str(), attempt.started_at),
            (1, "w", at(1))
        );
        assert_eq!(attempt.cgroup.as_deref(), Some(cgroup.as_str()));
        assert_eq!((attempt.finished_at, attempt.outcome), (None, None));
        let job = store.get(&claimed.id).unwrap();
        assert_eq!(
            (job.state, job.lease_expires_at),
            (JobState::Processing, Some(at(31)))
        );
    }
    let rest = store.at(at(1)).claim(&request("w"), 10).unwrap();
    let ids: Vec<&str> = rest.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c", "e"]);
    assert!(store.at(at(1)).claim(&request("w"), 10).unwrap().is_empty());
    assert!(store.at(at(1)).claim(&request("w"), 0).unwrap().is_empty());
}

/// Jobs a, b and c, enqueued at 0 and claimed together by "w" at 1.
fn claim_a_b_c(store: &mut Store) -> Vec<Claimed> {
    for id in ["a", "b", "c"] {
        enqueue(store, &format!(r#"{{"id":"{id}","command":"x"}}"#), at(0));
    }
    store.at(at(1)).claim(&request("w"), 3).unwrap()
}

fn a_batch_finish_records_the_held_leases_and_ignores_the_stale(q: &TestQueue) {
    let mut store = q.open();
    let claimed = claim_a_b_c(&mut store);
    enqueue(&mut store, r#"{"id":"d","command":"x"}"#, at(1));
    enqueue(
        &mut store,
        r#"{"id":"e","command":"x","delay":"1m"}"#,
        at(1),
    );
    let mut stale = claimed[1].lease.clone();
    stale.token = stale.token.wrapping_add(1);
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let failed = AttemptResult::new(AttemptOutcome::Failed).with_error("exit 3");
    let done = [
        Finish {
            lease: &claimed[0].lease,
            result: &ok,
        },
        Finish {
            lease: &stale,
            result: &ok,
        },
        Finish {
            lease: &claimed[2].lease,
            result: &failed,
        },
    ];
    let finished = store
        .at(at(2))
        .finish(&done, &policy(), Some((&request("w"), 5)))
        .unwrap();
    assert_eq!(finished.held, [true, false, true]);
    let next: Vec<&str> = finished.claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(next, ["d"], "c waits out its backoff, e its delay");
    let a = store.get("a").unwrap();
    assert_eq!((a.state, a.finished_at), (JobState::Completed, Some(at(2))));
    let b = store.get("b").unwrap();
    assert_eq!(
        (b.state, b.worker.as_deref()),
        (JobState::Processing, Some("w"))
    );
    assert_eq!(store.attempts("b").unwrap()[0].outcome, None);
    let c = store.get("c").unwrap();
    assert_eq!(
        (c.state, c.failures, c.run_at, c.last_error.as_deref()),
        (JobState::Failed, 1, at(4), Some("exit 3"))
    );
    let attempt = &store.attempts("c").unwrap()[0];
    assert_eq!(
        (
            attempt.outcome,
            attempt.finished_at,
            attempt.error.as_deref()
        ),
        (Some(AttemptOutcome::Failed), Some(at(2)), Some("exit 3"))
    );
    assert!(
        store
            .at(at(2))
            .finish(&[], &policy(), None)
            .unwrap()
            .held
            .is_empty(),
        "an empty batch does nothing"
    );
}

fn next_event_in_is_the_next_due_job_or_lease_expiry(q: &TestQueue) {
    let mut store = q.open();
    store.pin_clock(Some(at(0))).unwrap();
    assert_eq!(
        store.next_event_in(&request("w")).unwrap(),
        None,
        "an empty queue"
    );
    enqueue(
        &mut store,
        r#"{"id":"later","command":"x","delay":"1h"}"#,
        at(0),
    );
    assert_eq!(
        store.next_event_in(&request("w")).unwrap(),
        Some(Duration::from_secs(3600))
    );
    enqueue(&mut store, r#"{"id":"now","command":"x"}"#, at(10));
    store.pin_clock(Some(at(20))).unwrap();
    assert_eq!(
        store.next_event_in(&request("w")).unwrap(),
        Some(Duration::ZERO),
        "already due"
    );
    store.claim_at(&request("w"), at(20)).unwrap().unwrap();
    store.pin_clock(Some(at(25))).unwrap();
    assert_eq!(
        store.next_event_in(&request("w")).unwrap(),
        Some(Duration::from_millis(25_001)),
        "just after the lease of the job claimed at 20 runs out at 50"
    );
}

fn concurrent_rescuers_end_each_attempt_once(q: &TestQueue) {
    let mut store = q.open();
    let jobs: Vec<_> = (0..40)
        .map(|i| (i + 1, NewJob::new(format!("job {i}"))))
        .collect();
    store.enqueue_at(&jobs, &DEFAULTS, at(0)).unwrap();
    assert_eq!(
        store.at(at(0)).claim(&request("gone"), 40).unwrap().len(),
        40
    );
    let rescuers: Vec<_> = (0..4)
        .map(|_| {
            let db = q.database.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&db, Durability::Normal).unwrap();
                let held = store.held_expired_at(at(31)).unwrap();
                store.rescue_expired_at(&held, &policy(), at(31)).unwrap()
            })
        })
        .collect();
    let rescued: Vec<String> = rescuers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unique: HashSet<_> = rescued.iter().collect();
    assert_eq!((rescued.len(), unique.len()), (40, 40), "each rescued once");
    for job in store.list(&ListFilter::default(), Some(100)).unwrap().jobs {
        assert_eq!((job.state, job.failures), (JobState::Failed, 1));
        let attempts = store.attempts(&job.id).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, Some(AttemptOutcome::LeaseExpired));
    }
}

fn export_then_import_gives_the_same_queue(q: &TestQueue) {
    use crate::domain::schedule::Driver;
    let mut source = q.open();
    fill_with_every_kind_of_job(&mut source);
    queues::pause(&mut source, "sq", true);
    queues::limit(&mut source, "sq", Some(1));
    queues::limit(&mut source, "wide", Some(3));
    for (name, driver) in [("s", Driver::Workers), ("t", Driver::Systemd)] {
        let schedule = schedules::schedule(name, "daily", driver);
        source.add_schedule(&schedule, false).unwrap();
    }
    source.fire_schedule("s", &DEFAULTS).unwrap();
    let exported = source.export().unwrap();
    assert_eq!(exported.len(), 6);
    let settings: Vec<QueueRow> = source.queues().unwrap();
    assert_eq!(settings.iter().filter(|q| q.has_settings()).count(), 2);
    let rows = source.schedules().unwrap();
    assert!(rows[0].last_job_id.is_some() && rows[0].next_elapse_at.is_some());
    let target = q.another();
    let mut copy = target.open();
    copy.import(&exported, &settings, &rows).unwrap();
    assert_eq!(snapshot(&copy.export().unwrap()), snapshot(&exported));
    // Imported ended attempts are counted as their finishes were.
    let (copied, original) = (copy.stats().unwrap(), source.stats().unwrap());
    assert!(!original.attempts.is_empty());
    assert_eq!(copied.attempts, original.attempts);
    assert_eq!(copied.duration, original.duration);
    let queue_settings = |s: &mut Store| -> Vec<(String, Option<u32>, bool)> {
        let queues = s.queues().unwrap().into_iter();
        queues.map(|q| (q.name, q.parallel, q.paused)).collect()
    };
    assert_eq!(queue_settings(&mut copy), queue_settings(&mut source));
    // Every column, the job's env included (Debug shows it; JSON would not).
    assert_eq!(
        format!("{:?}", copy.schedules().unwrap()),
        format!("{rows:?}")
    );
    let err = copy.import(&exported, &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("already holds 6 job(s), 2 queue setting(s) and 2 schedule(s)")),
        "{err}"
    );
    // Settings or schedules alone make a target not empty either.
    let bare = q.another();
    bare.open().import(&[], &settings, &[]).unwrap();
    let err = bare.open().import(&exported, &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("0 job(s), 2 queue setting(s) and 0 schedule(s)")),
        "{err}"
    );
    let bare = q.another();
    bare.open().import(&[], &[], &rows[..1]).unwrap();
    let err = bare.open().import(&exported, &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("0 queue setting(s) and 1 schedule(s)")),
        "{err}"
    );
}

fn workers_are_registered_with_host_unit_slots_and_jobs(q: &TestQueue) {
    let mut store = q.open();
    store.pin_clock(Some(at(0))).unwrap();
    for (name, unit, slots) in [
        ("web1/1", Some("queuectl-worker@1.service"), 1),
        ("web2/1", None, 4),
    ] {
        store
            .register_worker(&WorkerInfo {
                name: name.into(),
                pid: 42,
                host: name[..4].into(),
                status: "idle".into(),
                unit: unit.map(str::to_owned),
                slots,
            })
            .unwrap();
    }
    enqueue(&mut store, r#"{"id":"k","command":"x"}"#, at(0));
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    // Two of its four slots busy: one row for the worker, both jobs listed.
    store.claim_at(&request("web2/1"), at(1)).unwrap().unwrap();
    store.claim_at(&request("web2/1"), at(1)).unwrap().unwrap();
    store.pin_clock(Some(at(5))).unwrap();
    store.worker_heartbeat("web2/1", "running j").unwrap();
    let workers = store.workers().unwrap();
    let seen: Vec<_> = workers
        .iter()
        .map(|w| {
            (
                w.name.as_str(),
                w.host.as_str(),
                w.unit.as_deref(),
                w.slots,
                w.jobs.clone(),
                w.status.as_str(),
                w.heartbeat_at,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "web1/1",
                "web1",
                Some("queuectl-worker@1.service"),
                1,
                vec![],
                "idle",
                at(0)
            ),
            (
                "web2/1",
                "web2",
                None,
                4,
                vec!["j".to_owned(), "k".to_owned()],
                "running j",
                at(5)
            ),
        ]
    );
    store.pin_clock(Some(at(100))).unwrap();
    assert_eq!(
        store
            .forget_silent_workers(Duration::from_secs(96))
            .unwrap(),
        1,
        "web1/1 was silent for 100 s"
    );
    store.unregister_worker("web2/1").unwrap();
    assert!(store.workers().unwrap().is_empty());
}

/// More jobs than one statement takes (SQLite writes a batch in chunks):
/// the claim keeps priority order across them and every outcome lands on
/// its own job.
fn batches_larger_than_one_statement_keep_claim_order_and_every_outcome(q: &TestQueue) {
    let mut store = q.open();
    let jobs: Vec<_> = (0..150)
        .map(|i| {
            let json = format!(r#"{{"id":"j{i:03}","command":"x","priority":{}}}"#, i % 3);
            (i + 1, parse_job(&json).unwrap())
        })
        .collect();
    store.enqueue_at(&jobs, &DEFAULTS, at(0)).unwrap();
    let claimed = store.at(at(1)).claim(&request("w"), 200).unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    let mut expected: Vec<String> = (0..150).map(|i| format!("j{i:03}")).collect();
    expected.sort_by_key(|id| {
        let i: usize = id[1..].parse().unwrap();
        (std::cmp::Reverse(i % 3), i)
    });
    assert_eq!(ids, expected);
    let results: Vec<AttemptResult> = claimed
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i % 2 == 0 {
                AttemptResult::new(AttemptOutcome::Succeeded)
            } else {
                AttemptResult::new(AttemptOutcome::Failed).with_error(format!("error {i}"))
            }
        })
        .collect();
    let done: Vec<Finish> = claimed
        .iter()
        .zip(&results)
        .map(|(job, result)| Finish {
            lease: &job.lease,
            result,
        })
        .collect();
    let finished = store.at(at(2)).finish(&done, &policy(), None).unwrap();
    assert_eq!(finished.held, vec![true; 150]);
    for (i, job) in claimed.iter().enumerate() {
        let row = store.get(&job.id).unwrap();
        let attempt = &store.attempts(&job.id).unwrap()[0];
        if i % 2 == 0 {
            assert_eq!(row.state, JobState::Completed, "{}", job.id);
            assert_eq!(attempt.outcome, Some(AttemptOutcome::Succeeded));
        } else {
            let error = format!("error {i}");
            assert_eq!(
                (row.state, row.last_error.as_deref()),
                (JobState::Failed, Some(error.as_str())),
                "{}",
                job.id
            );
            assert_eq!(attempt.error.as_deref(), Some(error.as_str()));
        }
    }
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts[&JobState::Completed], counts[&JobState::Failed]),
        (75, 75)
    );
}

fn a_batch_finish_ends_a_cancelled_job_cancelled_and_the_others_as_they_ended(q: &TestQueue) {
    let mut store = q.open();
    let claimed = claim_a_b_c(&mut store);
    assert!(matches!(
        store.cancel_at("b", at(2)).unwrap(),
        CancelResult::Requested { .. }
    ));
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let failed = AttemptResult::new(AttemptOutcome::Failed).with_error("exit 1");
    let results = [&ok, &ok, &failed];
    let done: Vec<Finish> = claimed
        .iter()
        .zip(results)
        .map(|(job, result)| Finish {
            lease: &job.lease,
            result,
        })
        .collect();
    let finished = store.at(at(3)).finish(&done, &policy(), None).unwrap();
    assert_eq!(finished.held, [true, true, true]);
    let states: Vec<(JobState, u32)> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let job = store.get(id).unwrap();
            (job.state, job.failures)
        })
        .collect();
    assert_eq!(
        states,
        [
            (JobState::Completed, 0),
            (JobState::Cancelled, 0),
            (JobState::Failed, 1)
        ]
    );
    let b = store.get("b").unwrap();
    assert_eq!(b.finished_at, Some(at(3)));
    assert!(b.last_error.unwrap().contains("ended first (succeeded)"));
    assert_eq!(
        store.attempts("b").unwrap()[0].outcome,
        Some(AttemptOutcome::Succeeded)
    );
    assert_eq!(store.get("c").unwrap().run_at, at(5), "backoff from at(3)");
}

/// A worker finishing an attempt it lost (its job was rescued and claimed
/// again, by the same worker name) beside the new attempt, in one batch:
/// only the new one is held, and only its attempt is recorded.
fn a_stale_and_the_current_lease_of_one_job_in_one_batch(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"j","command":"x"}"#, at(0));
    let first = store.claim_at(&request("w"), at(0)).unwrap().unwrap();
    let held = store.held_expired_at(at(31)).unwrap();
    assert_eq!(
        store.rescue_expired_at(&held, &policy(), at(31)).unwrap(),
        ["j"]
    );
    let second = store.claim_at(&request("w"), at(40)).unwrap().unwrap();
    assert_eq!((first.lease.attempt, second.lease.attempt), (1, 2));
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let failed = AttemptResult::new(AttemptOutcome::Failed);
    let done = [
        Finish {
            lease: &first.lease,
            result: &failed,
        },
        Finish {
            lease: &second.lease,
            result: &ok,
        },
    ];
    let finished = store.at(at(41)).finish(&done, &policy(), None).unwrap();
    assert_eq!(finished.held, [false, true]);
    assert_eq!(store.get("j").unwrap().state, JobState::Completed);
    let outcomes: Vec<Option<AttemptOutcome>> = store
        .attempts("j")
        .unwrap()
        .iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            Some(AttemptOutcome::LeaseExpired),
            Some(AttemptOutcome::Succeeded)
        ]
    );
}

fn renewing_several_leases_tells_each_whether_it_is_held_or_cancelled(q: &TestQueue) {
    let mut store = q.open();
    let claimed = claim_a_b_c(&mut store);
    assert!(matches!(
        store.cancel_at("b", at(2)).unwrap(),
        CancelResult::Requested { .. }
    ));
    let mut stale = claimed[2].lease.clone();
    stale.token = stale.token.wrapping_add(1);
    let leases = [&claimed[0].lease, &claimed[1].lease, &stale];
    let statuses = store
        .at(at(10))
        .renew_leases("w", &leases, Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        statuses,
        [
            LeaseStatus::Held,
            LeaseStatus::CancelRequested,
            LeaseStatus::Lost
        ]
    );
    let expiry: Vec<Option<Timestamp>> = ["a", "b", "c"]
        .iter()
        .map(|id| store.get(id).unwrap().lease_expires_at)
        .collect();
    assert_eq!(expiry, [Some(at(70)), Some(at(70)), Some(at(31))]);
}

fn job_ids_match_a_prefix_newest_first_in_a_state_if_asked(q: &TestQueue) {
    let mut store = q.open();
    for id in ["build-1", "build-2", "backup", "build-3", "b_x"] {
        enqueue(
            &mut store,
            &format!(r#"{{"id":"{id}","command":"x"}}"#),
            at(0),
        );
    }
    store.cancel("build-2").unwrap();
    assert_eq!(
        store.job_ids("build-", None, 10).unwrap(),
        ["build-3", "build-2", "build-1"]
    );
    assert_eq!(
        store.job_ids("build-", None, 2).unwrap(),
        ["build-3", "build-2"]
    );
    assert_eq!(
        store.job_ids("", Some(JobState::Cancelled), 10).unwrap(),
        ["build-2"]
    );
    // LIKE's wildcard `_` is a plain character here.
    assert_eq!(store.job_ids("b_", None, 10).unwrap(), ["b_x"]);
    assert_eq!(store.job_ids("", None, 10).unwrap().len(), 5);
    assert!(store.job_ids("nothing", None, 10).unwrap().is_empty());
}

fn ids(names: &[&str]) -> Selection {
    Selection::ids(names.iter().map(|n| n.to_string()))
}

fn run_once(store: &mut Store, id: &str, outcome: AttemptOutcome, now: Timestamp) {
    let job = store.claim_at(&request("w"), now).unwrap().unwrap();
    assert_eq!(job.id, id);
    store
        .finish_at(
            &job.lease,
            &AttemptResult::new(outcome).with_error("why"),
            &policy(),
            now,
            None,
        )
        .unwrap();
}

fn restart_requeues_finished_jobs_keeping_their_history(q: &TestQueue) {
    let mut store = q.open();
    enqueue(&mut store, r#"{"id":"done","command":"x"}"#, at(0));
    enqueue(
        &mut store,
        r#"{"id":"dead","command":"x","max_retries":0}"#,
        at(0),
    );
    enqueue(&mut store, r#"{"id":"stopped","command":"x"}"#, at(0));
    enqueue(
        &mut store,
        r#"{"id":"waiting","command":"x","delay":"1h"}"#,
        at(0),
    );
    run_once(&mut store, "done", AttemptOutcome::Succeeded, at(1));
    run_once(&mut store, "dead", AttemptOutcome::Failed, at(2));
    // Cancelled while it ran: ends cancelled with its flag spent.
    let stopped = store.claim_at(&request("w"), at(3)).unwrap().unwrap();
    store.cancel_at("stopped", at(3)).unwrap();
    store
        .finish_at(
            &stopped.lease,
            &AttemptResult::new(AttemptOutcome::Cancelled),
            &policy(),
            at(4),
            None,
        )
        .unwrap();
    assert_eq!(store.get("dead").unwrap().state, JobState::Dead);
    assert_eq!(store.get("stopped").unwrap().state, JobState::Cancelled);

    let outcome = store
        .at(at(10))
        .act(BulkAction::Restart, &ids(&["done", "dead", "stopped"]))
        .unwrap();
    assert_eq!(outcome.done_ids(), ["done", "dead", "stopped"]);
    assert!(outcome.refused.is_empty());
    for id in ["done", "dead", "stopped"] {
        let job = store.get(id).unwrap();
        assert_eq!(
            (
                job.state,
                job.failures,
                job.run_at,
                job.finished_at,
                job.cancel_requested
            ),
            (JobState::Pending, 0, at(10), None, false),
            "{id}"
        );
        assert_eq!(job.attempts, 1, "{id}: its runs are still counted");
        assert_eq!(store.attempts(id).unwrap().len(), 1, "{id}: history kept");
    }
    // The next run continues the numbering and is not cancelled at once.
    let mut numbers = Vec::new();
    for _ in 0..3 {
        let job = store.claim_at(&request("w"), at(11)).unwrap().unwrap();
        assert_eq!(
            store
                .renew_at(&job.lease, Duration::from_secs(30), at(11))
                .unwrap(),
            LeaseStatus::Held
        );
        numbers.push(job.lease.attempt);
    }
    assert_eq!(numbers, [2, 2, 2]);

    // Waiting and running jobs are refused by name, with their state.
    for (id, state) in [
        ("waiting", JobState::Pending),
        ("done", JobState::Processing),
    ] {
        let err = store
            .at(at(12))
            .act_on_one(BulkAction::Restart, id)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains(state.as_str())),
            "{err}"
        );
        assert_eq!(store.get(id).unwrap().state, state, "{id} unchanged");
    }
    assert!(matches!(
        store.at(at(12)).act_on_one(BulkAction::Restart, "ghost"),
        Err(Error::NotFound(_))
    ));
}

fn named_jobs_are_acted_on_one_by_one_and_the_rest_reported(q: &TestQueue) {
    let mut store = q.open();
    for id in ["a", "b", "c", "d"] {
        enqueue(
            &mut store,
            &format!(r#"{{"id":"{id}","command":"x"}}"#),
            at(0),
        );
    }
    run_once(&mut store, "a", AttemptOutcome::Succeeded, at(1));
    let running = store.claim_at(&request("w"), at(2)).unwrap().unwrap();
    assert_eq!(running.id, "b");

    let outcome = store
        .at(at(3))
        .act(BulkAction::Cancel, &ids(&["c", "a", "ghost", "b", "c"]))
        .unwrap();
    assert_eq!(
        outcome.done,
        [
            Acted {
                id: "c".into(),
                stopping_on: None
            },
            Acted {
                id: "b".into(),
                stopping_on: Some("w".into())
            },
        ]
    );
    assert_eq!(
        outcome.refused,
        [
            Refused {
                id: "a".into(),
                state: Some(JobState::Completed),
                blocked_by: None
            },
            Refused {
                id: "ghost".into(),
                state: None,
                blocked_by: None
            },
        ]
    );
    assert_eq!(store.get("c").unwrap().state, JobState::Cancelled);
    assert_eq!(
        store.get("d").unwrap().state,
        JobState::Pending,
        "not named"
    );
    assert_eq!(
        store
            .renew_at(&running.lease, Duration::from_secs(30), at(4))
            .unwrap(),
        LeaseStatus::CancelRequested
    );

    // dlq retry takes dead jobs only; purge finished ones only.
    let outcome = store
        .at(at(5))
        .act(BulkAction::RetryDead, &ids(&["a", "c"]))
        .unwrap();
    assert!(outcome.done.is_empty());
    assert_eq!(outcome.refused.len(), 2);
    let outcome = store
        .at(at(5))
        .act(BulkAction::Purge, &ids(&["a", "d", "c"]))
        .unwrap();
    assert_eq!(outcome.done_ids(), ["a", "c"]);
    assert_eq!(
        outcome.refused,
        [Refused {
            id: "d".into(),
            state: Some(JobState::Pending),
            blocked_by: None
        }]
    );
    assert!(matches!(store.get("a"), Err(Error::NotFound(_))));
    assert!(
        store.attempts("a").unwrap().is_empty(),
        "its history went with it"
    );
}

fn filters_select_by_state_and_age_in_chunks_each_job_once(q: &TestQueue) {
    let mut store = q.open();
    // More than two transactions' worth.
    let many = 2 * selection::CHUNK + 100;
    let jobs: Vec<(usize, NewJob)> = (0..many)
        .map(|i| {
            (
                i + 1,
                parse_job(&format!(r#"{{"id":"old{i}","command":"x"}}"#)).unwrap(),
            )
        })
        .collect();
    store.enqueue_at(&jobs, &DEFAULTS, at(0)).unwrap();
    enqueue(&mut store, r#"{"id":"young","command":"x"}"#, at(8));
    let running = store.claim_at(&request("w"), at(9)).unwrap().unwrap();
    let filter = |action, states: &[JobState], secs| {
        Selection::filter(action, states, Some(Duration::from_secs(secs))).unwrap()
    };

    // Waiting jobs' age is since they were enqueued; the running one is
    // flagged once.
    let outcome = store
        .at(at(10))
        .act(BulkAction::Cancel, &filter(BulkAction::Cancel, &[], 5))
        .unwrap();
    let cancelled: HashSet<String> = outcome.done_ids().into_iter().collect();
    assert_eq!(
        (outcome.done.len(), cancelled.len()),
        (many, many),
        "each job once"
    );
    assert!(!cancelled.contains("young"));
    let stopping: Vec<&Acted> = outcome
        .done
        .iter()
        .filter(|a| a.stopping_on.is_some())
        .collect();
    assert_eq!(stopping.len(), 1);
    assert_eq!(stopping[0].id, running.id);
    assert!(outcome.refused.is_empty());
    assert_eq!(store.get("young").unwrap().state, JobState::Pending);

    // Only the states asked for; finished jobs' age is since they finished.
    let none = store
        .at(at(12))
        .act(
            BulkAction::Restart,
            &filter(BulkAction::Restart, &[JobState::Cancelled], 5),
        )
        .unwrap();
    assert!(none.done.is_empty(), "cancelled 2 s ago, not 5");
    let dead = store
        .at(at(20))
        .act(
            BulkAction::RetryDead,
            &filter(BulkAction::RetryDead, &[], 0),
        )
        .unwrap();
    assert!(dead.done.is_empty(), "no dead jobs");
    let restarted = store
        .at(at(20))
        .act(
            BulkAction::Restart,
            &filter(BulkAction::Restart, &[JobState::Cancelled], 5),
        )
        .unwrap();
    assert_eq!(restarted.done.len(), many - 1, "every cancelled job");
    let counts = store.counts().unwrap();
    assert_eq!(
        (
            counts[&JobState::Pending],
            counts[&JobState::Processing],
            counts[&JobState::Cancelled]
        ),
        (many as u64, 1, 0)
    );

    // Purge: nothing finished; then everything cancelled, by age.
    let purge = |secs| filter(BulkAction::Purge, &[], secs);
    assert!(
        store
            .at(at(30))
            .act(BulkAction::Purge, &purge(0))
            .unwrap()
            .done
            .is_empty()
    );
    store
        .at(at(40))
        .act(
            BulkAction::Cancel,
            &filter(BulkAction::Cancel, &[JobState::Pending], 0),
        )
        .unwrap();
    assert!(
        store
            .at(at(42))
            .act(BulkAction::Purge, &purge(5))
            .unwrap()
            .done
            .is_empty()
    );
    let purged = store.at(at(50)).act(BulkAction::Purge, &purge(5)).unwrap();
    assert_eq!(purged.done.len(), many);
    let counts = store.counts().unwrap();
    assert_eq!(
        counts.values().sum::<u64>(),
        1,
        "only the running job is left"
    );
}

fn edit_of(json: &str) -> JobEdit {
    crate::domain::spec::edit_from_value(&serde_json::from_str(json).unwrap()).unwrap()
}

fn edit_changes_a_waiting_job_and_refuses_the_others(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"later","command":"old","delay":"1h","max_retries":1}"#,
        at(0),
    );
    enqueue(&mut store, r#"{"id":"first","command":"x"}"#, at(0));
    let edited = store
        .at(at(10))
        .edit(
            "later",
            &edit_of(r#"{"command":"new","priority":7,"delay":"30s","timeout_seconds":9}"#),
        )
        .unwrap();
    assert_eq!(edited.command, "new");
    assert_eq!((edited.priority, edited.timeout_seconds), (7, 9));
    assert_eq!(edited.run_at, at(40), "the delay counts from the edit");
    assert_eq!(edited.max_retries, 1, "fields left out stay");
    assert_eq!(edited.updated_at, at(10));
    assert_eq!(store.get("later").unwrap().command, "new");
    // Due now and of higher priority: claimed before "first".
    store
        .at(at(11))
        .edit("later", &edit_of(r#"{"run_at":"2027-01-15T08:00:00Z"}"#))
        .unwrap();
    assert_eq!(
        store.get("later").unwrap().run_at,
        "2027-01-15T08:00:00Z".parse::<Timestamp>().unwrap()
    );
    let claimed = store.claim_at(&request("w"), at(12)).unwrap().unwrap();
    assert_eq!(
        (claimed.id.as_str(), claimed.command.as_str()),
        ("later", "new")
    );
    // A job waiting for its retry may be edited; a processing one may not.
    let fail = AttemptResult::new(AttemptOutcome::Failed);
    store
        .finish_at(&claimed.lease, &fail, &policy(), at(13), None)
        .unwrap();
    assert_eq!(store.get("later").unwrap().state, JobState::Failed);
    let retried = store
        .at(at(14))
        .edit("later", &edit_of(r#"{"delay":"0s","max_retries":3}"#))
        .unwrap();
    assert_eq!((retried.run_at, retried.max_retries), (at(14), 3));
    let running = store.claim_at(&request("w"), at(15)).unwrap().unwrap();
    assert_eq!(running.id, "later");
    let err = store
        .at(at(16))
        .edit("later", &edit_of(r#"{"priority":1}"#));
    assert!(
        matches!(&err, Err(Error::Conflict(m)) if m.contains("is processing")),
        "{err:?}"
    );
    store
        .finish_at(
            &running.lease,
            &AttemptResult::new(AttemptOutcome::Succeeded),
            &policy(),
            at(17),
            None,
        )
        .unwrap();
    let err = store
        .at(at(18))
        .edit("later", &edit_of(r#"{"priority":1}"#));
    assert!(
        matches!(&err, Err(Error::Conflict(m)) if m.contains("is completed")),
        "{err:?}"
    );
    assert_eq!(store.get("later").unwrap().priority, 7, "unchanged");
    assert!(matches!(
        store
            .at(at(18))
            .edit("ghost", &edit_of(r#"{"priority":1}"#)),
        Err(Error::NotFound(_))
    ));
}

/// `rounds` times: `prepare` on `store`, then `theirs` on a second
/// connection and `ours` on `store` released at the same moment. Returns
/// each round's two results (checked here, not in the other thread, where
/// a failed check would leave this one waiting).
fn race<T: Send + 'static, U>(
    q: &TestQueue,
    store: &mut Store,
    rounds: usize,
    mut prepare: impl FnMut(&mut Store, usize),
    theirs: impl Fn(&mut Store, usize) -> T + Send + 'static,
    mut ours: impl FnMut(&mut Store, usize) -> U,
) -> Vec<(T, U)> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let other = {
        let (db, barrier) = (q.database.clone(), barrier.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db, Durability::Normal).unwrap();
            (0..rounds)
                .map(|i| {
                    barrier.wait();
                    theirs(&mut store, i)
                })
                .collect::<Vec<T>>()
        })
    };
    let mine: Vec<U> = (0..rounds)
        .map(|i| {
            prepare(store, i);
            barrier.wait();
            ours(store, i)
        })
        .collect();
    other.join().unwrap().into_iter().zip(mine).collect()
}

/// Claims until it has job `id` (SKIP LOCKED may pass over a row another
/// connection holds), finishing each job it claims; returns that job.
fn claim_until(store: &mut Store, id: &str) -> Claimed {
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    loop {
        if let Some(job) = store.claim_at(&request("w"), at(1)).unwrap() {
            store
                .finish_at(&job.lease, &ok, &policy(), at(1), None)
                .unwrap();
            if job.id == id {
                return job;
            }
        }
    }
}

/// An edit and a claim of the same job at the same moment, many times over
/// two connections: the claimed command is the edited one exactly when the
/// edit reported success; a refused edit changed nothing.
fn an_edit_racing_a_claim_applies_before_it_or_not_at_all(q: &TestQueue) {
    let mut store = q.open();
    let results = race(
        q,
        &mut store,
        40,
        |store, i| {
            // The only waiting job, so a claim takes it or nothing.
            let mut job = NewJob::new("original");
            job.id = Some(crate::domain::JobId::parse(&format!("race-{i}")).unwrap());
            store.enqueue_at(&[(1, job)], &DEFAULTS, at(0)).unwrap();
        },
        |store, i| {
            let edit = edit_of(r#"{"command":"edited"}"#);
            store.at(at(1)).edit(&format!("race-{i}"), &edit)
        },
        |store, i| claim_until(store, &format!("race-{i}")).command,
    );
    for (i, (edit, command)) in results.iter().enumerate() {
        let applied = match edit {
            Ok(job) => job.command == "edited",
            Err(Error::Conflict(_)) => false,
            Err(e) => panic!("race-{i}: {e}"),
        };
        assert_eq!(
            applied,
            command == "edited",
            "race-{i}: edit applied {applied}, claimed {command}"
        );
    }
}

fn a_list_is_newest_first_with_the_total_its_filter_matches(q: &TestQueue) {
    let mut store = q.open();
    enqueue_numbered(&mut store, 6, at(0));
    for id in ["j1", "j4"] {
        store.cancel_at(id, at(1)).unwrap();
    }
    run_once(&mut store, "j0", AttemptOutcome::Succeeded, at(2));
    let ids = |page: &JobPage| page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();

    let page = store.list(&ListFilter::default(), Some(3)).unwrap();
    assert_eq!(
        (ids(&page), page.total),
        (vec!["j5".into(), "j4".into(), "j3".into()], 6)
    );
    let page = store.list(&ListFilter::default(), None).unwrap();
    assert_eq!(ids(&page), ["j5", "j4", "j3", "j2", "j1", "j0"]);
    // Several states: merged newest first, each state once.
    let both = [
        JobState::Cancelled,
        JobState::Completed,
        JobState::Cancelled,
    ];
    let page = store.list(&ListFilter::states(&both), Some(2)).unwrap();
    assert_eq!(
        (ids(&page), page.total),
        (vec!["j4".into(), "j1".into()], 3)
    );
    let page = store.list(&ListFilter::states(&both), None).unwrap();
    assert_eq!(ids(&page), ["j4", "j1", "j0"]);
    let page = store
        .list(&ListFilter::states(&[JobState::Dead]), Some(10))
        .unwrap();
    assert_eq!((page.jobs.len(), page.total), (0, 0));
    let page = store
        .list(&ListFilter::states(&[JobState::Pending]), Some(0))
        .unwrap();
    assert_eq!((page.jobs.len(), page.total), (0, 3));
}

/// Enqueues jobs `j0` ... `j{n-1}` at `now`, one by one.
fn enqueue_numbered(store: &mut Store, n: usize, now: Timestamp) {
    for i in 0..n {
        enqueue(store, &format!(r#"{{"id":"j{i}","command":"x"}}"#), now);
    }
}

/// One connection restarts every finished job again and again (by filter
/// and by ids) while another claims and finishes them: a restart changes a
/// job only while it is finished, so every claim's lease stays valid to its
/// finish, and each run is one attempt row.
fn restarts_racing_a_worker_never_touch_a_running_job(q: &TestQueue) {
    let mut store = q.open();
    let jobs: Vec<_> = (0..100)
        .map(|i| (i + 1, NewJob::new(format!("job {i}"))))
        .collect();
    let ids: Vec<String> = store
        .enqueue(&jobs, &DEFAULTS)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let run_due = |store: &mut Store| -> usize {
        let claimed = store.claim(&request("w"), 10).unwrap();
        let done = finishes(&claimed, &ok);
        let finished = store.finish(&done, &policy(), None).unwrap();
        assert!(finished.held.iter().all(|&held| held), "a lease was lost");
        claimed.len()
    };
    while run_due(&mut store) > 0 {}
    std::thread::scope(|scope| {
        let restarter = scope.spawn(|| {
            let mut restarter = q.open();
            let every = Selection::filter(BulkAction::Restart, &[], None).unwrap();
            let named = Selection::ids(ids.iter().cloned());
            for round in 0..20 {
                let selection = if round % 2 == 0 { &every } else { &named };
                restarter.act(BulkAction::Restart, selection).unwrap();
            }
        });
        let mut worker = q.open();
        // Until the restarter is done (or failed: the scope then panics).
        while !restarter.is_finished() {
            run_due(&mut worker);
        }
        while run_due(&mut worker) > 0 {}
    });
    for id in &ids {
        let job = store.get(id).unwrap();
        assert_eq!(job.state, JobState::Completed, "{id}");
        assert_eq!(
            job.attempts as usize,
            store.attempts(id).unwrap().len(),
            "{id}"
        );
    }
}

mod queues;

mod schedules;

mod search;
