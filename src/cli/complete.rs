//! Dynamic shell completion. The script `queuectl completions SHELL` prints
//! calls back into queuectl (with `$QUEUECTL_COMPLETE` set) on every TAB, so
//! candidates can come from the queue itself: job ids, states, config keys.
//! Completing only reads: it never creates or changes a queue, and it never
//! prints an error into the shell (a failure offers nothing).
//!
//! Marking an argument takes one line in args.rs:
//! `#[arg(add = complete::job_id())]`.

use super::args::Cli;
use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter, CompletionCandidate};
use clap_complete::env::Shells;
use queuectl::config::{self, Config, Durability};
use queuectl::domain::JobState;
use queuectl::error::{Error, Result};
use queuectl::paths;
use queuectl::store::{Database, OpenMode, Store};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::PathBuf;

/// Set by the completion script when it asks for candidates. Not clap's
/// default `COMPLETE`: a variable of that common name in a user's
/// environment would turn every queuectl command into a completion request.
const VAR: &str = "QUEUECTL_COMPLETE";

/// At most this many job ids are offered (newest first): a shell lists them
/// all, and more than this is no longer a menu.
const MAX_IDS: u32 = 500;

/// Seconds completion waits to reach a PostgreSQL server (unless the
/// address says otherwise).
const PG_CONNECT_TIMEOUT: &str = "2";

/// Answers a completion request and exits, if this run is one; otherwise
/// returns at once. Runs before anything else in `main` writes output.
pub fn answer_if_asked() {
    let asked = clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .try_complete(std::env::args_os(), std::env::current_dir().ok().as_deref());
    match asked {
        Ok(false) => {}
        Ok(true) => std::process::exit(0),
        // Nothing on stderr: it would land in the middle of the user's line.
        Err(_) => std::process::exit(1),
    }
}

/// `queuectl completions SHELL`: the script that registers the completer,
/// calling this very binary (so candidates always match its flags).
pub fn print_script(shell: clap_complete::Shell) -> Result<()> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| Error::Invalid(format!("no dynamic completion for {name}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("cannot find the running queuectl binary", e))?;
    let mut script = Vec::new();
    completer
        .write_registration(
            VAR,
            "queuectl",
            "queuectl",
            &exe.to_string_lossy(),
            &mut script,
        )
        .and_then(|()| std::io::stdout().write_all(&script))
        .map_err(|e| Error::io("cannot write the completion script", e))
}

/// Any job's id.
pub fn job_id() -> ArgValueCompleter {
    job_id_in(&[])
}

/// The id of a job in one of `states` (any job when empty): a command
/// offers only the jobs it can act on.
pub fn job_id_in(states: &'static [JobState]) -> ArgValueCompleter {
    ArgValueCompleter::new(move |current: &OsStr| {
        let Some(prefix) = current.to_str() else {
            return vec![];
        };
        job_ids(prefix, states)
            .unwrap_or_default()
            .into_iter()
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// The job states.
pub fn state() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        JobState::ALL
            .iter()
            .map(|state| CompletionCandidate::new(state.as_str()))
            .collect()
    })
}

/// The config file's keys, each with its meaning.
pub fn config_key() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        config::KEYS
            .iter()
            .map(|(key, help)| CompletionCandidate::new(key).help(Some((*help).into())))
            .collect()
    })
}

/// The words the key before the cursor takes (`config set durability`).
pub fn config_value() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let words = words_before_cursor();
        let key = words.last().and_then(|w| w.to_str()).unwrap_or("");
        config::choices(key)
            .iter()
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// The names of the queues that have settings or unfinished jobs.
pub fn queue_name() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let prefix = current.to_str().unwrap_or("");
        let names = completion_store().and_then(|mut store| store.queues());
        names
            .unwrap_or_default()
            .into_iter()
            .filter(|q| q.name.starts_with(prefix))
            .map(|q| CompletionCandidate::new(q.name))
            .collect()
    })
}

