//! The PostgreSQL backend: one queue shared by workers on many hosts.
//!
//! Every statement reads the time through `queuectl_now_ms()` (the
//! server's `now()`, or a test's pinned value), never a host's clock.
//! Claims use `FOR UPDATE SKIP LOCKED` on a partial index; every change to
//! a processing job matches its lease token; transactions that add work
//! `NOTIFY queuectl_jobs` and [`listen_for_work`](Backend::listen_for_work)
//! forwards those to an idle worker. A lost connection is reported as
//! [`Error::Unreachable`](crate::error::Error::Unreachable) and the next call
//! reconnects ([`session`]).
//!
//! Submodules: `schema` (migrations), `session` (the connection),
//! `claims` (the worker's side), `actions` (enqueue, user actions, workers),
//! `unique` (keyed enqueues), `reads`, `copy` (export/import), `listen`
//! (LISTEN/NOTIFY); `connect`
//! (addresses, passwords, TLS) and `scratch` (bench databases) stand apart.

mod actions;
mod claims;
mod connect;
mod copy;
mod dashboard;
mod deps;
mod listen;
mod queues;
mod reads;
mod rows;
mod schedules;
mod schema;
mod scratch;
mod search;
mod session;
mod unique;

pub use connect::{PgTarget, connect, map_error};
pub use scratch::{SCRATCH_PREFIX, ScratchDatabase, ServerSettings, server_settings};

use super::dashboard::{JobSearch, SearchPage};
use super::selection::{BulkAction, BulkOutcome, Selection};
use super::types::*;
use super::{
    Backend, Dependencies, Finish, Finished, Holder, OpenMode, WakeFn, from_millis, to_millis,
};
use crate::domain::spec::check_batch_keys;
use crate::domain::{JobEdit, JobState, NewJob, QueueChange, QueueName, RetryPolicy};
use crate::error::Result;
use jiff::Timestamp;
use session::Session;
use std::collections::BTreeMap;
use std::time::Duration;

/// Set to `1` for a worker that reaches PostgreSQL through PgBouncer in
/// transaction mode (where `LISTEN` cannot work): it polls instead.
pub const POLL_ONLY_ENV: &str = "QUEUECTL_PG_POLL_ONLY";

pub struct PgStore {
    session: Session,
    poll_only: bool,
}

impl PgStore {
    /// Connects to `target` and finds the queue's schema there: creating or
    /// upgrading it as `mode` allows. `ReadOnly` connections run every
    /// transaction read-only.
    pub fn open_as(target: &PgTarget, mode: OpenMode) -> Result<PgStore> {
        let mut session = Session::open(target, mode == OpenMode::ReadOnly)?;
        schema::prepare(&mut session, mode)?;
        Ok(PgStore {
            session,
            poll_only: std::env::var_os(POLL_ONLY_ENV).is_some_and(|v| v == "1"),
        })
    }
}

impl Backend for PgStore {
    fn now(&mut self) -> Result<Timestamp> {
        let ms: i64 = self
            .session
            .run(|sql| Ok(sql.query_one("SELECT queuectl_now_ms()", &[])?.try_get(0)?))?;
        Ok(from_millis(ms))
    }

    fn pin_clock(&mut self, at: Option<Timestamp>) -> Result<()> {
        self.session.pin_clock(at.map(to_millis))
    }

    fn enqueue(
        &mut self,
        jobs: &[(usize, NewJob)],
        defaults: &JobDefaults,
    ) -> Result<Vec<Enqueued>> {
        check_batch_keys(jobs)?;
        if jobs.iter().all(|(_, job)| job.unique.is_none()) {
            let ids = if jobs.iter().any(|(_, job)| !job.after.is_empty()) {
                // Several statements: the named jobs first, the edges after.
                self.session
                    .transaction(|sql| actions::enqueue(sql, jobs, defaults))?
            } else {
                self.session
                    .run(|sql| actions::enqueue(sql, jobs, defaults))?
            };
            return Ok(ids.iter().map(Enqueued::created).collect());
        }
        self.session
            .transaction(|sql| unique::enqueue_in(sql, jobs, defaults))
    }

