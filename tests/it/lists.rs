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
