//! Schedules as the store keeps them, and the rules both backends share
//! (no SQL here): a row's next elapse, and the job one elapse enqueues.
//!
//! The row is the source of truth: it holds the job (with its env, which
//! is never shown: [`ScheduleRow`] serializes `env_keys` only). A timer
//! (driver `systemd`) or the workers' maintenance (driver `workers`) only
//! says "fire now"; firing reads the row and enqueues in one transaction.
//! For `workers`, `next_elapse_at` is a compare-and-set column: the worker
//! whose `UPDATE … WHERE next_elapse_at = :seen` changed the row enqueues,
//! in the same transaction, so each elapse enqueues exactly once however
//! many workers and hosts look at it.

use crate::domain::calendar::Calendar;
use crate::domain::job::Schedule as RunAt;
use crate::domain::schedule::{Driver, Overlap, ScheduleName, job_template, parse_calendars};
use crate::domain::{EnqueueOutcome, JobState, NewJob, OnDuplicate, Unique, UniqueKey};
use crate::error::{Error, Result};
use crate::store::Enqueued;
use crate::store::{from_millis, to_millis};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// A schedule to add.
#[derive(Clone, Debug)]
pub struct NewSchedule {
    pub name: ScheduleName,
    /// One or more calendar expressions (stored one per line).
    pub on_calendar: Vec<String>,
    /// IANA zone the expressions' local times are read in (unless one
    /// names its own).
    pub time_zone: String,
    /// The job template, validated by [`job_template`]; its env values are
    /// secrets.
    pub job: Value,
    pub overlap: Overlap,
    pub persistent: bool,
    pub randomized_delay: Duration,
    pub driver: Driver,
    /// The host whose systemd timer drives it (driver `systemd`).
    pub host: Option<String>,
    /// Declared by the system (NixOS), not by `schedule add`.
    pub managed: bool,
}

/// The columns of a new schedule's row that are computed, not copied.
pub struct ComputedColumns {
    pub on_calendar: String,
    pub job: String,
    pub randomized_delay_ms: i64,
    /// The first elapse after `now` for the workers to fire; `None` when
    /// systemd's timer fires it.
    pub next_elapse_at: Option<i64>,
}

impl NewSchedule {
    /// Its computed columns, for a row written at `now`.
    pub fn computed_columns(&self, now: Timestamp) -> Result<ComputedColumns> {
        Ok(ComputedColumns {
            on_calendar: self.on_calendar.join("\n"),
            job: self.job.to_string(),
            randomized_delay_ms: crate::store::millis(self.randomized_delay),
            next_elapse_at: match self.driver {
                Driver::Workers => Some(first_elapse(self, now)?),
                Driver::Systemd => None,
            },
        })
    }
}

/// A schedule as stored, with its last job's state.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleRow {
    pub name: String,
    pub on_calendar: Vec<String>,
    pub time_zone: String,
    #[serde(serialize_with = "job_without_env_values")]
    pub job: Value,
    pub overlap: Overlap,
    pub persistent: bool,
    #[serde(serialize_with = "as_millis")]
    pub randomized_delay: Duration,
    pub driver: Driver,
    pub host: Option<String>,
    pub managed: bool,
    /// Driver `workers`: when it next fires.
    pub next_elapse_at: Option<Timestamp>,
    pub last_job_id: Option<String>,
    pub last_job_state: Option<JobState>,
    pub last_fired_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ScheduleRow {
    /// The row's columns as stored, for `copy` to insert them as they
    /// were (the job JSON with its env stays inside the store).
    pub(crate) fn columns(&self) -> ScheduleColumns<'_> {
        ScheduleColumns {
            name: &self.name,
            on_calendar: self.on_calendar.join("\n"),
            time_zone: &self.time_zone,
            job: self.job.to_string(),
            overlap: self.overlap.as_str(),
            persistent: self.persistent,
            randomized_delay_ms: crate::store::millis(self.randomized_delay),
            driver: self.driver.as_str(),
            host: self.host.as_deref(),
            managed: self.managed,
            next_elapse_at: self.next_elapse_at.map(to_millis),
            last_job_id: self.last_job_id.as_deref(),
            last_fired_at: self.last_fired_at.map(to_millis),
            created_at: to_millis(self.created_at),
            updated_at: to_millis(self.updated_at),
        }
    }
}

