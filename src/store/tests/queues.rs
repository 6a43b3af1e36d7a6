//! Conformance: named queues, their `parallel` limits and pauses, enforced
//! by the claim on every backend.

use super::*;
use crate::domain::{QueueChange, QueueName};
use std::sync::{Arc, Barrier};

conformance! {
    a_claim_never_exceeds_a_queues_parallel_limit_across_eight_connections,
    a_batch_claim_takes_at_most_each_queues_room_and_fills_from_other_queues,
    paused_queues_are_not_claimed_until_resumed,
    a_worker_restricted_to_queues_claims_only_from_them,
    next_event_in_ignores_paused_full_and_foreign_queues,
    a_finish_in_a_limited_queue_wakes_idle_workers,
    queue_settings_are_kept_changed_and_listed_with_their_jobs,
    a_list_filters_by_queue,
    queue_counts_follow_blocked_waiting_and_running_jobs_in_every_queue,
}

fn name(text: &str) -> QueueName {
    QueueName::parse(text).unwrap()
}

pub(super) fn limit(store: &mut Store, queue: &str, parallel: Option<u32>) {
    let change = QueueChange {
        parallel: Some(parallel),
        paused: None,
    };
    store.configure_queue(&name(queue), &change).unwrap();
}

pub(super) fn pause(store: &mut Store, queue: &str, paused: bool) {
    let change = QueueChange {
        parallel: None,
        paused: Some(paused),
    };
    store.configure_queue(&name(queue), &change).unwrap();
}

/// Enqueues job `id` of `queue` with `priority` at `at(secs)`.
fn add(store: &mut Store, id: &str, queue: &str, priority: i64, secs: i64) {
    let json = format!(r#"{{"id":"{id}","command":"x","queue":"{queue}","priority":{priority}}}"#);
    enqueue(store, &json, at(secs));
}

fn serving(worker: &str, queues: &[&str]) -> ClaimRequest {
    ClaimRequest {
        queues: Some(queues.iter().map(ToString::to_string).collect()),
        ..request(worker)
    }
}

fn ids(claimed: &[Claimed]) -> Vec<&str> {
    claimed.iter().map(|c| c.id.as_str()).collect()
}

/// The ids of up to `n` jobs claimed for `request` at `at(secs)`.
fn claim_ids(store: &mut Store, request: &ClaimRequest, n: usize, secs: i64) -> Vec<String> {
    let claimed = store.at(at(secs)).claim(request, n).unwrap();
    claimed.into_iter().map(|c| c.id).collect()
}

fn running_in(store: &mut Store, queue: &str) -> u64 {
    let queues = store.queues().unwrap();
    queues
        .iter()
        .find(|q| q.name == queue)
        .map_or(0, |q| q.running)
}

/// Eight connections race for batches of 3 in rounds; the queue allows 2
/// at once, so each round claims exactly 2 of its jobs whoever wins, and
/// never more, while the default queue beside it is not held back.
fn a_claim_never_exceeds_a_queues_parallel_limit_across_eight_connections(q: &TestQueue) {
    const WORKERS: usize = 8;
    const ROUNDS: usize = 6;
    let mut store = q.open();
    limit(&mut store, "limited", Some(2));
    let jobs: Vec<_> = (0..40)
        .map(|i| {
            let mut job = NewJob::new(format!("job {i}"));
            job.id = Some(JobId::parse(&format!("l{i}")).unwrap());
            job.queue = name("limited");
            job.priority = 1;
            (i + 1, job)
        })
        .collect();
    store.enqueue_at(&jobs, &DEFAULTS, at(0)).unwrap();
    let barrier = Arc::new(Barrier::new(WORKERS + 1));
    let threads: Vec<_> = (0..WORKERS)
        .map(|w| {
            let db = q.database.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&db, Durability::Normal).unwrap();
                let req = request(&format!("w{w}"));
                let ok = AttemptResult::new(AttemptOutcome::Succeeded);
                let mut per_round = vec![];
                for _ in 0..ROUNDS {
                    barrier.wait();
                    let claimed = store.at(at(1)).claim(&req, 3).unwrap();
                    per_round.push(claimed.len());
                    barrier.wait(); // the main thread counts
                    barrier.wait();
                    store
                        .at(at(1))
                        .finish(&finishes(&claimed, &ok), &policy(), None)
                        .unwrap();
                }
                per_round
            })
        })
        .collect();
    for round in 0..ROUNDS {
        barrier.wait();
        barrier.wait();
        let running = running_in(&mut store, "limited");
        assert_eq!(
            running, 2,
            "round {round}: the limit, and no less while jobs wait"
        );
        barrier.wait();
    }
    let claims: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for round in 0..ROUNDS {
        let total: usize = claims.iter().map(|per_round| per_round[round]).sum();
        assert_eq!(total, 2, "round {round}: {claims:?}");
    }
    assert_eq!(
        store.counts().unwrap()[&JobState::Completed],
        2 * ROUNDS as u64
    );
}

