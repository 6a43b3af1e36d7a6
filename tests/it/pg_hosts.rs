//! Many hosts, one PostgreSQL queue: real `queuectl worker run` processes on
//! test hosts (network and UTS namespaces, support/hosts.rs) reaching a
//! private PostgreSQL over TCP on the test network only.
//!
//! Jobs prove for themselves that no two runs of one job overlap: a run takes
//! `flock -n` on a lock file every host sees (the hosts share the
//! filesystem), held until every process of the run has died, and records
//! `start`/`tick`/`end` lines with its attempt, host and time; a run that
//! finds the lock held records `overlap` and exits 99. The queue is read back
//! with `psql`, never through queuectl's own store code.

use crate::support::hosts::{TestHost, TestNetwork};
use crate::support::notify::NotifyListener;
use crate::support::postgres::{PrivatePg, TestDatabase};
use crate::support::{
    TestEnv, binary, libfaketime, output_text as text, signal, skip_unless_ci, wait_until,
    wait_until_or,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Short leases, so a dead or cut worker's jobs are rescued within seconds.
const CONFIG: &str = "lease_seconds = 2\nkill_grace_seconds = 1\nbackoff_base = 2\n\
                      backoff_max_seconds = 0\nsupervisor = \"process\"\noutput = \"file\"\n";

const WAIT: Duration = Duration::from_secs(60);

/// A queue in a private PostgreSQL that listens on a test network's bridge
/// only, with hosts on that network. Fields drop in order: the workers
/// first (they run inside the hosts), then the database, the server and the
/// network.
struct Cluster {
    env: TestEnv,
    db: TestDatabase,
    pg: PrivatePg,
    network: TestNetwork,
    url: String,
}

/// A `queuectl worker run` on a host, with its own notify socket.
struct Worker {
    pid: u32,
    log: PathBuf,
    notify: NotifyListener,
}

impl Worker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the worker sent a notify message containing `needle`,
    /// failing with what it sent and logged.
    fn wait_said(&self, needle: &str) {
        self.wait_said_since(0, needle);
    }

    /// Like [`wait_said`](Self::wait_said), for a message after the first `from`.
    fn wait_said_since(&self, from: usize, needle: &str) {
        if !wait_until_or(WAIT, || self.notify.seen_since(from, needle).is_some()) {
            panic!(
                "the worker never said {needle:?}: {:?}\n{}",
                self.notify.messages(),
                self.log()
            );
        }
    }
}

/// One line a guarded job wrote.
#[derive(Debug, Clone)]
struct Event {
    kind: String,
    job: String,
    attempt: u32,
    host: String,
    at_ns: u128,
}

/// One attempt as the queue recorded it.
#[derive(Debug, Clone)]
struct AttemptRow {
    job: String,
    number: u32,
    outcome: String,
    host: String,
    worker: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    /// Its error, on one line.
    error: String,
}

impl AttemptRow {
    /// A run that ended without succeeding because its lease ran out: a
    /// rescuer recorded it (`lease_expired`), or its own worker killed it
    /// when renewals failed and recorded it when the database came back.
    fn ended_for_its_lease(&self) -> bool {
        self.outcome == "lease_expired"
            || (self.outcome == "failed" && self.error.contains("lease could not be renewed"))
    }
}

impl Cluster {
    /// A network with `hosts`, a server on its bridge and an empty queue, or
    /// `None` where this machine cannot (printing why; panics under CI=true).
    fn new(hosts: &[&str], config: &str) -> Option<Cluster> {
        let mut network = TestNetwork::new()?;
        let pg = PrivatePg::start(&network.bridge_address().to_string())?;
        for host in hosts {
            network.add_host(host);
        }
        let db = pg.fresh_database();
        let url = db.url();
        let env = TestEnv::with_config(config);
        std::fs::create_dir_all(env.path("shared/locks")).unwrap();
        for host in hosts {
            std::fs::create_dir(env.path(&format!("var-lib-{host}"))).unwrap();
        }
        Some(Cluster {
            env,
            db,
            pg,
            network,
            url,
        })
    }

