//! `add`: a shell command from the command line, with its settings as
//! flags, enqueued through the same validation as a JSON job.

use super::Context;
use super::args::{AddArgs, NewJobArgs};
use super::enqueue::submit;
use super::job_fields::flag_error;
use super::queue::find;
use queuectl::domain::echo;
use queuectl::domain::spec::job_from_value;
use queuectl::error::{Error, IoContext, Result};
use queuectl::store::OpenMode;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub fn run(ctx: &Context, args: AddArgs) -> Result<()> {
    let mut fields = args.job.fields_of(&args.command)?;
    if let Some(id) = args.id {
        fields.insert("id".into(), id.into());
    }
    if let Some(key) = args.unique_key {
        fields.insert("unique_key".into(), key.into());
    }
    if let Some(policy) = args.on_duplicate {
        fields.insert("on_duplicate".into(), policy.into());
    }
    if !args.after.is_empty() {
        fields.insert("after".into(), args.after.into());
    }
    let job = job_from_value(&Value::Object(fields)).map_err(|e| flag_error(e, "COMMAND"))?;
    let queue = job.queue.clone();
    // The store's refusals (an id taken) in the flags' words too.
    submit(ctx, &[(1, job)]).map_err(|e| match e {
        Error::Input(err) => flag_error(err, "COMMAND"),
        other => other,
    })?;
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    if find(&mut store, queue.as_str())?.is_some_and(|q| q.paused) {
        eprintln!(
            "queuectl: queue '{queue}' is paused: the job waits until `queuectl queue resume {queue}`"
        );
    }
    Ok(())
}

impl NewJobArgs {
    /// The job's JSON fields: `command` from the words after `--`, the
    /// others from the flags, `cwd` the current directory unless given.
    pub fn fields_of(&self, command: &[String]) -> Result<Map<String, Value>> {
        let mut fields = Map::new();
        fields.insert("command".into(), command_line(command)?.into());
        self.fields.insert_into(&mut fields)?;
        if !self.env.is_empty() {
            fields.insert("env".into(), environment(&self.env)?);
        }
        if let Some(env_file) = &self.env_file {
            fields.insert("env_file".into(), env_file.as_str().into());
        }
        fields.insert("cwd".into(), working_dir(self.cwd.clone())?.into());
        Ok(fields)
    }
}

/// The words after `--` as one shell command line: a single word as it is
/// (it may be a whole pipeline), several quoted so each stays one argument.
pub fn command_line(words: &[String]) -> Result<String> {
    match words {
        [line] => Ok(line.clone()),
        _ => shlex::try_join(words.iter().map(String::as_str))
            .map_err(|_| Error::Invalid("COMMAND: must not contain NUL bytes".into())),
    }
}

/// `--env NAME=VALUE` flags as the job's `env` object. A value is never
/// shown, not even in an error.
fn environment(pairs: &[String]) -> Result<Value> {
    let mut vars = Map::new();
    for pair in pairs {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            Error::Invalid("--env: expected NAME=VALUE, got a value without '='".into())
        })?;
        vars.insert(name.to_owned(), value.into());
    }
    Ok(Value::Object(vars))
}

/// `--cwd` as the canonical path of an existing directory here (`..` and
/// symlinks resolved), or the current directory (as pueue does). JSON
/// `enqueue` checks no more than that a path is absolute: its workers may
/// be on other hosts; a person typing `add` means this one.
fn working_dir(given: Option<PathBuf>) -> Result<String> {
    let dir = match given {
        Some(dir) => existing_dir(&dir)?,
        None => std::env::current_dir().context(|| "cannot find the current directory".into())?,
    };
    dir.into_os_string().into_string().map_err(|_| {
        Error::Invalid("--cwd: the working directory's path is not valid UTF-8".into())
    })
}

fn existing_dir(dir: &Path) -> Result<PathBuf> {
    let refused = |why: &str| {
        Error::Invalid(format!(
            "--cwd: {}: {why} on this host",
            echo::shown(&dir.to_string_lossy())
        ))
    };
    let canonical = std::fs::canonicalize(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => refused("no such directory"),
        _ => refused(&format!("cannot be used ({e})")),
    })?;
    if !canonical.is_dir() {
        return Err(refused("not a directory"));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_a_single_word_is_a_command_line() {
        let words = |w: &[&str]| command_line(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(words(&["echo", "a b"]).unwrap(), "echo 'a b'");
        assert_eq!(words(&["ls", "-l", "$HOME"]).unwrap(), "ls -l '$HOME'");
        assert_eq!(
            words(&["make -j4 && ./deploy"]).unwrap(),
            "make -j4 && ./deploy"
        );
    }
}
