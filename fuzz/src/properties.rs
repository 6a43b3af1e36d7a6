//! Properties of queuectl's input parsers, checked on arbitrary bytes: by the
//! fuzz targets (`fuzz/fuzz_targets/`) and, for every input kept in
//! `fuzz/regressions/<target>/`, by the normal test suite
//! (`tests/it/fuzz_regressions.rs` compiles this same file). Each function
//! panics when a property does not hold; a parser's own panic fails it too.
//!
//! The parsers get text: the CLI reads jobs, config and durations as UTF-8
//! and refuses anything else before parsing, so other bytes are skipped.

use queuectl::config::{Config, KEYS};
use queuectl::domain::duration::parse_duration;
use queuectl::domain::job::{NewJob, Schedule};
use queuectl::domain::queue::QueueName;
use queuectl::domain::spec::{parse_batch, parse_job};
use serde_json::{Value, json};

/// Longest error message any input may produce: user values are cut
/// (`domain::echo`), so a message never grows with the input.
const MESSAGE_LIMIT: usize = 2048;

/// Planted as every `env` value: no error message may contain it.
const SECRET: &str = "s3cr3t-planted-by-the-fuzzer";

/// Job JSON, as `queuectl enqueue '<json>'` reads it: a job that parses
/// re-serializes to JSON that parses to the same job; a refusal is a short
/// message; no `env` value ever appears in one.
pub fn job_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_job(text) {
        Ok(job) => {
            let written = to_json(&job).to_string();
            reads_back(&job, &written, parse_job);
        }
        Err(e) => short_message(&e.to_string()),
    }
    if let Some(planted) = with_planted_secrets(text) {
        if let Err(e) = parse_job(&planted) {
            no_secret_in(&e.to_string(), &planted);
        }
    }
}

/// Batch input, as `queuectl enqueue -` and `--file` read it (JSON lines or
/// one array): a batch that parses is not empty, keeps its lines in order,
/// and written back as lines or as an array reads as the same jobs.
pub fn batch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(planted) = with_planted_secrets(text) {
        if let Err(e) = parse_batch(&planted) {
            no_secret_in(&e.to_string(), &planted);
        }
    }
    let jobs = match parse_batch(text) {
        Ok(jobs) => jobs,
        Err(e) => return short_message(&e.to_string()),
    };
    assert!(!jobs.is_empty(), "an accepted batch has jobs");
    assert!(
        jobs.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "lines in order: {:?}",
        jobs.iter().map(|(line, _)| line).collect::<Vec<_>>()
    );
    dependencies_first(&jobs);
    let jobs: Vec<NewJob> = jobs.into_iter().map(|(_, job)| job).collect();
    let lines: String = jobs
        .iter()
        .map(|job| to_json(job).to_string() + "\n")
        .collect();
    let array = Value::Array(jobs.iter().map(to_json).collect()).to_string();
    for written in [lines, array] {
        reads_back(&jobs, &written, |text| {
            parse_batch(text).map(|again| again.into_iter().map(|(_, job)| job).collect())
        });
    }
}

/// The insert order of an accepted batch puts every job after the jobs of
/// the batch it names in `after`, and holds each job once; or the batch is
/// refused (a cycle, a job naming itself) with a short message.
fn dependencies_first(jobs: &[(usize, NewJob)]) {
    let order = match queuectl::domain::deps::order_batch(jobs) {
        Ok(order) => order,
        Err(e) => return short_message(&e.to_string()),
    };
    let mut position = vec![usize::MAX; jobs.len()];
    for (at, &i) in order.iter().enumerate() {
        assert_eq!(position[i], usize::MAX, "job {i} ordered twice");
        position[i] = at;
    }
    assert!(!position.contains(&usize::MAX), "every job ordered");
    for (i, (_, job)) in jobs.iter().enumerate() {
        for dep in &job.after {
            if let Some(d) = jobs.iter().position(|(_, j)| j.id.as_ref() == Some(dep)) {
                assert!(position[d] < position[i], "{dep} before job {i}");
            }
        }
    }
}

/// A config file, as every command reads it: a config that parses, written
/// back key by key as `config get` shows the keys, reads the same.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text) {
        Ok(config) => config,
        Err(message) => return short_message(&message),
    };
    let mut table = toml::Table::new();
    for (key, _) in KEYS {
        let value = if key == "db_path" {
            // `get` shows the resolved path; only a configured one is written.
            let Some(path) = &config.db_path else {
                continue;
            };
            toml::Value::String(path.to_str().expect("UTF-8, as read").to_owned())
        } else {
            config.get(key).expect("every listed key has a value")
        };
        table.insert(key.to_owned(), value);
    }
    let written = toml::to_string(&table).expect("a table of plain values serializes");
    reads_back(&config, &written, Config::parse);
}