    fn host(&self, name: &str) -> &TestHost {
        self.network
            .hosts()
            .iter()
            .find(|h| h.name() == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }

    /// queuectl on `host` against the queue. Each host has a /var/lib of its
    /// own (a bind mount in the host's mount namespace, which `ip netns exec`
    /// makes), so workers keep their state (job logs, wake sockets, pid
    /// files) where root's do, apart from other hosts and this machine. Under
    /// libfaketime with the wall clock moved by `clock` (e.g. `+10m`) when
    /// given.
    fn command_on(&self, host: &str, clock: Option<&str>) -> Command {
        let mut cmd = self.env.cmd_running("sh".as_ref());
        cmd.args(["-c", r#"mount --bind "$0" /var/lib && exec "$@""#])
            .arg(self.var_lib(host));
        if let Some(offset) = clock {
            // libfaketime preloaded (not the `faketime` wrapper, which would
            // stand between the test and the worker's pid); the monotonic
            // clock stays true, as timed waits need.
            cmd.env(
                "LD_PRELOAD",
                libfaketime().expect("libfaketime (Debian's faketime)"),
            )
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        // Root's own place for a PostgreSQL queue's local files, which
        // TestEnv moves to its directory (shared by all hosts otherwise).
        cmd.env("QUEUECTL_STATE_DIR", "/var/lib/queuectl")
            .arg(binary())
            .arg("--db")
            .arg(&self.url);
        self.host(host).inside(&cmd)
    }

    /// What `host` sees as /var/lib.
    fn var_lib(&self, host: &str) -> PathBuf {
        self.env.path(&format!("var-lib-{host}"))
    }

    fn run_on(&self, host: &str, args: &[&str]) -> Output {
        self.command_on(host, None)
            .args(args)
            .output()
            .expect("run queuectl on a host")
    }

    fn ok_on(&self, host: &str, args: &[&str]) -> String {
        let out = self.run_on(host, args);
        assert!(
            out.status.success(),
            "on {host}: queuectl {args:?}: {}",
            text(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json_on(&self, host: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok_on(host, &all)).expect("valid JSON")
    }

    /// `enqueue -` on `host` with `jobs` (JSON objects) on stdin, one batch.
    fn try_enqueue_on(&self, host: &str, jobs: &[Value]) -> Output {
        let mut child = self
            .command_on(host, None)
            .args(["enqueue", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = String::new();
        for job in jobs {
            input.push_str(&job.to_string());
            input.push('\n');
        }
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn enqueue_on(&self, host: &str, jobs: &[Value]) {
        let out = self.try_enqueue_on(host, jobs);
        assert!(out.status.success(), "enqueue on {host}: {}", text(&out));
    }

    fn start_worker(&mut self, host: &str, name: &str) -> Worker {
        self.start_worker_with_clock(host, name, None)
    }

    /// Starts `worker run --name NAME` on `host` (registering as
    /// `host/NAME`), with a notify socket of its own; does not wait.
    fn start_worker_with_clock(&mut self, host: &str, name: &str, clock: Option<&str>) -> Worker {
        let tag = format!("{host}-{}", name.replace('/', "_"));
        let log = self.env.path(&format!("worker-{tag}.log"));
        let socket = self.env.path(&format!("notify-{tag}.sock"));
        let notify = NotifyListener::bind(&socket);
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .command_on(host, clock)
            .args(["worker", "run", "--name", name])
            .env("NOTIFY_SOCKET", &socket)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start a worker on a host");
        Worker {
            pid: self.env.adopt(child),
            log,
            notify,
        }
    }

    /// Two workers (`1`, `2`) on each of `hosts`, ready; keyed `host/N`.
    fn start_two_on_each(&mut self, hosts: &[&str]) -> BTreeMap<String, Worker> {
        let mut workers = BTreeMap::new();
        for host in hosts {
            for name in ["1", "2"] {
                workers.insert(format!("{host}/{name}"), self.start_worker(host, name));
            }
        }
        workers.values().for_each(|w| self.wait_ready(w));
        workers
    }

    /// Waits until `worker` said READY (it is registered and claims).
    fn wait_ready(&self, worker: &Worker) {
        worker.wait_said("READY=1");
    }

    /// A job whose runs prove they never overlap (see the module doc),
    /// ticking `ticks` times a tenth of a second.
    fn guarded_job(&self, id: &str, ticks: u32) -> Value {
        let command = format!(
            r#"exec 9>>"{locks}/$QUEUECTL_JOB_ID"
read h </proc/sys/kernel/hostname
note() {{ echo "$1 $QUEUECTL_JOB_ID $QUEUECTL_JOB_ATTEMPT $h $(date +%s%N)" >>"{events}"; }}
flock -n 9 || {{ note overlap; exit 99; }}
note start
i=0; while [ $i -lt {ticks} ]; do sleep 0.1; note tick; i=$((i+1)); done
note end"#,
            locks = self.env.path("shared/locks").display(),
            events = self.events_path().display(),
        );
        serde_json::json!({ "id": id, "command": command })
    }

    /// A job that only records its run (no fork: `read` and `echo` are
    /// shell builtins), for runs of thousands.
    fn quick_job(&self, id: &str) -> Value {
        let command = format!(
            r#"read h </proc/sys/kernel/hostname; echo "run $QUEUECTL_JOB_ID $QUEUECTL_JOB_ATTEMPT $h 0" >>"{}""#,
            self.events_path().display()
        );
        serde_json::json!({ "id": id, "command": command })
    }

    fn events_path(&self) -> PathBuf {
        self.env.path("shared/events")
    }

    fn events(&self) -> Vec<Event> {
        std::fs::read_to_string(self.events_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                (f.len() == 5).then(|| Event {
                    kind: f[0].to_owned(),
                    job: f[1].to_owned(),
                    attempt: f[2].parse().unwrap_or(0),
                    host: f[3].to_owned(),
                    at_ns: f[4].parse().unwrap_or(0),
                })
            })
            .collect()
    }

    /// How far job `id`'s run_at is from the server's now, in seconds.
    fn due_in(&self, id: &str) -> f64 {
        let ms: i64 = self
            .db
            .sql(&format!(
                "SELECT run_at - floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint \
                 FROM jobs WHERE id = '{id}'"
            ))
            .parse()
            .unwrap();
        ms as f64 / 1000.0
    }

    /// What the queue, the jobs and `workers` say, for a failure message.
    fn explain(&self, workers: &[&Worker]) -> String {
        let mut said = if self.db.try_sql("SELECT 1").status.success() {
            format!(
                "states {:?}\nattempts {:#?}\n",
                self.states(),
                self.attempts()
            )
        } else {
            "the database is down\n".to_owned()
        };
        said.push_str("events:\n");
        for e in self.events() {
            said.push_str(&format!("  {e:?}\n"));
        }
        for w in workers {
            said.push_str(&format!("worker {} log:\n{}\n", w.pid, w.log()));
        }
        said
    }

    /// Jobs per state.
    fn states(&self) -> BTreeMap<String, u64> {
        self.db
            .sql("SELECT state, count(*) FROM jobs GROUP BY state")
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(s, n)| (s.to_owned(), n.parse().unwrap()))
            .collect()
    }

    fn count(&self, state: &str) -> u64 {
        self.states().get(state).copied().unwrap_or(0)
    }

    fn state(&self, id: &str) -> String {
        self.db
            .sql(&format!("SELECT state FROM jobs WHERE id = '{id}'"))
    }

    /// Waits until `n` jobs are completed, looking four times a second (a
    /// `psql` each), with the states seen last in the failure message.
    fn wait_completed(&self, n: u64, timeout: Duration) {
        let mut last = BTreeMap::new();
        let done = wait_until_or(timeout, || {
            last = self.states();
            last.get("completed").copied().unwrap_or(0) >= n || {
                std::thread::sleep(Duration::from_millis(250));
                false
            }
        });
        assert!(done, "{n} jobs not completed within {timeout:?}: {last:?}");
    }

    /// Every attempt, in enqueue and attempt order.
    fn attempts(&self) -> Vec<AttemptRow> {
        self.db
            .sql(
                "SELECT j.id, a.number, coalesce(a.outcome, 'running'), coalesce(a.host, ''), \
                 a.worker, a.started_at, coalesce(a.finished_at, -1), \
                 translate(coalesce(a.error, ''), E'\n|', '  ') \
                 FROM attempts a JOIN jobs j ON j.seq = a.job_seq ORDER BY j.seq, a.number",
            )
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(8, '|').collect();
                AttemptRow {
                    job: f[0].to_owned(),
                    number: f[1].parse().unwrap(),
                    outcome: f[2].to_owned(),
                    host: f[3].to_owned(),
                    worker: f[4].to_owned(),
                    started_ms: f[5].parse().unwrap(),
                    finished_ms: Some(f[6].parse().unwrap()).filter(|&ms: &i64| ms >= 0),
                    error: f[7].to_owned(),
                }
            })
            .collect()
    }

    /// The ids of jobs processing under a worker of `host` now.
    fn held_by(&self, host: &str) -> Vec<String> {
        self.db
            .sql(&format!(
                "SELECT id FROM jobs WHERE state = 'processing' AND worker LIKE '{host}/%' ORDER BY id"
            ))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The proof this file is about, for jobs `ids`: each completed with
    /// exactly one succeeded attempt, any other one ended for its lease
    /// ([`AttemptRow::ended_for_its_lease`]); nothing processing; no run found another's lock
    /// held; each run's lines come from the host its attempt records, and
    /// one run's lines all come before the next run's start. Returns the
    /// attempts.
    fn assert_each_succeeded_once(&self, ids: &[String]) -> Vec<AttemptRow> {
        assert_eq!(self.count("processing"), 0, "{:?}", self.states());
        let attempts = self.attempts();
        let events = self.events();
        let overlaps: Vec<&Event> = events.iter().filter(|e| e.kind == "overlap").collect();
        assert!(overlaps.is_empty(), "runs overlapped: {overlaps:?}");
        let mut by_job: BTreeMap<&str, Vec<&AttemptRow>> = BTreeMap::new();
        for a in &attempts {
            by_job.entry(a.job.as_str()).or_default().push(a);
        }
        let states: BTreeMap<String, String> = self
            .db
            .sql("SELECT id, state FROM jobs")
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(id, state)| (id.to_owned(), state.to_owned()))
            .collect();
        let mut lines_of: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
        for e in &events {
            lines_of.entry(e.job.as_str()).or_default().push(e);
        }
        for id in ids {
            assert_eq!(
                states.get(id).map(String::as_str),
                Some("completed"),
                "job {id}"
            );
            let runs = by_job.get(id.as_str()).cloned().unwrap_or_default();
            let succeeded = runs.iter().filter(|a| a.outcome == "succeeded").count();
            assert_eq!(succeeded, 1, "job {id}: {runs:?}");
            assert!(
                runs.iter()
                    .all(|a| a.outcome == "succeeded" || a.ended_for_its_lease()),
                "job {id}: {runs:?}"
            );
            let mut lines = lines_of.remove(id.as_str()).unwrap_or_default();
            lines.sort_by_key(|e| e.at_ns);
            for line in &lines {
                let run = runs.iter().find(|a| a.number == line.attempt);
                assert_eq!(
                    run.map(|a| a.host.as_str()),
                    Some(line.host.as_str()),
                    "job {id}: a line of attempt {} from {} ({runs:?})",
                    line.attempt,
                    line.host
                );
            }
            assert!(
                lines.windows(2).all(|w| w[0].attempt <= w[1].attempt),
                "job {id}: runs interleaved: {lines:?}"
            );
        }
        attempts
    }
}

/// The first file named `name` under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = find_file(&path, name)
        {
            return Some(found);
        }
    }
    None
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

#[test]
fn five_thousand_jobs_on_three_hosts_each_succeed_exactly_once() {
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB", "hostC"], CONFIG) else {
        return;
    };
    let _workers = cluster.start_two_on_each(&["hostA", "hostB", "hostC"]);

    let ids = ids("q", 5000);
    let started = Instant::now();
    for batch in ids.chunks(500) {
        let jobs: Vec<Value> = batch.iter().map(|id| cluster.quick_job(id)).collect();
        cluster.enqueue_on("hostA", &jobs);
    }
    let enqueued = started.elapsed();
    cluster.wait_completed(5000, Duration::from_secs(300));
    let took = started.elapsed();
    eprintln!(
        "5000 jobs, 3 hosts x 2 workers: enqueued in 10 batches in {:.2}s, all completed after {:.2}s ({:.0} jobs/s)",
        enqueued.as_secs_f64(),
        took.as_secs_f64(),
        5000.0 / took.as_secs_f64()
    );

    // Each job succeeded once, its command's line written on the host its
    // attempt records. (A worker starved past its lease under load would
    // show as a rescued attempt: allowed, and counted.)
    let attempts = cluster.assert_each_succeeded_once(&ids);
    let events = cluster.events();
    let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.outcome == "succeeded") {
        assert!(
            events
                .iter()
                .any(|e| e.job == a.job && e.attempt == a.number),
            "{} succeeded without running: {a:?}",
            a.job
        );
        assert!(a.worker.starts_with(&format!("{}/", a.host)), "{a:?}");
        *per_host.entry(a.host.as_str()).or_default() += 1;
    }
    eprintln!(
        "jobs per host: {per_host:?}; {} attempt(s) besides the 5000 successes",
        attempts.len() - 5000
    );
    for host in ["hostA", "hostB", "hostC"] {
        assert!(
            per_host.get(host).is_some_and(|&n| n > 0),
            "{host} ran none: {per_host:?}"
        );
    }
}

#[test]
fn killing_every_worker_of_one_host_moves_its_jobs_elsewhere_without_overlap() {
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB", "hostC"], CONFIG) else {
        return;
    };
    let workers = cluster.start_two_on_each(&["hostA", "hostB", "hostC"]);
    let ids = ids("k", 24);
    let jobs: Vec<Value> = ids.iter().map(|id| cluster.guarded_job(id, 15)).collect();
    cluster.enqueue_on("hostB", &jobs);

    // Both of hostA's workers mid-job, their jobs' lines being written.
    wait_until("both workers of hostA run a job", WAIT, || {
        let held = cluster.held_by("hostA");
        held.len() == 2
            && held.iter().all(|id| {
                cluster
                    .events()
                    .iter()
                    .any(|e| e.job == *id && e.kind == "start" && e.host == "hostA")
            })
    });
    for name in ["hostA/1", "hostA/2"] {
        signal(workers[name].pid, Signal::SIGKILL);
    }
    let killed_at = Instant::now();
    // Dead workers change nothing more: what they held stays held until
    // their leases run out.
    let killed = cluster.held_by("hostA");
    assert!(!killed.is_empty(), "hostA held no job when killed");

    cluster.wait_completed(24, WAIT);
    eprintln!(
        "killed {} job(s) of hostA; all 24 completed {:.2}s after the kill",
        killed.len(),
        killed_at.elapsed().as_secs_f64()
    );
    let attempts = cluster.assert_each_succeeded_once(&ids);
    let events = cluster.events();
    for id in &killed {
        let runs: Vec<&AttemptRow> = attempts.iter().filter(|a| a.job == *id).collect();
        assert_eq!(runs.len(), 2, "{id}: {runs:?}");
        let (first, second) = (runs[0], runs[1]);
        assert_eq!(
            (first.outcome.as_str(), first.host.as_str()),
            ("lease_expired", "hostA"),
            "{id}: {runs:?}"
        );
        assert_eq!(second.outcome, "succeeded");
        assert_ne!(second.host, "hostA", "{id}: reran on a killed host");
        assert!(
            second.started_ms >= first.finished_ms.unwrap(),
            "{id}: rerun before the rescue: {runs:?}"
        );
        // The killed run never ended; the rerun started after its last line.
        let of = |n: u32| {
            events
                .iter()
                .filter(move |e| e.job == *id && e.attempt == n)
        };
        assert!(of(1).all(|e| e.kind != "end"), "{id}: the killed run ended");
        let last_of_killed = of(1).map(|e| e.at_ns).max();
        let rerun_start = of(2).find(|e| e.kind == "start").map(|e| e.at_ns);
        assert!(
            rerun_start > last_of_killed,
            "{id}: rerun started at {rerun_start:?}, killed run's last line at {last_of_killed:?}"
        );
    }
}

#[test]
fn a_cut_host_kills_its_job_before_its_lease_ends_and_it_reruns_elsewhere() {
    let config = CONFIG.replace("lease_seconds = 2", "lease_seconds = 3");
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB"], &config) else {
        return;
    };
    let cut = cluster.start_worker("hostA", "1");
    cluster.wait_ready(&cut);
    cluster.enqueue_on("hostA", &[cluster.guarded_job("long", 50)]);
    wait_until("the job runs on hostA", WAIT, || {
        cluster
            .events()
            .iter()
            .any(|e| e.kind == "tick" && e.host == "hostA")
    });
    let other = cluster.start_worker("hostB", "1");
    cluster.wait_ready(&other);

