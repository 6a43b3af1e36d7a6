//! The worker loop: claim a job, run it, record the attempt, repeat.
//!
//! One thread decides everything; helper threads only turn signals, wake-up
//! datagrams and job exits into [`Event`]s on one channel. Timers (lease
//! renewal, watchdog, job timeout, kill grace, maintenance) are deadlines that
//! bound each wait, so the watchdog is fed from the loop whose progress it
//! proves. No database transaction is open while a job runs.

mod lease_guard;
pub mod maintenance;
mod slots;
mod sync_thread;

use lease_guard::LeaseGuard;
pub use maintenance::Maintenance;
use slots::{Done, Slot, Slots};
use sync_thread::SyncThread;

use crate::config::{Config, OutputSetting};
use crate::domain::AttemptOutcome;
use crate::error::{Error, Result};
use crate::output::{Destination, FileSink, JournalSink, OutputSink};
use crate::paths::StateDir;
use crate::runner::{self, JobCommand, JobExit, RunningJob};
use crate::store::{
    AttemptResult, ClaimRequest, Claimed, Database, Finish, Finished, Holder, Lease, LeaseStatus,
    Store, WorkerInfo,
};
use crate::systemd::notify::Notifier;
use crate::wakeup::{WakeSocket, wake_workers};
use jiff::Timestamp;
use nix::sys::signal::Signal;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// State shared with a helper thread of the worker: plain data behind a
/// mutex, and a condvar that wakes the thread.
type Shared<S> = std::sync::Arc<(std::sync::Mutex<S>, std::sync::Condvar)>;

/// Locks `shared`. A panic elsewhere while it was held leaves plain data
/// behind (flags, counters, deadlines): go on.
fn lock<S>(shared: &Shared<S>) -> std::sync::MutexGuard<'_, S> {
    shared
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Longest an idle worker sleeps without looking at the queue, in case a
/// wake-up datagram was lost.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

pub enum Event {
    Signal(i32),
    Wake,
    Exited(JobExit),
    /// The WAL sync thread made every batch up to this one durable.
    Synced(Result<u64>),
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
    /// A second stop signal came: nothing more may start.
    interrupted: bool,
    /// Kills a running job if its lease is about to run out while the
    /// loop is stuck (see `lease_guard`).
    guard: LeaseGuard,
    /// The jobs running now, up to `concurrency`.
    slots: Slots,
    /// Finished attempts not yet recorded (written with the next claim).
    done: Vec<Done>,
    /// Syncs committed batches off the loop (SQLite, durability "full").
    sync: Option<SyncThread>,
    /// Batches committed so far, and jobs claimed by one that is not yet
    /// durable (they start when it is).
    batches: u64,
    reserved: Vec<Reserved>,
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
        let concurrency = config.concurrency.max(1);
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
            interrupted: false,
            guard: LeaseGuard::start(),
            slots: Slots::new(concurrency as usize),
            done: Vec::new(),
            sync: None,
            batches: 0,
            reserved: Vec::new(),
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
        worker.apply_queue_settings()?;
        worker.store.register_worker(&WorkerInfo {
            name: worker.name.clone(),
            pid: std::process::id(),
            host: worker.host.clone(),
            status: "idle".into(),
            unit: crate::systemd::own_unit(),
            slots: concurrency,
        })?;
        if let Some(wal) = worker.store.detach_sync()? {
            worker.sync = Some(SyncThread::start(wal, worker.sender.clone())?);
        }
        worker.next_watchdog = worker
            .notifier
            .watchdog_interval()
            .map(|i| Instant::now() + i);
        worker.notifier.ready("idle");
        let containment = match &worker.cgroups {
            Some(cgroup) => format!("a cgroup per attempt under {cgroup}"),
            None => "process group and attempt token".to_owned(),
        };
        let queues = match &worker.config.worker_queues {
            Some(names) => names
                .iter()
                .map(|q| q.as_str())
                .collect::<Vec<_>>()
                .join(","),
            None => "every queue".to_owned(),
        };
        tracing::info!(worker = %worker.name, db = %worker.state.db, output = output.as_str(), containment, listening, concurrency, queues, "worker ready");
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

