//! The README and docs/ tell the truth: the test command is the one CI
//! runs, the tour runs as written, every command that prints data takes
//! `--json`, and every link between the documents lands on a heading.

use crate::support::{TestEnv, binary, subcommands};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

/// The lines of the fenced code block that follows `heading` in `text`.
fn code_block_after(text: &str, heading: &str) -> Vec<String> {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    text[start..]
        .split("```")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_test_command_is_the_one_ci_runs() {
    let ci = read(".ci/run");
    let command = ci
        .lines()
        .skip_while(|l| !l.starts_with("step \"tests (the README's test command"))
        .nth(1)
        .expect(".ci/run has a tests step")
        .trim();
    let readme = read("README.md");
    assert!(
        readme.lines().any(|l| l.trim() == command),
        "README does not show CI's test command `{command}`"
    );
}

#[test]
fn the_tour_runs_as_written() {
    let mut env = TestEnv::new();
    let tour = code_block_after(&read("README.md"), "## Tour");
    assert!(tour.len() >= 8, "{tour:?}");
    assert!(tour.iter().all(|l| l.starts_with("queuectl ")), "{tour:?}");
    let script = format!(
        "set -e\nqueuectl() {{ \"$QUEUECTL_BIN_UNDER_TEST\" \"$@\"; }}\n{}\n",
        tour.join("\n")
    );
    env.mark_supervised();
    let out = env
        .cmd_running("bash".as_ref())
        .args(["--norc", "--noprofile", "-c", &script])
        .env("QUEUECTL_BIN_UNDER_TEST", binary())
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the tour failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.state("report"), "completed");
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = vec![];
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.push(slug(line.trim_start_matches('#')));
        }
    }
    found
}

/// `(target)` of every `[text](target)` outside code.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = vec![];
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (i, _) in line.match_indices("](") {
            if let Some(end) = line[i + 2..].find(')') {
                found.push(line[i + 2..i + 2 + end].to_owned());
            }
        }
    }
    found
}

#[test]
fn every_link_between_the_documents_lands() {
    let mut documents = vec![repo().join("README.md"), repo().join("ARCHITECTURE.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut checked = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target: PathBuf = if file.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(file)
            };
            assert!(
                target.exists(),
                "{}: link to {link}: no such file",
                document.display()
            );
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap();
                assert!(
                    anchors(&text).iter().any(|a| a == anchor),
                    "{}: link to {link}: no such heading in {}",
                    document.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} links found");
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug(" Secrets: env, env_file and systemd credentials"),
        "secrets-env-env_file-and-systemd-credentials"
    );
    assert_eq!(
        slug("What is contained, and how"),
        "what-is-contained-and-how"
    );
    assert_eq!(slug("`--json` (for scripts)"), "--json-for-scripts");
}

/// Every command (as `--help` lists them), and the arguments this test runs
/// it with; `None` for commands that print no data (they run something, or
/// print a script, a page or a unit file for a person or a program to use).
const COMMANDS: &[(&str, Option<&str>)] = &[
    ("add", Some("add -- true")),
    ("enqueue", Some(r#"enqueue {"command":"true"}"#)),
    ("list", Some("list")),
    ("show", Some("show done")),
    ("logs", Some("logs done")),
    ("edit", Some("edit waiting --priority 3")),
    ("wait", Some("wait done")),
    ("status", Some("status")),
    ("metrics", Some("metrics")),
    ("dlq list", Some("dlq list")),
    ("dlq retry", Some("dlq retry dead")),
    ("restart", Some("restart done")),
    ("cancel", Some("cancel waiting")),
    ("purge", Some("purge --older-than 0s")),
    ("copy", Some("copy --from QUEUE --to COPY")),
    ("config get", Some("config get")),
    ("config set", Some("config set max_retries 4")),
    ("config path", Some("config path")),
    ("worker stop", Some("worker stop")),
    ("units print", Some("units print")),
    ("queue list", Some("queue list")),
    ("queue set", Some("queue set emails --parallel 2")),
    ("queue pause", Some("queue pause emails")),
    ("queue resume", Some("queue resume emails")),
    (
        "schedule add",
        Some("schedule add nightly --driver workers --on-calendar daily -- true"),
    ),
    ("schedule list", Some("schedule list")),
    ("schedule run", Some("schedule run nightly")),
    ("schedule remove", Some("schedule remove nightly")),
    ("worker run", None),
    ("worker start", None),
    ("units install", None),
    ("web", None),
    ("completions", None),
    ("man", None),
    ("bench", None),
];

/// The commands `--help` lists that are not groups: `list`, `dlq retry`, ...
fn leaf_commands() -> Vec<String> {
    subcommands()
        .into_iter()
        .filter(|(_, group)| !group)
        .map(|(words, _)| words.join(" "))
        .collect()
}

#[test]
fn every_command_that_prints_data_prints_json_with_json() {
    let leaves = leaf_commands();
    let known: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
    for leaf in &leaves {
        assert!(
            known.contains(&leaf.as_str()),
            "`queuectl {leaf}`: add it to COMMANDS here, with the arguments to run it \
             with --json, or None if it prints no data"
        );
    }
    let env = TestEnv::new();
    env.ok(&["add", "--id", "done", "--", "echo", "hi"]);
    env.ok(&["add", "--id", "dead", "--retries", "0", "--", "false"]);
    env.ok(&["add", "--id", "waiting", "--delay", "1h", "--", "true"]);
    env.ok(&["worker", "run", "--drain"]);
    let queue = env.db_address().into_string().unwrap();
    let copy = env.path("copy.db").into_os_string().into_string().unwrap();
    for (name, args) in COMMANDS {
        let Some(args) = args else { continue };
        let args: Vec<&str> = args
            .split(' ')
            .map(|a| match a {
                "QUEUE" => queue.as_str(),
                "COPY" => copy.as_str(),
                a => a,
            })
            .collect();
        let out = env.run(&[&["--json"], &args[..]].concat());
        assert!(
            out.status.success(),
            "queuectl --json {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Result<serde_json::Value, _> = serde_json::from_slice(&out.stdout);
        assert!(
            printed.is_ok(),
            "`queuectl --json {name}` printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn the_configuration_doc_lists_every_key() {
    let doc = read("docs/configuration.md");
    for (key, _) in queuectl::config::KEYS {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/configuration.md has no row for {key}"
        );
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let leaves = leaf_commands();
    // bench's --help is queuectl-bench's own.
    for leaf in leaves.iter().filter(|l| *l != "bench") {
        let out = std::process::Command::new(binary())
            .args(leaf.split(' '))
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\nExamples:\n"),
            "`queuectl {leaf} --help` has no examples"
        );
    }
}
