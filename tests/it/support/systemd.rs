//! A private systemd user manager and journald for integration tests that
//! need the real thing (`queuectl-worker@N.service` under systemd, its
//! journal entries), on machines whose PID 1 is not systemd. It wraps
//! `tests/systemd/harness.sh`, which starts both in a private mount
//! namespace, each from its own sub-cgroup of a freshly mounted cgroup2, with
//! `XDG_RUNTIME_DIR`/`XDG_CONFIG_HOME`/`HOME` in a temp dir. That containment
//! is the rule: never start a systemd manager any other way (started in the
//! machine's cgroup root it takes over every process on the machine), never
//! use a pid namespace, and only ever talk to it with `systemctl --user`
//! through [`PrivateSystemd::command`], which enters the namespace and sets
//! the environment. Inside, a unit's output is in the journal with
//! `_SYSTEMD_UNIT=<unit>` (as for a system service), so `journalctl -u` works.
//!
//! `start()` skips (returns `None`, printing `skipping: <reason>`) where the
//! harness cannot run (not root, no systemd installed, no namespaces), and
//! panics instead when `CI=true`. `Drop` runs `harness.sh stop`, so a failing
//! test leaves nothing running; if the test process is killed outright the
//! harness notices within a second and cleans up by itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/systemd/harness.sh");

pub struct PrivateSystemd {
    dir: tempfile::TempDir,
    nspid: u32,
    env: Vec<(String, String)>,
}

