//! The worker loop: claim a job, run it, record the attempt, repeat.
//!
//! One thread decides everything; helper threads only turn signals, wake-up
//! datagrams and job exits into [`Event`]s on one channel. Timers (lease
//! renewal, watchdog, job timeout, kill grace, maintenance) are deadlines that
//! bound each wait, so the watchdog is fed from the loop whose progress it
//! proves. No database transaction is open while a job runs.

mod lease_guard;
pub mod maintenance;

use lease_guard::LeaseGuard;
pub use maintenance::Maintenance;

use crate::config::{Config, OutputSetting};
use crate::domain::AttemptOutcome;
use crate::error::{Error, Result};
use crate::output::{Destination, FileSink, JournalSink, OutputSink};
use crate::paths::StateDir;
use crate::runner::{self, JobCommand, JobExit, RunningJob};
use crate::store::{
    AttemptResult, ClaimRequest, Claimed, Database, Holder, LeaseStatus, Store, WorkerInfo,
};
use crate::systemd::notify::Notifier;
use crate::wakeup::WakeSocket;
use jiff::Timestamp;
use nix::sys::signal::Signal;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Longest an idle worker sleeps without looking at the queue, in case a
/// wake-up datagram was lost.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

pub enum Event {
    Signal(i32),
    Wake,
    Exited(JobExit),
}

impl From<JobExit> for Event {
    fn from(exit: JobExit) -> Event {
        Event::Exited(exit)
    }
}

pub struct Worker {
    name: String,
    host: String,
    /// The cgroup under which each attempt gets its own, when delegated.
    cgroups: Option<String>,
    config: Config,
    state: StateDir,
    store: Store,
    events: Receiver<Event>,
    sender: mpsc::Sender<Event>,
    notifier: Notifier,
    output: Destination,
    maintenance: Maintenance,
    stopping: bool,
    /// Kills the running job if its lease is about to run out while the
    /// loop is stuck (see `lease_guard`).
    guard: LeaseGuard,
    /// What the worker is doing, as its STATUS text says.
    status: String,
    next_watchdog: Option<Instant>,
    _wake: Option<WakeSocket>,
}

/// A default worker name: `<host>-<pid>`.
pub fn default_name() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// The name a worker registers under. On a queue shared by many hosts
/// (PostgreSQL) names must be unique across hosts, so an instance name like
/// `3` becomes `web1/3`; a name that already names its host is kept.
pub fn registered_name(db: &Database, host: &str, name: &str) -> String {
    if db.is_shared() && !name.contains('/') {
        format!("{host}/{name}")
    } else {
        name.to_owned()
    }
}

/// A worker name: letters, digits, '.', '_' and '-', optionally after a
/// host name and a '/' (`web1/3`).
fn check_worker_name(name: &str) -> Result<()> {
    let parts: Vec<&str> = match name.split_once('/') {
        Some((host, local)) => vec![host, local],
        None => vec![name],
    };
    for part in parts {
        crate::domain::JobId::parse(part).map_err(|why| {
            Error::Invalid(format!(
                "worker name '{}' {why}",
                crate::domain::echo::shown(name)
            ))
        })?;
    }
    Ok(())
}

