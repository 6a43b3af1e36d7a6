//! The queue's storage: one interface ([`Backend`]), two engines.
//!
//! - `sqlite/`: the embedded default, one file per queue, one host.
//! - `postgres/`: one queue shared by workers on many hosts.
//!
//! Every SQL statement lives in its backend's directory. Both backends keep
//! the same invariants, proven by one conformance suite (`tests.rs`, run
//! against each): a claim hands one job to one worker; every change to a
//! processing job names the lease it was claimed with, so a worker that lost
//! its lease changes nothing; times (`run_at`, backoff, lease expiry,
//! heartbeats) come from the database's clock, never a host's, because the
//! hosts sharing a queue may disagree about the time. The store never runs a
//! job and never holds a transaction open while one runs.
//!
//! The interface is batch-shaped: a worker claims up to N jobs and finishes
//! several attempts in one transaction.

mod common;
pub mod dashboard;
pub mod deps;
mod location;
pub mod postgres;
pub mod schedules;
pub mod search;
pub mod selection;
pub mod sqlite;
mod types;

pub use common::not_editable;
pub(crate) use common::*;
pub use deps::{Dependencies, Linked};
pub use location::Database;
pub use selection::{Acted, Blocked, BulkAction, BulkOutcome, Refused, Selection};
pub use types::*;

use crate::config::Durability;
use crate::domain::{JobEdit, JobState, NewJob, QueueChange, QueueName, RetryPolicy};
use crate::error::{Error, Result};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a command opens the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Creates the queue if there is none (enqueue, workers).
    Create,
    /// Changes an existing queue; "no queue at …" when there is none.
    Existing,
    /// Never creates or changes anything (and, for SQLite, works on a
    /// read-only filesystem); "no queue at …" when there is none.
    ReadOnly,
}

/// An attempt to record: whose lease, and how it ended.
#[derive(Clone, Copy, Debug)]
pub struct Finish<'a> {
    pub lease: &'a Lease,
    pub result: &'a AttemptResult,
}

/// What [`Backend::finish`] did: for each attempt given, whether its lease
/// was still the caller's (so it was recorded), and the jobs claimed next.
#[derive(Debug, Default)]
pub struct Finished {
    pub held: Vec<bool>,
    pub claimed: Vec<Claimed>,
    /// Workers waiting for work should look again: a job of a queue with a
    /// `parallel` limit left `processing`, or a job that waited for others
    /// may run now (its last dependency completed) (SQLite; PostgreSQL
    /// notifies them in the same transaction).
    pub freed: bool,
}

/// Called by a backend's listener when work may have arrived; returns
/// false once nobody listens any more.
pub type WakeFn = Box<dyn FnMut() -> bool + Send>;

/// Every operation on a queue. Implemented by each engine; callers hold a
/// [`Store`] and never know which.
///
/// Times are the database's: methods take durations ("older than 7 days",
/// "a lease of 30 s"), never a host's timestamps.
pub trait Backend: Send {
    /// The database's current time (for showing ages: "heartbeat 3 s ago").
    fn now(&mut self) -> Result<Timestamp>;

    // ----- enqueue -----

    /// Enqueues all `jobs` in one transaction: all are enqueued or none.
    /// Returns, in order, each job's id and outcome: created, or (a job with
    /// a unique key an unfinished job holds) the holder's id, `Existing`
    /// under `skip` or `Replaced` under `replace`; `reject`, or `replace` of
    /// a running holder, refuses the whole batch (`Conflict`, naming the
    /// holder). The `usize` is each job's input line, for error messages. A
    /// job's `delay` counts from the database's clock. Idle workers learn of
    /// the new work (on PostgreSQL, a NOTIFY in the same transaction).
    fn enqueue(
        &mut self,
        jobs: &[(usize, NewJob)],
        defaults: &JobDefaults,
    ) -> Result<Vec<Enqueued>>;

    // ----- the worker's side -----

    /// Claims up to `limit` due jobs for `request.worker`, in priority, due
    /// time, enqueue order; empty when nothing is due.
    fn claim(&mut self, request: &ClaimRequest, limit: usize) -> Result<Vec<Claimed>>;

    /// Records how attempts ended and moves their jobs on, in one
    /// transaction; when `next` is given, claims up to that many following
    /// jobs in the same transaction (one commit per batch).
    fn finish(
        &mut self,
        done: &[Finish],
        policy: &RetryPolicy,
        next: Option<(&ClaimRequest, usize)>,
    ) -> Result<Finished>;