    /// Writes the config's `[queues.NAME]` settings into the queue, so the
    /// limits a host's config names hold for every worker of the queue.
    fn apply_queue_settings(&mut self) -> Result<()> {
        for (name, change) in &self.config.queues {
            let queue = self.store.configure_queue(name, change)?;
            tracing::info!(queue = %queue.name, parallel = ?queue.parallel, paused = queue.paused, "queue settings from the config applied");
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
            queues: self
                .config
                .worker_queues
                .as_ref()
                .map(|queues| queues.iter().map(ToString::to_string).collect()),
        }
    }

    /// Runs until asked to stop (or, with `drain`, until no job is due);
    /// returns once every running job has ended and been recorded.
    pub fn run(mut self, drain: bool) -> Result<()> {
        let mut result = self.main_loop(drain);
        // The last batch's completions are on disk before the worker says
        // it stopped.
        if let Some(sync) = &self.sync
            && !sync.wait_durable(self.batches)
            && result.is_ok()
        {
            result = Err(Error::Supervisor(
                "the last attempts could not be synced to disk".into(),
            ));
        }
        if let Err(e) = self.store.unregister_worker(&self.name) {
            tracing::warn!(error = %e, "cannot unregister worker");
        }
        tracing::info!(worker = %self.name, "worker stopped");
        result
    }

    /// One thread decides for every slot: record finished attempts and
    /// claim jobs for free slots (one transaction), then wait for the next
    /// event or timer, then act on everything that arrived meanwhile. The
    /// attempts that end while a transaction commits are recorded together
    /// by the next one: batches grow with load, and a lone attempt waits
    /// for nobody.
    fn main_loop(&mut self, drain: bool) -> Result<()> {
        let request = self.claim_request();
        let mut loop_state = LoopState::new();
        loop {
            self.feed_watchdog();
            self.maintenance.run_if_due(&mut self.store, &self.status);
            self.record_and_claim(&request, &mut loop_state)?;
            if self.slots.busy() == 0 && self.reserved.is_empty() {
                if self.stopping && (self.done.is_empty() || loop_state.outage.is_some()) {
                    for done in &self.done {
                        tracing::warn!(job_id = %done.job_id, "stopped before the attempt could be recorded; the job runs again once its lease runs out");
                    }
                    return Ok(());
                }
                if drain && self.done.is_empty() && !loop_state.claim_wanted {
                    return Ok(());
                }
            }
            self.show_status(&mut loop_state);
            self.wait_for_events(&mut loop_state)?;
            if let Some(error) = loop_state.fatal.take() {
                return Err(error);
            }
            self.on_timers(&mut loop_state);
        }
    }

