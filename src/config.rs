//! The TOML configuration: where it lives, its keys with their defaults and
//! validation, and comment-preserving edits for `config set`.

use crate::domain::echo::shown;
use crate::domain::queue::{check_parallel, parse_parallel, parse_queue_list};
use crate::domain::{QueueChange, QueueName};
use crate::error::{Error, Result};
use crate::paths;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most slots one worker may have: more jobs at once than this belong
/// in more workers (each has one loop thread deciding for all its slots).
pub const MAX_CONCURRENCY: u16 = 256;

/// How hard a commit tries to survive a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit (SQLite `synchronous=FULL`): a reported enqueue survives power loss.
    Full,
    /// fsync at WAL checkpoints only (`synchronous=NORMAL`): survives a process
    /// crash, but a power loss can drop the last commits.
    Normal,
}

impl Durability {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }

    /// SQLite's `synchronous` setting that gives this durability by itself.
    pub fn sqlite_synchronous(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// Which backend `worker start/stop` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupervisorKind {
    Auto,
    Systemd,
    Process,
}

/// Where job output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputSetting {
    /// The journal when the worker runs under systemd with journald, else files.
    Auto,
    Journal,
    File,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub db_path: Option<PathBuf>,
    pub max_retries: u32,
    pub backoff_base: f64,
    pub backoff_max_seconds: u64,
    pub timeout_seconds: u32,
    pub lease_seconds: u32,
    pub kill_grace_seconds: u32,
    /// Jobs one worker process runs at once (its slots).
    pub concurrency: u32,
    pub durability: Durability,
    pub retention_seconds: u64,
    pub supervisor: SupervisorKind,
    pub output: OutputSetting,
    /// The queues this host's workers serve (`None`: every queue).
    pub worker_queues: Option<Vec<QueueName>>,
    /// `[queues.NAME]`: settings each worker writes into the queue at start.
    pub queues: BTreeMap<QueueName, QueueChange>,
    /// Where `queuectl web` listens when systemd passed it no socket.
    pub web_listen: SocketAddr,
    /// Whether the dashboard offers retry, cancel, restart and purge.
    pub web_allow_actions: bool,
    /// A private file holding the bearer token the dashboard requires.
    pub web_auth_token_file: Option<PathBuf>,
    /// A private file holding the `user:password` the dashboard requires.
    pub web_auth_basic_file: Option<PathBuf>,
}

/// `queuectl web`'s address unless told otherwise: loopback only.
pub const DEFAULT_WEB_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9750);

impl Default for Config {
    fn default() -> Config {
        Config {
            db_path: None,
            max_retries: 3,
            backoff_base: 2.0,
            backoff_max_seconds: 3600,
            timeout_seconds: 0,
            lease_seconds: 30,
            kill_grace_seconds: 10,
            concurrency: 1,
            durability: Durability::Full,
            retention_seconds: 7 * 86_400,
            supervisor: SupervisorKind::Auto,
            output: OutputSetting::Auto,
            worker_queues: None,
            queues: BTreeMap::new(),
            web_listen: DEFAULT_WEB_LISTEN,
            web_allow_actions: false,
            web_auth_token_file: None,
            web_auth_basic_file: None,
        }
    }
}