    /// Extends each lease to `duration` from now and refreshes `worker`'s
    /// heartbeat. Tells, per lease, whether it is still the caller's and
    /// whether a user asked to cancel its job.
    fn renew_leases(
        &mut self,
        worker: &str,
        leases: &[&Lease],
        duration: Duration,
    ) -> Result<Vec<LeaseStatus>>;

    /// The current attempts of processing jobs whose lease ran out, or held
    /// by a worker: what a rescuer must kill first.
    fn held_attempts(&mut self, holder: Holder) -> Result<Vec<HeldAttempt>>;

    /// Finishes, as `lease_expired` attempts, those of `ended` (from
    /// [`held_attempts`](Self::held_attempts), their processes killed)
    /// still held as `holder` says, under the same lease. Returns the ids.
    fn rescue(
        &mut self,
        holder: Holder,
        ended: &[HeldAttempt],
        policy: &RetryPolicy,
    ) -> Result<Vec<String>>;

    /// How long until the next waiting job `request` could claim falls due
    /// or the next lease runs out (zero when already past), if any: an idle
    /// worker's longest sleep. Jobs of paused or full queues, of queues the
    /// worker does not serve, and jobs blocked on others do not count, so
    /// a worker never spins on work it cannot take.
    fn next_event_in(&mut self, request: &ClaimRequest) -> Result<Option<Duration>>;

    /// Forwards wake-ups for new or retried work to `wake` from a thread of
    /// the backend's own (PostgreSQL `LISTEN`). Returns false when this
    /// backend has no such channel (SQLite: workers use wake sockets).
    fn listen_for_work(&mut self, wake: WakeFn) -> Result<bool>;

    // ----- workers -----

    /// Registers a worker under `info.name`, replacing a dead one's row.
    fn register_worker(&mut self, info: &WorkerInfo) -> Result<()>;
    /// Records what a worker is doing now (and that it is alive).
    fn worker_heartbeat(&mut self, name: &str, status: &str) -> Result<()>;
    fn unregister_worker(&mut self, name: &str) -> Result<()>;
    /// Forgets workers not heard from for longer than `silent_for`.
    fn forget_silent_workers(&mut self, silent_for: Duration) -> Result<usize>;
    /// Registered workers of every host, each with the job it holds.
    fn workers(&mut self) -> Result<Vec<WorkerRow>>;

    // ----- user actions -----

    /// Runs a user action (cancel, restart, `dlq retry`, purge) on the jobs
    /// `selection` names, in transactions of at most [`selection::CHUNK`]
    /// jobs; each changes a job only while it is in a state the action
    /// applies to. Named jobs that are missing or in another state are
    /// reported, not errors. Restarted jobs wake idle workers (on
    /// PostgreSQL, a NOTIFY in the same transaction).
    fn act(&mut self, action: BulkAction, selection: &Selection) -> Result<BulkOutcome>;

    /// Cancels a job: a waiting job at once; a running one is flagged, and
    /// its worker stops it when it next renews its lease.
    fn cancel(&mut self, id: &str) -> Result<CancelResult> {
        let acted = self.act_on_one(BulkAction::Cancel, id)?;
        Ok(match acted.stopping_on {
            Some(worker) => CancelResult::Requested { worker },
            None => CancelResult::Cancelled,
        })
    }

    /// Changes a waiting job (pending, or failed and waiting for its retry)
    /// as `edit` says, in one statement that applies only while it is still
    /// waiting, so a worker claiming it at the same moment either runs the
    /// edited job or makes this a [`Conflict`](crate::error::Error::Conflict).
    /// A new `run_at` counts from the database's clock. Idle workers learn
    /// of it (it may be due earlier now). Returns the job as edited.
    fn edit(&mut self, id: &str, edit: &JobEdit) -> Result<Job>;

    /// Moves dead jobs back to pending with a fresh retry budget: one by id,
    /// or every dead job. Returns the ids moved.
    fn retry_dead(&mut self, id: Option<&str>) -> Result<Vec<String>> {
        match id {
            Some(id) => Ok(vec![self.act_on_one(BulkAction::RetryDead, id)?.id]),
            None => {
                let every = Selection::filter(BulkAction::RetryDead, &[], None)?;
                Ok(self.act(BulkAction::RetryDead, &every)?.done_ids())
            }
        }
    }