/// How long a worker waits before trying an unreachable database again.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// This host's name, as workers record it (and attempts, for containment).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Worker {
    /// Opens the queue, installs signal handling and registers the worker.
    pub fn start(name: String, config: Config, state: StateDir) -> Result<Worker> {
        let host = hostname();
        // The name as given first, so a message echoes what the user typed.
        check_worker_name(&name)?;
        let name = registered_name(&state.db, &host, &name);
        check_worker_name(&name)?;
        let (tx, events) = mpsc::channel();

        let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
        let signal_tx = tx.clone();
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if signal_tx.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        });

        let notifier = Notifier::from_env();
        let Some(store) = open_when_reachable(&state, &config, &notifier, &events)? else {
            return Err(Error::Supervisor(
                "stopped before the database could be reached".into(),
            ));
        };
        // A socket's file name cannot hold the '/' of a host-qualified name.
        let wake = match WakeSocket::bind(&state.wake(), &name.replace('/', "_")) {
            Ok(socket) => {
                let wake_tx = tx.clone();
                socket
                    .forward(move || wake_tx.send(Event::Wake).is_ok())
                    .map_err(|e| Error::io("cannot listen for wake-ups", e))?;
                Some(socket)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot bind a wake-up socket; checking the queue every {}s instead", IDLE_RECHECK.as_secs());
                None
            }
        };

        let output = match config.output {
            OutputSetting::File => Destination::File,
            OutputSetting::Journal => Destination::Journal,
            OutputSetting::Auto if libsystemd::logging::connected_to_journal() => {
                Destination::Journal
            }
            OutputSetting::Auto => Destination::File,
        };
        let cgroups = runner::contain::delegated_cgroup();
        let mut worker = Worker {
            maintenance: Maintenance::new(&name, &host, &config, state.clone()),
            name,
            host,
            cgroups,
            config,
            state,
            store,
            events,
            sender: tx,
            notifier,
            output,
            stopping: false,
            guard: LeaseGuard::start(),
            status: "idle".into(),
            next_watchdog: None,
            _wake: wake,
        };
        let listening = {
            let wake_tx = worker.sender.clone();
            worker
                .store
                .listen_for_work(Box::new(move || wake_tx.send(Event::Wake).is_ok()))?
        };
        worker.take_over_name()?;
        worker.store.register_worker(&WorkerInfo {
            name: worker.name.clone(),
            pid: std::process::id(),
            host: worker.host.clone(),
            status: "idle".into(),
            unit: crate::systemd::own_unit(),
        })?;
        worker.next_watchdog = worker
            .notifier
            .watchdog_interval()
            .map(|i| Instant::now() + i);
        worker.notifier.ready("idle");
        let containment = match &worker.cgroups {
            Some(cgroup) => format!("a cgroup per attempt under {cgroup}"),
            None => "process group and attempt token".to_owned(),
        };
        tracing::info!(worker = %worker.name, db = %worker.state.db, output = output.as_str(), containment, listening, "worker ready");
        Ok(worker)
    }

    /// Refuses a name a live worker uses; otherwise recovers the jobs a
    /// previous process under this name held when it died (after a restart
    /// they need not wait for their leases to expire).
    fn take_over_name(&mut self) -> Result<()> {
        let now = self.store.now()?;
        let fresh = jiff::SignedDuration::try_from(self.config.lease() * 2)
            .unwrap_or(jiff::SignedDuration::MAX);
        let previous = self
            .store
            .workers()?
            .into_iter()
            .find(|w| w.name == self.name);
        // A fresh heartbeat from another host cannot be checked here: the
        // name is that worker's until it goes silent (its leases then have
        // run out too, so rescuing its jobs cannot overlap a run).
        if let Some(previous) = previous
            && now.duration_since(previous.heartbeat_at) < fresh
        {
            let elsewhere = previous.host != self.host;
            if elsewhere
                || (previous.pid != std::process::id()
                    && crate::supervisor::process::process_alive(previous.pid))
            {
                let place = if elsewhere {
                    format!("on host {}", crate::domain::echo::shown(&previous.host))
                } else {
                    "here".to_owned()
                };
                return Err(Error::Invalid(format!(
                    "worker name '{}' is in use by a running worker {place} (pid {})",
                    self.name, previous.pid
                )));
            }
        }
        let held = self.store.held_attempts(Holder::Worker(&self.name))?;
        if !held.is_empty() {
            let ended = maintenance::end_attempts(&held, &self.host);
            let policy = self.config.retry_policy();
            for id in self
                .store
                .rescue(Holder::Worker(&self.name), &ended, &policy)?
            {
                tracing::warn!(job_id = %id, "recovered a job this worker's previous process was running");
            }
        }
        Ok(())
    }

    fn claim_request(&self) -> ClaimRequest {
        ClaimRequest {
            worker: self.name.clone(),
            lease: self.config.lease(),
            output: self.output,
            host: self.host.clone(),
            cgroups: self.cgroups.clone(),
        }
    }

    /// Runs until asked to stop (or, with `drain`, until no job is due);
    /// returns once the current job is recorded.
    pub fn run(mut self, drain: bool) -> Result<()> {
        let result = self.main_loop(drain);
        if let Err(e) = self.store.unregister_worker(&self.name) {
            tracing::warn!(error = %e, "cannot unregister worker");
        }
        tracing::info!(worker = %self.name, "worker stopped");
        result
    }

    fn main_loop(&mut self, drain: bool) -> Result<()> {
        let request = self.claim_request();
        let mut next: Option<Claimed> = None;
        loop {
            self.feed_watchdog();
            if self.stopping {
                return Ok(());
            }
            self.maintenance.run_if_due(&mut self.store, &self.status);
            let job = match next.take() {
                Some(job) => Some(job),
                None => {
                    match self.reachable(|| "claiming".into(), |store| store.claim_one(&request))? {
                        Some(job) => job,
                        None => return Ok(()),
                    }
                }
            };
            let Some(job) = job else {
                if drain {
                    return Ok(());
                }
                self.wait_idle()?;
                continue;
            };
            let Some(result) = self.run_job(&job)? else {
                continue; // lease lost: someone else owns the job now
            };
            let claim_next = (!self.stopping).then_some(&request);
            let policy = self.config.retry_policy();
            let recording = || format!("recording job {}", job.id);
            let finished = self.reachable(recording, |store| {
                store.finish_one(&job.lease, &result, &policy, claim_next)
            })?;
            let Some((held, claimed)) = finished else {
                tracing::warn!(job_id = %job.id, "stopped before the attempt could be recorded; the job runs again once its lease runs out");
                return Ok(());
            };
            if !held {
                tracing::warn!(job_id = %job.id, "lease was lost before the attempt was recorded");
            }
            tracing::info!(job_id = %job.id, attempt = job.lease.attempt, outcome = result.outcome.as_str(), "attempt finished");
            next = claimed;
            if next.is_none() {
                self.set_status("idle");
            }
        }
    }

    /// Runs `op`, waiting out an unreachable database: the worker claims
    /// nothing meanwhile, says so in its STATUS text (`what` names the wait,
    /// built only then: not on every job), and tries again with backoff
    /// (the backend reconnects). `None` when a stop was requested while
    /// waiting.
    fn reachable<T>(
        &mut self,
        what: impl Fn() -> String,
        mut op: impl FnMut(&mut Store) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut since: Option<Timestamp> = None;
        let mut pause = RECONNECT_FIRST;
        loop {
            let error = match op(&mut self.store) {
                Ok(value) => {
                    if since.is_some() {
                        tracing::info!(worker = %self.name, "database reachable again");
                        self.set_status("idle");
                    }
                    return Ok(Some(value));
                }
                Err(e) if e.is_unreachable() => e,
                Err(e) => return Err(e),
            };
            if since.is_none() {
                tracing::warn!(worker = %self.name, error = %error, "database unreachable; not claiming until it is back");
            }
            let since = *since.get_or_insert_with(Timestamp::now);
            self.set_status(&unreachable_status(since, &what(), &error.to_string()));
            if !self.wait_for_retry(pause)? {
                return Ok(None);
            }
            pause = (pause * 2).min(RECONNECT_MAX);
        }
    }

    /// Sleeps `pause` (waking for the watchdog); false when a stop signal came.
    fn wait_for_retry(&mut self, pause: Duration) -> Result<bool> {
        let until = Instant::now() + pause;
        loop {
            self.feed_watchdog();
            if self.stopping {
                return Ok(false);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(true);
            }
            let mut wait = until - now;
            if let Some(due) = self.next_watchdog {
                wait = wait.min(due.saturating_duration_since(now));
            }
            match self.events.recv_timeout(wait) {
                Ok(Event::Signal(_)) => self.handle_stop_signal("database unreachable, exiting"),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Supervisor("worker event channel closed".into()));
                }
            }
        }
    }

    /// The STATUS text systemd shows, also recorded by the next heartbeat.
    fn set_status(&mut self, text: &str) {
        self.notifier.status(text);
        text.clone_into(&mut self.status);
    }

    fn feed_watchdog(&mut self) {
        if let (Some(due), Some(interval)) = (self.next_watchdog, self.notifier.watchdog_interval())
            && Instant::now() >= due
        {
            self.notifier.watchdog();
            self.next_watchdog = Some(Instant::now() + interval);
        }
    }

    fn handle_stop_signal(&mut self, what: &str) {
        if !self.stopping {
            self.stopping = true;
            tracing::info!(worker = %self.name, "stop requested; {what}");
            self.notifier.stopping(&format!("stopping: {what}"));
        }
    }

    /// Sleeps until work may be due, a wake-up, a signal, or a timer.
    fn wait_idle(&mut self) -> Result<()> {
        let mut wait = IDLE_RECHECK.min(self.maintenance.until_due());
        match self.store.next_event_in() {
            Ok(Some(until)) => wait = wait.min(until),
            Ok(None) => {}
            // The next claim waits for the database (see `reachable`).
            Err(e) if e.is_unreachable() => {}
            Err(e) => return Err(e),
        }
        if let Some(due) = self.next_watchdog {
            wait = wait.min(due.saturating_duration_since(Instant::now()));
        }
        match self.events.recv_timeout(wait) {
            Ok(Event::Signal(_)) => self.handle_stop_signal("idle, exiting"),
            Ok(Event::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Event::Exited(_)) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Supervisor("worker event channel closed".into()));
            }
        }
        Ok(())
    }

    fn sink_for(&self, job: &Claimed) -> Result<Box<dyn OutputSink>> {
        Ok(match self.output {
            Destination::Journal => Box::new(JournalSink::new(
                &job.id,
                job.lease.attempt,
                &self.name,
                &self.state.job_log(&job.id),
            )),
            _ => Box::new(FileSink::lazy(&self.state.job_log(&job.id))),
        })
    }

    /// Runs one attempt to its end. Returns `None` when the lease was lost
    /// (the job is someone else's now and was killed here).
    fn run_job(&mut self, job: &Claimed) -> Result<Option<AttemptResult>> {
        let budget = job.lease.max_retries + 1;
        let status = format!(
            "running {} (attempt {}/{budget})",
            job.id,
            job.lease.failures + 1
        );
        self.set_status(&status);
        tracing::info!(job_id = %job.id, attempt = job.lease.attempt, "starting job");
        let token = job.lease.attempt_token();
        let env = match crate::env_file::job_environment(&job.env, job.env_file.as_deref()) {
            Ok(env) => env,
            Err(why) => {
                tracing::warn!(job_id = %job.id, error = %why, "cannot start job");
                return Ok(Some(
                    AttemptResult::new(AttemptOutcome::Failed)
                        .with_error(format!("cannot start job: {why}")),
                ));
            }
        };
        let command = JobCommand {
            job_id: &job.id,
            attempt: job.lease.attempt,
            token: &token,
            cgroup: job.cgroup.as_deref(),
            command: &job.command,
            env: &env,
            cwd: job.cwd.as_deref(),
        };
        let running = match self.sink_for(job).and_then(|sink| {
            runner::spawn(&command, sink, self.channel_sender()).map_err(|e| Error::io("spawn", e))
        }) {
            Ok(running) => running,
            Err(e) => {
                let why = match e {
                    Error::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                return Ok(Some(
                    AttemptResult::new(AttemptOutcome::Failed)
                        .with_error(format!("cannot start job: {why}")),
                ));
            }
        };
        let result = self.supervise(job, &running);
        self.guard.disarm();
        result
    }

    fn channel_sender(&self) -> mpsc::Sender<Event> {
        self.sender.clone()
    }

    /// Waits for the job to exit while keeping its lease, the watchdog and
    /// systemd's stop timeout fed, and enforcing timeout and cancellation.
    fn supervise(&mut self, job: &Claimed, running: &RunningJob) -> Result<Option<AttemptResult>> {
        let started = Instant::now();
        let lease = self.config.lease();
        let renew_every = lease / 3;
        let mut last_renew = started;
        let mut next_renew = started + renew_every;
        let mut lease_valid_until = started + lease;
        // The guard fires only if the loop cannot kill the job itself in
        // time (it does at a third of a lease before the end).
        let guard_margin = lease / 6;
        self.guard.arm(lease_valid_until - guard_margin, running);
        let timeout_at = (job.timeout_seconds > 0)
            .then(|| started + Duration::from_secs(job.timeout_seconds.into()));
        let mut ending: Option<AttemptOutcome> = None;
        let mut kill_at: Option<Instant> = None;
        let mut next_extend: Option<Instant> = None;
        let mut lost = false;
        let grace = self.config.kill_grace();
        let terminate = |kill_at: &mut Option<Instant>| {
            running.signal(if grace.is_zero() {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            });
            *kill_at = Some(Instant::now() + grace);
        };
        loop {
            self.feed_watchdog();
            let mut deadline = next_renew;
            for at in [
                timeout_at.filter(|_| ending.is_none()),
                kill_at,
                self.next_watchdog,
                next_extend,
            ]
            .into_iter()
            .flatten()
            {
                deadline = deadline.min(at);
            }
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Event::Exited(exit)) => {
                    // Killed by the guard: the lease is in doubt, as when
                    // renewals failed; the rescue records the attempt.
                    if self.guard.disarm() {
                        return Ok(None);
                    }
                    return Ok(
                        (!lost).then(|| attempt_result(exit, ending, job, started.elapsed()))
                    );
                }
                Ok(Event::Signal(_)) if !self.stopping => {
                    self.handle_stop_signal(&format!("waiting for job {} to finish", job.id));
                    self.notifier.extend_timeout(EXTEND_BY);
                    next_extend = Some(Instant::now() + EXTEND_EVERY);
                }
                Ok(Event::Signal(_)) => {
                    if ending != Some(AttemptOutcome::Interrupted) {
                        tracing::warn!(job_id = %job.id, "second stop signal: killing the job and returning it to the queue");
                        ending = Some(AttemptOutcome::Interrupted);
                        running.signal(Signal::SIGKILL);
                    }
                }
                // Someone may have asked to cancel this job: look soon, but
                // not once per wake-up when enqueues are frequent.
                Ok(Event::Wake) => next_renew = next_renew.min(last_renew + WAKE_RENEW_MIN_GAP),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Supervisor("worker event channel closed".into()));
                }
            }
            let now = Instant::now();
            if now >= next_renew && !lost {
                match self.store.renew_lease(&job.lease, lease) {
                    Ok(status) => {
                        lease_valid_until = now + lease;
                        self.guard.arm(lease_valid_until - guard_margin, running);
                        if status == LeaseStatus::Lost {
                            tracing::error!(job_id = %job.id, "lease lost (this worker was presumed dead); killing the job so it never runs twice");
                            lost = true;
                            running.signal(Signal::SIGKILL);
                        } else if status == LeaseStatus::CancelRequested && ending.is_none() {
                            tracing::info!(job_id = %job.id, "cancel requested; stopping the job");
                            ending = Some(AttemptOutcome::Cancelled);
                            terminate(&mut kill_at);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "cannot renew the lease");
                        // Before the lease can run out and the job be handed
                        // to another worker, stop this run.
                        if now + renew_every >= lease_valid_until {
                            tracing::error!(job_id = %job.id, "lease about to expire; killing the job");
                            lost = true;
                            running.signal(Signal::SIGKILL);
                        }
                    }
                }
                last_renew = now;
                next_renew = now + renew_every;
            }
            if timeout_at.is_some_and(|at| now >= at) && ending.is_none() {
                tracing::info!(job_id = %job.id, "job timed out; stopping it");
                ending = Some(AttemptOutcome::TimedOut);
                terminate(&mut kill_at);
            }
            if kill_at.is_some_and(|at| now >= at) {
                running.signal(Signal::SIGKILL);
                kill_at = None;
            }
            if next_extend.is_some_and(|at| now >= at) {
                self.notifier.extend_timeout(EXTEND_BY);
                next_extend = Some(now + EXTEND_EVERY);
            }
        }
    }
}

