//! Conformance: the jobs search (the dashboard's jobs page and
//! `/api/jobs`): keyset pages newest first, filters that combine, a text
//! that means only itself, and pages that stop at the row bound
//! ([`SEARCH_SCAN_ROWS`], 50 in tests) and go on from there.

use super::*;
use crate::store::dashboard::{
    JobCursor, JobSearch, SEARCH_LIMIT_MAX, SEARCH_SCAN_ROWS, SearchPage,
};

conformance! {
    search_pages_meet_every_job_once_newest_first_while_more_arrive,
    search_filters_by_states_queue_and_text_together,
    search_text_is_literal_and_folds_only_ascii_letters,
    hostile_search_text_finds_nothing_and_bad_requests_are_refused,
    a_search_stops_at_its_row_bound_and_the_next_page_goes_on_from_there,
}

fn search(states: &[JobState], queue: Option<&str>, text: Option<&str>, limit: u32) -> JobSearch {
    JobSearch {
        states: states.to_vec(),
        queue: queue.map(str::to_owned),
        text: text.map(str::to_owned),
        before: None,
        limit,
    }
}

fn ids(page: &SearchPage) -> Vec<String> {
    page.jobs.iter().map(|j| j.id.clone()).collect()
}

/// Enqueues every job of `jobs` (JSON objects) in one batch.
fn enqueue_all(store: &mut Store, jobs: impl IntoIterator<Item = serde_json::Value>) {
    let batch: Vec<(usize, NewJob)> = jobs
        .into_iter()
        .enumerate()
        .map(|(line, job)| (line + 1, parse_job(&job.to_string()).unwrap()))
        .collect();
    store.enqueue_at(&batch, &DEFAULTS, at(0)).unwrap();
}

/// Every page of `search`, following `next` until there is none; `between`
/// runs before each page after the first. Returns the pages.
fn every_page(
    store: &mut Store,
    search: &JobSearch,
    mut between: impl FnMut(&mut Store, usize),
) -> Vec<SearchPage> {
    let mut pages: Vec<SearchPage> = Vec::new();
    let mut search = search.clone();
    loop {
        if !pages.is_empty() {
            between(store, pages.len());
        }
        let page = store.search_jobs(&search).unwrap();
        assert!(page.jobs.len() <= search.limit as usize);
        let next = page.next;
        pages.push(page);
        match next {
            Some(cursor) => {
                assert!(
                    search.before.is_none_or(|b| cursor < b),
                    "the cursor moves on"
                );
                search.before = Some(cursor);
            }
            None => return pages,
        }
        assert!(pages.len() < 1000, "paging never ends");
    }
}

fn all_ids(pages: &[SearchPage]) -> Vec<String> {
    pages.iter().flat_map(ids).collect()
}

/// `j{from}` down to `j{to}`, those `keep` keeps.
fn newest_first(from: usize, to: usize, keep: impl Fn(usize) -> bool) -> Vec<String> {
    (to..=from)
        .rev()
        .filter(|&i| keep(i))
        .map(|i| format!("j{i}"))
        .collect()
}