fn harness() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(HARNESS);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl PrivateSystemd {
    /// Starts journald and `systemd --user` (about 0.3 s), or returns `None`
    /// when this machine cannot run them (panics instead under `CI=true`).
    pub fn start() -> Option<PrivateSystemd> {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with harness knobs (`HARNESS_…`
    /// variables, see harness.sh), e.g. `HARNESS_JOURNAL_RATE_LIMIT=default`.
    pub fn start_with(knobs: &[(&str, &str)]) -> Option<PrivateSystemd> {
        Self::start_in(&std::env::temp_dir(), knobs)
    }

    /// Like [`start_with`](Self::start_with), with everything (runtime dir,
    /// config, home) in a new directory under `parent`: for units with
    /// `PrivateTmp=yes`, which could reach neither the manager's notify
    /// socket nor their state directory if those were under /tmp.
    pub fn start_in(parent: &Path, knobs: &[(&str, &str)]) -> Option<PrivateSystemd> {
        let check = harness()
            .arg("check")
            .output()
            .expect("run harness.sh check");
        if !check.status.success() {
            let reason = format!("{}{}", text(&check.stdout), text(&check.stderr));
            let reason = reason.trim();
            super::skip_unless_ci(reason);
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("qsd-")
            .tempdir_in(parent)
            .expect("temp dir");
        let mut me = PrivateSystemd {
            dir,
            nspid: 0,
            env: vec![],
        };
        // --owner: if this process dies without running Drop, the harness
        // tears itself down.
        let out = harness()
            .arg("start")
            .arg("--owner")
            .arg(std::process::id().to_string())
            .arg(me.dir.path())
            .envs(knobs.iter().copied())
            .output()
            .expect("run harness.sh start");
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "harness.sh start failed:\n{stderr}");
        eprint!("{stderr}");
        me.nspid = text(&out.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("NSPID="))
            .and_then(|pid| pid.trim().parse().ok())
            .expect("harness.sh start printed no NSPID=");
        let env = harness()
            .arg("env")
            .arg(me.dir.path())
            .output()
            .expect("run harness.sh env");
        me.env = text(&env.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(me)
    }

    /// A command running `program` inside the namespace, with [`Self::env`]
    /// set (over the caller's environment; any other `.env()` passes
    /// through) and the caller's working directory. Callers add args.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = harness();
        cmd.arg("exec").arg(self.dir.path()).arg("--").arg(program);
        cmd
    }

    /// `systemctl --user ARGS` against the private manager (`--user` is added).
    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.command("systemctl")
            .arg("--user")
            .args(args)
            .output()
            .expect("run systemctl")
    }

    /// `journalctl --no-pager ARGS` on the private journal (it is the system
    /// journal in there: use plain `-u UNIT`, not `--user-unit`).
    pub fn journalctl(&self, args: &[&str]) -> Output {
        self.command("journalctl")
            .arg("--no-pager")
            .args(args)
            .output()
            .expect("run journalctl")
    }

    /// A unit's journal, message text only: its own output (`_SYSTEMD_UNIT=`)
    /// and the manager's messages about it (`USER_UNIT=`: "Started", "Killing
    /// process", ...), which `-u` alone leaves out. Entries reach the journal
    /// a moment after they are written: poll for what you expect.
    pub fn unit_log(&self, unit: &str) -> String {
        let own = format!("_SYSTEMD_UNIT={unit}");
        let manager = format!("USER_UNIT={unit}");
        text(&self.journalctl(&["-o", "cat", &own, "+", &manager]).stdout)
    }

    /// Where unit files go: `$XDG_CONFIG_HOME/systemd/user` (then run
    /// `systemctl(&["daemon-reload"])`).
    pub fn unit_dir(&self) -> PathBuf {
        self.dir.path().join("config/systemd/user")
    }

    /// The environment a process inside needs: `HOME`, `XDG_RUNTIME_DIR`,
    /// `XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `XDG_STATE_HOME`, `XDG_CACHE_HOME`,
    /// `DBUS_SESSION_BUS_ADDRESS`, all pointing into [`Self::dir`].
    pub fn env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// Hands `unit`'s `LogRateLimitIntervalSec=`/`LogRateLimitBurst=` to
    /// journald as the system manager does (symlinks in `/run/systemd/units/`
    /// whose target is the value, made only for values that are set). A user manager never writes
    /// them, so without this the harness's journald would ignore them. The
    /// values are the unit's as the real manager parsed them; a process of
    /// the unit started afterwards is limited by them.
    pub fn export_log_rate_limit(&self, unit: &str) {
        let show = self.systemctl(&[
            "show",
            "--value",
            "-p",
            "LogRateLimitIntervalUSec",
            "-p",
            "LogRateLimitBurst",
            unit,
        ]);
        let values = text(&show.stdout);
        let mut values = values.lines();
        let interval = values.next().unwrap_or("").trim();
        let burst = values.next().unwrap_or("").trim();
        let usec = parse_timespan_usec(interval);
        let mut script = String::from("mkdir -p /run/systemd/units");
        if usec > 0 {
            script +=
                &format!(" && ln -sfn {usec} '/run/systemd/units/log-rate-limit-interval:{unit}'");
        }
        if burst.parse::<u64>().is_ok_and(|b| b > 0) {
            script +=
                &format!(" && ln -sfn {burst} '/run/systemd/units/log-rate-limit-burst:{unit}'");
        }
        let out = self
            .command("sh")
            .args(["-c", &script])
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// The temp dir holding everything (runtime, config, home, harness logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A pid whose `/proc/<pid>/ns/mnt` is the private mount namespace.
    pub fn nspid(&self) -> u32 {
        self.nspid
    }
}

/// Microseconds in a timespan as `systemctl show` prints it ("0", "1s",
/// "500ms", "1min 30s").
fn parse_timespan_usec(span: &str) -> u64 {
    span.split_whitespace()
        .map(|part| {
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            let (number, unit) = part.split_at(split);
            let number: u64 = number.parse().unwrap_or(0);
            let scale = match unit {
                "" | "us" => 1,
                "ms" => 1_000,
                "s" => 1_000_000,
                "min" => 60_000_000,
                "h" => 3_600_000_000,
                other => panic!("unexpected timespan unit {other:?} in {span:?}"),
            };
            number * scale
        })
        .sum()
}

impl Drop for PrivateSystemd {
    fn drop(&mut self) {
        match harness().arg("stop").arg(self.dir.path()).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("harness.sh stop failed:\n{}", text(&out.stderr)),
            Err(err) => eprintln!("cannot run harness.sh stop: {err}"),
        }
    }
}