/// One `schedules` row's columns, in the table's order.
pub(crate) struct ScheduleColumns<'a> {
    pub name: &'a str,
    pub on_calendar: String,
    pub time_zone: &'a str,
    pub job: String,
    pub overlap: &'a str,
    pub persistent: bool,
    pub randomized_delay_ms: i64,
    pub driver: &'a str,
    pub host: Option<&'a str>,
    pub managed: bool,
    pub next_elapse_at: Option<i64>,
    pub last_job_id: Option<&'a str>,
    pub last_fired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The job with `env` replaced by `env_keys`: values are never printed.
fn job_without_env_values<S: serde::Serializer>(
    job: &Value,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    public_job(job).serialize(s)
}

pub fn public_job(job: &Value) -> Value {
    let mut job = job.clone();
    if let Value::Object(map) = &mut job
        && let Some(Value::Object(env)) = map.remove("env")
    {
        let keys: Vec<Value> = env.keys().map(|k| Value::String(k.clone())).collect();
        map.insert("env_keys".into(), Value::Array(keys));
    }
    job
}

/// A `schedules` row as read (joined with its last job's state), before
/// decoding: both backends fill it column by column.
pub(crate) struct StoredRow {
    pub name: String,
    pub on_calendar: String,
    pub time_zone: String,
    pub job: String,
    pub overlap: String,
    pub persistent: bool,
    pub randomized_delay_ms: i64,
    pub driver: String,
    pub host: Option<String>,
    pub managed: bool,
    pub next_elapse_at: Option<i64>,
    pub last_job_id: Option<String>,
    pub last_job_state: Option<String>,
    pub last_fired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Every schedule by name, with the columns [`StoredRow`] is read from, in
/// order.
pub(crate) const LIST_SQL: &str = "SELECT s.name, s.on_calendar, s.time_zone, s.job, s.overlap, s.persistent, \
     s.randomized_delay_ms, s.driver, s.host, s.managed, s.next_elapse_at, s.last_job_id, j.state, \
     s.last_fired_at, s.created_at, s.updated_at \
     FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id ORDER BY s.name";

impl StoredRow {
    pub fn decode(self) -> Result<ScheduleRow> {
        let name = self.name;
        Ok(ScheduleRow {
            job: serde_json::from_str(&self.job).map_err(|e| {
                Error::Invalid(format!(
                    "schedule '{name}': its stored job is not JSON ({e})"
                ))
            })?,
            on_calendar: calendar_lines(&self.on_calendar),
            time_zone: self.time_zone,
            overlap: overlap_of(&self.overlap)?,
            persistent: self.persistent,
            randomized_delay: Duration::from_millis(self.randomized_delay_ms.max(0) as u64),
            driver: driver_of(&self.driver)?,
            host: self.host,
            managed: self.managed,
            next_elapse_at: self
                .next_elapse_at
                .filter(|&ms| ms != NEVER)
                .map(from_millis),
            last_job_id: self.last_job_id,
            last_job_state: self
                .last_job_state
                .as_deref()
                .map(crate::store::parse_state)
                .transpose()?,
            last_fired_at: self.last_fired_at.map(from_millis),
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
            name,
        })
    }
}

/// What one fire did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FireOutcome {
    /// A new job.
    Enqueued { id: String },
    /// The unfinished job of an earlier elapse stands for this one
    /// (`skip`, or `replace` while it runs).
    Skipped { holder: String },
    /// The waiting job of an earlier elapse was updated (`replace`).
    Replaced { id: String },
    /// An elapse missed while no worker looked, not `persistent`: only the
    /// next elapse was set.
    Missed,
}

impl FireOutcome {
    /// The job that stands for this fire, if any.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            FireOutcome::Enqueued { id } | FireOutcome::Replaced { id } => Some(id),
            FireOutcome::Skipped { holder } => Some(holder),
            FireOutcome::Missed => None,
        }
    }
}

/// One fire of one schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fired {
    pub schedule: String,
    /// The elapse it fired for (driver `workers`); `None`: fired on demand.
    pub elapse: Option<Timestamp>,
    #[serde(flatten)]
    pub outcome: FireOutcome,
}

