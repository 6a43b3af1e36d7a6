//! What a person sees: times in their zone, running clocks, status wording,
//! golden terminal output with colours, and the mistakes a person makes.

use crate::support::{TestEnv, wait_until};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Runs queuectl with `TZ` set to `tz` (unset when `None`).
fn run_in_zone(env: &TestEnv, tz: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = env.cmd();
    match tz {
        Some(tz) => cmd.env("TZ", tz),
        None => cmd.env_remove("TZ"),
    };
    cmd.args(args).output().expect("run queuectl")
}

fn stdout_in_zone(env: &TestEnv, tz: Option<&str>, args: &[&str]) -> String {
    let out = run_in_zone(env, tz, args);
    assert!(
        out.status.success(),
        "queuectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The line of `text` that starts (after indentation) with `label`.
fn line_of<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

#[test]
fn times_print_in_the_tz_zone_and_utc_opts_out() {
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"later","command":"true","run_at":"2030-01-15T13:05:09Z"}"#);
    let due = |tz: Option<&str>, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["show", "later"]);
        line_of(&stdout_in_zone(&env, tz, &args), "due:").to_owned()
    };
    assert_eq!(
        due(Some("UTC"), &[]),
        "  due:         2030-01-15 13:05:09 UTC"
    );
    assert_eq!(
        due(Some("Europe/Paris"), &[]),
        "  due:         2030-01-15 14:05:09 CET"
    );
    assert_eq!(
        due(Some("Asia/Kolkata"), &[]),
        "  due:         2030-01-15 18:35:09 IST"
    );
    assert_eq!(
        due(Some("Europe/Paris"), &["--utc"]),
        "  due:         2030-01-15 13:05:09 UTC",
        "--utc wins over TZ"
    );
    // Unset: the system's zone, whatever it is here; still a full time.
    assert!(due(None, &[]).starts_with("  due:         2030-01-15 "));
    // JSON is for scripts: RFC 3339 UTC in every zone.
    for tz in ["UTC", "Europe/Paris", "Asia/Kolkata"] {
        let out = stdout_in_zone(&env, Some(tz), &["--json", "show", "later"]);
        let job: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(job["run_at"], "2030-01-15T13:05:09Z", "TZ={tz}");
        assert!(
            job["created_at"].as_str().unwrap().ends_with('Z'),
            "TZ={tz}: {job}"
        );
    }
}

#[test]
fn a_running_attempt_shows_how_long_it_has_run() {
    let mut env = TestEnv::new();
    let gate = env.path("gate");
    env.enqueue(&format!(
        r#"{{"id":"slow","command":"while [ ! -e {} ]; do sleep 0.05; done"}}"#,
        gate.display()
    ));
    env.spawn_worker("w1");
    env.wait_for_state("slow", "processing", WAIT);
    // The clock ticks: wait until it reads at least a second, then check
    // the words around it.
    wait_until("list shows the running clock", WAIT, || {
        let list = env.ok(&["list"]);
        let row = line_of(&list, "slow");
        running_seconds(row).is_some_and(|secs| secs >= 1)
    });
    let show = env.ok(&["show", "slow"]);
    let header = line_of(&show, "#");
    let row = show
        .lines()
        .skip_while(|l| !l.contains("STARTED"))
        .nth(1)
        .unwrap();
    let duration_at = header.find("DURATION").unwrap();
    let outcome_at = header.find("OUTCOME").unwrap();
    let duration = row[duration_at..outcome_at].trim();
    assert!(
        duration.ends_with('s') && duration[..duration.len() - 1].parse::<u32>().is_ok(),
        "a running attempt's duration is its clock so far, got {duration:?}:\n{show}"
    );
    assert_eq!(row[outcome_at..].split_whitespace().next(), Some("running"));
    std::fs::write(&gate, "").unwrap();
    env.wait_for_state("slow", "completed", WAIT);
    let list = env.ok(&["list"]);
    assert!(
        line_of(&list, "slow").contains(" ago "),
        "a finished job says when it finished:\n{list}"
    );
}

/// The seconds in a row's "running 12s" (or "running 1m05s"), if any.
fn running_seconds(row: &str) -> Option<u64> {
    let rest = &row[row.find("running ")? + "running ".len()..];
    let clock = rest.split_whitespace().next()?;
    let (minutes, seconds) = match clock.split_once('m') {
        Some((m, s)) => (m.parse::<u64>().ok()?, s),
        None => (0, clock),
    };
    Some(minutes * 60 + seconds.strip_suffix('s')?.parse::<u64>().ok()?)
}