/// Every key, in the order `config get` lists them, with a one-line help.
pub const KEYS: [(&str, &str); 18] = [
    (
        "db_path",
        "the queue: an SQLite file or a PostgreSQL address (overridden by $QUEUECTL_DB and --db)",
    ),
    (
        "max_retries",
        "re-runs after a failed first attempt before a job goes to the DLQ",
    ),
    (
        "backoff_base",
        "retry k waits backoff_base^k seconds (>= 1)",
    ),
    ("backoff_max_seconds", "upper bound on one retry delay"),
    ("timeout_seconds", "default per-job timeout; 0 means none"),
    (
        "lease_seconds",
        "a dead worker's job returns to the queue after this long",
    ),
    (
        "kill_grace_seconds",
        "time between SIGTERM and SIGKILL when a job is stopped",
    ),
    (
        "concurrency",
        "jobs each worker runs at once (its slots; `worker run --concurrency` overrides)",
    ),
    (
        "durability",
        "\"full\" (fsync every commit) or \"normal\" (faster, may lose the last commits on power loss)",
    ),
    (
        "retention_seconds",
        "finished jobs older than this are purged; 0 keeps them forever",
    ),
    (
        "supervisor",
        "\"auto\", \"systemd\" or \"process\": what `worker start` drives",
    ),
    (
        "output",
        "\"auto\", \"journal\" or \"file\": where job output goes",
    ),
    (
        "worker_queues",
        "the queues workers serve, \"a,b\" (empty: every queue; `worker run --queues` and $QUEUECTL_QUEUES override)",
    ),
    (
        "queues",
        "[queues.NAME] tables: parallel = N (or \"none\") and paused = true|false, written into the queue by each worker at start",
    ),
    (
        "web_listen",
        "IP:PORT `queuectl web` listens on unless systemd passes it a socket (`web --listen` overrides)",
    ),
    (
        "web_allow_actions",
        "true lets the dashboard retry, cancel, restart and purge (`web --allow-actions`)",
    ),
    (
        "web_auth_token_file",
        "a private file whose one line is the bearer token the dashboard requires",
    ),
    (
        "web_auth_basic_file",
        "a private file whose one line is the user:password the dashboard requires",
    ),
];

/// The words a key takes, for keys that take one of a few (empty for the
/// others): what shell completion offers after `config set KEY`.
pub fn choices(key: &str) -> &'static [&'static str] {
    match key {
        "durability" => &["full", "normal"],
        "supervisor" => &["auto", "systemd", "process"],
        "output" => &["auto", "journal", "file"],
        _ => &[],
    }
}