    /// The first statement commits by itself; only jobs of limited
    /// queues need the transaction that locks their queues' rows.
    fn claim(&mut self, request: &ClaimRequest, limit: usize) -> Result<Vec<Claimed>> {
        let first = self
            .session
            .run(|sql| claims::claim_free(sql, request, limit, &[]))?;
        let mut claimed = first.claimed;
        if !first.held.is_empty() {
            let want = limit - claimed.len();
            claimed.extend(self.session.transaction(|sql| {
                claims::claim_held(sql, request, want, first.held.clone(), first.exhausted)
            })?);
        }
        Ok(claims::in_claim_order(claimed))
    }

    fn finish(
        &mut self,
        done: &[Finish],
        policy: &RetryPolicy,
        next: Option<(&ClaimRequest, usize)>,
    ) -> Result<Finished> {
        // A transaction even for a finish alone: the jobs waiting for those
        // that ended move on in a statement of their own (see `deps`).
        self.session.transaction(|sql| {
            let held = claims::finish(sql, done, policy)?;
            let claimed = match next {
                Some((request, limit)) => claims::claim(sql, request, limit)?,
                None => Vec::new(),
            };
            Ok(Finished {
                held,
                claimed,
                // Notified in the transaction.
                freed: false,
            })
        })
    }

    fn renew_leases(
        &mut self,
        worker: &str,
        leases: &[&Lease],
        duration: Duration,
    ) -> Result<Vec<LeaseStatus>> {
        self.session
            .run(|sql| claims::renew(sql, worker, leases, duration))
    }

    fn held_attempts(&mut self, holder: Holder) -> Result<Vec<HeldAttempt>> {
        self.session.run(|sql| claims::held_attempts(sql, holder))
    }

    fn rescue(
        &mut self,
        holder: Holder,
        ended: &[HeldAttempt],
        policy: &RetryPolicy,
    ) -> Result<Vec<String>> {
        self.session
            .transaction(|sql| claims::rescue(sql, holder, ended, policy))
    }

    fn next_event_in(&mut self, request: &ClaimRequest) -> Result<Option<Duration>> {
        self.session.run(|sql| claims::next_event_in(sql, request))
    }

    fn listen_for_work(&mut self, wake: WakeFn) -> Result<bool> {
        if self.poll_only {
            return Ok(false);
        }
        listen::listen(self.session.target(), wake)?;
        Ok(true)
    }

    fn register_worker(&mut self, info: &WorkerInfo) -> Result<()> {
        self.session.run(|sql| actions::register_worker(sql, info))
    }

    fn worker_heartbeat(&mut self, name: &str, status: &str) -> Result<()> {
        self.session
            .run(|sql| actions::worker_heartbeat(sql, name, status))
    }

    fn unregister_worker(&mut self, name: &str) -> Result<()> {
        self.session
            .run(|sql| actions::unregister_worker(sql, name))
    }

    fn forget_silent_workers(&mut self, silent_for: Duration) -> Result<usize> {
        self.session
            .run(|sql| actions::forget_silent_workers(sql, silent_for))
    }

    fn workers(&mut self) -> Result<Vec<WorkerRow>> {
        self.session.run(reads::workers)
    }

    fn act(&mut self, action: BulkAction, selection: &Selection) -> Result<BulkOutcome> {
        let (states, cutoff_ms) = match selection {
            Selection::Filter { states, older_than } => {
                // Fixed once: jobs that finish or arrive meanwhile are left alone.
                let cutoff: i64 = self.session.run(|sql| {
                    Ok(sql
                        .query_one(
                            "SELECT queuectl_now_ms() - $1",
                            &[&super::millis(*older_than)],
                        )?
                        .try_get(0)?)
                })?;
                (states.as_slice(), cutoff)
            }
            Selection::Ids(_) => (&[][..], 0),
        };
        super::selection::act_in_chunks(
            &mut self.session,
            selection,
            |session, ids| session.transaction(|sql| actions::act_on_ids(sql, action, ids)),
            |session| {
                session.transaction(|sql| actions::act_on_filter(sql, action, states, cutoff_ms))
            },
            |session| {
                if !action.adds_work() {
                    return Ok(Vec::new());
                }
                session.run(|sql| actions::held_back(sql, states, cutoff_ms))
            },
        )
    }