/// One batch takes each limited queue's room and fills the rest from
/// other queues, in claim order; a short batch means nothing more is due.
fn a_batch_claim_takes_at_most_each_queues_room_and_fills_from_other_queues(q: &TestQueue) {
    let mut store = q.open();
    limit(&mut store, "a", Some(2));
    limit(&mut store, "b", Some(1));
    for i in 0..4 {
        add(&mut store, &format!("a{i}"), "a", 9, 0);
        add(&mut store, &format!("b{i}"), "b", 5, 0);
        add(&mut store, &format!("d{i}"), "default", 0, 0);
    }
    let first = store.at(at(1)).claim(&request("w1"), 10).unwrap();
    assert_eq!(ids(&first), ["a0", "a1", "b0", "d0", "d1", "d2", "d3"]);
    assert!(
        store
            .at(at(1))
            .claim(&request("w2"), 10)
            .unwrap()
            .is_empty()
    );
    // A place comes free in a: its next job, and only one.
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let finished = store
        .at(at(2))
        .finish(
            &finishes(&first[..1], &ok),
            &policy(),
            Some((&request("w1"), 5)),
        )
        .unwrap();
    assert_eq!(ids(&finished.claimed), ["a2"]);
    // The limit raised: the room grows at once.
    limit(&mut store, "b", Some(3));
    assert_eq!(claim_ids(&mut store, &request("w3"), 10, 3), ["b1", "b2"]);
    limit(&mut store, "a", None);
    assert_eq!(claim_ids(&mut store, &request("w3"), 1, 3), ["a3"]);
}

fn paused_queues_are_not_claimed_until_resumed(q: &TestQueue) {
    let mut store = q.open();
    pause(&mut store, "reports", true);
    add(&mut store, "r", "reports", 9, 0);
    add(&mut store, "d", "default", 0, 0);
    assert_eq!(claim_ids(&mut store, &request("w"), 5, 1), ["d"]);
    assert!(claim_ids(&mut store, &serving("w", &["reports"]), 5, 1).is_empty());
    let row = store
        .queues()
        .unwrap()
        .into_iter()
        .find(|q| q.name == "reports")
        .unwrap();
    assert!(row.paused && row.waiting == 1, "{row:?}");
    pause(&mut store, "reports", false);
    assert_eq!(claim_ids(&mut store, &request("w"), 5, 2), ["r"]);
}

fn a_worker_restricted_to_queues_claims_only_from_them(q: &TestQueue) {
    let mut store = q.open();
    add(&mut store, "a-low", "a", 0, 0);
    add(&mut store, "b-high", "b", 5, 0);
    add(&mut store, "c-top", "c", 9, 0);
    add(&mut store, "d-top", "default", 9, 0);
    add(&mut store, "a-high", "a", 5, 1);
    // Claim order across the queues served: priority, due time, enqueue order.
    let mine = store
        .at(at(2))
        .claim(&serving("w", &["a", "b"]), 10)
        .unwrap();
    assert_eq!(ids(&mine), ["b-high", "a-high", "a-low"]);
    assert_eq!(
        claim_ids(&mut store, &serving("w", &["default"]), 10, 2),
        ["d-top"]
    );
    assert_eq!(claim_ids(&mut store, &request("w"), 10, 2), ["c-top"]);
    // Limits hold for restricted workers too.
    limit(&mut store, "e", Some(1));
    add(&mut store, "e1", "e", 0, 3);
    add(&mut store, "e2", "e", 0, 3);
    assert_eq!(
        claim_ids(&mut store, &serving("w", &["e", "a"]), 10, 4),
        ["e1"]
    );
}