fn search_pages_meet_every_job_once_newest_first_while_more_arrive(q: &TestQueue) {
    let mut store = q.open();
    enqueue_all(
        &mut store,
        (0..30).map(|i| serde_json::json!({"id": format!("j{i}"), "command": format!("run {i}")})),
    );
    for i in (0..30).step_by(3) {
        store.cancel_at(&format!("j{i}"), at(1)).unwrap();
    }
    // New jobs between pages are newer than every cursor: they wait for
    // the first page of a new search and never shift the pages here.
    let arrived = std::cell::Cell::new(0);
    let arrive = |store: &mut Store, _page: usize| {
        arrived.set(arrived.get() + 1);
        let id = format!("new{}", arrived.get());
        enqueue(
            store,
            &format!(r#"{{"id":"{id}","command":"run new"}}"#),
            at(2),
        );
    };

    let pages = every_page(&mut store, &search(&[], None, None, 7), arrive);
    assert_eq!(all_ids(&pages), newest_first(29, 0, |_| true));
    let sizes: Vec<usize> = pages.iter().map(|p| p.jobs.len()).collect();
    assert_eq!(sizes, [7, 7, 7, 7, 2]);
    assert!(pages.iter().all(|p| p.scanned_all));

    // Several states: each state's range merged, each job once.
    let both = search(&[JobState::Cancelled, JobState::Pending], None, None, 4);
    let before_search: Vec<String> = (1..=arrived.get())
        .rev()
        .map(|k| format!("new{k}"))
        .collect();
    let pages = every_page(&mut store, &both, arrive);
    assert_eq!(
        all_ids(&pages),
        [before_search, newest_first(29, 0, |_| true)].concat()
    );
    // A page that ends exactly at the last match has no next.
    let cancelled = search(&[JobState::Cancelled], None, None, 5);
    let pages = every_page(&mut store, &cancelled, |_, _| {});
    assert_eq!(all_ids(&pages), newest_first(29, 0, |i| i % 3 == 0));
    assert_eq!(pages.len(), 2);

    let text = search(&[], None, Some("RUN 1"), 3);
    let pages = every_page(&mut store, &text, arrive);
    assert_eq!(
        all_ids(&pages),
        newest_first(19, 1, |i| i == 1 || (10..=19).contains(&i))
    );
    assert!(pages.iter().all(|p| p.scanned_all));
    // The first page of a new search shows what arrived meanwhile.
    let first = store.search_jobs(&search(&[], None, None, 2)).unwrap();
    assert!(ids(&first)[0].starts_with("new"), "{:?}", ids(&first));
}

fn search_filters_by_states_queue_and_text_together(q: &TestQueue) {
    let mut store = q.open();
    enqueue_all(
        &mut store,
        (0..12).map(|i| {
            let queue = if i % 2 == 0 { "mail" } else { "default" };
            let command = if i % 4 < 2 {
                "send report"
            } else {
                "resize image"
            };
            serde_json::json!({"id": format!("j{i}"), "command": command, "queue": queue})
        }),
    );
    for i in [0, 1, 4, 9] {
        store.cancel_at(&format!("j{i}"), at(1)).unwrap();
    }
    run_once(&mut store, "j2", AttemptOutcome::Succeeded, at(2));
    let cases = [
        (
            search(&[], Some("mail"), None, 50),
            vec!["j10", "j8", "j6", "j4", "j2", "j0"],
        ),
        (
            search(&[], None, Some("report"), 50),
            vec!["j9", "j8", "j5", "j4", "j1", "j0"],
        ),
        (
            search(&[], Some("mail"), Some("report"), 50),
            vec!["j8", "j4", "j0"],
        ),
        (
            search(&[JobState::Cancelled], Some("mail"), None, 50),
            vec!["j4", "j0"],
        ),
        (
            search(
                &[JobState::Cancelled, JobState::Completed],
                None,
                Some("image"),
                50,
            ),
            vec!["j2"],
        ),
        (
            search(
                &[JobState::Cancelled, JobState::Pending],
                Some("default"),
                Some("report"),
                50,
            ),
            vec!["j9", "j5", "j1"],
        ),
        (search(&[JobState::Dead], None, None, 50), vec![]),
    ];
    for (asked, expected) in cases {
        let page = store.search_jobs(&asked).unwrap();
        assert_eq!(ids(&page), expected, "{asked:?}");
        assert_eq!((page.next, page.scanned_all), (None, true), "{asked:?}");
    }
    let none = store
        .search_jobs(&search(&[], Some("no-such-queue"), None, 10))
        .unwrap();
    assert!(none.jobs.is_empty() && none.next.is_none());
}

fn search_text_is_literal_and_folds_only_ascii_letters(q: &TestQueue) {
    let mut store = q.open();
    let jobs = [
        ("a_b", "true"),
        ("axb", "true"),
        ("pct", "echo 100%"),
        ("pct-not", "echo 1000"),
        ("slash", r"copy c:\dir"),
        ("slash-not", "copy c:/dir"),
        ("Report-7", "Hello WORLD"),
        ("accent", "bake Éclair"),
    ];
    enqueue_all(
        &mut store,
        jobs.iter()
            .map(|(id, command)| serde_json::json!({"id": id, "command": command})),
    );
    let found = |store: &mut Store, text: &str| {
        let mut found = ids(&store
            .search_jobs(&search(&[], None, Some(text), 50))
            .unwrap());
        found.sort();
        found
    };
    assert_eq!(found(&mut store, "_"), ["a_b"]);
    assert_eq!(found(&mut store, "a_b"), ["a_b"]);
    assert_eq!(found(&mut store, "%"), ["pct"]);
    assert_eq!(found(&mut store, "0%"), ["pct"]);
    assert_eq!(found(&mut store, r"\"), ["slash"]);
    assert_eq!(found(&mut store, r"c:\d"), ["slash"]);
    assert_eq!(found(&mut store, "report-7"), ["Report-7"]);
    assert_eq!(found(&mut store, "hello world"), ["Report-7"]);
    assert_eq!(found(&mut store, "Éclair"), ["accent"]);
    // Only ASCII letters fold, on both backends.
    assert!(found(&mut store, "éclair").is_empty());
    assert_eq!(found(&mut store, "ÉCLAIR"), ["accent"]);
    assert_eq!(found(&mut store, "éCLAIR"), Vec::<String>::new());
    assert_eq!(found(&mut store, "É").len(), 1);
}

fn hostile_search_text_finds_nothing_and_bad_requests_are_refused(q: &TestQueue) {
    let mut store = q.open();
    enqueue_all(
        &mut store,
        (0..3).map(|i| serde_json::json!({"id": format!("j{i}"), "command": "x"})),
    );
    for text in [
        "'; DROP TABLE jobs; --",
        "\" OR 1=1 --",
        "<script>alert(1)</script>",
        "%' OR '%'='",
        "$1",
        "?1",
        "\u{202e}x",
    ] {
        let page = store
            .search_jobs(&search(&[], None, Some(text), 10))
            .unwrap();
        assert!(page.jobs.is_empty(), "{text:?}");
        let page = store
            .search_jobs(&search(&[], Some(text), None, 10))
            .unwrap();
        assert!(page.jobs.is_empty(), "queue {text:?}");
    }
    assert_eq!(
        store
            .search_jobs(&search(&[], None, Some(""), 10))
            .unwrap()
            .jobs
            .len(),
        3,
        "an empty text filters nothing"
    );
    let refused = |store: &mut Store, asked: JobSearch| {
        let error = store.search_jobs(&asked).unwrap_err();
        assert!(matches!(error, Error::Invalid(_)), "{asked:?}: {error}");
    };
    refused(&mut store, search(&[], None, Some("a\0b"), 10));
    refused(&mut store, search(&[], None, Some(&"x".repeat(1001)), 10));
    refused(&mut store, search(&[], None, None, 0));
    refused(&mut store, search(&[], None, None, SEARCH_LIMIT_MAX + 1));
    let longest = search(&[], None, Some(&"x".repeat(1000)), SEARCH_LIMIT_MAX);
    assert!(store.search_jobs(&longest).unwrap().jobs.is_empty());
    // A cursor below every job: an empty last page.
    let past = JobSearch {
        before: Some(JobCursor(1)),
        ..search(&[], None, None, 10)
    };
    let page = store.search_jobs(&past).unwrap();
    assert!(page.jobs.is_empty() && page.next.is_none() && page.scanned_all);
    assert_eq!(store.list(&ListFilter::default(), None).unwrap().total, 3);
}

fn a_search_stops_at_its_row_bound_and_the_next_page_goes_on_from_there(q: &TestQueue) {
    let bound = SEARCH_SCAN_ROWS as usize;
    let n = bound * 2 + 30;
    let needles = [5, bound + 20, 2 * bound + 20];
    let mut store = q.open();
    enqueue_all(
        &mut store,
        (0..n).map(|i| {
            let command = if needles.contains(&i) {
                "needle"
            } else {
                "hay"
            };
            let queue = if i % 4 < 2 { "half" } else { "default" };
            serde_json::json!({"id": format!("j{i}"), "command": command, "queue": queue})
        }),
    );
    // A text on every job: each page reads `bound` jobs, finds at most one.
    let pages = every_page(
        &mut store,
        &search(&[], None, Some("needle"), 10),
        |_, _| {},
    );
    assert_eq!(
        all_ids(&pages),
        newest_first(n - 1, 0, |i| needles.contains(&i))
    );
    let shape: Vec<(usize, bool)> = pages
        .iter()
        .map(|p| (p.jobs.len(), p.scanned_all))
        .collect();
    assert_eq!(shape, [(1, false), (1, false), (1, true)]);

    // Two states' ranges, each bounded, merged: still every match once.
    for i in (0..n).filter(|i| i % 2 == 0) {
        store.cancel_at(&format!("j{i}"), at(1)).unwrap();
    }
    let both = search(
        &[JobState::Cancelled, JobState::Pending],
        None,
        Some("hay"),
        7,
    );
    let pages = every_page(&mut store, &both, |_, _| {});
    assert_eq!(
        all_ids(&pages),
        newest_first(n - 1, 0, |i| !needles.contains(&i))
    );
    // States within a queue: read along the queue, bounded too (a page
    // of 100 cannot fill from the 50 jobs it may read).
    let in_queue = search(&[JobState::Cancelled], Some("half"), None, 100);
    let pages = every_page(&mut store, &in_queue, |_, _| {});
    assert_eq!(all_ids(&pages), newest_first(n - 1, 0, |i| i % 4 == 0));
    assert!(pages.iter().any(|p| !p.scanned_all));
}