    cluster.host("hostA").cut_link();
    let cut_at = Instant::now();
    let rerun = wait_until_or(WAIT, || {
        cluster
            .events()
            .iter()
            .any(|e| e.kind == "start" && e.host == "hostB")
    });
    assert!(
        rerun,
        "no rerun on hostB: {}",
        cluster.explain(&[&cut, &other])
    );
    let rerun_after = cut_at.elapsed();
    let events = cluster.events();
    let last_on_a = events
        .iter()
        .filter(|e| e.host == "hostA")
        .map(|e| e.at_ns)
        .max()
        .unwrap();
    let start_on_b = events
        .iter()
        .find(|e| e.kind == "start" && e.host == "hostB")
        .unwrap()
        .at_ns;
    assert!(
        events.iter().all(|e| e.kind != "end" || e.host != "hostA"),
        "the cut run was not killed: {events:?}"
    );
    assert!(
        start_on_b > last_on_a,
        "hostB started at {start_on_b} while hostA's run wrote at {last_on_a}"
    );
    eprintln!(
        "link cut: rerun started on hostB {:.2}s later, {:.3}s after the cut run's last line",
        rerun_after.as_secs_f64(),
        (start_on_b - last_on_a) as f64 / 1e9
    );
    assert!(
        cut.log().contains("killing the job"),
        "the cut worker did not say it killed the job:\n{}",
        cut.log()
    );