/// An idle worker sleeps until something it can claim falls due: jobs of
/// paused and full queues, and of queues it does not serve, do not wake it.
fn next_event_in_ignores_paused_full_and_foreign_queues(q: &TestQueue) {
    let mut store = q.open();
    limit(&mut store, "full", Some(1));
    pause(&mut store, "paused", true);
    add(&mut store, "run", "full", 0, 0);
    let running = store.claim_at(&request("w"), at(0)).unwrap().unwrap();
    assert_eq!(running.id, "run", "its lease runs out at 30 s");
    let due = |queue: &str, secs: i64| {
        format!(
            r#"{{"command":"x","queue":"{queue}","run_at":"{}"}}"#,
            at(secs)
        )
    };
    enqueue(&mut store, &due("paused", 5), at(0));
    enqueue(&mut store, &due("full", 6), at(0));
    enqueue(&mut store, &due("other", 7), at(0));
    enqueue(&mut store, &due("mine", 20), at(0));
    let next =
        |store: &mut Store, request: &ClaimRequest| store.at(at(1)).next_event_in(request).unwrap();
    assert_eq!(
        next(&mut store, &serving("w", &["mine"])),
        Some(Duration::from_secs(19))
    );
    assert_eq!(
        next(&mut store, &request("w")),
        Some(Duration::from_secs(6)),
        "other"
    );
    assert_eq!(
        next(&mut store, &serving("w", &["paused", "full"])),
        Some(Duration::from_millis(29_001)),
        "only the lease"
    );
    // Room again in `full`: its job counts.
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    store
        .at(at(1))
        .finish(&finishes(&[running], &ok), &policy(), None)
        .unwrap();
    assert_eq!(
        next(&mut store, &serving("w", &["paused", "full"])),
        Some(Duration::from_secs(5))
    );
}

/// A place freed in a limited queue is news for idle workers: SQLite says
/// so in `Finished::freed` (the worker pokes the wake sockets), PostgreSQL
/// notifies listeners in the finish's own transaction.
fn a_finish_in_a_limited_queue_wakes_idle_workers(q: &TestQueue) {
    let mut store = q.open();
    limit(&mut store, "one", Some(1));
    add(&mut store, "o1", "one", 0, 0);
    add(&mut store, "o2", "one", 0, 0);
    add(&mut store, "d", "default", 0, 0);
    let claimed = store.at(at(1)).claim(&request("w"), 5).unwrap();
    assert_eq!(ids(&claimed), ["o1", "d"]);
    let (woken, wakes) = std::sync::mpsc::channel();
    let mut listener = q.open();
    let listening = listener
        .listen_for_work(Box::new(move || woken.send(()).is_ok()))
        .unwrap();
    let ok = AttemptResult::new(AttemptOutcome::Succeeded);
    let unlimited = store
        .at(at(2))
        .finish(&finishes(&claimed[1..], &ok), &policy(), None)
        .unwrap();
    assert!(
        !unlimited.freed,
        "a job of an unlimited queue frees no place"
    );
    let limited = store
        .at(at(2))
        .finish(&finishes(&claimed[..1], &ok), &policy(), None)
        .unwrap();
    if listening {
        assert!(!limited.freed, "the notification is the news");
        wakes
            .recv_timeout(Duration::from_secs(10))
            .expect("a listener is woken when a place comes free");
    } else {
        assert!(limited.freed);
    }
}

fn queue_settings_are_kept_changed_and_listed_with_their_jobs(q: &TestQueue) {
    let mut store = q.open();
    assert!(store.queues().unwrap().is_empty());
    add(&mut store, "e1", "emails", 0, 0);
    enqueue(
        &mut store,
        r#"{"id":"e2","command":"x","queue":"emails","delay":"1h"}"#,
        at(0),
    );
    add(&mut store, "d", "default", 0, 0);
    store
        .claim_at(&serving("w", &["emails"]), at(1))
        .unwrap()
        .unwrap();
    let set = |store: &mut Store, parallel, paused| {
        store
            .configure_queue(&name("emails"), &QueueChange { parallel, paused })
            .unwrap()
    };
    let row = set(&mut store, Some(Some(3)), None);
    assert_eq!(
        (row.parallel, row.paused, row.waiting, row.running),
        (Some(3), false, 1, 1)
    );
    let row = set(&mut store, None, Some(true));
    assert_eq!(
        (row.parallel, row.paused),
        (Some(3), true),
        "each field on its own"
    );
    let row = set(&mut store, Some(None), Some(false));
    assert_eq!((row.parallel, row.paused), (None, false));
    // A queue with neither jobs nor settings is not listed; one with settings is.
    let names = |store: &mut Store| -> Vec<String> {
        store
            .queues()
            .unwrap()
            .into_iter()
            .map(|q| q.name)
            .collect()
    };
    pause(&mut store, "idle", true);
    assert_eq!(names(&mut store), ["default", "emails", "idle"]);
    pause(&mut store, "idle", false);
    assert_eq!(names(&mut store), ["default", "emails"]);
    // `edit` moves a waiting job to another queue.
    let edit = JobEdit {
        queue: Some(name("slow")),
        ..JobEdit::default()
    };
    assert_eq!(store.edit("e2", &edit).unwrap().queue, "slow");
}

