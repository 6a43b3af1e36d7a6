//! The job settings `add` and `edit` take as flags, turned into the fields
//! of a JSON submission so that one validator (`domain::spec`) checks them
//! all, and its messages put back in the flags' words.

use super::args::JobFields;
use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
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
            || self.queue.is_some()
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
        if let Some(queue) = &self.queue {
            fields.insert("queue".into(), queue.as_str().into());
        }
        Ok(())
    }
}

/// A time as `--at` takes it: RFC 3339, or a date and time of day in the
/// local time zone (`TZ` respected), e.g. "2026-12-01 09:00". A local time
/// that a daylight-saving change skips or repeats is refused rather than
/// guessed: an offset says which is meant.
pub fn parse_time(text: &str) -> Result<Timestamp> {
    parse_time_in(text, &TimeZone::system())
}

fn parse_time_in(text: &str, zone: &TimeZone) -> Result<Timestamp> {
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
    let zoned = zone.to_ambiguous_zoned(local);
    let (why, offsets) = match zoned.offset() {
        AmbiguousOffset::Unambiguous { .. } => {
            return zoned
                .unambiguous()
                .map(|zoned| zoned.timestamp())
                .map_err(|_| unreadable());
        }
        AmbiguousOffset::Gap { before, after } => (
            "does not exist: the clocks skip it (daylight saving)",
            [before, after],
        ),
        AmbiguousOffset::Fold { before, after } => (
            "happens twice: the clocks go back over it (daylight saving)",
            [before, after],
        ),
    };
    let zone_name = zone
        .iana_name()
        .map_or(String::new(), |name| format!(" in {name}"));
    let with = |offset: Offset| {
        offset
            .to_timestamp(local)
            .map(|at| at.display_with_offset(offset).to_string())
            .unwrap_or_default()
    };
    Err(Error::Invalid(format!(
        "--at: {}{zone_name} {why}; give the time with an offset (RFC 3339), e.g. {} or {}",
        echo::shown(text),
        with(offsets[0]),
        with(offsets[1])
    )))
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
        Some("unique_key") => "--unique-key",
        Some("on_duplicate") => "--on-duplicate",
        Some("queue") => "--queue",
        Some("after") => "--after",
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

    #[test]
    fn at_refuses_a_local_time_a_daylight_saving_change_skips_or_repeats() {
        let zone = TimeZone::get("America/New_York").unwrap();
        let check = |text: &str| parse_time_in(text, &zone);
        let gap = check("2026-03-08 02:30").unwrap_err().to_string();
        assert!(gap.contains("does not exist"), "{gap}");
        assert!(gap.contains("2026-03-08T02:30:00-05:00"), "{gap}");
        let fold = check("2026-11-01 01:30").unwrap_err().to_string();
        assert!(fold.contains("happens twice"), "{fold}");
        assert!(
            fold.contains("2026-11-01T01:30:00-04:00 or 2026-11-01T01:30:00-05:00"),
            "{fold}"
        );
        assert!(check("2026-11-01 03:30").is_ok());
    }
}