    cluster.wait_completed(1, WAIT);
    let attempts = cluster.assert_each_succeeded_once(&["long".to_owned()]);
    let hosts: Vec<(&str, &str)> = attempts
        .iter()
        .map(|a| (a.host.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(hosts, [("hostA", "lease_expired"), ("hostB", "succeeded")]);

    // Back online, the cut worker reconnects and claims again (alone: hostB's
    // worker is stopped first).
    cluster.host("hostA").restore_link();
    signal(other.pid, Signal::SIGTERM);
    assert!(cluster.env.wait_worker(other.pid, WAIT).success());
    cluster.enqueue_on("hostB", &[cluster.guarded_job("after", 1)]);
    cluster.wait_completed(2, WAIT);
    let attempts = cluster.assert_each_succeeded_once(&["after".to_owned()]);
    let after: Vec<&AttemptRow> = attempts.iter().filter(|a| a.job == "after").collect();
    assert_eq!(after[0].worker, "hostA/1", "{after:?}");
}

#[test]
fn a_postgres_restart_and_outage_lose_no_job() {
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB", "hostC"], CONFIG) else {
        return;
    };
    let workers = cluster.start_two_on_each(&["hostA", "hostB", "hostC"]);
    let mut enqueued = vec![];
    let mut enqueue = |cluster: &Cluster, prefix: &str, n: usize, ticks: u32| {
        let batch = ids(prefix, n);
        let jobs: Vec<Value> = batch
            .iter()
            .map(|id| cluster.guarded_job(id, ticks))
            .collect();
        cluster.enqueue_on("hostC", &jobs);
        enqueued.extend(batch);
    };

    enqueue(&cluster, "r", 60, 2);
    wait_until("some jobs ran", WAIT, || cluster.count("completed") >= 10);
    cluster.pg.restart();
    enqueue(&cluster, "s", 30, 2);
    cluster.wait_completed(90, WAIT);

    // Six jobs longer than a lease, one per worker, running when the
    // database goes away for a while.
    enqueue(&cluster, "long", 6, 30);
    wait_until("every worker runs a long job", WAIT, || {
        cluster.count("processing") == 6
            && cluster
                .events()
                .iter()
                .filter(|e| e.kind == "start" && e.job.starts_with("long"))
                .count()
                == 6
    });

    // What each worker said before the outage (the restart's loss, too).
    let said_before: Vec<usize> = workers
        .values()
        .map(|w| w.notify.messages().len())
        .collect();
    cluster.pg.down();
    let down_at = Instant::now();
    let refused = cluster.try_enqueue_on("hostB", &[cluster.guarded_job("never", 1)]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unreachable"),
        "{}",
        text(&refused)
    );
    let unreachable = "STATUS=database unreachable since";
    for (w, &before) in workers.values().zip(&said_before) {
        w.wait_said_since(before, unreachable);
    }
    // Down for longer than the workers' leases: the jobs running when it
    // went are killed by their workers (renewals fail), to be rescued later.
    let killed = wait_until_or(WAIT, || {
        workers
            .values()
            .all(|w| w.log().contains("killing the job"))
    });
    let refs: Vec<&Worker> = workers.values().collect();
    assert!(
        killed,
        "a running job was not killed: {}",
        cluster.explain(&refs)
    );
    let down_for = down_at.elapsed();
    cluster.pg.up();
    enqueue(&cluster, "t", 30, 2);
    cluster.wait_completed(126, WAIT);
    let rescued = cluster
        .attempts()
        .iter()
        .filter(|a| a.ended_for_its_lease())
        .count();
    eprintln!(
        "database down {:.2}s (until every worker said so and killed its running job); \
         126 jobs completed, {rescued} attempt(s) ended for their lease (restart, outage)",
        down_for.as_secs_f64()
    );
    // Each long job's first run ended for its lease (the rest is checked
    // below for every job).
    for long in ids("long", 6) {
        let runs: Vec<AttemptRow> = cluster
            .attempts()
            .into_iter()
            .filter(|a| a.job == long)
            .collect();
        assert!(
            runs.len() >= 2 && runs[0].ended_for_its_lease(),
            "{long}: {runs:?}"
        );
    }
    // Every worker came back: after saying the database was unreachable,
    // it went idle or ran a job again.
    for (w, &before) in workers.values().zip(&said_before) {
        let said = w.notify.seen_since(before, unreachable).unwrap();
        wait_until("the worker is back", WAIT, || {
            w.notify.messages()[said..]
                .iter()
                .any(|m| m.contains("STATUS=idle") || m.contains("STATUS=running"))
        });
    }
    assert_eq!(cluster.db.sql("SELECT count(*) FROM jobs"), "126");
    cluster.assert_each_succeeded_once(&enqueued);
    let status = cluster.json_on("hostA", &["status"]);
    assert_eq!(
        status["workers"].as_array().map(Vec::len),
        Some(6),
        "{status}"
    );
}

#[test]
fn show_and_logs_on_another_host_say_where_the_job_ran() {
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB"], CONFIG) else {
        return;
    };
    let worker = cluster.start_worker("hostA", "1");
    cluster.wait_ready(&worker);
    let job = serde_json::json!({"id": "far", "command": "echo hello from $(hostname)"});
    cluster.enqueue_on("hostB", &[job]);
    cluster.wait_completed(1, WAIT);

