//! A recurring schedule's rules: its name (which becomes part of unit file
//! names, so it is a safe word), its overlap policy and who drives it, and
//! the job template it enqueues (`run_at`/`delay` refused: each elapse sets
//! the time). Pure.

use super::NewJob;
use super::calendar::Calendar;
use super::echo;
use super::spec::{FIELDS, InputError, job_from_value};
use serde_json::Value;
use std::fmt;

/// The longest schedule name (unit names stay far below systemd's 255).
pub const MAX_NAME: usize = 64;

/// A schedule's name: `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`, so that
/// `queuectl-schedule-NAME.timer` is a plain file name and a plain unit
/// name (no `@`, `\`, `%`, `/`, `.` or control characters).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScheduleName(String);

impl ScheduleName {
    pub fn parse(text: &str) -> Result<ScheduleName, String> {
        let refuse = |why: &str| {
            format!(
                "invalid schedule name \"{}\": {why} (ASCII letters, digits, '_' and '-', starting with a letter or digit, at most {MAX_NAME})",
                echo::shown(text)
            )
        };
        let mut chars = text.chars();
        match chars.next() {
            None => return Err(refuse("empty")),
            Some(first) if !first.is_ascii_alphanumeric() => {
                return Err(refuse("must start with an ASCII letter or digit"));
            }
            Some(_) => {}
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
            return Err(refuse(&format!(
                "'{}' is not allowed",
                bad.escape_default()
            )));
        }
        if text.len() > MAX_NAME {
            return Err(refuse("too long"));
        }
        Ok(ScheduleName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The unique key its `skip` and `replace` policies enqueue under.
    pub fn unique_key(&self) -> String {
        format!("schedule:{}", self.0)
    }
}

impl fmt::Display for ScheduleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an elapse does while the job of an earlier one has not finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Enqueue nothing: the unfinished job stands for this elapse too.
    #[default]
    Skip,
    /// Enqueue another job anyway.
    Queue,
    /// Update the waiting job to the schedule's; a running one makes it a skip.
    Replace,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Replace => "replace",
        }
    }

    pub fn parse(text: &str) -> Option<Overlap> {
        [Overlap::Skip, Overlap::Queue, Overlap::Replace]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// Who makes a schedule elapse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A systemd timer of the host that added it.
    Systemd,
    /// The workers' maintenance, through the store (no systemd needed).
    Workers,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Systemd => "systemd",
            Driver::Workers => "workers",
        }
    }

    pub fn parse(text: &str) -> Option<Driver> {
        [Driver::Systemd, Driver::Workers]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

/// A schedule's calendar expressions, one per line as stored: each must
/// be a single line without control characters (a newline would add a
/// line to the timer file).
pub fn check_calendar_text(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Err("an empty calendar expression".into());
    }
    if expr.chars().any(char::is_control) {
        return Err(format!(
            "calendar expression \"{}\" holds a control character (a newline?)",
            echo::shown(expr)
        ));
    }
    Ok(())
}

/// The calendars a workers-driven schedule runs on: every expression must
/// be in the subset [`Calendar`] evaluates.
pub fn parse_calendars(exprs: &[String]) -> Result<Vec<Calendar>, String> {
    exprs
        .iter()
        .map(|expr| {
            Calendar::parse(expr).map_err(|e| format!("calendar \"{}\": {e}", echo::shown(expr)))
        })
        .collect()
}

/// Validates a schedule's job template: a job as `enqueue` takes it, minus
/// the fields each elapse sets (`run_at`, `delay`; the overlap policy's
/// `unique_key`, `on_duplicate`) or that would collide across elapses (`id`).
pub fn job_template(value: &Value) -> Result<NewJob, InputError> {
    const REFUSED: [(&str, &str); 5] = [
        ("run_at", "each elapse sets when it runs"),
        ("delay", "each elapse sets when it runs"),
        ("id", "each elapse makes a new job"),
        ("unique_key", "--overlap sets it"),
        ("on_duplicate", "--overlap sets it"),
    ];
    if let Value::Object(map) = value {
        for (field, why) in REFUSED {
            if map.contains_key(field) {
                return Err(InputError {
                    line: None,
                    field: Some(field.into()),
                    message: format!("is not allowed in a schedule's job ({why})"),
                });
            }
        }
        // The known fields a schedule's job may have, not the refused ones.
        let allowed = || {
            FIELDS
                .iter()
                .filter(|f| !REFUSED.iter().any(|(refused, _)| refused == *f))
                .copied()
                .collect::<Vec<_>>()
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(InputError {
                line: None,
                field: Some(echo::shown(unknown)),
                message: format!("unknown field (known fields: {})", allowed().join(", ")),
            });
        }
    }
    job_from_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_what_is_allowed() {
        let name = ScheduleName::parse("ünï").unwrap_err();
        assert!(
            name.contains("must start with an ASCII letter or digit"),
            "{name}"
        );
        let unknown = job_template(&serde_json::json!({"command": "x", "colour": 1})).unwrap_err();
        assert_eq!(unknown.field.as_deref(), Some("colour"));
        assert!(unknown.message.contains("command"), "{}", unknown.message);
        for refused in ["id", "run_at", "delay", "unique_key", "on_duplicate"] {
            assert!(
                !unknown.message.contains(&format!(" {refused},"))
                    && !unknown.message.contains(&format!(" {refused})")),
                "{refused} is offered: {}",
                unknown.message
            );
        }
        let nul =
            job_template(&serde_json::json!({"command": "x", "env": {"K": "a\0b"}})).unwrap_err();
        assert!(
            nul.message.contains("must not contain NUL bytes"),
            "{}",
            nul.message
        );
        assert!(!nul.message.contains("got a string"), "{}", nul.message);
    }

    #[test]
    fn schedule_names_are_safe_words() {
        for good in [
            "nightly",
            "backup-db",
            "a",
            "x_1",
            "9lives",
            &"n".repeat(64),
        ] {
            assert!(ScheduleName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "_x",
            "a.b",
            "a/b",
            "a@b",
            "a%b",
            "a\\b",
            "a b",
            "a\nb",
            "été",
            "..",
            &"n".repeat(65),
        ] {
            assert!(ScheduleName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ScheduleName::parse("nightly").unwrap().unique_key(),
            "schedule:nightly"
        );
    }

    #[test]
    fn a_job_template_has_no_time_or_id() {
        let ok = serde_json::json!({"command": "echo hi", "priority": 3});
        assert_eq!(job_template(&ok).unwrap().priority, 3);
        for field in ["run_at", "delay", "id", "unique_key", "on_duplicate"] {
            let mut bad = serde_json::json!({"command": "echo hi"});
            bad[field] = "x".into();
            let err = job_template(&bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field));
        }
    }

    #[test]
    fn calendar_text_is_one_line() {
        assert!(check_calendar_text("daily").is_ok());
        assert!(check_calendar_text("daily\nOnCalendar=minutely").is_err());
        assert!(check_calendar_text(" ").is_err());
    }
}
