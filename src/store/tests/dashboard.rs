//! Conformance: the dashboard's figures (`overview`, `stats`) follow every
//! change to jobs and attempts on every backend, and the cumulative ones
//! never go down.

use super::*;
use crate::domain::QueueName;
use crate::store::dashboard::{HISTOGRAM_BOUNDS_SECONDS, Histogram, Overview, Stats};

conformance! {
    counts_per_queue_follow_enqueue_claim_finish_cancel_edit_and_purge,
    attempt_counters_only_grow_and_survive_a_purge,
    histograms_are_cumulative_with_bounds_inclusive_and_count_every_attempt,
    wait_is_from_the_due_time_to_the_start,
    lag_is_the_oldest_due_job_per_queue,
    paused_queues_are_named_until_resumed,
    the_last_hour_has_sixty_minutes_and_percentiles_of_what_ran,
    concurrent_finishes_count_every_attempt_once,
}

fn ms(at: Timestamp, millis: i64) -> Timestamp {
    at + jiff::SignedDuration::from_millis(millis)
}

/// The counts of `overview` as (queue, state, jobs).
fn counts(overview: &Overview) -> Vec<(String, JobState, u64)> {
    overview
        .counts
        .iter()
        .map(|c| (c.queue.clone(), c.state, c.jobs))
        .collect()
}

fn row(queue: &str, state: JobState, jobs: u64) -> (String, JobState, u64) {
    (queue.to_owned(), state, jobs)
}

fn add(store: &mut Store, id: &str, queue: &str, secs: i64) {
    let json = format!(r#"{{"id":"{id}","command":"x","queue":"{queue}"}}"#);
    enqueue(store, &json, at(secs));
}

/// Claims the next job at `claimed` and finishes it `outcome` at `ended`.
fn run_one(store: &mut Store, claimed: Timestamp, ended: Timestamp, outcome: AttemptOutcome) {
    let job = store.claim_at(&request("w"), claimed).unwrap().unwrap();
    let result = AttemptResult::new(outcome);
    assert!(
        store
            .finish_at(&job.lease, &result, &policy(), ended, None)
            .unwrap()
            .0
    );
}

fn attempts_of(stats: &Stats, queue: &str, outcome: AttemptOutcome) -> u64 {
    stats
        .attempts
        .iter()
        .find(|a| a.queue == queue && a.outcome == outcome)
        .map_or(0, |a| a.attempts)
}

fn histogram<'a>(
    per_queue: &'a [crate::store::dashboard::QueueHistogram],
    queue: &str,
) -> &'a Histogram {
    &per_queue
        .iter()
        .find(|h| h.queue == queue)
        .unwrap_or_else(|| panic!("no histogram for {queue}"))
        .histogram
}

fn counts_per_queue_follow_enqueue_claim_finish_cancel_edit_and_purge(q: &TestQueue) {
    use JobState::*;
    let mut store = q.open();
    assert!(store.at(at(0)).overview().unwrap().counts.is_empty());
    for i in 0..3 {
        add(&mut store, &format!("a{i}"), "alpha", 0);
    }
    add(&mut store, "b0", "beta", 0);
    assert_eq!(
        counts(&store.at(at(0)).overview().unwrap()),
        [row("alpha", Pending, 3), row("beta", Pending, 1)]
    );
    // a0 runs and completes; a1 is claimed and stays running.
    run_one(&mut store, at(1), at(2), AttemptOutcome::Succeeded);
    store.claim_at(&request("w"), at(3)).unwrap().unwrap();
    store.cancel_at("b0", at(4)).unwrap();
    assert_eq!(
        counts(&store.at(at(4)).overview().unwrap()),
        [
            row("alpha", Pending, 1),
            row("alpha", Processing, 1),
            row("alpha", Completed, 1),
            row("beta", Cancelled, 1),
        ]
    );
    // edit --queue moves a waiting job's count with it.
    let edit = JobEdit {
        queue: Some(QueueName::parse("gamma").unwrap()),
        ..JobEdit::default()
    };
    store.at(at(5)).edit("a2", &edit).unwrap();
    assert_eq!(
        counts(&store.at(at(5)).overview().unwrap()),
        [
            row("alpha", Processing, 1),
            row("alpha", Completed, 1),
            row("beta", Cancelled, 1),
            row("gamma", Pending, 1),
        ]
    );
    assert_eq!(store.purge_before(at(10)).unwrap().len(), 2);
    let overview = store.at(at(10)).overview().unwrap();
    assert_eq!(
        counts(&overview),
        [row("alpha", Processing, 1), row("gamma", Pending, 1)]
    );
    // The per-state totals agree with the per-queue counts.
    let totals = store.counts().unwrap();
    assert_eq!(
        (totals[&Pending], totals[&Processing], totals[&Completed]),
        (1, 1, 0)
    );
    assert_eq!(totals.len(), JobState::ALL.len(), "every state, zeros too");
}