/// Durations (`delay`, `purge --older-than`): whole seconds, and the same
/// number of seconds written as `<n>s` or `<n>` reads the same.
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_duration(text) {
        Ok(duration) => {
            assert_eq!(duration.subsec_nanos(), 0, "{text:?} is whole seconds");
            let seconds = duration.as_secs();
            assert_eq!(parse_duration(&format!("{seconds}s")), Ok(duration));
            assert_eq!(parse_duration(&seconds.to_string()), Ok(duration));
        }
        Err(message) => {
            assert!(!message.is_empty(), "{text:?}: an error says why");
            short_message(&message);
        }
    }
}

/// `written`, the text for `value`, parses back to `value`.
fn reads_back<T, E>(value: &T, written: &str, parse: impl Fn(&str) -> Result<T, E>)
where
    T: PartialEq + std::fmt::Debug,
    E: std::fmt::Display,
{
    match parse(written) {
        Ok(again) => assert!(
            &again == value,
            "{value:?} written as {written} reads back as {again:?}"
        ),
        Err(e) => panic!("{value:?} written as {written} is refused: {e}"),
    }
}

fn short_message(message: &str) {
    assert!(
        message.len() <= MESSAGE_LIMIT,
        "a {} byte message: {message}",
        message.len()
    );
}

fn no_secret_in(message: &str, input: &str) {
    assert!(
        !message.contains(SECRET),
        "an env value is in the message {message:?} (input {input})"
    );
}

/// The input with every string inside each job's `env` (a job object, or
/// each object of an array) replaced by [`SECRET`]; `None` when there is no
/// `env` to plant in, or the input holds the marker already.
fn with_planted_secrets(text: &str) -> Option<String> {
    fn plant(value: &mut Value) {
        match value {
            Value::String(s) => *s = SECRET.to_owned(),
            Value::Array(items) => items.iter_mut().for_each(plant),
            Value::Object(map) => map.values_mut().for_each(plant),
            _ => {}
        }
    }
    fn plant_in_job(job: &mut Value) -> bool {
        match job.get_mut("env") {
            Some(env) => {
                plant(env);
                true
            }
            None => false,
        }
    }
    fn plant_in_text(text: &str) -> Option<String> {
        let mut value: Value = serde_json::from_str(text).ok()?;
        let planted = match &mut value {
            Value::Array(jobs) => jobs
                .iter_mut()
                .fold(false, |any, job| plant_in_job(job) | any),
            job => plant_in_job(job),
        };
        planted.then(|| value.to_string())
    }
    if text.contains(SECRET) {
        return None;
    }
    if let Some(planted) = plant_in_text(text) {
        return Some(planted);
    }
    // JSON lines: each line on its own.
    let mut any = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match plant_in_text(line) {
            Some(planted) => {
                any = true;
                planted
            }
            None => line.to_owned(),
        })
        .collect();
    any.then(|| lines.join("\n"))
}

/// A job as the JSON a user would write for it.
fn to_json(job: &NewJob) -> Value {
    let mut value = json!({
        "command": job.command,
        "priority": job.priority,
        "env": job.env,
    });
    if let Some(id) = &job.id {
        value["id"] = id.as_str().into();
    }
    match job.schedule {
        Schedule::Now => {}
        Schedule::At(at) => value["run_at"] = at.to_string().into(),
        Schedule::After(delay) => value["delay"] = format!("{}s", delay.as_secs()).into(),
    }
    if let Some(n) = job.max_retries {
        value["max_retries"] = n.into();
    }
    if let Some(n) = job.timeout_seconds {
        value["timeout_seconds"] = n.into();
    }
    if let Some(path) = &job.env_file {
        value["env_file"] = path.as_str().into();
    }
    if let Some(cwd) = &job.cwd {
        value["cwd"] = cwd.as_str().into();
    }
    if let Some(unique) = &job.unique {
        value["unique_key"] = unique.key.as_str().into();
        value["on_duplicate"] = unique.on_duplicate.as_str().into();
    }
    if job.queue != QueueName::default() {
        value["queue"] = job.queue.as_str().into();
    }
    if !job.after.is_empty() {
        value["after"] = job
            .after
            .iter()
            .map(|id| id.as_str())
            .collect::<Vec<_>>()
            .into();
    }
    value
}
