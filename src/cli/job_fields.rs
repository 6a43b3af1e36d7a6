//! The job settings `add` and `edit` take as flags, turned into the fields
//! of a JSON submission so that one validator (`domain::spec`) checks them
//! all, and its messages put back in the flags' words.

use super::args::JobFields;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use queuectl::domain::duration::parse_duration;
use queuectl::domain::{InputError, echo};
use queuectl::error::{Error, Result};
use serde_json::{Map, Value};

impl JobFields {
    /// Whether any of these flags was given.
    pub fn any(&self) -> bool {
        self.priority.is_some()
            || self.delay.is_some()
            || self.at.is_some()
            || self.retries.is_some()
            || self.timeout.is_some()
    }

    /// Adds the given flags to `fields` as a job's JSON fields.
    pub fn insert_into(&self, fields: &mut Map<String, Value>) -> Result<()> {
        if let Some(priority) = self.priority {
            fields.insert("priority".into(), priority.into());
        }
        if let Some(delay) = &self.delay {
            fields.insert("delay".into(), delay.as_str().into());
        }
        if let Some(at) = &self.at {
            fields.insert("run_at".into(), parse_time(at)?.to_string().into());
        }
        if let Some(retries) = self.retries {
            fields.insert("max_retries".into(), retries.into());
        }
        if let Some(timeout) = &self.timeout {
            let seconds = parse_duration(timeout)
                .map_err(|why| Error::Invalid(format!("--timeout: {why}")))?
                .as_secs();
            fields.insert("timeout_seconds".into(), seconds.into());
        }
        Ok(())
    }
}

/// A time as `--at` takes it: RFC 3339, or a date and time of day in the
/// local time zone (`TZ` respected), e.g. "2026-12-01 09:00".
pub fn parse_time(text: &str) -> Result<Timestamp> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let unreadable = || {
        Error::Invalid(format!(
            "--at: cannot read \"{}\" as a time: give RFC 3339 (2026-12-01T09:00:00Z) or a local time (\"2026-12-01 09:00\")",
            echo::shown(text)
        ))
    };
    let local: jiff::civil::DateTime = text.parse().map_err(|_| unreadable())?;
    local
        .to_zoned(TimeZone::system())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| unreadable())
}

/// A validation error about a job field, in the words of the flag that set
/// it (`command` is `command_flag`: `add` takes it after `--`).
pub fn flag_error(err: InputError, command_flag: &str) -> Error {
    let flag = match err.field.as_deref() {
        Some("command") => command_flag,
        Some("id") => "--id",
        Some("priority") => "--priority",
        Some("run_at") => "--at",
        Some("delay") => "--delay",
        Some("max_retries") => "--retries",
        Some("timeout_seconds") => "--timeout",
        Some("env") => "--env",
        Some("env_file") => "--env-file",
        Some("cwd") => "--cwd",
        _ => return err.into(),
    };
    Error::Invalid(format!("{flag}: {}", err.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_rfc3339_or_a_local_time() {
        assert_eq!(
            parse_time("2026-12-01T09:00:00Z").unwrap(),
            "2026-12-01T09:00:00Z".parse::<Timestamp>().unwrap()
        );
        let local = parse_time("2026-12-01 09:00").unwrap();
        let expected = jiff::civil::date(2026, 12, 1)
            .at(9, 0, 0, 0)
            .to_zoned(TimeZone::system())
            .unwrap()
            .timestamp();
        assert_eq!(local, expected);
        let err = parse_time("next tuesday").unwrap_err().to_string();
        assert!(
            err.starts_with("--at: cannot read \"next tuesday\""),
            "{err}"
        );
    }
}
