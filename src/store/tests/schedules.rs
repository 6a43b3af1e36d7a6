//! Conformance of the `schedules` table on each backend: rows, fires on
//! demand, and the workers' fallback, whose compare-and-set must make each
//! elapse enqueue exactly once however many stores race for it.

use super::*;
use crate::domain::schedule::{Driver, Overlap, ScheduleName};
use crate::store::schedules::{FireOutcome, NewSchedule};
use std::sync::{Arc, Barrier};

conformance! {
    schedules_are_added_listed_replaced_and_removed,
    firing_on_demand_enqueues_the_template_marked_with_its_schedule,
    an_elapse_while_the_last_job_is_unfinished_follows_the_overlap_policy,
    two_stores_racing_one_elapse_enqueue_once,
    a_missed_elapse_fires_once_only_when_persistent,
    next_schedule_in_is_the_next_workers_elapse,
}

pub(super) fn schedule(name: &str, calendar: &str, driver: Driver) -> NewSchedule {
    NewSchedule {
        name: ScheduleName::parse(name).unwrap(),
        on_calendar: vec![calendar.to_owned()],
        time_zone: "UTC".into(),
        job: serde_json::json!({"command": "echo tick", "priority": 2, "env": {"TOKEN": "s3cret"}}),
        overlap: Overlap::Queue,
        persistent: false,
        randomized_delay: Duration::ZERO,
        driver,
        host: Some("h1".into()).filter(|_| driver == Driver::Systemd),
        managed: false,
    }
}