/// The first elapse of `calendars` strictly after `after` in `zone`,
/// pushed back by a random share of `randomized_delay`; `None` when it
/// never elapses again.
pub fn next_elapse(
    name: &str,
    calendars: &[String],
    zone: &str,
    after: Timestamp,
    randomized_delay: Duration,
) -> Result<Option<Timestamp>> {
    let parsed: Vec<Calendar> = parse_calendars(calendars).map_err(Error::Invalid)?;
    let zone = TimeZone::get(zone)
        .map_err(|e| Error::Invalid(format!("schedule '{name}': time zone {zone}: {e}")))?;
    let Some(next) = parsed
        .iter()
        .filter_map(|calendar| calendar.next_after(after, &zone))
        .min()
    else {
        return Ok(None);
    };
    let delay_ms = randomized_delay.as_millis() as i64;
    let jitter = if delay_ms > 0 {
        rand::random_range(0..=delay_ms)
    } else {
        0
    };
    Ok(Some(
        next.checked_add(jiff::SignedDuration::from_millis(jitter))
            .unwrap_or(next),
    ))
}

/// `next_elapse_at` of a new workers-driven schedule: its first elapse
/// after `now`; an error when there is none.
pub fn first_elapse(schedule: &NewSchedule, now: Timestamp) -> Result<i64> {
    let name = schedule.name.as_str();
    next_elapse(
        name,
        &schedule.on_calendar,
        &schedule.time_zone,
        now,
        schedule.randomized_delay,
    )?
    .map(to_millis)
    .ok_or_else(|| {
        Error::Invalid(format!(
            "schedule '{name}': its calendar never elapses after {}",
            jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
        ))
    })
}

/// `next_elapse_at` of a workers-driven schedule whose calendar has no
/// elapse left (the column must hold a time for that driver).
pub const NEVER: i64 = i64::MAX;

/// A workers-driven schedule found due, as read before its transaction.
pub(crate) struct DueRow {
    pub name: String,
    /// The `next_elapse_at` read: the compare-and-set's expected value.
    pub seen: i64,
    pub on_calendar: String,
    pub time_zone: String,
    pub randomized_delay_ms: i64,
    pub persistent: bool,
    pub job: String,
    pub overlap: String,
}

/// What firing a due row does.
pub(crate) struct FirePlan {
    /// The new `next_elapse_at`.
    pub next: i64,
    /// The job to enqueue, due at the elapse; `None`: the elapse is only
    /// passed (missed and not `persistent`, or a broken row, logged).
    pub job: Option<NewJob>,
    pub overlap: Overlap,
}

impl DueRow {
    /// Decided from the database's `now`: the next elapse after both the
    /// one seen and now (a worker that was away does not fire every missed
    /// one), and whether this one still fires.
    pub fn plan(&self, now: Timestamp, catch_up_after: Duration) -> FirePlan {
        let seen = from_millis(self.seen);
        let calendars = calendar_lines(&self.on_calendar);
        let delay = Duration::from_millis(self.randomized_delay_ms.max(0) as u64);
        let next = next_elapse(
            &self.name,
            &calendars,
            &self.time_zone,
            seen.max(now),
            delay,
        )
        .unwrap_or_else(|e| {
            tracing::warn!(schedule = %self.name, "cannot compute the next elapse: {e}");
            None
        })
        .map_or(NEVER, to_millis);
        let overlap = Overlap::parse(&self.overlap).unwrap_or_default();
        let job = if fires_missed_elapse(seen, now, catch_up_after, self.persistent) {
            elapse_job(&self.name, &self.job, overlap, Some(seen))
                .inspect_err(|e| tracing::warn!(schedule = %self.name, "not enqueued: {e}"))
                .ok()
        } else {
            None
        };
        FirePlan { next, job, overlap }
    }
}

/// A due row whose fire failed for a reason of its own stays due for the
/// next pass (logged), and the other rows go on; a database that cannot be
/// reached ends the pass.
pub(crate) fn row_failed(name: &str, e: Error) -> Result<()> {
    if e.is_unreachable() {
        return Err(e);
    }
    tracing::warn!(schedule = %name, error = %e, "firing the schedule failed; it is tried again at the next pass");
    Ok(())
}

/// The stored calendar text as its expressions.
pub fn calendar_lines(stored: &str) -> Vec<String> {
    stored.lines().map(str::to_owned).collect()
}

/// What a due row's fire should do, decided from the database's `now`:
/// an elapse missed by more than `catch_up_after` only fires when the
/// schedule is `persistent`.
pub fn fires_missed_elapse(
    seen: Timestamp,
    now: Timestamp,
    catch_up_after: Duration,
    persistent: bool,
) -> bool {
    let late = now.duration_since(seen);
    persistent
        || late
            <= jiff::SignedDuration::try_from(catch_up_after).unwrap_or(jiff::SignedDuration::MAX)
}