    let shown = cluster.json_on("hostB", &["show", "far"]);
    let attempt = &shown["attempt_history"][0];
    assert_eq!(attempt["host"], "hostA", "{shown}");
    assert_eq!(attempt["worker"], "hostA/1", "{shown}");
    let human = cluster.ok_on("hostB", &["show", "far"]);
    assert!(human.contains("hostA"), "{human}");

    // On hostA the output is in its own log file.
    let here = cluster.run_on("hostA", &["logs", "far"]);
    assert_eq!(
        String::from_utf8_lossy(&here.stdout),
        "hello from hostA\n",
        "{}",
        text(&here)
    );
    // On hostB: where the output is (hostA and the log's path).
    let there = cluster.run_on("hostB", &["logs", "far"]);
    assert!(there.status.success(), "{}", text(&there));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&there.stdout),
        String::from_utf8_lossy(&there.stderr)
    );
    assert!(said.contains("hostA"), "{}", text(&there));
    // Where: the log's path on hostA (its state directory for this queue,
    // under /var/lib), and its output as the queue kept it.
    let on_a = find_file(&cluster.var_lib("hostA"), "far.log").expect("hostA kept the log");
    let path_there =
        Path::new("/var/lib").join(on_a.strip_prefix(cluster.var_lib("hostA")).unwrap());
    assert!(
        said.contains(&path_there.display().to_string()),
        "{}",
        text(&there)
    );
    assert!(said.contains("hello from hostA"), "{}", text(&there));
    assert!(find_file(&cluster.var_lib("hostB"), "far.log").is_none());
}

