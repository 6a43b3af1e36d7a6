//! Named queues: a job's `queue` and the limits a queue may carry.
//!
//! A queue name is checked like a job id (1–64 characters of
//! `[A-Za-z0-9._-]`, starting with a letter or digit): names reach unit
//! files, environment variables and messages, so nothing else passes.
//! A queue with no settings is unlimited and running; `parallel` caps how
//! many of its jobs run at once across every worker and host, and a paused
//! queue starts none. The store enforces both in the claim itself.

use super::job::JobId;
use std::fmt;

/// The queue a job goes to when it names none.
pub const DEFAULT_QUEUE: &str = "default";

/// The highest `parallel` accepted (far beyond any real worker pool).
pub const MAX_PARALLEL: u32 = 1_000_000;

/// A valid queue name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(text: &str) -> Result<QueueName, String> {
        JobId::parse(text).map(|_| QueueName(text.to_owned()))
    }

    pub fn default_queue() -> QueueName {
        QueueName(DEFAULT_QUEUE.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Default for QueueName {
    fn default() -> QueueName {
        QueueName::default_queue()
    }
}

/// The queues a worker serves, as `--queues`, `$QUEUECTL_QUEUES` and the
/// config's `worker_queues` give them: names separated by commas (blanks
/// around them ignored, repeats dropped). Empty text is an error: a worker
/// that serves no queue would never run anything.
pub fn parse_queue_list(text: &str) -> Result<Vec<QueueName>, String> {
    let mut queues: Vec<QueueName> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let name = QueueName::parse(part).map_err(|why| {
            if part.is_empty() {
                "an empty queue name (give names separated by commas: a,b)".to_owned()
            } else {
                format!("queue name '{}' {why}", super::echo::shown(part))
            }
        })?;
        if !queues.contains(&name) {
            queues.push(name);
        }
    }
    Ok(queues)
}

/// The queues `$QUEUECTL_QUEUES` names: set but blank is every queue
/// (`None`), as an empty `worker_queues` is; errors name the variable.
pub fn parse_queues_env(text: &str) -> Result<Option<Vec<QueueName>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_queue_list(text)
        .map(Some)
        .map_err(|why| format!("$QUEUECTL_QUEUES: {why}"))
}

/// A change to a queue's settings: each field given replaces the stored
/// one; `parallel: Some(None)` removes the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueChange {
    pub parallel: Option<Option<u32>>,
    pub paused: Option<bool>,
}

/// Checks a `parallel` limit: 1 to [`MAX_PARALLEL`].
pub fn check_parallel(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_PARALLEL).contains(&n) => Ok(n),
        _ => Err(format!(
            "parallel must be from 1 to {MAX_PARALLEL} (or none), got {n}"
        )),
    }
}

/// Reads `--parallel`'s value: a count, or `none` for no limit.
pub fn parse_parallel(text: &str) -> Result<Option<u32>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let n: i64 = text.trim().parse().map_err(|_| {
        format!(
            "expected a number from 1 to {MAX_PARALLEL} or \"none\", got \"{}\"",
            super::echo::shown(text)
        )
    })?;
    check_parallel(n).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_take_the_job_id_charset() {
        for ok in [
            "default",
            "emails",
            "a",
            "reports-2026.q4_x",
            &"q".repeat(64),
        ] {
            assert_eq!(QueueName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "a,b",
            "é",
            "a\nb",
            &"q".repeat(65),
        ] {
            assert!(QueueName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(QueueName::default().as_str(), DEFAULT_QUEUE);
    }

    #[test]
    fn queue_lists_are_comma_separated_names_without_repeats() {
        let names = |text| {
            parse_queue_list(text).map(|q| q.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(names("a,b").unwrap(), ["a", "b"]);
        assert_eq!(names(" a , b ,a").unwrap(), ["a", "b"]);
        assert_eq!(names("default").unwrap(), ["default"]);
        assert!(names("").unwrap_err().contains("empty queue name"));
        assert!(names("a,,b").unwrap_err().contains("empty queue name"));
        let bad = names("a,b c").unwrap_err();
        assert!(bad.starts_with("queue name 'b c'"), "{bad}");
    }

    #[test]
    fn an_empty_queues_variable_is_every_queue() {
        assert_eq!(parse_queues_env(""), Ok(None));
        assert_eq!(parse_queues_env("  "), Ok(None));
        assert_eq!(parse_queues_env("a").unwrap().unwrap()[0].as_str(), "a");
        let bad = parse_queues_env("a b").unwrap_err();
        assert!(
            bad.starts_with("$QUEUECTL_QUEUES: queue name 'a b'"),
            "{bad}"
        );
    }

    #[test]
    fn parallel_is_a_positive_count_or_none() {
        assert_eq!(parse_parallel("2"), Ok(Some(2)));
        assert_eq!(parse_parallel("none"), Ok(None));
        assert_eq!(parse_parallel("NONE"), Ok(None));
        for bad in ["0", "-1", "two", "", "1000001", "1.5"] {
            assert!(parse_parallel(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_parallel(MAX_PARALLEL.into()), Ok(MAX_PARALLEL));
    }
}