/// The job one elapse enqueues: the stored template, due at `run_at`
/// (now when `None`), under the overlap policy's unique key.
pub fn elapse_job(
    name: &str,
    stored_job: &str,
    overlap: Overlap,
    run_at: Option<Timestamp>,
) -> Result<NewJob> {
    let value: Value = serde_json::from_str(stored_job).map_err(|e| {
        Error::Invalid(format!(
            "schedule '{name}': its stored job is not JSON ({e})"
        ))
    })?;
    let mut job = job_template(&value)
        .map_err(|e| Error::Invalid(format!("schedule '{name}': its stored job: {e}")))?;
    job.schedule = run_at.map_or(RunAt::Now, RunAt::At);
    let on_duplicate = match overlap {
        Overlap::Queue => None,
        Overlap::Skip => Some(OnDuplicate::Skip),
        Overlap::Replace => Some(OnDuplicate::Replace),
    };
    job.unique = on_duplicate
        .map(|on_duplicate| {
            let key = ScheduleName::parse(name)
                .map_err(Error::Invalid)?
                .unique_key();
            Ok::<_, Error>(Unique {
                key: UniqueKey::parse(&key).map_err(Error::Invalid)?,
                on_duplicate,
            })
        })
        .transpose()?;
    Ok(job)
}

/// What a fire's enqueue did, from the store's answer: a `replace` whose
/// holder runs is refused by the store, and is a skip here (`holder`
/// reads who holds the key).
pub(crate) fn fire_outcome(
    enqueued: Result<Enqueued>,
    overlap: Overlap,
    holder: impl FnOnce() -> Result<Option<String>>,
) -> Result<FireOutcome> {
    match enqueued {
        Ok(Enqueued {
            id,
            outcome: EnqueueOutcome::Created,
        }) => Ok(FireOutcome::Enqueued { id }),
        Ok(Enqueued {
            id,
            outcome: EnqueueOutcome::Existing,
        }) => Ok(FireOutcome::Skipped { holder: id }),
        Ok(Enqueued {
            id,
            outcome: EnqueueOutcome::Replaced,
        }) => Ok(FireOutcome::Replaced { id }),
        Err(Error::Conflict(why)) if overlap == Overlap::Replace => match holder()? {
            Some(holder) => Ok(FireOutcome::Skipped { holder }),
            None => Err(Error::Conflict(why)),
        },
        Err(e) => Err(e),
    }
}

/// A schedule's name, checked, from a user's text.
pub fn schedule_name(text: &str) -> Result<ScheduleName> {
    ScheduleName::parse(text).map_err(Error::Invalid)
}

/// The error for a schedule that does not exist (exit 3).
pub fn no_such_schedule(name: &str) -> Error {
    Error::ScheduleNotFound(name.to_owned())
}

/// The error for adding a name that exists (exit 4).
pub fn schedule_exists(name: &str) -> Error {
    Error::Conflict(format!(
        "schedule '{name}' already exists (remove it first, or add with --replace)"
    ))
}

/// Decodes the stored overlap and driver words.
pub fn overlap_of(text: &str) -> Result<Overlap> {
    Overlap::parse(text).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown overlap policy '{text}' in the schedules table"
        ))
    })
}

pub fn driver_of(text: &str) -> Result<Driver> {
    Driver::parse(text)
        .ok_or_else(|| Error::Invalid(format!("unknown driver '{text}' in the schedules table")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calendar_that_never_elapses_says_since_when_in_seconds() {
        let schedule = NewSchedule {
            name: ScheduleName::parse("never").unwrap(),
            on_calendar: vec!["2020-01-01".into()],
            time_zone: "UTC".into(),
            job: serde_json::json!({"command": "true"}),
            overlap: Overlap::Skip,
            persistent: false,
            randomized_delay: Duration::ZERO,
            driver: Driver::Workers,
            host: None,
            managed: false,
        };
        let now: Timestamp = "2026-11-30T07:40:05.580733648Z".parse().unwrap();
        let why = first_elapse(&schedule, now).unwrap_err().to_string();
        assert!(
            why.ends_with("never elapses after 2026-11-30T07:40:05Z"),
            "{why}"
        );
    }
}