fn a_list_filters_by_queue(q: &TestQueue) {
    let mut store = q.open();
    for (id, queue) in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("d1", "default")] {
        add(&mut store, id, queue, 0, 0);
    }
    store
        .claim_at(&serving("w", &["a"]), at(1))
        .unwrap()
        .unwrap();
    let only = |queue: &str, states: &[JobState]| ListFilter {
        states: states.to_vec(),
        queue: Some(queue.to_owned()),
        ..ListFilter::default()
    };
    let page = store.list(&only("a", &[]), Some(1)).unwrap();
    assert_eq!((page.jobs[0].id.as_str(), page.total), ("a2", 2));
    let page = store
        .list(&only("a", &[JobState::Processing]), None)
        .unwrap();
    assert_eq!((page.jobs[0].id.as_str(), page.total), ("a1", 1));
    assert_eq!(store.list(&only("nope", &[]), None).unwrap().total, 0);
    assert_eq!(store.get("b1").unwrap().queue, "b");
}

/// `queue list`'s counts per queue: (name, waiting, running, blocked).
fn counts(store: &mut Store) -> Vec<(String, u64, u64, u64)> {
    let queues = store.queues().unwrap();
    queues
        .into_iter()
        .map(|q| (q.name, q.waiting, q.running, q.blocked))
        .collect()
}

fn row(name: &str, waiting: u64, running: u64, blocked: u64) -> (String, u64, u64, u64) {
    (name.to_owned(), waiting, running, blocked)
}

/// The counts stay exact through every way a job enters or leaves
/// blocked, waiting and running: a claim, a job moved to another queue, a
/// dependency completing, failing (its dependents cancelled) and restarted
/// (they wait again), and a purge.
fn queue_counts_follow_blocked_waiting_and_running_jobs_in_every_queue(q: &TestQueue) {
    let mut store = q.open();
    for job in [
        r#"{"id":"a1","command":"x","queue":"a","max_retries":0}"#,
        r#"{"id":"a2","command":"x","queue":"a","after":["a1"]}"#,
        r#"{"id":"b1","command":"x","queue":"b","after":["a1"]}"#,
        r#"{"id":"b3","command":"x","queue":"b","delay":"1h"}"#,
        r#"{"id":"b2","command":"x","queue":"b","after":["a1","b3"]}"#,
        r#"{"id":"d1","command":"x"}"#,
    ] {
        enqueue(&mut store, job, at(0));
    }
    assert_eq!(
        counts(&mut store),
        [
            row("a", 2, 0, 1),
            row("b", 3, 0, 2),
            row("default", 1, 0, 0)
        ]
    );
    // a1 runs (claimed from queue a) and ends as `outcome` at `at(secs)`.
    let run_a1 = |store: &mut Store, outcome, secs, before_end: &dyn Fn(&mut Store)| {
        let a1 = store
            .claim_at(&serving("w", &["a"]), at(secs))
            .unwrap()
            .unwrap();
        assert_eq!(a1.id, "a1");
        before_end(store);
        let result = AttemptResult::new(outcome);
        store
            .at(at(secs))
            .finish(&finishes(&[a1], &result), &policy(), None)
            .unwrap();
    };
    // While a1 runs, a blocked job moves to another queue; then a1 dies:
    // a2, b1 and b2 are cancelled (b2 still waiting for b3 too).
    run_a1(&mut store, AttemptOutcome::Failed, 1, &|store| {
        let edit = JobEdit {
            queue: Some(name("c")),
            ..JobEdit::default()
        };
        store.edit("b1", &edit).unwrap();
        assert_eq!(
            counts(store),
            [
                row("a", 1, 1, 1),
                row("b", 2, 0, 1),
                row("c", 1, 0, 1),
                row("default", 1, 0, 0)
            ],
            "a claim, and a blocked job moved to another queue"
        );
    });
    assert_eq!(
        counts(&mut store),
        [row("b", 1, 0, 0), row("default", 1, 0, 0)]
    );
    // Restarted, a1 brings them back blocked; completed, it frees a2 and
    // b1, while b2 still waits for b3.
    store
        .at(at(3))
        .act_on_one(BulkAction::RetryDead, "a1")
        .unwrap();
    assert_eq!(
        counts(&mut store),
        [
            row("a", 2, 0, 1),
            row("b", 2, 0, 1),
            row("c", 1, 0, 1),
            row("default", 1, 0, 0)
        ]
    );
    run_a1(&mut store, AttemptOutcome::Succeeded, 4, &|_| {});
    let left = [
        row("a", 1, 0, 0),
        row("b", 2, 0, 1),
        row("c", 1, 0, 0),
        row("default", 1, 0, 0),
    ];
    assert_eq!(counts(&mut store), left);
    // Finished history purged: the counts of what is left do not move.
    assert_eq!(store.purge_before(at(100)).unwrap(), ["a1"]);
    assert_eq!(counts(&mut store), left);
}