    /// Deletes finished jobs that finished more than `older_than` ago, with
    /// their history, in small transactions. Returns the ids deleted.
    fn purge(&mut self, older_than: Duration) -> Result<Vec<String>> {
        let old = Selection::filter(BulkAction::Purge, &[], Some(older_than))?;
        Ok(self.act(BulkAction::Purge, &old)?.done_ids())
    }

    /// `action` on one job: what it did, or why not (not found, wrong
    /// state, held back).
    fn act_on_one(&mut self, action: BulkAction, id: &str) -> Result<Acted> {
        let mut outcome = self.act(action, &Selection::Ids(vec![id.to_owned()]))?;
        match (outcome.done.pop(), outcome.refused.pop()) {
            (Some(acted), _) => Ok(acted),
            (None, Some(refused)) => Err(refused.error(action)),
            (None, None) => Err(Error::NotFound(id.to_owned())),
        }
    }

    // ----- reads -----

    fn get(&mut self, id: &str) -> Result<Job>;
    fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>>;
    /// The jobs job `id` waits for and the jobs waiting for it, each with
    /// its state; not found when there is no such job.
    fn dependencies(&mut self, id: &str) -> Result<Dependencies>;
    /// The newest jobs first, only those `filter` matches, at most `limit`
    /// (all when `None`), and how many match in all (counted by the
    /// database, not by reading every job).
    fn list(&mut self, filter: &ListFilter, limit: Option<u32>) -> Result<JobPage>;
    /// Up to `limit` ids of jobs whose id starts with `prefix`, newest
    /// first, only those in `state` if given: what shell completion offers.
    fn job_ids(&mut self, prefix: &str, state: Option<JobState>, limit: u32)
    -> Result<Vec<String>>;
    /// Jobs per state.
    fn counts(&mut self) -> Result<BTreeMap<JobState, u64>>;
    fn metrics(&mut self) -> Result<Metrics>;

    // ----- the dashboard and /metrics (issue 13: step 0 declares them; the
    // packages named in /work/brief/plan13.md replace these bodies) -----

    /// Counts per queue and state, lag per queue, the last hour.
    fn overview(&mut self) -> Result<dashboard::Overview>;
    /// The cumulative counters and histograms of `/metrics`.
    fn stats(&mut self) -> Result<dashboard::Stats>;
    /// One page of jobs, newest first (keyset paging on enqueue order),
    /// filtered as `search` says: see [`search`] for what it reads and
    /// when a page stops short. A limit outside 1 to
    /// [`dashboard::SEARCH_LIMIT_MAX`] is refused as invalid.
    fn search_jobs(&mut self, search: &dashboard::JobSearch) -> Result<dashboard::SearchPage>;

    // ----- named queues -----

    /// Every queue that has settings or unfinished jobs, by name.
    fn queues(&mut self) -> Result<Vec<QueueRow>>;

    /// Changes a queue's settings as `change` says (a queue left with no
    /// limit and not paused keeps no row) and returns the queue. Idle
    /// workers learn of it (a resumed or widened queue may have work for
    /// them; on PostgreSQL a NOTIFY in the same transaction).
    fn configure_queue(&mut self, name: &QueueName, change: &QueueChange) -> Result<QueueRow>;

    // ----- schedules -----

    /// Adds a schedule; with `replace`, an existing one of that name is
    /// changed instead (keeping its last job), else that is a
    /// [`Conflict`](Error::Conflict). A `workers` schedule's first elapse
    /// counts from the database's clock.
    fn add_schedule(&mut self, schedule: &schedules::NewSchedule, replace: bool) -> Result<()>;
    /// Deletes a schedule's row (its jobs stay); whether there was one.
    fn remove_schedule(&mut self, name: &str) -> Result<bool>;
    /// Every schedule by name, each with its last job's state.
    fn schedules(&mut self) -> Result<Vec<schedules::ScheduleRow>>;
    /// Enqueues a schedule's job now by its overlap policy (a timer's
    /// service, `schedule run`), in one transaction with the row's
    /// `last_job_id`. Idle workers learn of it as after `enqueue`.
    fn fire_schedule(&mut self, name: &str, defaults: &JobDefaults) -> Result<schedules::Fired>;
    /// The fallback's pass: every `workers` schedule that is due fires
    /// once per elapse, however many workers on however many hosts call
    /// this at once (a compare-and-set on `next_elapse_at`, committed with
    /// the enqueue). An elapse missed by more than `catch_up_after` fires
    /// only if the schedule is `persistent`. Returns what this caller fired.
    fn fire_due_schedules(
        &mut self,
        catch_up_after: Duration,
        defaults: &JobDefaults,
    ) -> Result<Vec<schedules::Fired>>;
    /// How long until the next `workers` schedule is due (zero when past).
    fn next_schedule_in(&mut self) -> Result<Option<Duration>>;

