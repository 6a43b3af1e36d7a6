//! A job as a user submits it, before the store gives it a place in the queue.

use super::queue::QueueName;
use super::unique::Unique;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Longest id accepted; ids become file names and journal field values.
pub const MAX_ID_LEN: usize = 64;

/// A job id: 1–64 characters of `[A-Za-z0-9._-]`, starting with a letter or
/// digit, so it is safe as a file name, a journal field value and a shell word.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    pub fn parse(text: &str) -> Result<JobId, String> {
        if text.is_empty() || text.len() > MAX_ID_LEN {
            return Err(format!("must be 1 to {MAX_ID_LEN} characters long"));
        }
        if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("must start with a letter or digit".into());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "contains '{}'; only letters, digits, '.', '_' and '-' are allowed",
                bad.escape_default()
            ));
        }
        Ok(JobId(text.to_owned()))
    }

    /// A new id that sorts by creation time (a ULID: 48 bits of milliseconds
    /// then 80 random bits, in Crockford base32).
    pub fn generate(now: Timestamp) -> JobId {
        let millis = u64::try_from(now.as_millisecond()).unwrap_or(0);
        JobId(ulid::Ulid::from_parts(millis, rand::random()).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a new job becomes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Now,
    At(Timestamp),
    After(Duration),
}

impl Schedule {
    pub fn due_at(self, now: Timestamp) -> Timestamp {
        match self {
            Schedule::Now => now,
            Schedule::At(at) => at,
            Schedule::After(delay) => now
                .checked_add(
                    jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(Timestamp::MAX),
        }
    }
}

/// A validated job submission. Settings left out are filled from the config
/// when it is enqueued, so a later config change does not alter queued jobs.
#[derive(Clone, PartialEq, Eq)]
pub struct NewJob {
    pub id: Option<JobId>,
    pub command: String,
    pub priority: i64,
    pub schedule: Schedule,
    pub max_retries: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub env: BTreeMap<String, String>,
    /// Read by the worker when an attempt starts; its values never enter
    /// the queue (see [`crate::domain::environment::EnvFileRef`]).
    pub env_file: Option<String>,
    pub cwd: Option<String>,
    /// At most one unfinished job holds this key (see [`super::unique`]).
    pub unique: Option<Unique>,
    /// The queue it waits in (`default` unless named).
    pub queue: QueueName,
    /// The jobs that must complete before this one runs (`domain::deps`).
    pub after: Vec<JobId>,
}

impl NewJob {
    pub fn new(command: impl Into<String>) -> NewJob {
        NewJob {
            id: None,
            command: command.into(),
            priority: 0,
            schedule: Schedule::Now,
            max_retries: None,
            timeout_seconds: None,
            env: BTreeMap::new(),
            env_file: None,
            cwd: None,
            unique: None,
            queue: QueueName::default(),
            after: Vec::new(),
        }
    }
}

/// Changes to a waiting job (`queuectl edit`): each field given replaces
/// the job's; validated by [`crate::domain::spec::edit_from_value`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobEdit {
    pub command: Option<String>,
    pub priority: Option<i64>,
    pub schedule: Option<Schedule>,
    pub max_retries: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub queue: Option<QueueName>,
}

impl JobEdit {
    pub fn is_empty(&self) -> bool {
        *self == JobEdit::default()
    }
}

// Env values may hold secrets: never print them.
impl fmt::Debug for NewJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewJob")
            .field("id", &self.id)
            .field("command", &self.command)
            .field("priority", &self.priority)
            .field("schedule", &self.schedule)
            .field("max_retries", &self.max_retries)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("env_file", &self.env_file)
            .field("cwd", &self.cwd)
            .field("unique", &self.unique)
            .field("queue", &self.queue)
            .field("after", &self.after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_ids_and_rejects_the_rest() {
        for ok in ["job1", "a", "2026-11-26.backup_db", &"x".repeat(64)] {
            assert!(JobId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-rf",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "a\nb",
            "$(x)",
            &"x".repeat(65),
        ] {
            assert!(JobId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_sort_by_time() {
        let early = JobId::generate(Timestamp::from_millisecond(1_000).unwrap());
        let late = JobId::generate(Timestamp::from_millisecond(2_000).unwrap());
        assert!(JobId::parse(early.as_str()).is_ok());
        assert!(early < late);
    }

    #[test]
    fn debug_hides_env_values() {
        let mut job = NewJob::new("deploy");
        job.env.insert("TOKEN".into(), "s3cret".into());
        let shown = format!("{job:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