/// Ids from the queue the command being completed would use (see
/// [`completion_store`]). With `states`, newest first within each state, at
/// most `MAX_IDS` in all.
fn job_ids(prefix: &str, states: &[JobState]) -> Result<Vec<String>> {
    let mut store = completion_store()?;
    if states.is_empty() {
        return store.job_ids(prefix, None, MAX_IDS);
    }
    let mut ids = Vec::new();
    for &state in states {
        let room = MAX_IDS.saturating_sub(ids.len() as u32);
        if room == 0 {
            break;
        }
        ids.extend(store.job_ids(prefix, Some(state), room)?);
    }
    Ok(ids)
}

/// The queue the command being completed would use, opened read-only:
/// `--db` or `--config` typed before the cursor count, as when it runs.
fn completion_store() -> Result<Store> {
    let words = words_before_cursor();
    let database = match option_value(&words, "--db") {
        Some(db) => Database::from_os(&db)?,
        None => {
            let explicit = option_value(&words, "--config").map(PathBuf::from);
            let config_path = paths::config_path(explicit.as_deref());
            // As the command would: a --config file must exist.
            paths::database(&Config::load(&config_path, explicit.is_none())?)?
        }
    };
    // A shell waits for this: an unreachable server must not hold it for
    // the 10 s a command would wait.
    let database = match database {
        Database::Postgres(target) => {
            Database::Postgres(target.with_default("connect_timeout", PG_CONNECT_TIMEOUT))
        }
        sqlite => sqlite,
    };
    // Read-only opens never create a queue; durability only matters to writes.
    Store::open_as(&database, Durability::Full, OpenMode::ReadOnly)
}

/// The words of the command line being completed, before the cursor's. The
/// script runs `queuectl -- queuectl WORDS...`; bash says which word the
/// cursor is on, the other shells complete the last one.
fn words_before_cursor() -> Vec<OsString> {
    let mut words: Vec<OsString> = std::env::args_os()
        .skip_while(|word| word != "--")
        .skip(2)
        .collect();
    let cursor = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|index| index.parse::<usize>().ok())
        .map(|index| index.saturating_sub(1))
        .unwrap_or(words.len().saturating_sub(1));
    words.truncate(cursor);
    words
}

/// The value of `--name VALUE` or `--name=VALUE` among `words` (the last
/// one given), as the shell will pass it: quotes removed, `~/` expanded.
/// Nothing after a lone `--` counts (that is a job's command).
fn option_value(words: &[OsString], name: &str) -> Option<OsString> {
    let words: Vec<&str> = words
        .iter()
        .map(|word| word.to_str().unwrap_or(""))
        .take_while(|word| *word != "--")
        .collect();
    let with_equals = format!("{name}=");
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        if *word == name {
            found = words.get(i + 1).copied();
        } else if let Some(value) = word.strip_prefix(&with_equals) {
            found = Some(value);
        }
    }
    found.map(as_the_shell_passes_it)
}

fn as_the_shell_passes_it(word: &str) -> OsString {
    let unquoted = ['\'', '"']
        .iter()
        .find_map(|q| word.strip_prefix(*q).and_then(|w| w.strip_suffix(*q)))
        .unwrap_or(word);
    match (unquoted.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest).into_os_string(),
        _ => unquoted.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn option_values_as_typed_before_the_cursor() {
        let cases = [
            ("--db /q.db show", "--db", Some("/q.db")),
            ("--db=/q.db show", "--db", Some("/q.db")),
            ("show --db '/q.db'", "--db", Some("/q.db")),
            ("--db /a.db --db /b.db show", "--db", Some("/b.db")),
            ("--config /c.toml logs", "--db", None),
            ("--config /c.toml logs", "--config", Some("/c.toml")),
            ("add -- run --db /x.db", "--db", None),
            ("show --db", "--db", None),
        ];
        for (line, name, expected) in cases {
            assert_eq!(
                option_value(&words(line), name),
                expected.map(OsString::from),
                "{line}"
            );
        }
    }
}