#[test]
fn status_lists_every_hosts_workers_and_a_live_name_is_refused_elsewhere() {
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB", "hostC"], CONFIG) else {
        return;
    };
    let _workers = cluster.start_two_on_each(&["hostA", "hostB", "hostC"]);

    let status = cluster.json_on("hostB", &["status"]);
    let mut seen: Vec<(String, String)> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["host"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![];
    for host in ["hostA", "hostB", "hostC"] {
        for n in ["1", "2"] {
            expected.push((format!("{host}/{n}"), host.to_owned()));
        }
    }
    assert_eq!(seen, expected, "{status}");
    let table = cluster.ok_on("hostC", &["status"]);
    assert!(table.contains("HOST"), "{table}");
    for (name, _) in &expected {
        assert!(table.contains(name.as_str()), "{name} missing:\n{table}");
    }
    crate::display::assert_worker_columns_line_up(&table);

    // hostA/1 is alive on hostA: hostB may not take its name.
    let out = cluster
        .command_on("hostB", None)
        .args(["worker", "run", "--name", "hostA/1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hostA/1") && stderr.contains("on host hostA"),
        "{}",
        text(&out)
    );
    // The live worker keeps its name and works.
    let status = cluster.json_on("hostC", &["status"]);
    let holder = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "hostA/1")
        .cloned();
    assert_eq!(
        holder.map(|w| w["host"].clone()),
        Some(Value::from("hostA"))
    );
}

