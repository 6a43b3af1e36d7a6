//! Shell completion as a shell runs it: bash sources the script
//! `queuectl completions bash` prints, then calls its completion function
//! the way TAB does; fish and zsh's protocol is driven directly (those
//! shells may be absent here).

use crate::support::TestEnv;
use std::process::Output;

/// What bash offers for `line` with the cursor at its end (a trailing space
/// means a new, empty word), one candidate per element, flags left out
/// (clap adds them on an empty word).
fn bash_offers(env: &TestEnv, line: &str) -> Vec<String> {
    let out = bash_completes(env, line);
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "completion must print nothing on the user's terminal"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|offer| !offer.starts_with('-'))
        .map(str::to_owned)
        .collect()
}

fn bash_completes(env: &TestEnv, line: &str) -> Output {
    let script = env.ok(&["completions", "bash"]);
    let program = format!(
        r#"{script}
read -ra COMP_WORDS <<<"$LINE"
[[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="$LINE"; COMP_POINT=${{#LINE}}; COMP_TYPE=9
_clap_complete_queuectl queuectl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#
    );
    env.cmd_running("bash".as_ref())
        .args(["--norc", "--noprofile", "-c", &program])
        .env("LINE", line)
        .output()
        .unwrap()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[test]
fn job_ids_come_from_the_queue_newest_first() {
    let env = TestEnv::new();
    for id in ["build-1", "build-2", "deploy"] {
        env.enqueue(&format!(r#"{{"id":"{id}","command":"true"}}"#));
    }
    assert_eq!(
        bash_offers(&env, "queuectl show build-"),
        ["build-2", "build-1"]
    );
    assert_eq!(
        sorted(bash_offers(&env, "queuectl logs ")),
        ["build-1", "build-2", "deploy"]
    );
    assert_eq!(bash_offers(&env, "queuectl cancel d"), ["deploy"]);
    // dlq retry offers only the dead letter queue (empty here).
    assert_eq!(
        bash_offers(&env, "queuectl dlq retry "),
        Vec::<String>::new()
    );
}

/// Each command that acts on jobs offers only those it can act on.
#[test]
fn job_ids_offered_are_those_the_command_can_act_on() {
    // A failed job's retry an hour away, so it stays failed.
    let env = TestEnv::with_config(
        &crate::support::TEST_CONFIG
            .replace("backoff_base = 2", "backoff_base = 1000")
            .replace("backoff_max_seconds = 0", "backoff_max_seconds = 3600"),
    );
    env.enqueue(r#"{"id":"p","command":"true","delay":"1h"}"#);
    env.enqueue(r#"{"id":"c","command":"true","delay":"1h"}"#);
    env.ok(&["cancel", "c"]);
    env.enqueue(r#"{"id":"d","command":"true"}"#);
    env.enqueue(r#"{"id":"x","command":"false","max_retries":0}"#);
    env.enqueue(r#"{"id":"f","command":"false","max_retries":5}"#);
    // d completes, x dies, f fails and waits for its retry.
    env.ok(&["worker", "run", "--drain"]);
    for (id, state) in [("d", "completed"), ("x", "dead"), ("f", "failed")] {
        assert_eq!(env.state(id), state, "{id}");
    }
    for (line, expected) in [
        ("queuectl cancel ", &["f", "p"][..]),
        ("queuectl restart ", &["c", "d", "x"]),
        ("queuectl purge ", &["c", "d", "x"]),
        ("queuectl dlq retry ", &["x"]),
        ("queuectl edit ", &["f", "p"]),
        ("queuectl show ", &["c", "d", "f", "p", "x"]),
    ] {
        assert_eq!(sorted(bash_offers(&env, line)), expected, "{line}");
    }
}

#[test]
fn job_ids_come_from_the_queue_given_by_db_on_the_line() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"in-default","command":"true"}"#);
    let other = env.path("other.db");
    env.ok(&[
        "--db",
        other.to_str().unwrap(),
        "enqueue",
        r#"{"id":"in-other","command":"true"}"#,
    ]);
    assert_eq!(
        bash_offers(&env, &format!("queuectl --db {} show in-", other.display())),
        ["in-other"]
    );
    assert_eq!(
        bash_offers(&env, &format!("queuectl show --db={} ", other.display())),
        ["in-other"]
    );
    assert_eq!(bash_offers(&env, "queuectl show in-"), ["in-default"]);
}

#[test]
fn completing_against_a_missing_queue_offers_nothing_and_creates_nothing() {
    let env = TestEnv::new();
    let missing = env.path("nowhere/queue.db");
    assert_eq!(
        bash_offers(&env, &format!("queuectl --db {} show ", missing.display())),
        Vec::<String>::new()
    );
    assert!(!env.path("nowhere").exists());
    // A broken config: no candidates, no message.
    let broken = env.path("broken.toml");
    std::fs::write(&broken, "max_retries = \"many\"\n").unwrap();
    let line = format!("queuectl --config {} show ", broken.display());
    assert_eq!(bash_offers(&env, &line), Vec::<String>::new());
}

#[test]
fn states_config_keys_and_their_words_are_offered() {
    let env = TestEnv::new();
    assert_eq!(
        bash_offers(&env, "queuectl list --state "),
        [
            "pending",
            "processing",
            "completed",
            "failed",
            "dead",
            "cancelled"
        ]
    );
    assert_eq!(bash_offers(&env, "queuectl list --state d"), ["dead"]);
    let keys: Vec<String> = queuectl::config::KEYS
        .iter()
        .map(|(key, _)| key.to_string())
        .collect();
    assert_eq!(bash_offers(&env, "queuectl config set "), keys);
    assert_eq!(
        bash_offers(&env, "queuectl config get max"),
        ["max_retries"]
    );
    assert_eq!(
        bash_offers(&env, "queuectl config set durability "),
        ["full", "normal"]
    );
    assert_eq!(
        bash_offers(&env, "queuectl config set supervisor s"),
        ["systemd"]
    );
    assert!(bash_offers(&env, "queuectl wor").contains(&"worker".to_string()));
}

#[test]
fn fish_and_zsh_get_the_same_candidates_with_help() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"fish-1","command":"true"}"#);
    let ask = |shell: &str, index: Option<&str>, words: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("QUEUECTL_COMPLETE", shell).arg("--").args(words);
        if let Some(index) = index {
            cmd.env("_CLAP_COMPLETE_INDEX", index);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(ask("fish", None, &["queuectl", "show", "f"]), "fish-1\n");
    let keys = ask("fish", None, &["queuectl", "config", "get", "dur"]);
    assert!(keys.starts_with("durability\t\"full\""), "{keys}");
    assert_eq!(ask("zsh", Some("2"), &["queuectl", "logs", "fi"]), "fish-1");
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell]);
        assert!(
            script.contains("QUEUECTL_COMPLETE")
                && script.contains(&*crate::support::binary().to_string_lossy()),
            "{shell}: {script}"
        );
    }
}
