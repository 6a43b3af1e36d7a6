//! The dashboard's jobs search over real HTTP (`/api/jobs` and `/jobs`)
//! against the CLI's `list --search/--before --json`: the same pages, the
//! same items, every job met once while more arrive, filters from the URL,
//! and hostile search text harmless. Status codes of bad input are
//! `web.rs`'s.

use crate::support::TestEnv;
use crate::support::web::WebServer;
use serde_json::Value;

fn ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {page}"))
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `/api/jobs?query`, which must answer 200.
fn api(web: &WebServer, query: &str) -> Value {
    let reply = web.get(&format!("/api/jobs?{query}"));
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    reply.json()
}

/// Twelve waiting jobs `j0`..`j11`: even ones "send report", odd ones
/// "resize 50%"; every third in queue `mail`; j1, j4, j7, j10 cancelled.
fn queue_of_twelve() -> TestEnv {
    let env = TestEnv::new();
    for i in 0..12 {
        let command = if i % 2 == 0 {
            "send report"
        } else {
            "resize 50%"
        };
        let queue = if i % 3 == 0 { "mail" } else { "default" };
        env.enqueue(&format!(
            r#"{{"id":"j{i}","command":"{command} {i}","queue":"{queue}","delay":"1h"}}"#
        ));
    }
    for id in ["j1", "j4", "j7", "j10"] {
        env.ok(&["cancel", id]);
    }
    env
}

#[test]
fn web_api_jobs_pages_meet_every_job_once_while_more_arrive() {
    let mut env = queue_of_twelve();
    let web = env.spawn_web(&[]);
    let mut seen = Vec::new();
    let mut query = "limit=5".to_owned();
    for page_number in 0.. {
        assert!(page_number < 10, "paging never ends: {seen:?}");
        let page = api(&web, &query);
        seen.extend(ids(&page));
        // Jobs that arrive meanwhile are newer than any cursor.
        env.enqueue(&format!(r#"{{"id":"new{page_number}","command":"true"}}"#));
        match page["next"].as_str() {
            Some(next) => query = format!("limit=5&before={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|i| format!("j{i}")).collect();
    assert_eq!(seen, expected);
    // A fresh first page shows them.
    assert_eq!(ids(&api(&web, "limit=1")), ["new2"]);
}

#[test]
fn web_api_jobs_is_list_search_json_page_for_page() {
    let mut env = queue_of_twelve();
    let web = env.spawn_web(&[]);
    // (the URL's query, the same search as `list` arguments)
    let cases: [(&str, &[&str]); 5] = [
        ("q=REPORT&limit=3", &["--search", "REPORT", "--limit", "3"]),
        ("q=50%25", &["--search", "50%"]),
        (
            "q=report&state=cancelled,pending&queue=mail&limit=2",
            &[
                "--search",
                "report",
                "--state",
                "cancelled,pending",
                "--queue",
                "mail",
                "-n",
                "2",
            ],
        ),
        (
            "state=cancelled&state=pending&q=resize&limit=2",
            &[
                "--search",
                "resize",
                "--state",
                "cancelled,pending",
                "-n",
                "2",
            ],
        ),
        ("q=%25&limit=4", &["--search", "%", "-n", "4"]),
    ];
    for (query, args) in cases {
        let mut before: Option<String> = None;
        for _ in 0..10 {
            let (url, mut list) = (query.to_owned(), vec!["list"]);
            list.extend(args);
            let url = match &before {
                Some(cursor) => {
                    list.extend(["--before", cursor]);
                    format!("{url}&before={cursor}")
                }
                None => url,
            };
            let from_web = api(&web, &url);
            let from_cli = env.json(&list);
            assert_eq!(from_web, from_cli, "{url} vs {list:?}");
            match from_web["next"].as_str() {
                Some(next) => before = Some(next.to_owned()),
                None => break,
            }
        }
    }
    // The items are `list --json`'s, field for field.
    let listed = env.json(&["list", "--all"]);
    let searched = api(&web, "q=j5");
    assert_eq!(searched["jobs"][0], listed["jobs"][6], "j5 both ways");
    assert_eq!(ids(&api(&web, "q=50%25&queue=mail")), ["j9", "j3"]);
    assert_eq!(ids(&api(&web, "q=report&state=cancelled")), ["j10", "j4"]);
}

#[test]
fn web_api_hostile_search_text_is_only_text() {
    let mut env = queue_of_twelve();
    env.enqueue(
        r#"{"id":"xss","command":"echo '<script>alert(1)</script>' \"; DROP TABLE jobs; --"}"#,
    );
    let web = env.spawn_web(&[]);
    for (query, expected) in [
        ("q=%3Cscript%3Ealert(1)", vec!["xss"]),
        ("q=%22%3B%20DROP%20TABLE%20jobs%3B%20--", vec!["xss"]),
        ("q=%27%20OR%20%271%27%3D%271", vec![]),
        ("q=_", vec![]),
        ("q=%5C", vec![]),
    ] {
        assert_eq!(ids(&api(&web, query)), expected, "{query}");
    }
    assert_eq!(
        ids(&api(&web, "limit=200")).len(),
        13,
        "every job still there"
    );
    // The page shows the text back as text, in the filter and the rows.
    let page = web.get("/jobs?q=%3Cscript%3Ealert(1)");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)"),
        "{}",
        page.body
    );
}

/// The `data-job` ids of a jobs page's rows, in order.
fn rows(html: &str) -> Vec<String> {
    html.split("data-job=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The href of the page's `a[data-nav=next]`, unescaped.
fn next_link(html: &str) -> Option<String> {
    let tag_start = html.find("data-nav=\"next\"")?;
    let tag = &html[html[..tag_start].rfind('<')?..];
    let href = tag.split("href=\"").nth(1)?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

#[test]
fn web_jobs_page_rows_and_older_link_follow_the_api() {
    let mut env = queue_of_twelve();
    let web = env.spawn_web(&[]);
    let mut path = "/jobs?q=report&limit=2".to_owned();
    let mut api_query = "q=report&limit=2".to_owned();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = web.get(&path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let from_api = api(&web, &api_query);
        assert_eq!(rows(&page.body), ids(&from_api), "{path}");
        seen.extend(rows(&page.body));
        let Some(next) = next_link(&page.body) else {
            assert!(from_api["next"].is_null(), "{path}: the API has more");
            break;
        };
        let cursor = from_api["next"].as_str().expect("the API has more too");
        assert!(next.contains(&format!("before={cursor}")), "{next}");
        assert!(
            next.starts_with("/jobs?") && next.contains("q=report"),
            "{next}"
        );
        // The link keeps the filters; it pages by the page's default size.
        path = next;
        api_query = path.trim_start_matches("/jobs?").to_owned();
    }
    assert_eq!(seen, ["j10", "j8", "j6", "j4", "j2", "j0"]);
}