#[test]
fn workers_with_clocks_off_by_ten_minutes_follow_the_servers_clock() {
    let config = "lease_seconds = 2\nkill_grace_seconds = 1\nbackoff_base = 60\n\
                  backoff_max_seconds = 3600\nsupervisor = \"process\"\noutput = \"file\"\n";
    if libfaketime().is_none() {
        skip_unless_ci("libfaketime is not installed (Debian: apt install faketime)");
        return;
    }
    let Some(mut cluster) = Cluster::new(&["hostA", "hostB", "hostC"], config) else {
        return;
    };
    let clock_file = cluster.env.path("shared/clock");
    let clock_job = |id: &str| serde_json::json!({"id": id, "command": format!("date +%s >>{}", clock_file.display())});
    let failing = |id: &str| serde_json::json!({"id": id, "command": "exit 3", "max_retries": 2});

    // Ahead: a job due in 5 minutes is not due for it.
    let ahead = cluster.start_worker_with_clock("hostA", "ahead", Some("+10m"));
    cluster.wait_ready(&ahead);
    cluster.enqueue_on(
        "hostC",
        &[
            serde_json::json!({"id": "later", "command": "true", "delay": "5m", "priority": 10}),
            clock_job("marker"),
        ],
    );
    // The marker, due now but of lower priority, runs only after a claim
    // that would have taken `later` had it been due.
    cluster.wait_completed(1, WAIT);
    let real = jiff::Timestamp::now().as_second();
    let seen: i64 = std::fs::read_to_string(&clock_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        (seen - real - 600).abs() < 60,
        "the worker's clock is not 10 minutes ahead: {seen} vs {real}"
    );
    assert_eq!(cluster.state("later"), "pending");
    assert!(
        cluster.due_in("later") > 200.0,
        "later is due in {}s",
        cluster.due_in("later")
    );
    // Its failure's backoff counts from the server's clock, not its own.
    cluster.enqueue_on("hostC", &[failing("flaky-ahead")]);
    wait_until("flaky-ahead failed once", WAIT, || {
        cluster.state("flaky-ahead") == "failed"
    });
    let backoff = cluster.due_in("flaky-ahead");
    assert!((30.0..=60.5).contains(&backoff), "retry due in {backoff}s");
    signal(ahead.pid, Signal::SIGTERM);
    assert!(cluster.env.wait_worker(ahead.pid, WAIT).success());

    // Behind: a due job runs at once; a failure's retry is 60 s away.
    let behind = cluster.start_worker_with_clock("hostB", "behind", Some("-10m"));
    cluster.wait_ready(&behind);
    cluster.enqueue_on(
        "hostC",
        &[serde_json::json!({"id": "now", "command": "true"})],
    );
    wait_until("the behind worker runs a due job", WAIT, || {
        cluster.state("now") == "completed"
    });
    cluster.enqueue_on("hostC", &[failing("flaky-behind")]);
    wait_until("flaky-behind failed once", WAIT, || {
        cluster.state("flaky-behind") == "failed"
    });
    let backoff = cluster.due_in("flaky-behind");
    assert!((30.0..=60.5).contains(&backoff), "retry due in {backoff}s");

    // Its lease, renewed for 8 s (four leases), is never seen as expired by
    // a worker with the right clock, which runs meanwhile.
    cluster.enqueue_on(
        "hostC",
        &[serde_json::json!({"id": "slow", "command": "sleep 8"})],
    );
    wait_until("the behind worker runs slow", WAIT, || {
        cluster.held_by("hostB") == ["slow"]
    });
    let right = cluster.start_worker("hostC", "right");
    cluster.wait_ready(&right);
    assert_eq!(
        cluster.state("slow"),
        "processing",
        "slow ended before the other worker came"
    );
    wait_until("slow completed", WAIT, || {
        cluster.state("slow") == "completed"
    });
    let slow: Vec<AttemptRow> = cluster
        .attempts()
        .into_iter()
        .filter(|a| a.job == "slow")
        .collect();
    assert_eq!(slow.len(), 1, "slow was rescued or ran twice: {slow:?}");
    assert_eq!(
        (slow[0].worker.as_str(), slow[0].outcome.as_str()),
        ("hostB/behind", "succeeded")
    );
    for id in ["flaky-ahead", "flaky-behind"] {
        let runs = cluster
            .attempts()
            .into_iter()
            .filter(|a| a.job == id)
            .count();
        assert_eq!(runs, 1, "{id} ran again before its backoff ended");
    }
}

