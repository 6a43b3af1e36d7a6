//! `/metrics` as Prometheus reads it: real workers run jobs (some succeed,
//! one fails for good, one times out), then what a real `queuectl web`
//! serves passes `promtool check metrics` and says what happened.

use crate::support::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROMTOOL: &str = "/usr/bin/promtool";

/// `promtool check metrics` on `text`: its findings (empty when clean).
fn promtool_findings(text: &str) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), findings)
}

#[test]
fn metrics_after_real_workers_pass_promtool_and_count_what_ran() {
    if !std::path::Path::new(PROMTOOL).exists() {
        skip_unless_ci("promtool is not installed (Debian package prometheus)");
        return;
    }
    let mut env = TestEnv::new();
    for i in 0..3 {
        env.enqueue(&format!(
            r#"{{"id":"ok-{i}","command":"true","queue":"mail"}}"#
        ));
    }
    env.enqueue(r#"{"id":"broken","command":"exit 3","max_retries":0,"queue":"mail"}"#);
    env.enqueue(r#"{"id":"slow","command":"sleep 30","timeout_seconds":1,"max_retries":0}"#);
    env.enqueue(r#"{"id":"later","command":"true","delay":"1h","queue":"reports"}"#);
    env.spawn_worker("w1");
    for (id, state) in [
        ("ok-0", "completed"),
        ("ok-1", "completed"),
        ("ok-2", "completed"),
        ("broken", "dead"),
        ("slow", "dead"),
    ] {
        env.wait_for_state(id, state, Duration::from_secs(30));
    }
    let web = env.spawn_web(&[]);
    let reply = web.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.body;
    let (clean, findings) = promtool_findings(&text);
    assert!(
        clean,
        "promtool check metrics failed:\n{findings}\n---\n{text}"
    );
    assert!(
        findings.trim().is_empty(),
        "promtool findings:\n{findings}\n---\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        r#"queuectl_jobs{queue="mail",state="completed"} 3"#,
        r#"queuectl_jobs{queue="mail",state="dead"} 1"#,
        r#"queuectl_jobs{queue="default",state="dead"} 1"#,
        r#"queuectl_jobs{queue="reports",state="pending"} 1"#,
        r#"queuectl_attempts_total{outcome="succeeded",queue="mail"} 3"#,
        r#"queuectl_attempts_total{outcome="failed",queue="mail"} 1"#,
        r#"queuectl_attempts_total{outcome="timed_out",queue="default"} 1"#,
        r#"queuectl_job_duration_seconds_count{queue="mail"} 4"#,
        r#"queuectl_job_duration_seconds_bucket{queue="default",le="+Inf"} 1"#,
        r#"queuectl_job_duration_seconds_bucket{queue="default",le="0.5"} 0"#,
        r#"queuectl_job_wait_seconds_count{queue="mail"} 4"#,
        r#"queuectl_queue_lag_seconds{queue="reports"} 0"#,
        "queuectl_rescued_total 0",
        r#"queuectl_workers{state="idle"} 1"#,
    ] {
        assert!(lines.contains(&expected), "missing {expected}:\n{text}");
    }
}