fn schedules_are_added_listed_replaced_and_removed(q: &TestQueue) {
    let mut store = q.open();
    store
        .at(at(0))
        .add_schedule(
            &schedule("nightly", "Mon..Fri 02:00", Driver::Systemd),
            false,
        )
        .unwrap();
    store
        .at(at(0))
        .add_schedule(&schedule("often", "*:*:0/10", Driver::Workers), false)
        .unwrap();
    let rows = store.schedules().unwrap();
    assert_eq!(rows.len(), 2);
    let (nightly, often) = (&rows[0], &rows[1]);
    assert_eq!(nightly.name, "nightly");
    assert_eq!(nightly.on_calendar, ["Mon..Fri 02:00"]);
    assert_eq!(nightly.driver, Driver::Systemd);
    assert_eq!(nightly.host.as_deref(), Some("h1"));
    assert_eq!(nightly.next_elapse_at, None);
    assert_eq!(often.next_elapse_at, Some(at(10)));
    assert_eq!(often.created_at, at(0));
    // The env's values are kept but never shown.
    assert_eq!(often.job["env"]["TOKEN"], "s3cret");
    let shown = serde_json::to_string(often).unwrap();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains(r#""env_keys":["TOKEN"]"#), "{shown}");

    let again = store
        .add_schedule(&schedule("often", "daily", Driver::Workers), false)
        .unwrap_err();
    assert!(matches!(again, Error::Conflict(_)), "{again}");
    let mut changed = schedule("often", "*:*:0/30", Driver::Workers);
    changed.overlap = Overlap::Skip;
    store.at(at(40)).add_schedule(&changed, true).unwrap();
    let often = &store.schedules().unwrap()[1];
    assert_eq!(often.on_calendar, ["*:*:0/30"]);
    assert_eq!(often.overlap, Overlap::Skip);
    assert_eq!(often.next_elapse_at, Some(at(60)));
    assert_eq!((often.created_at, often.updated_at), (at(0), at(40)));

    // A calendar with no elapse left is refused for the workers.
    let never = store
        .add_schedule(&schedule("never", "2020-01-01", Driver::Workers), false)
        .unwrap_err();
    assert!(never.to_string().contains("never elapses"), "{never}");

    assert!(store.remove_schedule("often").unwrap());
    assert!(!store.remove_schedule("often").unwrap());
    assert_eq!(store.schedules().unwrap().len(), 1);
}

fn firing_on_demand_enqueues_the_template_marked_with_its_schedule(q: &TestQueue) {
    let mut store = q.open();
    let missing = store.fire_schedule("nope", &DEFAULTS).unwrap_err();
    assert!(matches!(missing, Error::ScheduleNotFound(_)), "{missing}");
    store
        .at(at(0))
        .add_schedule(&schedule("nightly", "daily", Driver::Systemd), false)
        .unwrap();
    let fired = store.at(at(5)).fire_schedule("nightly", &DEFAULTS).unwrap();
    assert_eq!(fired.elapse, None);
    let FireOutcome::Enqueued { id } = &fired.outcome else {
        panic!("{fired:?}");
    };
    let job = store.get(id).unwrap();
    assert_eq!(job.command, "echo tick");
    assert_eq!(job.priority, 2);
    assert_eq!(job.run_at, at(5));
    assert_eq!(job.schedule.as_deref(), Some("nightly"));
    assert_eq!(job.env.as_ref().unwrap()["TOKEN"], "s3cret");
    let row = &store.schedules().unwrap()[0];
    assert_eq!(row.last_job_id.as_deref(), Some(id.as_str()));
    assert_eq!(row.last_job_state, Some(JobState::Pending));
    assert_eq!(row.last_fired_at, Some(at(5)));
}

/// Two connections (two workers, maybe on two hosts) see the same elapse
/// at the same moment, 60 times: each elapse enqueues one job, due at it.
fn two_stores_racing_one_elapse_enqueue_once(q: &TestQueue) {
    const ROUNDS: i64 = 60;
    q.open()
        .at(at(0))
        .add_schedule(&schedule("tick", "*:*:0/10", Driver::Workers), false)
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (db, barrier) = (q.database.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = Store::open(&db, Durability::Normal).unwrap();
                let mut fired = Vec::new();
                for round in 1..=ROUNDS {
                    store.pin_clock(Some(at(10 * round))).unwrap();
                    barrier.wait();
                    fired.push(
                        store
                            .fire_due_schedules(Duration::from_secs(30), &DEFAULTS)
                            .unwrap(),
                    );
                    barrier.wait();
                }
                fired
            })
        })
        .collect();
    let fired: Vec<Vec<Vec<_>>> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    for (round, (first, second)) in fired[0].iter().zip(&fired[1]).enumerate() {
        let both: Vec<_> = first.iter().chain(second).collect();
        assert_eq!(both.len(), 1, "round {round}: {both:?}");
        assert_eq!(both[0].elapse, Some(at(10 * (round as i64 + 1))));
    }
    let mut store = q.open();
    let jobs = store.list(&ListFilter::default(), None).unwrap().jobs;
    assert_eq!(jobs.len(), ROUNDS as usize);
    let mut due: Vec<Timestamp> = jobs.iter().map(|job| job.run_at).collect();
    due.sort();
    let elapses: Vec<Timestamp> = (1..=ROUNDS).map(|r| at(10 * r)).collect();
    assert_eq!(due, elapses, "one job per elapse, due at it");
    assert!(
        jobs.iter()
            .all(|job| job.schedule.as_deref() == Some("tick"))
    );
}

fn a_missed_elapse_fires_once_only_when_persistent(q: &TestQueue) {
    let mut store = q.open();
    let hourly = |name: &str, persistent| NewSchedule {
        persistent,
        ..schedule(name, "hourly", Driver::Workers)
    };
    store
        .at(at(0))
        .add_schedule(&hourly("plain", false), false)
        .unwrap();
    store
        .at(at(0))
        .add_schedule(&hourly("caught-up", true), false)
        .unwrap();
    // Five hours without a worker: the elapse at 1 h was missed.
    let late = at(5 * 3600 + 100);
    let fired = store
        .at(late)
        .fire_due_schedules(Duration::from_secs(60), &DEFAULTS)
        .unwrap();
    assert_eq!(fired.len(), 2, "{fired:?}");
    let outcome = |name: &str| &fired.iter().find(|f| f.schedule == name).unwrap().outcome;
    assert_eq!(outcome("plain"), &FireOutcome::Missed);
    let FireOutcome::Enqueued { id } = outcome("caught-up") else {
        panic!("{fired:?}");
    };
    assert_eq!(
        store.get(id).unwrap().run_at,
        at(3600),
        "due at the missed elapse"
    );
    // Each now waits for the first elapse after now, not for every missed one.
    for row in store.schedules().unwrap() {
        assert_eq!(row.next_elapse_at, Some(at(6 * 3600)), "{}", row.name);
    }
    let again = store
        .at(late)
        .fire_due_schedules(Duration::from_secs(60), &DEFAULTS)
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        store.list(&ListFilter::default(), None).unwrap().jobs.len(),
        1
    );
    // On time, a schedule fires whether persistent or not.
    let on_time = store
        .at(at(6 * 3600 + 10))
        .fire_due_schedules(Duration::from_secs(60), &DEFAULTS)
        .unwrap();
    assert!(
        on_time
            .iter()
            .all(|f| matches!(f.outcome, FireOutcome::Enqueued { .. })),
        "{on_time:?}"
    );
    assert_eq!(on_time.len(), 2);
}