fn attempt_counters_only_grow_and_survive_a_purge(q: &TestQueue) {
    let mut store = q.open();
    for i in 0..4 {
        add(&mut store, &format!("j{i}"), "main", 0);
    }
    run_one(&mut store, at(1), at(2), AttemptOutcome::Succeeded);
    run_one(&mut store, at(3), at(4), AttemptOutcome::Succeeded);
    // Fails once (max_retries 2: it waits for its retry), then is rescued.
    run_one(&mut store, at(5), at(6), AttemptOutcome::Failed);
    store.claim_at(&request("lost"), at(7)).unwrap().unwrap();
    let held = store.held_expired_at(at(100)).unwrap();
    assert_eq!(held.len(), 1);
    store.rescue_expired_at(&held, &policy(), at(100)).unwrap();
    let before = store.stats().unwrap();
    assert_eq!(attempts_of(&before, "main", AttemptOutcome::Succeeded), 2);
    assert_eq!(attempts_of(&before, "main", AttemptOutcome::Failed), 1);
    assert_eq!(
        attempts_of(&before, "main", AttemptOutcome::LeaseExpired),
        1
    );
    assert_eq!(histogram(&before.duration, "main").count, 4);
    assert_eq!(store.purge_before(at(200)).unwrap().len(), 2);
    assert_eq!(store.stats().unwrap(), before, "a purge lowers nothing");
    run_one(&mut store, at(201), at(202), AttemptOutcome::Succeeded);
    let after = store.stats().unwrap();
    assert_eq!(attempts_of(&after, "main", AttemptOutcome::Succeeded), 3);
    assert_eq!(histogram(&after.duration, "main").count, 5);
}

fn histograms_are_cumulative_with_bounds_inclusive_and_count_every_attempt(q: &TestQueue) {
    let mut store = q.open();
    // Run times in ms: exactly on the first bound, just above it, exactly
    // 2.5 s, and above the last bound (an hour).
    let runs = [10, 11, 2500, 3_600_001];
    for (i, _) in runs.iter().enumerate() {
        add(&mut store, &format!("j{i}"), "h", 0);
    }
    let mut start = at(10);
    for run in runs {
        run_one(&mut store, start, ms(start, run), AttemptOutcome::Succeeded);
        start = ms(start, run + 1000);
    }
    let stats = store.stats().unwrap();
    let h = histogram(&stats.duration, "h");
    assert_eq!(h.count, 4);
    assert!(
        (h.sum_seconds - 3_602.522).abs() < 1e-6,
        "{}",
        h.sum_seconds
    );
    assert_eq!(h.cumulative.len(), HISTOGRAM_BOUNDS_SECONDS.len());
    let expected: Vec<u64> = HISTOGRAM_BOUNDS_SECONDS
        .iter()
        .map(|bound| {
            runs.iter()
                .filter(|&&r| r as f64 / 1000.0 <= *bound)
                .count() as u64
        })
        .collect();
    assert_eq!(h.cumulative, expected);
    assert_eq!(h.cumulative[0], 1, "10 ms is in the 0.01 s bucket");
    assert!(h.cumulative.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        *h.cumulative.last().unwrap(),
        3,
        "the hour-long one only in +Inf"
    );
}

fn wait_is_from_the_due_time_to_the_start(q: &TestQueue) {
    let mut store = q.open();
    enqueue(
        &mut store,
        r#"{"id":"later","command":"x","queue":"w","run_at":"2027-01-15T08:00:00Z"}"#,
        at(0),
    );
    add(&mut store, "now", "w", 0);
    // Due at at(0), started 3 s later.
    run_one(&mut store, at(3), at(4), AttemptOutcome::Succeeded);
    let stats = store.stats().unwrap();
    let h = histogram(&stats.wait, "w");
    assert_eq!(h.count, 1);
    assert!((h.sum_seconds - 3.0).abs() < 1e-9);
    let first_at_least_3s = HISTOGRAM_BOUNDS_SECONDS.iter().position(|&b| b >= 3.0);
    assert_eq!(h.cumulative[first_at_least_3s.unwrap() - 1], 0);
    assert_eq!(h.cumulative[first_at_least_3s.unwrap()], 1);
}

