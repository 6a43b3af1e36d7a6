//! Parsing job submissions (JSON) into validated [`NewJob`]s, with errors that
//! name the field and, for batches, the line.

use super::deps::MAX_AFTER;
use super::duration::parse_duration;
use super::echo;
use super::environment::{EnvFileRef, check_job_var_name};
use super::job::{JobEdit, JobId, NewJob, Schedule};
use super::queue::QueueName;
use super::unique::{OnDuplicate, Unique, UniqueKey};
use jiff::Timestamp;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Fields a job object may carry; anything else is rejected.
pub const FIELDS: [&str; 14] = [
    "id",
    "command",
    "priority",
    "run_at",
    "delay",
    "max_retries",
    "timeout_seconds",
    "env",
    "env_file",
    "cwd",
    "unique_key",
    "on_duplicate",
    "queue",
    "after",
];

/// Upper bounds that keep arithmetic on them far from overflow.
const MAX_RETRIES_LIMIT: u64 = 10_000;
const MAX_TIMEOUT_SECONDS: u64 = 365 * 86_400;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// 1-based line of a batch, when the input had lines.
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl InputError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> InputError {
        InputError {
            line: None,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    fn general(message: impl Into<String>) -> InputError {
        InputError {
            line: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn at_line(mut self, line: usize) -> InputError {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field '{field}': ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}

/// Parses one job from JSON text.
pub fn parse_job(text: &str) -> Result<NewJob, InputError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| InputError::general(format!("malformed JSON: {e}")))?;
    job_from_value(&value)
}

/// Parses a batch: one JSON object per line (blank lines are skipped), or a
/// single JSON array of objects. Returns each job with its 1-based line (or
/// array position). Duplicate ids inside the batch are rejected here.
pub fn parse_batch(text: &str) -> Result<Vec<(usize, NewJob)>, InputError> {
    let jobs = if text.trim_start().starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| InputError::general(format!("malformed JSON array: {e}")))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                job_from_value(item)
                    .map(|job| (i + 1, job))
                    .map_err(|e| e.at_line(i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                parse_job(line)
                    .map(|job| (i + 1, job))
                    .map_err(|e| e.at_line(i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if jobs.is_empty() {
        return Err(InputError::general("no jobs in input"));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, job) in &jobs {
        if let Some(id) = &job.id
            && let Some(first) = seen.insert(id.as_str(), *line)
        {
            return Err(InputError::field(
                "id",
                format!("duplicate id '{id}' (also on line {first})"),
            )
            .at_line(*line));
        }
    }
    check_batch_keys(&jobs)?;
    Ok(jobs)
}

/// Refuses a batch in which two jobs carry the same unique key: the second
/// would only meet the first (the store checks this too, for every caller).
pub fn check_batch_keys(jobs: &[(usize, NewJob)]) -> Result<(), InputError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, job) in jobs {
        if let Some(unique) = &job.unique
            && let Some(first) = seen.insert(unique.key.as_str(), *line)
        {
            return Err(InputError::field(
                "unique_key",
                format!(
                    "unique key '{}' appears twice in the batch (also on line {first})",
                    echo::shown(unique.key.as_str())
                ),
            )
            .at_line(*line));
        }
    }
    Ok(())
}

/// `value` as an object holding only `known` fields; otherwise an error
/// expecting `what`, or naming the first unknown field with `refusal`
/// ("unknown field (known fields") and the known ones.
fn object_of<'v>(
    value: &'v Value,
    what: &str,
    known: &[&str],
    refusal: &str,
) -> Result<&'v Map<String, Value>, InputError> {
    let Value::Object(map) = value else {
        return Err(InputError::general(format!(
            "expected {what}, got {}",
            type_name(value)
        )));
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(InputError::field(
            &echo::shown(unknown),
            format!("{refusal}: {})", known.join(", ")),
        ));
    }
    Ok(map)
}

/// Validates one decoded JSON value as a job.
pub fn job_from_value(value: &Value) -> Result<NewJob, InputError> {
    let map = object_of(
        value,
        "a JSON object",
        &FIELDS,
        "unknown field (known fields",
    )?;
    let command = command_field(map)?.ok_or_else(|| InputError::field("command", "is required"))?;
    let id = string_field(map, "id")?
        .map(|text| JobId::parse(&text).map_err(|why| InputError::field("id", why)))
        .transpose()?;
    let priority = priority_field(map)?.unwrap_or(0);
    let schedule = schedule_field(map)?.unwrap_or(Schedule::Now);
    let max_retries = count_field(map, "max_retries", MAX_RETRIES_LIMIT)?;
    let timeout_seconds = count_field(map, "timeout_seconds", MAX_TIMEOUT_SECONDS)?;
    let env = env_field(map)?;
    let cwd = string_field(map, "cwd")?;
    if let Some(dir) = &cwd {
        if dir.contains('\0') {
            return Err(InputError::field("cwd", "must not contain NUL bytes"));
        }
        if !dir.starts_with('/') {
            return Err(InputError::field(
                "cwd",
                format!("must be an absolute path, got \"{}\"", echo::shown(dir)),
            ));
        }
    }
    let env_file = string_field(map, "env_file")?
        .map(|text| {
            EnvFileRef::parse(&text)
                .map(|_| text)
                .map_err(|why| InputError::field("env_file", why))
        })
        .transpose()?;
    let unique = unique_fields(map)?;
    let after = after_field(map)?;
    if !after.is_empty() && unique.is_some() {
        // A skipped or replaced job is another one, with edges of its own.
        return Err(InputError::field(
            "after",
            "cannot be combined with unique_key (a job met by its key keeps its own dependencies)",
        ));
    }
    Ok(NewJob {
        id,
        command,
        priority,
        schedule,
        max_retries,
        timeout_seconds,
        env,
        env_file,
        cwd,
        unique,
        queue: queue_field(map)?.unwrap_or_default(),
        after,
    })
}

/// `unique_key` and its `on_duplicate` policy (`reject` when left out; a
/// policy without a key is an error, since it would do nothing).
fn unique_fields(map: &Map<String, Value>) -> Result<Option<Unique>, InputError> {
    let on_duplicate = string_field(map, "on_duplicate")?
        .map(|text| {
            OnDuplicate::parse(&text).ok_or_else(|| {
                InputError::field(
                    "on_duplicate",
                    format!(
                        "unknown policy \"{}\" (choose among {})",
                        echo::shown(&text),
                        OnDuplicate::NAMES.join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let Some(key) = string_field(map, "unique_key")? else {
        return match on_duplicate {
            Some(_) => Err(InputError::field(
                "on_duplicate",
                "applies to a job with a unique_key; give one",
            )),
            None => Ok(None),
        };
    };
    let key = UniqueKey::parse(&key).map_err(|why| InputError::field("unique_key", why))?;
    Ok(Some(Unique {
        key,
        on_duplicate: on_duplicate.unwrap_or_default(),
    }))
}

/// `after`: the ids of the jobs this one waits for, each once, at most
/// [`MAX_AFTER`]. Whether they exist is the store's to say.
fn after_field(map: &Map<String, Value>) -> Result<Vec<JobId>, InputError> {
    let items = match map.get("after") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(InputError::field(
                "after",
                format!("expected an array of job ids, got {}", shown(other)),
            ));
        }
    };
    if items.len() > MAX_AFTER {
        return Err(InputError::field(
            "after",
            format!("names {} jobs (at most {MAX_AFTER})", items.len()),
        ));
    }
    let mut ids: Vec<JobId> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        let Value::String(text) = item else {
            return Err(InputError::field(
                "after",
                format!("expected a job id, got {}", shown(item)),
            ));
        };
        let id = JobId::parse(text).map_err(|why| {
            InputError::field("after", format!("\"{}\": {why}", echo::shown(text)))
        })?;
        if !seen.insert(id.clone()) {
            return Err(InputError::field(
                "after",
                format!("names job '{id}' twice"),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Fields `edit` may change on a waiting job.
pub const EDIT_FIELDS: [&str; 7] = [
    "command",
    "priority",
    "run_at",
    "delay",
    "max_retries",
    "timeout_seconds",
    "queue",
];

/// Validates one decoded JSON value as changes to a waiting job, with the
/// same rules as a new job's fields; a field left out (or `null`) stays.
pub fn edit_from_value(value: &Value) -> Result<JobEdit, InputError> {
    let map = object_of(
        value,
        "an object of fields",
        &EDIT_FIELDS,
        "cannot be edited (editable fields",
    )?;
    Ok(JobEdit {
        command: command_field(map)?,
        priority: priority_field(map)?,
        schedule: schedule_field(map)?,
        max_retries: count_field(map, "max_retries", MAX_RETRIES_LIMIT)?,
        timeout_seconds: count_field(map, "timeout_seconds", MAX_TIMEOUT_SECONDS)?,
        queue: queue_field(map)?,
    })
}

fn queue_field(map: &Map<String, Value>) -> Result<Option<QueueName>, InputError> {
    string_field(map, "queue")?
        .map(|text| QueueName::parse(&text).map_err(|why| InputError::field("queue", why)))
        .transpose()
}

fn command_field(map: &Map<String, Value>) -> Result<Option<String>, InputError> {
    let Some(command) = string_field(map, "command")? else {
        return Ok(None);
    };
    if command.trim().is_empty() {
        return Err(InputError::field("command", "must not be empty"));
    }
    if command.contains('\0') {
        return Err(InputError::field("command", "must not contain NUL bytes"));
    }
    Ok(Some(command))
}

fn priority_field(map: &Map<String, Value>) -> Result<Option<i64>, InputError> {
    match map.get("priority") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|p| i32::try_from(*p).is_ok())
            .map(Some)
            .ok_or_else(|| {
                InputError::field("priority", format!("expected an integer, got {}", shown(v)))
            }),
    }
}

/// `run_at` or `delay` (not both); `None` when neither is given.
fn schedule_field(map: &Map<String, Value>) -> Result<Option<Schedule>, InputError> {
    Ok(
        match (string_field(map, "run_at")?, string_field(map, "delay")?) {
            (Some(_), Some(_)) => {
                return Err(InputError::field(
                    "delay",
                    "give either run_at or delay, not both",
                ));
            }
            (Some(at), None) => Some(Schedule::At(at.parse::<Timestamp>().map_err(|e| {
                InputError::field(
                    "run_at",
                    format!("invalid RFC 3339 timestamp \"{}\": {e}", echo::shown(&at)),
                )
            })?)),
            (None, Some(delay)) => Some(Schedule::After(
                parse_duration(&delay).map_err(|why| InputError::field("delay", why))?,
            )),
            (None, None) => None,
        },
    )
}

fn string_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, InputError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(InputError::field(
            name,
            format!("expected a string, got {}", shown(other)),
        )),
    }
}

fn count_field(
    map: &Map<String, Value>,
    name: &str,
    limit: u64,
) -> Result<Option<u32>, InputError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= limit => Ok(Some(n as u32)),
            Some(n) => Err(InputError::field(
                name,
                format!("{n} is too large (at most {limit})"),
            )),
            None => Err(InputError::field(
                name,
                format!("expected a non-negative integer, got {}", shown(v)),
            )),
        },
    }
}

fn env_field(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, InputError> {
    let Some(value) = map.get("env").filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    // Never echo a value here, not even its start: env carries secrets.
    let Value::Object(vars) = value else {
        return Err(InputError::field(
            "env",
            format!("expected an object of strings, got {}", type_name(value)),
        ));
    };
    vars.iter()
        .map(|(name, value)| {
            check_job_var_name(name).map_err(|why| InputError::field("env", why))?;
            match value {
                Value::String(s) if !s.contains('\0') => Ok((name.clone(), s.clone())),
                // Never echo the value: env often carries secrets.
                Value::String(_) => Err(InputError::field(
                    "env",
                    format!("value of {} must not contain NUL bytes", echo::shown(name)),
                )),
                _ => Err(InputError::field(
                    "env",
                    format!(
                        "value of {} must be a string, got {}",
                        echo::shown(name),
                        type_name(value)
                    ),
                )),
            }
        })
        .collect()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as shown in an error: its type, and the value itself when short.
fn shown(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("{n}"),
        Value::Bool(b) => format!("{b}"),
        Value::String(s) => format!("\"{}\"", echo::shown(s)),
        other => type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_a_full_job() {
        let job = parse_job(
            r#"{"id":"job1","command":"echo hi","priority":5,"delay":"5m","max_retries":2,
                "timeout_seconds":30,"env":{"A":"1"},"cwd":"/tmp"}"#,
        )
        .unwrap();
        assert_eq!(job.id.unwrap().as_str(), "job1");
        assert_eq!(job.priority, 5);
        assert_eq!(job.schedule, Schedule::After(Duration::from_secs(300)));
        assert_eq!((job.max_retries, job.timeout_seconds), (Some(2), Some(30)));
        assert_eq!(job.env["A"], "1");
        assert_eq!(job.cwd.as_deref(), Some("/tmp"));
        assert_eq!(job.queue.as_str(), "default");
        let job = parse_job(r#"{"command":"x","queue":"emails"}"#).unwrap();
        assert_eq!(job.queue.as_str(), "emails");
    }

    #[test]
    fn after_takes_up_to_a_thousand_ids() {
        let ids: Vec<String> = (0..1000).map(|i| format!("\"j{i}\"")).collect();
        let job = parse_job(&format!(r#"{{"command":"x","after":[{}]}}"#, ids.join(","))).unwrap();
        assert_eq!(job.after.len(), 1000);
        assert_eq!(job.after[999].as_str(), "j999");
        let more = format!(r#"{{"command":"x","after":[{},"j1000"]}}"#, ids.join(","));
        let err = parse_job(&more).unwrap_err().to_string();
        assert!(err.contains("names 1001 jobs (at most 1000)"), "{err}");
        assert!(
            parse_job(r#"{"command":"x","after":[]}"#)
                .unwrap()
                .after
                .is_empty()
        );
    }

    #[test]
    fn run_at_takes_rfc3339() {
        let job = parse_job(r#"{"command":"x","run_at":"2030-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(
            job.schedule,
            Schedule::At("2030-01-02T03:04:05Z".parse().unwrap())
        );
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases = [
            (
                r#"{"command":"x","colour":"red"}"#,
                Some("colour"),
                "unknown field",
            ),
            (
                r#"{"command":5}"#,
                Some("command"),
                "expected a string, got 5",
            ),
            (r#"{"command":"  "}"#, Some("command"), "must not be empty"),
            (r#"{"priority":1}"#, Some("command"), "is required"),
            (r#"{"command":"x","id":"a b"}"#, Some("id"), "only letters"),
            (
                r#"{"command":"x","queue":"a/b"}"#,
                Some("queue"),
                "only letters",
            ),
            (
                r#"{"command":"x","queue":7}"#,
                Some("queue"),
                "expected a string",
            ),
            (
                r#"{"command":"x","priority":"high"}"#,
                Some("priority"),
                "expected an integer",
            ),
            (
                r#"{"command":"x","run_at":"tomorrow"}"#,
                Some("run_at"),
                "invalid RFC 3339",
            ),
            (
                r#"{"command":"x","delay":"5 parsecs"}"#,
                Some("delay"),
                "invalid duration",
            ),
            (
                r#"{"command":"x","delay":"5m","run_at":"2030-01-01T00:00:00Z"}"#,
                Some("delay"),
                "not both",
            ),
            (
                r#"{"command":"x","max_retries":-1}"#,
                Some("max_retries"),
                "non-negative integer, got -1",
            ),
            (
                r#"{"command":"x","timeout_seconds":1.5}"#,
                Some("timeout_seconds"),
                "non-negative integer",
            ),
            (
                r#"{"command":"x","env":{"A":1}}"#,
                Some("env"),
                "must be a string",
            ),
            (
                r#"{"command":"x","env":["A"]}"#,
                Some("env"),
                "expected an object",
            ),
            (
                r#"{"command":"x","cwd":"rel/dir"}"#,
                Some("cwd"),
                "absolute path",
            ),
            (
                r#"{"command":"x","after":"a"}"#,
                Some("after"),
                "expected an array of job ids",
            ),
            (
                r#"{"command":"x","after":["a b"]}"#,
                Some("after"),
                "only letters",
            ),
            (
                r#"{"command":"x","after":[1]}"#,
                Some("after"),
                "expected a job id, got 1",
            ),
            (
                r#"{"command":"x","after":["a","b","a"]}"#,
                Some("after"),
                "names job 'a' twice",
            ),
            (
                r#"{"command":"x","after":["a"],"unique_key":"k","on_duplicate":"replace"}"#,
                Some("after"),
                "cannot be combined with unique_key",
            ),
            (r#"["x"]"#, None, "expected a JSON object"),
            (r#"{"command":"x""#, None, "malformed JSON"),
        ];
        for (input, field, needle) in cases {
            let err = parse_job(input).expect_err(input);
            assert_eq!(err.field.as_deref(), field, "{input}");
            assert!(err.to_string().contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn env_errors_never_show_the_value() {
        let long = format!("s3cret{}", "x".repeat(100_000));
        let shapes = [
            r#""API_TOKEN=s3cret""#.to_owned(),
            r#"["API_TOKEN=s3cret"]"#.to_owned(),
            r#"{"TOKEN":{"v":"s3cret"}}"#.to_owned(),
            r#"{"TOKEN":["s3cret"]}"#.to_owned(),
            r#"{"TOKEN":"s3cret\u0000"}"#.to_owned(),
            r#"{"API_TOKEN=s3cret":"x"}"#.to_owned(),
            r#"{"QUEUECTL_JOB_ID":"s3cret"}"#.to_owned(),
            format!(r#""{long}""#),
            format!(r#"{{"TOKEN={long}":"x"}}"#),
        ];
        for env in shapes {
            let text = format!(r#"{{"command":"x","env":{env}}}"#);
            let err = parse_job(&text).unwrap_err().to_string();
            assert!(err.starts_with("field 'env'"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
            let err = parse_batch(&format!("[{text}]")).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn nul_bytes_and_reserved_names_are_refused() {
        for (input, field) in [
            (r#"{"command":"x","cwd":"/tmp\u0000/x"}"#, "cwd"),
            (r#"{"command":"x\u0000y"}"#, "command"),
            (r#"{"command":"x","env":{"A\u0000":"1"}}"#, "env"),
            (
                r#"{"command":"x","env":{"QUEUECTL_JOB_ATTEMPT":"9"}}"#,
                "env",
            ),
            (r#"{"command":"x","env_file":"/etc/x\u0000"}"#, "env_file"),
            (r#"{"command":"x","env_file":"relative/path"}"#, "env_file"),
        ] {
            let err = parse_job(input).expect_err(input);
            assert_eq!(err.field.as_deref(), Some(field), "{input}: {err}");
        }
        let job = parse_job(r#"{"command":"x","env_file":"backup-env"}"#).unwrap();
        assert_eq!(job.env_file.as_deref(), Some("backup-env"));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "y".repeat(1 << 20);
        for input in [
            format!(r#"{{"command":"x","{long}":1}}"#),
            format!(r#"{{"command":"x","run_at":"{long}"}}"#),
            format!(r#"{{"command":"x","cwd":"{long}"}}"#),
            format!(r#"{{"command":"x","delay":"{long}"}}"#),
            format!(r#"{{"command":"x","priority":"{long}"}}"#),
            format!(r#"{{"command":"x","env_file":"{long} "}}"#),
        ] {
            let err = parse_job(&input).unwrap_err().to_string();
            assert!(err.len() < 400, "{} bytes: {}", err.len(), &err[..400]);
        }
    }

    #[test]
    fn edits_use_the_job_fields_rules_and_only_editable_fields() {
        let edit = |text: &str| edit_from_value(&serde_json::from_str(text).unwrap());
        let full = edit(
            r#"{"command":"y","priority":-3,"delay":"5m","max_retries":4,"timeout_seconds":0}"#,
        )
        .unwrap();
        assert_eq!(full.command.as_deref(), Some("y"));
        assert_eq!(full.priority, Some(-3));
        assert_eq!(
            full.schedule,
            Some(Schedule::After(Duration::from_secs(300)))
        );
        assert_eq!((full.max_retries, full.timeout_seconds), (Some(4), Some(0)));
        assert!(edit(r#"{"priority":null}"#).unwrap().is_empty());
        assert_eq!(
            edit(r#"{"queue":"slow"}"#).unwrap().queue.unwrap().as_str(),
            "slow"
        );
        for (input, field, needle) in [
            (r#"{"command":" "}"#, "command", "must not be empty"),
            (r#"{"priority":1.5}"#, "priority", "expected an integer"),
            (r#"{"run_at":"soon"}"#, "run_at", "invalid RFC 3339"),
            (
                r#"{"run_at":"2030-01-01T00:00:00Z","delay":"1s"}"#,
                "delay",
                "not both",
            ),
            (r#"{"max_retries":-1}"#, "max_retries", "non-negative"),
            (r#"{"env":{}}"#, "env", "cannot be edited"),
            (r#"{"id":"x"}"#, "id", "cannot be edited"),
        ] {
            let err = edit(input).expect_err(input);
            assert_eq!(err.field.as_deref(), Some(field), "{input}");
            assert!(err.to_string().contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn a_unique_key_takes_a_policy_reject_by_default() {
        let job = parse_job(r#"{"command":"x","unique_key":"report:1"}"#).unwrap();
        let unique = job.unique.unwrap();
        assert_eq!(unique.key.as_str(), "report:1");
        assert_eq!(unique.on_duplicate, OnDuplicate::Reject);
        let job =
            parse_job(r#"{"command":"x","unique_key":"k","on_duplicate":"replace"}"#).unwrap();
        assert_eq!(job.unique.unwrap().on_duplicate, OnDuplicate::Replace);
        assert_eq!(parse_job(r#"{"command":"x"}"#).unwrap().unique, None);
        for (input, field, needle) in [
            (
                r#"{"command":"x","unique_key":""}"#,
                "unique_key",
                "1 to 200",
            ),
            (
                r#"{"command":"x","unique_key":7}"#,
                "unique_key",
                "expected a string",
            ),
            (
                r#"{"command":"x","unique_key":"k","on_duplicate":"merge"}"#,
                "on_duplicate",
                "choose among reject, skip, replace",
            ),
            (
                r#"{"command":"x","on_duplicate":"skip"}"#,
                "on_duplicate",
                "give one",
            ),
        ] {
            let err = parse_job(input).expect_err(input);
            assert_eq!(err.field.as_deref(), Some(field), "{input}");
            assert!(err.to_string().contains(needle), "{input}: {err}");
        }
        let twice = "{\"command\":\"a\",\"unique_key\":\"k\"}\n{\"command\":\"b\"}\n{\"command\":\"c\",\"unique_key\":\"k\"}";
        let err = parse_batch(twice).unwrap_err();
        assert_eq!(
            (err.line, err.field.as_deref()),
            (Some(3), Some("unique_key"))
        );
        assert!(err.to_string().contains("also on line 1"), "{err}");
    }

    #[test]
    fn batches_report_the_line() {
        let text = "{\"command\":\"a\"}\n\n{\"command\":\"b\",\"max_retries\":-2}\n";
        let err = parse_batch(text).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(
            err.to_string().starts_with("line 3: field 'max_retries'"),
            "{err}"
        );

        let dup = "{\"id\":\"a\",\"command\":\"x\"}\n{\"id\":\"a\",\"command\":\"y\"}";
        let err = parse_batch(dup).unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (Some(2), Some("id")));

        let ok = parse_batch("[{\"command\":\"a\"},{\"command\":\"b\"}]").unwrap();
        assert_eq!(ok.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
        assert!(parse_batch("\n  \n").is_err());
    }
}