impl Config {
    pub fn retry_policy(&self) -> crate::domain::RetryPolicy {
        crate::domain::RetryPolicy {
            backoff_base: self.backoff_base,
            backoff_max: Duration::from_secs(self.backoff_max_seconds),
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_seconds))
    }

    pub fn kill_grace(&self) -> Duration {
        Duration::from_secs(u64::from(self.kill_grace_seconds))
    }

    /// Loads the file at `path`; a missing file means all defaults.
    /// Reads the config at `path`. A missing file means the defaults when
    /// `missing_ok` (the default path, `$QUEUECTL_CONFIG`), else it is a
    /// mistake (a `--config PATH` that names no file).
    pub fn load(path: &Path, missing_ok: bool) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => {
                return Ok(Config::default());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Invalid(format!(
                    "config file {} does not exist (`queuectl --config PATH config set KEY VALUE` creates it)",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read config {}", path.display()),
                    e,
                ));
            }
        };
        Config::parse(&text)
            .map_err(|why| Error::Invalid(format!("config {}: {why}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| match e.span() {
            Some(span) => format!(
                "line {}: {}",
                text[..span.start].lines().count().max(1),
                shown(e.message())
            ),
            None => shown(e.message()),
        })?;
        let mut config = Config::default();
        for (key, value) in &table {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one key from a TOML value, validating it.
    pub fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        let bad = |expected: &str| {
            format!(
                "key '{key}': expected {expected}, got {}",
                shown(&value.to_string())
            )
        };
        let int = |min: i64, max: i64| -> Result<i64, String> {
            match value.as_integer() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(bad(&format!("an integer from {min} to {max}"))),
            }
        };
        match key {
            "db_path" => match value.as_str() {
                Some(p) if !p.is_empty() => self.db_path = Some(PathBuf::from(p)),
                _ => return Err(bad("a non-empty path string")),
            },
            "max_retries" => self.max_retries = int(0, 10_000)? as u32,
            "backoff_base" => {
                let base = value.as_float().or(value.as_integer().map(|n| n as f64));
                match base {
                    Some(b) if (1.0..=1000.0).contains(&b) => self.backoff_base = b,
                    _ => return Err(bad("a number from 1 to 1000")),
                }
            }
            "backoff_max_seconds" => self.backoff_max_seconds = int(0, 365 * 86_400)? as u64,
            "timeout_seconds" => self.timeout_seconds = int(0, 365 * 86_400)? as u32,
            "lease_seconds" => self.lease_seconds = int(1, 86_400)? as u32,
            "kill_grace_seconds" => self.kill_grace_seconds = int(0, 3600)? as u32,
            "concurrency" => self.concurrency = int(1, MAX_CONCURRENCY.into())? as u32,
            "retention_seconds" => self.retention_seconds = int(0, 100 * 365 * 86_400)? as u64,
            "durability" => {
                self.durability = match value.as_str() {
                    Some("full") => Durability::Full,
                    Some("normal") => Durability::Normal,
                    _ => return Err(bad("\"full\" or \"normal\"")),
                }
            }
            "supervisor" => {
                self.supervisor = match value.as_str() {
                    Some("auto") => SupervisorKind::Auto,
                    Some("systemd") => SupervisorKind::Systemd,
                    Some("process") => SupervisorKind::Process,
                    _ => return Err(bad("\"auto\", \"systemd\" or \"process\"")),
                }
            }
            "output" => {
                self.output = match value.as_str() {
                    Some("auto") => OutputSetting::Auto,
                    Some("journal") => OutputSetting::Journal,
                    Some("file") => OutputSetting::File,
                    _ => return Err(bad("\"auto\", \"journal\" or \"file\"")),
                }
            }
            "worker_queues" => {
                let list = match value {
                    toml::Value::String(text) if text.trim().is_empty() => None,
                    toml::Value::String(text) => Some(text.clone()),
                    toml::Value::Array(items) => {
                        let names: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                        let names =
                            names.ok_or_else(|| bad("queue names: \"a,b\" or [\"a\", \"b\"]"))?;
                        (!names.is_empty()).then(|| names.join(","))
                    }
                    _ => return Err(bad("queue names: \"a,b\" or [\"a\", \"b\"]")),
                };
                self.worker_queues = list
                    .map(|text| {
                        parse_queue_list(&text).map_err(|why| format!("key '{key}': {why}"))
                    })
                    .transpose()?;
            }
            "queues" => self.queues = queue_tables(value)?,
            "web_listen" => {
                self.web_listen = value
                    .as_str()
                    .and_then(|text| crate::web::listen::parse_address(text).ok())
                    .ok_or_else(|| {
                        bad("an IP address and port, \"127.0.0.1:9750\" or \"[::1]:9750\", or \"localhost:9750\"")
                    })?
            }
            "web_allow_actions" => {
                self.web_allow_actions = match value {
                    toml::Value::Boolean(b) => *b,
                    toml::Value::String(text) if text == "true" => true,
                    toml::Value::String(text) if text == "false" => false,
                    _ => return Err(bad("true or false")),
                }
            }
            "web_auth_token_file" | "web_auth_basic_file" => {
                let path = match value.as_str() {
                    Some("") => None,
                    Some(p) if Path::new(p).is_absolute() => Some(PathBuf::from(p)),
                    _ => return Err(bad("an absolute path (empty: none)")),
                };
                if key == "web_auth_token_file" {
                    self.web_auth_token_file = path;
                } else {
                    self.web_auth_basic_file = path;
                }
            }
            _ => return Err(unknown_key(key)),
        }
        Ok(())
    }

    /// The effective value of a key, as TOML. `db_path` shows the resolved
    /// path (or PostgreSQL address, without its password).
    pub fn get(&self, key: &str) -> Result<toml::Value, String> {
        use toml::Value;
        let secs = |n: u64| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        Ok(match key {
            "db_path" => Value::String(
                paths::database(self)
                    .map_err(|e| e.to_string())?
                    .to_string(),
            ),
            "max_retries" => Value::Integer(self.max_retries.into()),
            "backoff_base" => Value::Float(self.backoff_base),
            "backoff_max_seconds" => secs(self.backoff_max_seconds),
            "timeout_seconds" => Value::Integer(self.timeout_seconds.into()),
            "lease_seconds" => Value::Integer(self.lease_seconds.into()),
            "kill_grace_seconds" => Value::Integer(self.kill_grace_seconds.into()),
            "concurrency" => Value::Integer(self.concurrency.into()),
            "retention_seconds" => secs(self.retention_seconds),
            "durability" => Value::String(self.durability.as_str().into()),
            "supervisor" => Value::String(
                match self.supervisor {
                    SupervisorKind::Auto => "auto",
                    SupervisorKind::Systemd => "systemd",
                    SupervisorKind::Process => "process",
                }
                .into(),
            ),
            "output" => Value::String(
                match self.output {
                    OutputSetting::Auto => "auto",
                    OutputSetting::Journal => "journal",
                    OutputSetting::File => "file",
                }
                .into(),
            ),
            "worker_queues" => Value::Array(
                self.worker_queues
                    .iter()
                    .flatten()
                    .map(|q| Value::String(q.to_string()))
                    .collect(),
            ),
            "queues" => Value::Table(
                self.queues
                    .iter()
                    .map(|(name, change)| {
                        let mut table = toml::Table::new();
                        if let Some(parallel) = change.parallel {
                            let value = match parallel {
                                Some(n) => Value::Integer(n.into()),
                                None => Value::String("none".into()),
                            };
                            table.insert("parallel".into(), value);
                        }
                        if let Some(paused) = change.paused {
                            table.insert("paused".into(), Value::Boolean(paused));
                        }
                        (name.to_string(), Value::Table(table))
                    })
                    .collect(),
            ),
            "web_listen" => Value::String(self.web_listen.to_string()),
            "web_allow_actions" => Value::Boolean(self.web_allow_actions),
            "web_auth_token_file" => path_or_empty(self.web_auth_token_file.as_deref()),
            "web_auth_basic_file" => path_or_empty(self.web_auth_basic_file.as_deref()),
            _ => return Err(unknown_key(key)),
        })
    }
}