#[test]
fn an_unreachable_database_fails_worker_start_and_holds_worker_run_until_it_is_up() {
    let Some(mut cluster) = Cluster::new(&["hostA"], CONFIG) else {
        return;
    };
    cluster.pg.down();
    let out = cluster.run_on("hostA", &["worker", "start", "--count", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "{}",
        text(&out)
    );
    let password = std::fs::read_to_string(cluster.pg.password_file()).unwrap();
    assert!(
        !text(&out).contains(password.trim()),
        "the password was shown"
    );

    let worker = cluster.start_worker("hostA", "1");
    wait_until("the worker says it waits for the database", WAIT, || {
        worker
            .notify
            .seen("STATUS=database unreachable since")
            .is_some()
    });
    assert!(
        worker.notify.seen("READY=1").is_none(),
        "{:?}",
        worker.notify.messages()
    );
    assert!(crate::support::alive(worker.pid), "{}", worker.log());

    cluster.pg.up();
    cluster.wait_ready(&worker);
    let status = cluster.json_on("hostA", &["status"]);
    assert_eq!(status["workers"][0]["name"], "hostA/1", "{status}");
    cluster.enqueue_on("hostA", &[cluster.guarded_job("first", 1)]);
    cluster.wait_completed(1, WAIT);
    cluster.assert_each_succeeded_once(&["first".to_owned()]);

    // Dropped, the cluster leaves no worker, server, namespace or link.
    let database = cluster.db.name().to_owned();
    let server_dir = cluster.pg.dir().to_owned();
    let prefix = cluster.network.bridge().trim_end_matches("br").to_owned();
    drop(cluster);
    let ours = |text: &str| {
        text.split(|c: char| c.is_whitespace() || c == ':' || c == '@')
            .any(|word| {
                word.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest == "br" || rest.starts_with(['v', '-']))
            })
    };
    let names = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!ours(&names(&["netns", "list"])), "a namespace is left");
    assert!(!ours(&names(&["-o", "link", "show"])), "a link is left");
    assert!(!server_dir.exists(), "the server's directory is left");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&database) || c.contains(&server_dir.display().to_string()))
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}