fn next_schedule_in_is_the_next_workers_elapse(q: &TestQueue) {
    let mut store = q.open();
    assert_eq!(store.at(at(0)).next_schedule_in().unwrap(), None);
    store
        .at(at(0))
        .add_schedule(&schedule("timer", "*:*:0/5", Driver::Systemd), false)
        .unwrap();
    assert_eq!(
        store.at(at(0)).next_schedule_in().unwrap(),
        None,
        "a timer's row is not the workers'"
    );
    store
        .at(at(0))
        .add_schedule(&schedule("tick", "*:0/2", Driver::Workers), false)
        .unwrap();
    assert_eq!(
        store.at(at(100)).next_schedule_in().unwrap(),
        Some(Duration::from_secs(20))
    );
    assert_eq!(
        store.at(at(200)).next_schedule_in().unwrap(),
        Some(Duration::ZERO),
        "overdue"
    );
}

/// skip: the unfinished job stands for the elapse; replace: a waiting job
/// takes the template, a running one makes it a skip; queue: another job.
fn an_elapse_while_the_last_job_is_unfinished_follows_the_overlap_policy(q: &TestQueue) {
    let mut store = q.open();
    for (name, overlap) in [
        ("s", Overlap::Skip),
        ("r", Overlap::Replace),
        ("q", Overlap::Queue),
    ] {
        let mut new = schedule(name, "daily", Driver::Systemd);
        new.overlap = overlap;
        store.at(at(0)).add_schedule(&new, false).unwrap();
    }
    let fire = |store: &mut Store, name: &str, t: i64| {
        store
            .at(at(t))
            .fire_schedule(name, &DEFAULTS)
            .unwrap()
            .outcome
    };
    let FireOutcome::Enqueued { id: first } = fire(&mut store, "s", 1) else {
        panic!("a first fire enqueues");
    };
    assert_eq!(
        fire(&mut store, "s", 2),
        FireOutcome::Skipped {
            holder: first.clone()
        }
    );
    assert_eq!(store.list(&ListFilter::default(), None).unwrap().total, 1);

    let FireOutcome::Enqueued { id: waiting } = fire(&mut store, "r", 3) else {
        panic!("a first fire enqueues");
    };
    let mut changed = schedule("r", "daily", Driver::Systemd);
    changed.overlap = Overlap::Replace;
    changed.job = serde_json::json!({"command": "echo v2"});
    store.add_schedule(&changed, true).unwrap();
    assert_eq!(
        fire(&mut store, "r", 4),
        FireOutcome::Replaced {
            id: waiting.clone()
        }
    );
    let job = store.get(&waiting).unwrap();
    assert_eq!((job.command.as_str(), job.run_at), ("echo v2", at(4)));
    // Running now: this elapse is a skip, the running job is left alone.
    let claimed: Vec<String> = store
        .at(at(5))
        .claim(&request("w"), 10)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(claimed.contains(&waiting), "{claimed:?}");
    assert_eq!(
        fire(&mut store, "r", 6),
        FireOutcome::Skipped {
            holder: waiting.clone()
        }
    );
    assert_eq!(store.get(&waiting).unwrap().state, JobState::Processing);
    assert_eq!(
        store.schedules().unwrap()[1].last_job_id.as_deref(),
        Some(waiting.as_str())
    );

    let a = fire(&mut store, "q", 7);
    let b = fire(&mut store, "q", 8);
    assert!(
        matches!((&a, &b), (FireOutcome::Enqueued { id: x }, FireOutcome::Enqueued { id: y }) if x != y),
        "{a:?} {b:?}"
    );
}