/// An optional path as `config get` shows it: empty when unset.
fn path_or_empty(path: Option<&Path>) -> toml::Value {
    toml::Value::String(path.map(|p| p.display().to_string()).unwrap_or_default())
}

/// `[queues.NAME]` tables: each name a queue name, each table only
/// `parallel` (a count or "none") and `paused` (a boolean).
fn queue_tables(value: &toml::Value) -> Result<BTreeMap<QueueName, QueueChange>, String> {
    let Some(tables) = value.as_table() else {
        return Err(
            "key 'queues': expected [queues.NAME] tables (or use `queuectl queue set`)".into(),
        );
    };
    tables
        .iter()
        .map(|(name, settings)| {
            let at = format!("[queues.{}]", shown(name));
            let queue = QueueName::parse(name).map_err(|why| format!("{at}: queue name {why}"))?;
            let Some(settings) = settings.as_table() else {
                return Err(format!("{at}: expected a table of parallel and paused"));
            };
            let mut change = QueueChange::default();
            for (key, value) in settings {
                match key.as_str() {
                    "parallel" => {
                        let parallel = match value {
                            toml::Value::Integer(n) => check_parallel(*n).map(Some),
                            toml::Value::String(text) => parse_parallel(text),
                            _ => Err("parallel must be a number or \"none\"".to_owned()),
                        };
                        change.parallel = Some(parallel.map_err(|why| format!("{at}: {why}"))?);
                    }
                    "paused" => {
                        let paused = value
                            .as_bool()
                            .ok_or_else(|| format!("{at}: paused must be true or false"))?;
                        change.paused = Some(paused);
                    }
                    other => {
                        return Err(format!(
                            "{at}: unknown key '{}' (known keys: parallel, paused)",
                            shown(other)
                        ));
                    }
                }
            }
            Ok((queue, change))
        })
        .collect()
}

fn unknown_key(key: &str) -> String {
    let names: Vec<_> = KEYS.iter().map(|(k, _)| *k).collect();
    format!(
        "unknown key '{}' (known keys: {})",
        shown(key),
        names.join(", ")
    )
}