    /// Writes the finished attempts and claims jobs for the free slots in
    /// one transaction, then starts them. While the database is unreachable
    /// the attempts wait (the running jobs go on), and it is tried again
    /// with backoff.
    fn record_and_claim(&mut self, request: &ClaimRequest, state: &mut LoopState) -> Result<()> {
        let now = Instant::now();
        let free = if self.stopping { 0 } else { self.free_slots() };
        // Attempts are always recorded with a claim for the free slots: a
        // failure may have put a job back that is due now, and a short
        // claim sets the next look at the queue by the new due times.
        let claim = if free > 0 && (state.claim_wanted || !self.done.is_empty()) {
            free
        } else {
            0
        };
        if (self.done.is_empty() && claim == 0)
            || state.outage.as_ref().is_some_and(|o| now < o.retry_at)
        {
            return Ok(());
        }
        let policy = self.config.retry_policy();
        let finishes: Vec<Finish> = self
            .done
            .iter()
            .map(|d| Finish {
                lease: &d.lease,
                result: &d.result,
            })
            .collect();
        let outcome = if finishes.is_empty() {
            self.store.claim(request, claim).map(|claimed| Finished {
                held: vec![],
                claimed,
                freed: false,
            })
        } else {
            let next = (claim > 0).then_some((request, claim));
            self.store.finish(&finishes, &policy, next)
        };
        let finished = match outcome {
            Ok(finished) => finished,
            Err(e) if e.is_unreachable() => {
                state.unreachable(&self.name, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if state.outage.take().is_some() {
            tracing::info!(worker = %self.name, "database reachable again");
        }
        if finished.freed {
            // Workers waiting for room in a limited queue, or for jobs that
            // waited for the ones just recorded, look again (SQLite;
            // PostgreSQL notified).
            wake_workers(&self.state.wake());
        }
        for (done, held) in self.done.drain(..).zip(finished.held) {
            if !held {
                tracing::warn!(job_id = %done.job_id, "lease was lost before the attempt was recorded");
            }
            tracing::info!(job_id = %done.job_id, attempt = done.lease.attempt, outcome = done.result.outcome.as_str(), "attempt finished");
        }
        if claim > 0 {
            // A short batch means the queue has nothing more due now: wait
            // for a wake-up or the next due job instead of asking again.
            state.claim_wanted = finished.claimed.len() == claim;
            if !state.claim_wanted {
                state.next_check = Some(self.idle_recheck(request, now)?);
            }
        }
        let (claimed, lease_from) = self.confirm_slow_claim(finished.claimed, now);
        if self.slots.busy() == 0 && self.reserved.is_empty() && !claimed.is_empty() {
            state.next_renew = lease_from + self.config.lease() / 3;
        }
        self.batches += 1;
        match &self.sync {
            // Started once this batch is durable (`Event::Synced`).
            Some(sync) => {
                sync.request(self.batches);
                let batch = self.batches;
                self.reserved
                    .extend(claimed.into_iter().map(|job| Reserved {
                        batch,
                        job,
                        lease_from,
                    }));
            }
            None => {
                for job in claimed {
                    self.start_job(job, lease_from);
                }
            }
        }
        Ok(())
    }

    /// Slots neither running a job nor promised to one waiting for its
    /// batch to be durable.
    fn free_slots(&self) -> usize {
        self.slots.free().saturating_sub(self.reserved.len())
    }

    /// Starts the reserved jobs of every batch up to `batch`, now durable.
    fn start_durable(&mut self, batch: u64) {
        let (ready, waiting): (Vec<Reserved>, Vec<Reserved>) = std::mem::take(&mut self.reserved)
            .into_iter()
            .partition(|r| r.batch <= batch);
        self.reserved = waiting;
        for reserved in ready {
            self.start_job(reserved.job, reserved.lease_from);
        }
    }

    /// The leases of jobs claimed by a call that began at `asked` are
    /// surely ours only until `asked` + lease. When the call took long (a
    /// reconnect after an outage), renew them before starting the jobs, or
    /// the lease guard would have to kill them at once. Returns the jobs
    /// still ours and when their leases began.
    fn confirm_slow_claim(
        &mut self,
        claimed: Vec<Claimed>,
        asked: Instant,
    ) -> (Vec<Claimed>, Instant) {
        let lease = self.config.lease();
        let renewing = Instant::now();
        if claimed.is_empty() || renewing < asked + lease / 3 {
            return (claimed, asked);
        }
        let leases: Vec<&Lease> = claimed.iter().map(|c| &c.lease).collect();
        match self.store.renew_leases(&self.name, &leases, lease) {
            Ok(statuses) => {
                let mut ours = Vec::with_capacity(claimed.len());
                for (job, status) in claimed.into_iter().zip(statuses) {
                    if status == LeaseStatus::Lost {
                        tracing::warn!(job_id = %job.id, "the claim took so long that its lease was lost; not starting the job");
                    } else {
                        ours.push(job);
                    }
                }
                (ours, renewing)
            }
            Err(e) => {
                for job in &claimed {
                    tracing::warn!(job_id = %job.id, error = %e, "the claim took long and its lease cannot be renewed; not starting the job (it runs again once the lease runs out)");
                }
                (vec![], asked)
            }
        }
    }

    /// When an idle slot should look at the queue again without a wake-up:
    /// when the next waiting job falls due, a lease runs out, or after
    /// [`IDLE_RECHECK`] in case a wake-up was lost.
    fn idle_recheck(&mut self, request: &ClaimRequest, now: Instant) -> Result<Instant> {
        let mut wait = IDLE_RECHECK;
        match self.store.next_event_in(request) {
            Ok(Some(until)) => wait = wait.min(until),
            Ok(None) => {}
            // The next claim waits for the database.
            Err(e) if e.is_unreachable() => {}
            Err(e) => return Err(e),
        }
        // A schedule the workers fire may be due before the next tick.
        if let Ok(Some(until)) = self.store.next_schedule_in() {
            self.maintenance.schedules_due_in(until);
        }
        Ok(now + wait)
    }

    /// The STATUS text systemd shows, also recorded by the next heartbeat;
    /// sent only when it changed.
    fn show_status(&mut self, state: &mut LoopState) {
        let mut text = match &state.outage {
            Some(outage) => outage.status.clone(),
            None => self.slots.status_text(),
        };
        if self.stopping {
            text.insert_str(0, "stopping: ");
        }
        self.status = text;
        // systemd hears of a change at once, unless jobs come and go faster
        // than it needs to know (each message is work for the manager).
        let now = Instant::now();
        if state.notified.take(&self.status, now) {
            self.notifier.status(&self.status);
        }
        // `queuectl status` on any host reads the text from the worker's
        // row: record a change within a second (at most one write a
        // second, however fast jobs come and go).
        if state.outage.is_none() && state.recorded.take(&self.status, now) {
            if let Err(e) = self.store.worker_heartbeat(&self.name, &self.status) {
                tracing::debug!(error = %e, "cannot record the status text");
            }
        }
    }

    /// Sleeps until the first event or timer, then takes every event that
    /// is already waiting, so the attempts that ended together are
    /// recorded together.
    fn wait_for_events(&mut self, state: &mut LoopState) -> Result<()> {
        let deadline = self.next_deadline(state);
        let first = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut event = match first {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Supervisor("worker event channel closed".into()));
            }
        };
        loop {
            self.on_event(event, state);
            match self.events.try_recv() {
                Ok(next) => event = next,
                Err(_) => return Ok(()),
            }
        }
    }

    fn next_deadline(&self, state: &LoopState) -> Instant {
        let now = Instant::now();
        let mut deadline = now + self.maintenance.until_due();
        let mut at = |when: Option<Instant>| {
            if let Some(when) = when {
                deadline = deadline.min(when);
            }
        };
        at(self.next_watchdog);
        at(state.next_extend);
        if state.outage.is_none() {
            at(state.recorded.next_due(&self.status));
        }
        at(state.notified.next_due(&self.status));
        if self.slots.busy() > 0 {
            at(Some(state.next_renew));
        }
        for slot in self.slots.iter() {
            at(slot.timeout_at.filter(|_| slot.ending.is_none()));
            at(slot.kill_at);
        }
        let wants_store = !self.done.is_empty()
            || (!self.stopping && self.free_slots() > 0 && state.claim_wanted);
        match &state.outage {
            Some(outage) if wants_store => at(Some(outage.retry_at)),
            Some(_) => {}
            None if wants_store => at(Some(now)),
            None => {}
        }
        if !self.stopping && self.free_slots() > 0 && !state.claim_wanted {
            at(state.next_check);
        }
        deadline
    }

    fn on_event(&mut self, event: Event, state: &mut LoopState) {
        match event {
            Event::Exited(exit) => self.on_exit(exit),
            Event::Signal(_) if !self.stopping => {
                let busy = self.slots.busy();
                if busy == 0 {
                    self.handle_stop_signal("idle, exiting");
                } else {
                    self.handle_stop_signal(&format!("waiting for {busy} job(s) to finish"));
                    self.notifier.extend_timeout(EXTEND_BY);
                    state.next_extend = Some(Instant::now() + EXTEND_EVERY);
                }
            }
            Event::Signal(_) => {
                self.interrupted = true;
                for slot in self.slots.iter_mut() {
                    if slot.ending != Some(AttemptOutcome::Interrupted) {
                        tracing::warn!(job_id = %slot.job.id, "second stop signal: killing the job and returning it to the queue");
                        slot.ending = Some(AttemptOutcome::Interrupted);
                        slot.running.signal(Signal::SIGKILL);
                    }
                }
            }
            Event::Synced(Ok(batch)) => self.start_durable(batch),
            Event::Synced(Err(error)) => state.fatal = Some(error),
            Event::Wake => {
                state.claim_wanted = true;
                // Someone may have asked to cancel a running job: look soon,
                // but not once per wake-up when enqueues are frequent.
                state.next_renew = state.next_renew.min(state.last_renew + WAKE_RENEW_MIN_GAP);
            }
        }
    }

    /// A job ended: its slot is free and its attempt waits to be recorded,
    /// unless its lease was lost (the rescue records it then).
    fn on_exit(&mut self, exit: JobExit) {
        let Some(slot) = self.slots.remove(exit.pid) else {
            tracing::warn!(pid = exit.pid, "exit of a process this worker does not run");
            return;
        };
        // Killed by the guard: the lease is in doubt, as when renewals
        // failed; the rescue records the attempt.
        if self.guard.disarm(exit.pid) || slot.lost {
            tracing::warn!(job_id = %slot.job.id, "the job was killed because its lease could not be kept; it runs again once the lease runs out");
            return;
        }
        let result = attempt_result(exit, slot.ending, &slot.job, slot.started.elapsed());
        self.done.push(Done {
            job_id: slot.job.id,
            lease: slot.job.lease,
            result,
        });
    }

    /// Lease renewals (all slots in one statement), timeouts, kills and
    /// stop-timeout extensions that are due.
    fn on_timers(&mut self, state: &mut LoopState) {
        let now = Instant::now();
        if now >= state.next_check.unwrap_or(now + IDLE_RECHECK) {
            state.claim_wanted = true;
            state.next_check = None;
        }
        let lease = self.config.lease();
        let renew_every = lease / 3;
        if self.slots.busy() > 0 && now >= state.next_renew {
            self.renew_leases(now, lease);
            state.last_renew = now;
            state.next_renew = now + renew_every;
        }
        let grace = self.config.kill_grace();
        for slot in self.slots.iter_mut() {
            if slot.timeout_at.is_some_and(|at| now >= at) && slot.ending.is_none() {
                tracing::info!(job_id = %slot.job.id, "job timed out; stopping it");
                slot.ending = Some(AttemptOutcome::TimedOut);
                terminate(slot, grace);
            }
            if slot.kill_at.is_some_and(|at| now >= at) {
                slot.running.signal(Signal::SIGKILL);
                slot.kill_at = None;
            }
        }
        if state.next_extend.is_some_and(|at| now >= at) {
            self.notifier.extend_timeout(EXTEND_BY);
            state.next_extend = Some(now + EXTEND_EVERY);
        }
    }

    /// Renews every running job's lease at once. A lost lease or a lease
    /// about to run out without renewal kills its job, so it never runs
    /// twice; a cancel request stops it.
    fn renew_leases(&mut self, now: Instant, lease: Duration) {
        let leases: Vec<&Lease> = self
            .slots
            .iter()
            .filter(|s| !s.lost)
            .map(|s| &s.job.lease)
            .collect();
        if leases.is_empty() {
            return;
        }
        let renewed = self.store.renew_leases(&self.name, &leases, lease);
        let grace = self.config.kill_grace();
        let renew_every = lease / 3;
        match renewed {
            Ok(statuses) => {
                let live = self.slots.iter_mut().filter(|s| !s.lost);
                for (slot, status) in live.zip(statuses) {
                    slot.lease_valid_until = now + lease;
                    self.guard
                        .arm(slot.lease_valid_until - lease / 6, &slot.running);
                    match status {
                        LeaseStatus::Lost => {
                            tracing::error!(job_id = %slot.job.id, "lease lost (this worker was presumed dead); killing the job so it never runs twice");
                            slot.lost = true;
                            slot.running.signal(Signal::SIGKILL);
                        }
                        LeaseStatus::CancelRequested if slot.ending.is_none() => {
                            tracing::info!(job_id = %slot.job.id, "cancel requested; stopping the job");
                            slot.ending = Some(AttemptOutcome::Cancelled);
                            terminate(slot, grace);
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leases");
                // Before a lease can run out and its job be handed to
                // another worker, stop this run.
                for slot in self.slots.iter_mut().filter(|s| !s.lost) {
                    if now + renew_every >= slot.lease_valid_until {
                        tracing::error!(job_id = %slot.job.id, "lease about to expire; killing the job");
                        slot.lost = true;
                        slot.running.signal(Signal::SIGKILL);
                    }
                }
            }
        }
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
            self.status = format!("stopping: {what}");
        }
    }

    fn sink_for(&self, job: &Claimed) -> Result<Box<dyn OutputSink>> {
        Ok(match self.output {
            Destination::Journal => Box::new(JournalSink::new(
                &job.id,
                job.lease.attempt,
                &self.name,
                &self.state.job_log(&job.id),
            )),
            _ => Box::new(FileSink::lazy(
                &self.state.job_log(&job.id),
                job.lease.attempt,
            )),
        })
    }

    /// Starts a claimed job in a free slot; a job that cannot start is
    /// recorded as a failed attempt at once.
    fn start_job(&mut self, job: Claimed, claimed_at: Instant) {
        // Claimed in the batch whose sync the second signal overtook.
        if self.interrupted {
            self.done.push(Done {
                job_id: job.id,
                lease: job.lease,
                result: AttemptResult::new(AttemptOutcome::Interrupted)
                    .with_error(INTERRUPTED_ERROR.to_owned()),
            });
            return;
        }
        // One info line per attempt (when it ends) is enough for the journal;
        // a second at the start cost 2.5 % of a busy worker's instructions.
        tracing::debug!(job_id = %job.id, attempt = job.lease.attempt, "starting job");
        match self.spawn(&job) {
            Ok(running) => {
                let lease = self.config.lease();
                let lease_valid_until = claimed_at + lease;
                // The guard fires only if the loop cannot kill the job
                // itself in time (it does a third of a lease before the end).
                self.guard.arm(lease_valid_until - lease / 6, &running);
                let started = Instant::now();
                self.slots.insert(Slot {
                    timeout_at: (job.timeout_seconds > 0)
                        .then(|| started + Duration::from_secs(job.timeout_seconds.into())),
                    job,
                    running,
                    started,
                    ending: None,
                    kill_at: None,
                    lease_valid_until,
                    lost: false,
                });
            }
            Err(why) => {
                tracing::warn!(job_id = %job.id, error = %why, "cannot start job");
                self.done.push(Done {
                    job_id: job.id,
                    lease: job.lease,
                    result: AttemptResult::new(AttemptOutcome::Failed)
                        .with_error(format!("cannot start job: {why}")),
                });
            }
        }
    }

    /// Spawns the job's process; the error says why it could not start.
    fn spawn(&self, job: &Claimed) -> std::result::Result<RunningJob, String> {
        let token = job.lease.attempt_token();
        let env = crate::env_file::job_environment(&job.env, job.env_file.as_deref())
            .map_err(|why| why.to_string())?;
        let command = JobCommand {
            job_id: &job.id,
            attempt: job.lease.attempt,
            token: &token,
            cgroup: job.cgroup.as_deref(),
            command: &job.command,
            env: &env,
            cwd: job.cwd.as_deref(),
        };
        let sink = self.sink_for(job).map_err(|e| e.to_string())?;
        runner::spawn(&command, sink, self.sender.clone()).map_err(|e| e.to_string())
    }
}

/// Stops a job gently: SIGTERM now, SIGKILL after the grace (at once
/// without one).
fn terminate(slot: &mut Slot, grace: Duration) {
    if grace.is_zero() {
        slot.running.signal(Signal::SIGKILL);
    } else {
        slot.running.signal(Signal::SIGTERM);
    }
    slot.kill_at = Some(Instant::now() + grace);
}

/// The loop's timers and what it knows about the queue.
struct LoopState {
    /// Whether the queue may hold due jobs for free slots: false after a
    /// claim came back short, until a wake-up or `next_check`.
    claim_wanted: bool,
    next_check: Option<Instant>,
    next_renew: Instant,
    last_renew: Instant,
    /// While a stop waits for jobs, when to ask systemd for more time.
    next_extend: Option<Instant>,
    outage: Option<Outage>,
    /// The status text as the worker's row has it, and as systemd has it.
    recorded: Throttled,
    notified: Throttled,
    /// An error that ends the loop (a failed WAL sync).
    fatal: Option<Error>,
}

/// A text passed on when it changes, at most once per `every`; a change
/// held back goes out once `every` has passed.
struct Throttled {
    last: String,
    at: Instant,
    every: Duration,
}

impl Throttled {
    /// Starts with "idle" (what READY and registration said), passed on at `at`.
    fn new(every: Duration, at: Instant) -> Throttled {
        Throttled {
            last: "idle".to_owned(),
            at,
            every,
        }
    }

    /// Whether `text` is to be passed on now; if so, remembers it as passed.
    fn take(&mut self, text: &str, now: Instant) -> bool {
        if text == self.last || now < self.at + self.every {
            return false;
        }
        text.clone_into(&mut self.last);
        self.at = now;
        true
    }

    /// When a change held back may go out (`None`: nothing held back).
    fn next_due(&self, text: &str) -> Option<Instant> {
        (text != self.last).then(|| self.at + self.every)
    }
}

/// A claimed job waiting for its batch to be durable before it starts.
struct Reserved {
    batch: u64,
    job: Claimed,
    lease_from: Instant,
}

/// The database cannot be reached: since when, and when to try again.
struct Outage {
    since: Timestamp,
    pause: Duration,
    retry_at: Instant,
    status: String,
}

impl LoopState {
    fn new() -> LoopState {
        let now = Instant::now();
        LoopState {
            claim_wanted: true,
            next_check: None,
            next_renew: now,
            last_renew: now,
            next_extend: None,
            outage: None,
            recorded: Throttled::new(STATUS_RECORD_EVERY, now),
            notified: Throttled::new(
                STATUS_NOTIFY_EVERY,
                now.checked_sub(STATUS_NOTIFY_EVERY).unwrap_or(now),
            ),
            fatal: None,
        }
    }

    /// Records a failed attempt to reach the database: nothing is claimed
    /// until it is back, tried again with backoff (the backend reconnects).
    fn unreachable(&mut self, worker: &str, error: &Error) {
        let (since, pause) = match &self.outage {
            Some(outage) => (outage.since, (outage.pause * 2).min(RECONNECT_MAX)),
            None => {
                tracing::warn!(worker = %worker, error = %error, "database unreachable; not claiming until it is back");
                (Timestamp::now(), RECONNECT_FIRST)
            }
        };
        self.outage = Some(Outage {
            since,
            pause,
            retry_at: Instant::now() + pause,
            status: unreachable_status(since, "claiming", &error.to_string()),
        });
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
const INTERRUPTED_ERROR: &str =
    "worker stopped at once by a second signal; job returned to the queue";
/// How often systemd is told of a changed status text, at most.
const STATUS_NOTIFY_EVERY: Duration = Duration::from_millis(100);
/// How often a changed status text is written to the worker's row, at most.
const STATUS_RECORD_EVERY: Duration = Duration::from_secs(1);

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
            Some(INTERRUPTED_ERROR.to_owned()),
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
