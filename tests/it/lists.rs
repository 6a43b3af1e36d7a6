//! `list` and `dlq list`: newest first, the count of what is not shown,
//! `--all`, several states, the total in JSON, and the DLQ's last errors.

use crate::support::*;
use serde_json::Value;
use std::process::Output;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The ids in a `list` table (its first column, after the heading).
fn ids(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect()
}

fn listed(json: &Value) -> Vec<&str> {
    json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect()
}

#[test]
fn list_shows_the_newest_first_and_says_how_many_more() {
    let env = TestEnv::new();
    for i in 0..5 {
        env.enqueue(&format!(r#"{{"id":"j{i}","command":"true","delay":"1h"}}"#));
    }
    env.ok(&["cancel", "j1"]);

    let out = env.run(&["list", "--limit", "2"]);
    assert!(out.status.success());
    assert_eq!(ids(&out), ["j4", "j3"]);
    assert_eq!(text(&out.stderr), "3 more (use --limit or --all)\n");

    let out = env.run(&["list", "--all"]);
    assert_eq!(ids(&out), ["j4", "j3", "j2", "j1", "j0"]);
    assert_eq!(text(&out.stderr), "", "nothing hidden, nothing said");

    let page = env.json(&["list", "--limit", "2"]);
    assert_eq!(listed(&page), ["j4", "j3"]);
    assert_eq!(page["total"], 5);

    // Several states, merged newest first; the total counts that filter.
    let page = env.json(&["list", "--state", "cancelled,pending", "--limit", "4"]);
    assert_eq!(listed(&page), ["j4", "j3", "j2", "j1"]);
    assert_eq!(page["total"], 5);
    let page = env.json(&["list", "--state", "cancelled"]);
    assert_eq!(
        (listed(&page), page["total"].as_u64()),
        (vec!["j1"], Some(1))
    );
    let page = env.json(&["list", "--state", "dead"]);
    assert_eq!((listed(&page).len(), page["total"].as_u64()), (0, Some(0)));

    for args in [
        &["list", "--limit", "2", "--all"][..],
        &["list", "--state", "pending,bogus"],
        &["dlq", "list", "--all", "-n", "3"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// The cursor in a search page's last stderr line, "more: --before N".
fn more_before(out: &Output) -> Option<String> {
    let stderr = text(&out.stderr);
    let last = stderr.lines().last()?;
    Some(last.strip_prefix("more: --before ")?.to_owned())
}

#[test]
fn list_search_pages_with_before_and_prints_the_dashboards_json() {
    let env = TestEnv::new();
    for i in 0..7 {
        let command = if i % 2 == 0 {
            "send Report"
        } else {
            "resize 100%"
        };
        env.enqueue(&format!(
            r#"{{"id":"j{i}","command":"{command} {i}","delay":"1h"}}"#
        ));
    }
    env.ok(&["cancel", "j4"]);

    let out = env.run(&["list", "--search", "REPORT", "--limit", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ids(&out), ["j6", "j4"]);
    let cursor = more_before(&out).expect("a next page");
    let out = env.run(&["list", "--search", "report", "-n", "2", "--before", &cursor]);
    assert_eq!(ids(&out), ["j2", "j0"]);
    assert_eq!(text(&out.stderr), "", "the last page: no cursor");
    // States and the text combine; % is a plain character.
    let out = env.run(&["list", "--search", "report", "--state", "pending"]);
    assert_eq!(ids(&out), ["j6", "j2", "j0"]);
    let out = env.run(&["list", "--search", "0%"]);
    assert_eq!(ids(&out), ["j5", "j3", "j1"]);

    // JSON: the shape /api/jobs prints, each job as `list --json` has it.
    let page = env.json(&["list", "--search", "report", "--limit", "3"]);
    assert_eq!(listed(&page), ["j6", "j4", "j2"]);
    assert_eq!(page["scanned_all"], true);
    let next = page["next"].as_str().expect("the cursor is a string");
    let listed_all = env.json(&["list", "--all"]);
    let item = |page: &Value, id: &str| {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(item(&page, "j4"), item(&listed_all, "j4"));
    // --before alone: every job older than the cursor.
    let older = env.json(&["list", "--before", next]);
    assert_eq!(listed(&older), ["j1", "j0"]);
    assert_eq!(older["next"], Value::Null);

    for args in [
        &["list", "--before", "bogus"][..],
        &["list", "--before", "0"],
        &["list", "--search", "x", "--all"],
        &["list", "--search", "x", "--blocked"],
        &["list", "--search", "x", "--limit", "201"],
        &["list", "--search", "x", "--limit", "0"],
    ] {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).starts_with("queuectl: ") || text(&out.stderr).contains("error:")
        );
    }
}

#[test]
fn dlq_list_shows_each_jobs_last_error_clipped_and_json_in_full() {
    let env = TestEnv::new();
    let long = "e".repeat(300);
    env.enqueue(&format!(
        r#"{{"id":"broken","command":"echo {long} >&2; exit 3","max_retries":0}}"#
    ));
    env.enqueue(r#"{"id":"fine","command":"true"}"#);
    env.ok(&["worker", "run", "--drain"]);

    let page = env.json(&["dlq", "list"]);
    assert_eq!(listed(&page), ["broken"]);
    assert_eq!(page["total"], 1);
    let error = page["jobs"][0]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("exit code 3") && error.contains(&long),
        "{error}"
    );

    let out = env.ok(&["dlq", "list"]);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().contains("LAST ERROR"), "{out}");
    let row = lines.next().unwrap();
    assert!(row.starts_with("broken "), "{row}");
    assert!(row.contains("exit code 3"), "{row}");
    assert!(row.ends_with('…'), "clipped: {row}");
    assert!(
        row.chars().count() < 160,
        "{} characters: {row}",
        row.chars().count()
    );
    assert_eq!(lines.next(), None, "only dead jobs");
}