/// Reads a command-line value as the TOML type the key wants: numbers as
/// numbers, everything else as a string.
pub fn value_from_cli(key: &str, text: &str) -> toml::Value {
    let numeric = matches!(
        key,
        "max_retries"
            | "backoff_base"
            | "backoff_max_seconds"
            | "timeout_seconds"
            | "lease_seconds"
            | "kill_grace_seconds"
            | "concurrency"
            | "retention_seconds"
    );
    if key == "web_allow_actions" {
        if let Ok(b) = text.parse::<bool>() {
            return toml::Value::Boolean(b);
        }
    }
    if numeric {
        if let Ok(n) = text.parse::<i64>() {
            return toml::Value::Integer(n);
        }
        if let Ok(f) = text.parse::<f64>() {
            return toml::Value::Float(f);
        }
    }
    toml::Value::String(text.to_owned())
}

/// Validates `key = value` and writes it into the file at `path`, keeping the
/// file's comments and layout. Creates the file (and its directory) if needed.
pub fn set_in_file(path: &Path, key: &str, text: &str) -> Result<Config> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::io(
                format!("cannot read config {}", path.display()),
                e,
            ));
        }
    };
    let mut config = Config::parse(&existing)
        .map_err(|why| Error::Invalid(format!("config {}: {why}", path.display())))?;
    let value = value_from_cli(key, text);
    config.set(key, &value).map_err(Error::Invalid)?;

    let mut doc: toml_edit::DocumentMut = existing
        .parse()
        .map_err(|e| Error::Invalid(format!("config {}: {e}", path.display())))?;
    let edit_value = match value {
        toml::Value::Integer(n) => toml_edit::value(n),
        toml::Value::Float(f) => toml_edit::value(f),
        toml::Value::Boolean(b) => toml_edit::value(b),
        other => toml_edit::value(other.as_str().unwrap_or_default()),
    };
    // Keep any trailing comment on the line being replaced.
    let old_suffix = doc
        .get(key)
        .and_then(|item| item.as_value())
        .map(|v| v.decor().clone());
    doc[key] = edit_value;
    if let (Some(decor), Some(v)) = (old_suffix, doc[key].as_value_mut()) {
        *v.decor_mut() = decor;
    }
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        crate::files::create_private_dir(dir)
            .map_err(|e| Error::writing(dir, format!("cannot create {}", dir.display()), e))?;
    }
    paths::write_atomically(path, doc.to_string().as_bytes())?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let config =
            Config::parse("max_retries = 5\nbackoff_base = 3\ndurability = \"normal\"\n").unwrap();
        assert_eq!(config.max_retries, 5);
        assert_eq!(config.backoff_base, 3.0);
        assert_eq!(config.durability, Durability::Normal);
        assert_eq!(config.lease_seconds, Config::default().lease_seconds);
    }

    #[test]
    fn the_choices_offered_are_the_words_a_key_takes() {
        for (key, _) in KEYS {
            let mut config = Config::default();
            for choice in choices(key) {
                config
                    .set(key, &toml::Value::String((*choice).into()))
                    .unwrap_or_else(|e| panic!("{key} = {choice}: {e}"));
                assert_eq!(config.get(key).unwrap().as_str(), Some(*choice));
            }
            let takes_a_word = config
                .set(key, &toml::Value::String("no-such-word".into()))
                .is_err()
                && config.get(key).unwrap().is_str()
                // Free-form values: paths and addresses.
                && !matches!(
                    key,
                    "db_path" | "web_listen" | "web_auth_token_file" | "web_auth_basic_file"
                );
            assert_eq!(takes_a_word, !choices(key).is_empty(), "{key}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        for (text, needle) in [
            ("colour = 1", "unknown key 'colour'"),
            ("max_retries = -1", "max_retries"),
            ("max_retries = \"3\"", "max_retries"),
            ("backoff_base = 0.5", "backoff_base"),
            ("lease_seconds = 0", "lease_seconds"),
            ("durability = \"fast\"", "durability"),
            ("supervisor = \"docker\"", "supervisor"),
            ("max_retries = ", "line 1: "),
            ("worker_queues = \"a,b c\"", "queue name 'b c'"),
            ("worker_queues = 3", "worker_queues"),
            ("queues = 1", "[queues.NAME]"),
            ("[queues.\"a b\"]\nparallel = 1", "[queues.a b]: queue name"),
            (
                "[queues.emails]\nparallel = 0",
                "[queues.emails]: parallel must be",
            ),
            (
                "[queues.emails]\npaused = \"yes\"",
                "paused must be true or false",
            ),
            ("[queues.emails]\nlimit = 2", "unknown key 'limit'"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn long_keys_and_values_are_cut_in_messages() {
        let long = "k".repeat(1 << 20);
        for (text, cut) in [
            (format!("{long} = 1"), true),
            (format!("max_retries = \"{long}\""), true),
            (format!("{long} = 1\n{long} = 2"), false),
        ] {
            let err = Config::parse(&text).unwrap_err();
            assert!(err.len() < 400, "{} bytes", err.len());
            assert_eq!(err.contains("(cut, "), cut, "{err}");
        }
    }

    #[test]
    fn queue_settings_and_the_queues_workers_serve() {
        let config = Config::parse(
            "worker_queues = \"emails, reports\"\n\
             [queues.emails]\nparallel = 2\n\
             [queues.reports]\nparallel = \"none\"\npaused = true\n",
        )
        .unwrap();
        let served: Vec<String> = config
            .worker_queues
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        assert_eq!(served, ["emails", "reports"]);
        let emails = &config.queues[&QueueName::parse("emails").unwrap()];
        assert_eq!(
            *emails,
            QueueChange {
                parallel: Some(Some(2)),
                paused: None
            }
        );
        let reports = &config.queues[&QueueName::parse("reports").unwrap()];
        assert_eq!(
            *reports,
            QueueChange {
                parallel: Some(None),
                paused: Some(true)
            }
        );
        // What `config get` shows reads back the same.
        let mut again = Config::default();
        for key in ["worker_queues", "queues"] {
            again.set(key, &config.get(key).unwrap()).unwrap();
        }
        assert_eq!(again, config);
        let array = Config::parse("worker_queues = [\"a\", \"b\"]").unwrap();
        assert_eq!(array.worker_queues.unwrap().len(), 2);
        assert_eq!(
            Config::parse("worker_queues = \"\"").unwrap().worker_queues,
            None
        );
    }

    #[test]
    fn the_web_keys_read_back_as_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        set_in_file(&path, "web_listen", "[::1]:8080").unwrap();
        set_in_file(&path, "web_allow_actions", "true").unwrap();
        let config = set_in_file(&path, "web_auth_token_file", "/run/secrets/web-token").unwrap();
        assert_eq!(config.web_listen.to_string(), "[::1]:8080");
        assert!(config.web_allow_actions);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("web_allow_actions = true"), "{text}");
        assert_eq!(Config::parse(&text).unwrap(), config);
        for (key, value, needle) in [
            (
                "web_listen",
                "dashboard.example:80",
                "an IP address and port",
            ),
            ("web_allow_actions", "yes", "true or false"),
            ("web_auth_basic_file", "relative/file", "an absolute path"),
        ] {
            let err = set_in_file(&path, key, value).unwrap_err().to_string();
            assert!(err.contains(needle), "{key} = {value}: {err}");
        }
        assert_eq!(Config::default().web_listen.to_string(), "127.0.0.1:9750");
        // localhost is the one name taken, as --listen takes it.
        let config = set_in_file(&path, "web_listen", "localhost:80").unwrap();
        assert_eq!(config.web_listen.to_string(), "127.0.0.1:80");
    }

    #[test]
    fn every_key_can_be_read() {
        let config = Config::default();
        for (key, _) in KEYS {
            assert!(config.get(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn set_in_file_keeps_comments_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        set_in_file(&path, "max_retries", "7").unwrap();
        let with_comments = "# queue settings\nmax_retries = 7 # tuned for flaky jobs\n\n# speed\nbackoff_base = 2\n";
        std::fs::write(&path, with_comments).unwrap();
        let config = set_in_file(&path, "max_retries", "9").unwrap();
        assert_eq!(config.max_retries, 9);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# queue settings"), "{text}");
        assert!(text.contains("# tuned for flaky jobs"), "{text}");
        assert!(text.contains("# speed"), "{text}");
        assert!(text.contains("max_retries = 9"), "{text}");

        assert!(set_in_file(&path, "max_retries", "lots").is_err());
        assert!(set_in_file(&path, "nope", "1").is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "a rejected set leaves the file alone"
        );
    }
}