/// The STATUS text while the database cannot be reached.
fn unreachable_status(since: Timestamp, what: &str, why: &str) -> String {
    let since = since.round(jiff::Unit::Second).unwrap_or(since);
    format!("database unreachable since {since} ({what} waits): {why}")
}

/// Opens the queue, waiting (not READY) while the database cannot be
/// reached: STATUS says so, the watchdog is fed, a stop signal ends the
/// wait (`None`). Any other error is final.
fn open_when_reachable(
    state: &StateDir,
    config: &Config,
    notifier: &Notifier,
    events: &Receiver<Event>,
) -> Result<Option<Store>> {
    let mut since: Option<Timestamp> = None;
    let mut pause = RECONNECT_FIRST;
    loop {
        let error = match Store::open(&state.db, config.durability) {
            Ok(store) => return Ok(Some(store)),
            Err(e) if e.is_unreachable() => e,
            Err(e) => return Err(e),
        };
        if since.is_none() {
            tracing::warn!(error = %error, "database unreachable; waiting for it before starting");
        }
        let since = *since.get_or_insert_with(Timestamp::now);
        notifier.status(&unreachable_status(since, "starting", &error.to_string()));
        notifier.watchdog();
        let wait = notifier
            .watchdog_interval()
            .map_or(pause, |interval| pause.min(interval));
        match events.recv_timeout(wait) {
            Ok(Event::Signal(_)) => return Ok(None),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Supervisor("worker event channel closed".into()));
            }
        }
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// While a stop waits for a job, ask systemd for this much more time this often.
const EXTEND_BY: Duration = Duration::from_secs(30);
const EXTEND_EVERY: Duration = Duration::from_secs(10);
const WAKE_RENEW_MIN_GAP: Duration = Duration::from_millis(250);