    // ----- moving a queue -----

    /// Every job with its attempts, in enqueue order (for `queuectl copy`).
    fn export(&mut self) -> Result<Vec<JobRecord>>;
    /// Inserts exported jobs as they were, with the queue settings (of
    /// `queues`, those with a limit or paused) and the schedule rows
    /// (every column), in one transaction; refuses a queue that already
    /// holds jobs, queue settings or schedules.
    fn import(
        &mut self,
        jobs: &[JobRecord],
        queues: &[QueueRow],
        schedules: &[schedules::ScheduleRow],
    ) -> Result<()>;

    // ----- one at a time -----

    /// Claims the next due job, if any.
    fn claim_one(&mut self, request: &ClaimRequest) -> Result<Option<Claimed>> {
        Ok(self.claim(request, 1)?.into_iter().next())
    }

    /// Records one attempt; claims the next job in the same transaction
    /// when `next` is given. Returns whether the lease was still ours.
    fn finish_one(
        &mut self,
        lease: &Lease,
        result: &AttemptResult,
        policy: &RetryPolicy,
        next: Option<&ClaimRequest>,
    ) -> Result<(bool, Option<Claimed>)> {
        let finished = self.finish(
            &[Finish { lease, result }],
            policy,
            next.map(|request| (request, 1)),
        )?;
        let held = finished.held.first().copied().unwrap_or(false);
        Ok((held, finished.claimed.into_iter().next()))
    }

    /// Renews one lease (and its worker's heartbeat).
    fn renew_lease(&mut self, lease: &Lease, duration: Duration) -> Result<LeaseStatus> {
        let status = self.renew_leases(&lease.worker, &[lease], duration)?;
        Ok(status.first().copied().unwrap_or(LeaseStatus::Lost))
    }

    /// Tests only: pins the store's clock to `at` (`None`: the database's
    /// clock again), so backoff and lease expiry can be checked exactly.
    #[doc(hidden)]
    fn pin_clock(&mut self, at: Option<Timestamp>) -> Result<()>;

    /// Hands the durability of this store's writes to the caller: from now
    /// on a write returns once committed, and is durable once the returned
    /// [`WalSync`] has run after it (from any thread). `None` when commits
    /// are durable by themselves (PostgreSQL, or SQLite without a WAL) or
    /// durability is "normal"; writes then stay as they were. A worker uses
    /// this so that one batch's fsync overlaps its loop's other work.
    fn detach_sync(&mut self) -> Result<Option<Box<dyn WalSync>>> {
        Ok(None)
    }
}

/// Makes every write committed before the call durable.
pub trait WalSync: Send {
    fn sync(&mut self) -> Result<()>;
}

/// An open queue on either backend.
pub struct Store {
    database: Database,
    backend: Box<dyn Backend>,
}

impl Store {
    /// Opens (creating if needed) the queue at `database`, bringing its
    /// schema up to date.
    pub fn open(database: &Database, durability: Durability) -> Result<Store> {
        Store::open_as(database, durability, OpenMode::Create)
    }

    /// Opens the queue at `database` as `mode` allows.
    pub fn open_as(database: &Database, durability: Durability, mode: OpenMode) -> Result<Store> {
        let backend: Box<dyn Backend> = match database {
            Database::Sqlite(path) => {
                Box::new(sqlite::SqliteStore::open_as(path, durability, mode)?)
            }
            Database::Postgres(target) => Box::new(postgres::PgStore::open_as(target, mode)?),
        };
        Ok(Store {
            database: database.clone(),
            backend,
        })
    }

    pub fn database(&self) -> &Database {
        &self.database
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.backend.as_mut()
    }
}

/// Which processing jobs a rescue is about.
#[derive(Clone, Copy, Debug)]
pub enum Holder<'a> {
    /// Jobs whose lease has run out by the database's clock.
    Expired,
    /// Jobs held under this worker name.
    Worker(&'a str),
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub fn to_millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
