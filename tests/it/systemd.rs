//! queuectl under a real systemd: a private user manager and journald
//! (`support::systemd`), the shipped units, `worker start/stop`, sd_notify,
//! the watchdog and the journal. These skip with a reason where the harness
//! cannot run, and must run when CI=true.

use crate::containment::env_reset_job;
use crate::support::systemd::PrivateSystemd;
use crate::support::{
    binary, can_unshare_uts, on_host_args, read_lines, signal, wait_until, wait_until_or,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

const DEFAULT_CONFIG: &str = "lease_seconds = 3\nbackoff_max_seconds = 0\nkill_grace_seconds = 1\n";

/// A queue whose workers are `queuectl-worker@N.service` of a private user manager.
pub(crate) struct SystemdQueue {
    pub(crate) sd: PrivateSystemd,
    root: tempfile::TempDir,
}

impl SystemdQueue {
    pub(crate) fn start() -> Option<SystemdQueue> {
        Self::with_config(DEFAULT_CONFIG)
    }

    fn with_config(config: &str) -> Option<SystemdQueue> {
        Self::with(config, &[])
    }

    /// A queue with `config`, its manager started with harness `knobs`.
    fn with(config: &str, knobs: &[(&str, &str)]) -> Option<SystemdQueue> {
        let sd = PrivateSystemd::start_with(knobs)?;
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("config.toml"), config).unwrap();
        Some(SystemdQueue { sd, root })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The CLI inside the namespace, on this queue.
    pub(crate) fn cli(&self) -> std::process::Command {
        let mut cmd = self.sd.command(binary().to_str().unwrap());
        cmd.env("QUEUECTL_DB", self.path("state/queue.db"))
            .env("QUEUECTL_CONFIG", self.path("config.toml"));
        cmd
    }

    /// The CLI inside the namespace as if on host `host` (its own UTS
    /// namespace); `None` (printing why) where that cannot be done.
    fn cli_on_host(&self, host: &str) -> Option<std::process::Command> {
        if !can_unshare_uts() {
            return None;
        }
        let mut cmd = self.sd.command("unshare");
        cmd.args(on_host_args(binary().as_os_str(), host))
            .env("QUEUECTL_DB", self.path("state/queue.db"))
            .env("QUEUECTL_CONFIG", self.path("config.toml"));
        Some(cmd)
    }

    pub(crate) fn q(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.q(args);
        assert!(
            out.status.success(),
            "queuectl {args:?}: {}\n{}\n--- manager log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.sd.unit_log("queuectl-worker@1.service")
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub(crate) fn state(&self, id: &str) -> String {
        self.json(&["show", id])["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn wait_for_state(&self, id: &str, state: &str) {
        wait_until(&format!("job {id} is {state}"), WAIT, || {
            self.state(id) == state
        });
    }

    fn unit(&self, n: u32, property: &str) -> String {
        let unit = format!("queuectl-worker@{n}.service");
        let out = self
            .sd
            .systemctl(&["show", "--value", "-p", property, &unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn main_pid(&self, n: u32) -> u32 {
        self.unit(n, "MainPID").parse().unwrap()
    }

    fn journal(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.sd.journalctl(args).stdout).into_owned()
    }

    /// A job that blocks on its first attempt until `gate` exists.
    fn gated_job(&self, id: &str, gate: &str) -> String {
        format!(
            r#"{{"id":"{id}","command":"echo started; while [ ! -e {} ]; do sleep 0.05; done; echo done"}}"#,
            self.path(gate).display()
        )
    }
}

#[test]
fn three_instances_reach_ready_run_jobs_and_journal_their_output() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    let report = q.json(&["worker", "start", "--count", "3", "--user"]);
    assert_eq!(report["started"], serde_json::json!(["1", "2", "3"]));
    for n in 1..=3 {
        // Type=notify: "active/running" only after the worker sent READY=1.
        assert_eq!(
            (q.unit(n, "ActiveState"), q.unit(n, "SubState")),
            ("active".into(), "running".into())
        );
    }
    assert!(
        q.sd.unit_dir().join("queuectl-worker@.service").exists(),
        "units were installed"
    );

    for i in 1..=6 {
        q.ok(&[
            "enqueue",
            &format!(r#"{{"id":"job{i}","command":"echo out-{i}; echo err-{i} >&2"}}"#),
        ]);
    }
    for i in 1..=6 {
        q.wait_for_state(&format!("job{i}"), "completed");
    }
    let job = q.json(&["show", "job1"]);
    assert_eq!(job["attempt_history"][0]["output"], "journal");
    let worker = job["attempt_history"][0]["worker"]
        .as_str()
        .unwrap()
        .to_owned();

    wait_until("job1's output is in the journal", WAIT, || {
        q.journal(&["-o", "cat", "QUEUECTL_JOB_ID=job1"])
            .contains("out-1")
    });
    let entries: Vec<Value> = q
        .journal(&[
            "-o",
            "json",
            "QUEUECTL_JOB_ID=job1",
            "SYSLOG_IDENTIFIER=queuectl-job",
        ])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let stdout = entries
        .iter()
        .find(|e| e["MESSAGE"] == "out-1")
        .expect("stdout line");
    assert_eq!(stdout["QUEUECTL_STREAM"], "stdout");
    assert_eq!(stdout["QUEUECTL_ATTEMPT"], "1");
    assert_eq!(stdout["QUEUECTL_WORKER"], worker.as_str());
    assert_eq!(
        stdout["_SYSTEMD_UNIT"],
        format!("queuectl-worker@{worker}.service")
    );
    let stderr = entries
        .iter()
        .find(|e| e["MESSAGE"] == "err-1")
        .expect("stderr line");
    assert_eq!(stderr["QUEUECTL_STREAM"], "stderr");

    // JOB_ID is the manager's field (its job numbers): queuectl never sets it.
    assert!(entries.iter().all(|e| e.get("JOB_ID").is_none()));
    // The worker's own log lines carry the same QUEUECTL_ fields.
    let worker_lines = q.journal(&[
        "-o",
        "cat",
        "QUEUECTL_JOB_ID=job1",
        "SYSLOG_IDENTIFIER=queuectl-worker",
    ]);
    assert!(worker_lines.contains("attempt finished"), "{worker_lines}");
    // And `journalctl -u` shows the job output with the worker's.
    let unit_log = q.journal(&[
        "-o",
        "cat",
        "-u",
        &format!("queuectl-worker@{worker}.service"),
    ]);
    assert!(unit_log.contains("out-1"), "{unit_log}");
    // `queuectl logs` reads the journal for such jobs.
    let logs = q.ok(&["logs", "job1"]);
    assert!(logs.contains("out-1") && logs.contains("err-1"), "{logs}");
    assert!(
        !logs.contains("attempt finished"),
        "only the job's output: {logs}"
    );
    // Labelled by the journal's fields: a header, stderr marked, and
    // --attempt picks the attempt.
    let shown = q.ok(&["--color", "always", "logs", "job1", "--attempt", "1"]);
    assert!(shown.contains("── attempt 1 · worker "), "{shown:?}");
    assert!(shown.contains("\x1b[31m│\x1b[0m err-1\n"), "{shown:?}");
    assert!(!shown.contains("│\x1b[0m out-1"), "{shown:?}");

    // From another host, `logs` prints the tail the queue kept and the
    // command that shows the full output on this one, which works here.
    if let Some(mut elsewhere) = q.cli_on_host("qtest-other") {
        let out = elsewhere.args(["logs", "job1"]).output().unwrap();
        let (tail, notes) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{notes}");
        assert!(
            tail.contains("out-1\n") && tail.contains("err-1\n"),
            "{tail}"
        );
        let command = "journalctl QUEUECTL_JOB_ID=job1 QUEUECTL_ATTEMPT=1";
        let host = queuectl::worker::hostname();
        assert!(
            notes.contains(&format!("note: full output: host {host}: {command}\n")),
            "{notes}"
        );
        let args: Vec<&str> = command.split(' ').skip(1).collect();
        let full = q.journal(&[&["-o", "cat"], &args[..]].concat());
        assert!(
            full.contains("out-1\n") && full.contains("err-1\n"),
            "{full}"
        );
    }
}

/// journald allows a unit 10,000 messages per 30 s by default and drops the
/// rest; job output is data, so the worker unit lifts that limit.
#[test]
fn a_burst_of_100000_lines_reaches_the_journal_whole() {
    const LINES: usize = 100_000;
    let Some(q) = SystemdQueue::with(DEFAULT_CONFIG, &[("HARNESS_JOURNAL_RATE_LIMIT", "default")])
    else {
        return;
    };
    q.ok(&["worker", "start", "--count", "1", "--user"]);
    // As PID 1 would for a system unit; then a fresh worker process, which
    // journald looks the limit up for.
    q.sd.export_log_rate_limit("queuectl-worker@1.service");
    let out = q.sd.systemctl(&["restart", "queuectl-worker@1.service"]);
    assert!(out.status.success());
    q.ok(&[
        "enqueue",
        &format!(r#"{{"id":"burst","command":"seq {LINES}"}}"#),
    ]);
    q.wait_for_state("burst", "completed");
    let count = || {
        q.journal(&[
            "-o",
            "cat",
            "QUEUECTL_JOB_ID=burst",
            "SYSLOG_IDENTIFIER=queuectl-job",
        ])
        .lines()
        .count()
    };
    // journald stores what it received a moment later; a dropped line never comes.
    let mut seen = 0;
    let complete = wait_until_or(WAIT, || {
        seen = count();
        seen == LINES
    });
    assert!(
        complete,
        "{seen} of {LINES} lines in the journal\n{}",
        q.journal(&["-o", "cat", "-t", "systemd-journald"])
    );
    let lines = q.ok(&["logs", "burst"]);
    assert_eq!(lines.lines().count(), LINES);
    assert_eq!(lines.lines().last(), Some("100000"));
}

#[test]
fn status_shows_every_slot_and_worker_stop_waits_for_all_of_them() {
    let Some(q) = SystemdQueue::with_config(&format!("{DEFAULT_CONFIG}concurrency = 2\n")) else {
        return;
    };
    q.ok(&["worker", "start", "--count", "1", "--user"]);
    q.ok(&["enqueue", &q.gated_job("gated", "gate")]);
    q.wait_for_state("gated", "processing");
    wait_until(
        "the unit's STATUS names the job and the slots",
        WAIT,
        || q.unit(1, "StatusText") == "running 1/2: gated (attempt 1/4)",
    );
    q.ok(&["enqueue", &q.gated_job("gated2", "gate")]);
    q.wait_for_state("gated2", "processing");
    let both = "running 2/2: gated (attempt 1/4), gated2 (attempt 1/4)";
    wait_until("the unit's STATUS names both jobs", WAIT, || {
        q.unit(1, "StatusText") == both
    });
    let status = q.json(&["status", "--user"]);
    let worker = &status["workers"][0];
    assert_eq!(worker["jobs"], serde_json::json!(["gated", "gated2"]));
    assert_eq!(worker["slots"], 2);
    assert_eq!(worker["unit_state"], "active/running");
    assert_eq!(
        worker["unit"], "queuectl-worker@1.service",
        "the worker records its unit, for status on other hosts"
    );
    assert_eq!(worker["status"], both);
    assert_eq!(status["supervisor"], "systemd, user scope");
    // A person reads units by name, the job with its clock.
    let text = q.ok(&["status", "--user"]);
    let header = text.lines().find(|l| l.contains("NAME")).unwrap();
    assert!(header.contains(" UNIT "), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(" queuectl-worker@1 (active/running) "))
        .unwrap_or_else(|| panic!("the unit by name:\n{text}"));
    assert!(
        row.contains(" gated (running ") && row.contains(" +1 "),
        "{text}"
    );
    crate::display::assert_worker_columns_line_up(&text);

    let mut stop =
        q.sd.command(binary().to_str().unwrap())
            .env("QUEUECTL_DB", q.path("state/queue.db"))
            .env("QUEUECTL_CONFIG", q.path("config.toml"))
            .args(["worker", "stop", "--user"])
            .spawn()
            .unwrap();
    wait_until("the unit is stopping", WAIT, || {
        q.unit(1, "ActiveState") == "deactivating"
    });
    assert!(
        stop.try_wait().unwrap().is_none(),
        "worker stop waits while the jobs run"
    );
    assert_eq!(q.state("gated"), "processing");
    assert_eq!(q.state("gated2"), "processing");
    std::fs::write(q.path("gate"), "").unwrap();
    assert!(stop.wait().unwrap().success());
    assert_eq!(q.state("gated"), "completed");
    assert_eq!(q.state("gated2"), "completed");
    assert_eq!(q.unit(1, "ActiveState"), "inactive");
    let job = q.json(&["show", "gated"]);
    assert_eq!(job["attempt_history"].as_array().unwrap().len(), 1);
}

#[test]
fn scaling_three_to_one_stops_two_gracefully() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    q.ok(&["worker", "start", "--count", "3", "--user"]);
    q.ok(&["enqueue", &q.gated_job("busy", "gate")]);
    q.wait_for_state("busy", "processing");
    let holder = q.json(&["show", "busy"])["worker"]
        .as_str()
        .unwrap()
        .to_owned();
    // Let the job finish only once its worker is being stopped (if the
    // scale-down stops it at all), so the stop must wait for it.
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            if let Ok(n) = holder.parse::<u32>()
                && n > 1
            {
                wait_until("the holder is stopping", WAIT, || {
                    q.unit(n, "ActiveState") == "deactivating"
                });
            }
            std::fs::write(q.path("gate"), "").unwrap();
        });
        q.json(&["worker", "start", "--count", "1", "--user"])
    });
    assert_eq!(report["stopped"], serde_json::json!(["2", "3"]));
    assert_eq!(q.unit(1, "ActiveState"), "active");
    for n in [2, 3] {
        assert_eq!(q.unit(n, "ActiveState"), "inactive", "instance {n}");
        assert_eq!(
            q.unit(n, "Result"),
            "success",
            "instance {n} stopped cleanly"
        );
    }
    if holder != "1" {
        assert_eq!(
            q.state("busy"),
            "completed",
            "worker {holder} finished its job before stopping"
        );
    }
    q.wait_for_state("busy", "completed");
    assert_eq!(
        q.json(&["show", "busy"])["attempt_history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_killed_worker_is_restarted_and_its_job_recovered() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    q.ok(&["worker", "start", "--count", "1", "--user"]);
    q.ok(&["enqueue", &q.gated_job("victim", "gate")]);
    q.wait_for_state("victim", "processing");
    let pid = q.main_pid(1);
    signal(pid, Signal::SIGKILL);
    wait_until("systemd restarted the worker", WAIT, || {
        let now = q.main_pid(1);
        now != 0 && now != pid && q.unit(1, "SubState") == "running"
    });
    std::fs::write(q.path("gate"), "").unwrap();
    q.wait_for_state("victim", "completed");
    let job = q.json(&["show", "victim"]);
    assert_eq!(job["attempt_history"][0]["outcome"], "lease_expired");
    assert_eq!(job["attempt_history"][1]["outcome"], "succeeded");
    assert!(q.unit(1, "NRestarts").parse::<u32>().unwrap() >= 1);
}

#[test]
fn the_watchdog_kills_a_frozen_worker_and_its_job_runs_again() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    // Install the units, then shorten the watchdog so the test is quick.
    q.ok(&["units", "install", "--user"]);
    let drop_in = q.sd.unit_dir().join("queuectl-worker@.service.d");
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::write(
        drop_in.join("90-test.conf"),
        "[Service]\nWatchdogSec=2s\nTimeoutAbortSec=1s\n",
    )
    .unwrap();
    assert!(q.sd.systemctl(&["daemon-reload"]).status.success());
    q.ok(&["worker", "start", "--count", "1", "--user"]);
    q.ok(&["enqueue", &q.gated_job("frozen", "gate")]);
    q.wait_for_state("frozen", "processing");
    let pid = q.main_pid(1);
    signal(pid, Signal::SIGSTOP);
    wait_until("the watchdog replaced the frozen worker", WAIT, || {
        let now = q.main_pid(1);
        now != 0 && now != pid && q.unit(1, "SubState") == "running"
    });
    let log = q.sd.unit_log("queuectl-worker@1.service");
    assert!(log.contains("Watchdog timeout"), "{log}");
    std::fs::write(q.path("gate"), "").unwrap();
    q.wait_for_state("frozen", "completed");
    let history = q.json(&["show", "frozen"])["attempt_history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[1]["outcome"], "succeeded");
}

#[test]
fn a_frozen_workers_job_that_shed_its_environment_never_overlaps_its_rerun() {
    // The lease (5 s) is shorter than the unit's WatchdogSec (10 s): the
    // rescuing worker runs the job again while the frozen worker still
    // lives, so only its kill of the attempt's cgroup prevents an overlap.
    let Some(q) = SystemdQueue::with_config("lease_seconds = 5\nbackoff_max_seconds = 0\n") else {
        return;
    };
    q.ok(&["worker", "start", "--count", "2", "--user"]);
    let trace = q.path("trace");
    q.ok(&["enqueue", &env_reset_job("shed", &q.path("lock"), &trace)]);
    wait_until("the first run holds the lock", WAIT, || {
        read_lines(&trace) == ["start 1"]
    });
    let holder: u32 = q.json(&["show", "shed"])["worker"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let frozen = q.main_pid(holder);
    let cgroup = q.json(&["show", "shed"])["attempt_history"][0]["cgroup"].clone();
    assert!(
        cgroup
            .as_str()
            .is_some_and(|c| c.contains(&format!("queuectl-worker@{holder}.service/attempt-"))),
        "the attempt ran in a cgroup of its own: {cgroup}"
    );
    // It started there: the kernel put it in at the clone (clone3 with
    // CLONE_INTO_CGROUP), not a move after the start.
    let log = q.sd.unit_log(&format!("queuectl-worker@{holder}.service"));
    assert!(!log.contains("clone3"), "{log}");
    signal(frozen, Signal::SIGSTOP);
    q.wait_for_state("shed", "completed");
    let lines = read_lines(&trace);
    assert_eq!(lines, ["start 1", "start 2", "end 2"], "no overlap");
    let history = q.json(&["show", "shed"])["attempt_history"].clone();
    assert_eq!(history[0]["outcome"], "lease_expired", "{history}");
    assert_eq!(history[1]["outcome"], "succeeded", "{history}");
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert!(
        history[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped renewing")),
        "rescued because the lease expired, while the frozen worker still lived (not after systemd's watchdog restarted it): {history}"
    );
    for attempt in history.as_array().unwrap() {
        let dir = format!("/sys/fs/cgroup{}", attempt["cgroup"].as_str().unwrap());
        let exists = q.sd.command("test").args(["-e", &dir]).status().unwrap();
        assert!(!exists.success(), "{dir} was removed");
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(frozen as i32), Signal::SIGCONT);
}

/// Every file below `dir`, with its contents.
fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((
                path.clone(),
                std::fs::read_to_string(&path).unwrap_or_default(),
            ));
        }
    }
    files.sort();
    files
}

#[test]
fn units_managed_by_the_system_are_used_but_never_written() {
    let Some(q) = SystemdQueue::start() else {
        return;
    };
    // What a package or the NixOS module provides: the units, plus the
    // environment in a drop-in of its own.
    let unit_dir = q.sd.unit_dir();
    std::fs::create_dir_all(unit_dir.join("queuectl-worker@.service.d")).unwrap();
    for (name, text) in queuectl::systemd::units::render(&binary()) {
        std::fs::write(unit_dir.join(name), text).unwrap();
    }
    std::fs::write(
        unit_dir.join("queuectl-worker@.service.d/overrides.conf"),
        format!(
            "[Service]\nEnvironment=QUEUECTL_DB={}\nEnvironment=QUEUECTL_CONFIG={}\n",
            q.path("state/queue.db").display(),
            q.path("config.toml").display()
        ),
    )
    .unwrap();
    assert!(q.sd.systemctl(&["daemon-reload"]).status.success());
    let before = snapshot(&unit_dir);

    let managed = |args: &[&str]| {
        q.cli()
            .env("QUEUECTL_UNITS_MANAGED", "1")
            .args(args)
            .output()
            .unwrap()
    };
    let started = managed(&["worker", "start", "--count", "2", "--user"]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert_eq!(q.unit(2, "ActiveState"), "active");
    q.ok(&["enqueue", r#"{"id":"m1","command":"echo managed"}"#]);
    q.wait_for_state("m1", "completed");
    let install = managed(&["units", "install", "--user"]);
    assert_eq!(
        install.status.code(),
        Some(2),
        "units install refuses when units are managed"
    );
    assert!(managed(&["worker", "stop", "--user"]).status.success());
    assert_eq!(
        snapshot(&unit_dir),
        before,
        "no unit file was written or changed"
    );
}