    fn edit(&mut self, id: &str, edit: &JobEdit) -> Result<Job> {
        self.session.transaction(|sql| actions::edit(sql, id, edit))
    }

    fn get(&mut self, id: &str) -> Result<Job> {
        self.session.run(|sql| reads::get(sql, id))
    }

    fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        self.session.run(|sql| reads::attempts(sql, id))
    }

    fn dependencies(&mut self, id: &str) -> Result<Dependencies> {
        self.session.transaction(|sql| {
            reads::get(sql, id)?;
            deps::dependencies(sql, id)
        })
    }

    fn list(&mut self, filter: &ListFilter, limit: Option<u32>) -> Result<JobPage> {
        self.session.run(|sql| reads::list(sql, filter, limit))
    }

    fn job_ids(
        &mut self,
        prefix: &str,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.session
            .run(|sql| reads::job_ids(sql, prefix, state, limit))
    }

    fn counts(&mut self) -> Result<BTreeMap<JobState, u64>> {
        self.session.run(reads::counts)
    }

    fn metrics(&mut self) -> Result<Metrics> {
        self.session.run(reads::metrics)
    }

    fn search_jobs(&mut self, search: &JobSearch) -> Result<SearchPage> {
        let scans = super::search::scans(search)?;
        // One snapshot for the page's statements: a purge between them
        // could otherwise make a range look read further than it was. Plans
        // for the values at hand: a generic plan of `state = $6` guessed a
        // sixth of the jobs and read the primary key, all 1M rows for a
        // state no job is in (0.4 s; the state's index: under 1 ms).
        self.session.transaction(|sql| {
            sql.batch(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
                 SET LOCAL plan_cache_mode = force_custom_plan",
            )?;
            super::search::search(sql, &scans, search.limit)
        })
    }

    fn overview(&mut self) -> Result<super::dashboard::Overview> {
        self.session.transaction(dashboard::overview)
    }

    fn stats(&mut self) -> Result<super::dashboard::Stats> {
        self.session.transaction(dashboard::stats)
    }

    fn queues(&mut self) -> Result<Vec<QueueRow>> {
        self.session.run(|sql| queues::rows(sql, None))
    }

    fn configure_queue(&mut self, name: &QueueName, change: &QueueChange) -> Result<QueueRow> {
        self.session
            .transaction(|sql| queues::configure(sql, name, change))
    }

    fn add_schedule(
        &mut self,
        schedule: &super::schedules::NewSchedule,
        replace: bool,
    ) -> Result<()> {
        self.session
            .transaction(|sql| schedules::add(sql, schedule, replace))
    }

    fn remove_schedule(&mut self, name: &str) -> Result<bool> {
        self.session.run(|sql| schedules::remove(sql, name))
    }

    fn schedules(&mut self) -> Result<Vec<super::schedules::ScheduleRow>> {
        self.session.run(schedules::list)
    }

    fn fire_schedule(
        &mut self,
        name: &str,
        defaults: &JobDefaults,
    ) -> Result<super::schedules::Fired> {
        self.session
            .transaction(|sql| schedules::fire_now(sql, name, defaults))
    }

    fn fire_due_schedules(
        &mut self,
        catch_up_after: Duration,
        defaults: &JobDefaults,
    ) -> Result<Vec<super::schedules::Fired>> {
        let (due, now) = self.session.run(schedules::due)?;
        let mut fired = Vec::new();
        for row in &due {
            match self
                .session
                .transaction(|sql| schedules::fire_due_row(sql, row, now, catch_up_after, defaults))
            {
                Ok(one) => fired.extend(one),
                Err(e) => super::schedules::row_failed(&row.name, e)?,
            }
        }
        Ok(fired)
    }

    fn next_schedule_in(&mut self) -> Result<Option<Duration>> {
        self.session.run(schedules::next_due_in)
    }

    fn export(&mut self) -> Result<Vec<JobRecord>> {
        self.session.transaction(copy::export)
    }

    fn import(
        &mut self,
        jobs: &[JobRecord],
        queues: &[QueueRow],
        schedules: &[super::schedules::ScheduleRow],
    ) -> Result<()> {
        self.session
            .transaction(|sql| copy::import(sql, jobs, queues, schedules))
    }
}

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