fn lag_is_the_oldest_due_job_per_queue(q: &TestQueue) {
    let mut store = q.open();
    add(&mut store, "old", "slow", 0);
    add(&mut store, "new", "slow", 5);
    add(&mut store, "fresh", "fast", 9);
    enqueue(
        &mut store,
        r#"{"id":"future","command":"x","queue":"later","delay":"1h"}"#,
        at(0),
    );
    add(&mut store, "running", "busy", 0);
    let job = store.claim_at(&request("w"), at(0)).unwrap().unwrap();
    assert_eq!(job.id, "old", "claim order: the oldest first");
    // "slow" still holds "new" (due at 5), so its lag is 10 - 5.
    let lag: Vec<(String, f64)> = store
        .at(at(10))
        .overview()
        .unwrap()
        .lag
        .into_iter()
        .map(|l| (l.queue, l.seconds))
        .collect();
    assert_eq!(
        lag,
        [
            ("busy".to_owned(), 10.0),
            ("fast".to_owned(), 1.0),
            ("slow".to_owned(), 5.0)
        ],
        "the delayed queue has nothing due"
    );
}

fn the_last_hour_has_sixty_minutes_and_percentiles_of_what_ran(q: &TestQueue) {
    let mut store = q.open();
    for i in 0..12 {
        add(&mut store, &format!("j{i}"), "m", 0);
    }
    let base = at(0);
    let minute = |m: i64| ms(base, m * 60_000);
    // Two hours ago: outside the hour.
    run_one(
        &mut store,
        minute(0),
        ms(minute(0), 100),
        AttemptOutcome::Succeeded,
    );
    // In the hour: 9 succeed in 1 s each, one fails after 20 s and one times out
    // after 123 s.
    for _ in 0..9 {
        run_one(
            &mut store,
            minute(100),
            ms(minute(100), 1000),
            AttemptOutcome::Succeeded,
        );
    }
    run_one(
        &mut store,
        minute(110),
        ms(minute(110), 20_000),
        AttemptOutcome::Failed,
    );
    run_one(
        &mut store,
        minute(118),
        ms(minute(118), 123_000),
        AttemptOutcome::TimedOut,
    );
    let now = ms(minute(120), 30_000);
    let overview = store.at(now).overview().unwrap();
    assert_eq!(overview.now, now);
    assert_eq!(overview.last_hour.len(), 60);
    let first = &overview.last_hour[0];
    assert_eq!(first.start, minute(61), "oldest first, whole minutes");
    assert_eq!(overview.last_hour[59].start, minute(120));
    let per_minute = |m: i64| {
        let b = &overview.last_hour[(m - 61) as usize];
        (b.succeeded, b.failed)
    };
    assert_eq!(per_minute(100), (9, 0));
    assert_eq!(per_minute(110), (0, 1));
    assert_eq!(per_minute(120), (0, 1), "the timeout ended at minute 120");
    let total: u64 = overview
        .last_hour
        .iter()
        .map(|b| b.succeeded + b.failed)
        .sum();
    assert_eq!(total, 11, "the run two hours ago is not in the hour");
    assert_eq!(overview.duration_p50_ms, Some(1000));
    // The 11th of 11 (nearest rank of 95%): 123 s, rounded up to two digits.
    assert_eq!(overview.duration_p95_ms, Some(130_000));
}

/// Four connections claim and finish 400 jobs at once, 4 per transaction
/// (the conformance suite's drain): every attempt is counted once
/// (PostgreSQL's shards sum to it, and no writer failed waiting on another's
/// counter row).
fn concurrent_finishes_count_every_attempt_once(q: &TestQueue) {
    super::drain_from_four_connections(q, 4);
    let mut store = q.open();
    let stats = store.stats().unwrap();
    assert_eq!(
        attempts_of(&stats, "default", AttemptOutcome::Succeeded),
        400
    );
    assert_eq!(histogram(&stats.duration, "default").count, 400);
    assert_eq!(histogram(&stats.wait, "default").count, 400);
    assert_eq!(
        counts(&store.at(at(2)).overview().unwrap()),
        [row("default", JobState::Completed, 400)]
    );
}

fn paused_queues_are_named_until_resumed(q: &TestQueue) {
    let mut store = q.open();
    assert!(store.at(at(0)).overview().unwrap().paused.is_empty());
    add(&mut store, "a0", "alpha", 0);
    super::queues::pause(&mut store, "zeta", true);
    super::queues::pause(&mut store, "alpha", true);
    super::queues::pause(&mut store, "beta", true);
    super::queues::pause(&mut store, "beta", false);
    let overview = store.at(at(1)).overview().unwrap();
    assert_eq!(overview.paused, ["alpha", "zeta"]);
    // A paused queue's due job still counts its lag: the gauge says why.
    assert_eq!(overview.lag.len(), 1);
}