/// Turns a job's exit (and why it was stopped, if it was) into its record.
fn attempt_result(
    exit: JobExit,
    stopped: Option<AttemptOutcome>,
    job: &Claimed,
    took: Duration,
) -> AttemptResult {
    let how = match (exit.code, exit.signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "ended".to_owned(),
    };
    let (outcome, error) = match stopped {
        Some(AttemptOutcome::TimedOut) => (
            AttemptOutcome::TimedOut,
            Some(format!("timed out after {}s ({how})", job.timeout_seconds)),
        ),
        Some(AttemptOutcome::Cancelled) => (
            AttemptOutcome::Cancelled,
            Some(format!("cancelled by user ({how})")),
        ),
        Some(AttemptOutcome::Interrupted) => (
            AttemptOutcome::Interrupted,
            Some("worker stopped at once by a second signal; job returned to the queue".to_owned()),
        ),
        _ if exit.success() => (AttemptOutcome::Succeeded, None),
        _ if exit.stderr_tail.is_empty() => (AttemptOutcome::Failed, Some(how)),
        _ => (
            AttemptOutcome::Failed,
            Some(format!("{how}: {}", exit.stderr_tail)),
        ),
    };
    tracing::debug!(job_id = %job.id, took_ms = took.as_millis() as u64, "job exited");
    AttemptResult {
        outcome,
        exit_code: exit.code,
        signal: exit.signal,
        error,
        output: Some(exit.output),
        output_tail: Some(exit.output_tail),
    }
}
