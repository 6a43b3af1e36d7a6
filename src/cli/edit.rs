//! `edit`: changes a waiting job, by flags or in the user's editor. Either
//! way the changes are validated as job fields (`spec::edit_from_value`)
//! and applied by one store call that refuses a job no longer waiting.

use super::Context;
use super::args::EditArgs;
use super::format::print_json;
use super::job_fields::flag_error;
use queuectl::domain::spec::edit_from_value;
use queuectl::domain::{JobEdit, JobState};
use queuectl::error::{Error, IoContext, Result};
use queuectl::store::{Job, OpenMode, not_editable};
use queuectl::wakeup::wake_workers;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run(ctx: &Context, args: EditArgs) -> Result<()> {
    let mut store = ctx.store(OpenMode::Existing)?;
    let by_flags = args.command.is_some() || args.fields.any();
    let edit = if by_flags {
        let mut fields = Map::new();
        if let Some(command) = args.command {
            fields.insert("command".into(), command.into());
        }
        args.fields.insert_into(&mut fields)?;
        edit_from_value(&Value::Object(fields)).map_err(|e| flag_error(e, "--command"))?
    } else {
        let job = store.get(&args.id)?;
        if !is_waiting(job.state) {
            return Err(not_editable(&job.id, Some(job.state)));
        }
        let edit = in_editor(&job)?;
        if edit.is_empty() {
            eprintln!("job '{}' unchanged", args.id);
            return Ok(());
        }
        edit
    };
    let job = store.edit(&args.id, &edit).map_err(|e| match e {
        Error::Conflict(why) if !by_flags => Error::Conflict(format!(
            "{why}: it started meanwhile, while it was being edited; nothing was changed"
        )),
        other => other,
    })?;
    // It may be due earlier, or sooner than a worker's planned wake-up.
    wake_workers(&ctx.state.wake());
    if ctx.json {
        return print_json(&job);
    }
    println!("edited job '{}'", job.id);
    Ok(())
}

fn is_waiting(state: JobState) -> bool {
    JobState::EDITABLE.contains(&state)
}

/// Opens the job's editable fields as TOML in `$VISUAL`/`$EDITOR` and
/// returns what the user changed (nothing when the file is unchanged).
fn in_editor(job: &Job) -> Result<JobEdit> {
    let editor = editor(&job.id)?;
    let before = document(job);
    let scratch = Scratch::new()?;
    let path = scratch.file(&format!("{}.toml", job.id), &before)?;
    run_editor(&editor, &path)?;
    let after = std::fs::read_to_string(&path)
        .context(|| format!("cannot read the edited file {}", path.display()))?;
    changes(&before, &after)
}

/// The job's editable fields, as the user sees them in the editor.
fn document(job: &Job) -> String {
    let string = |s: &str| toml::Value::String(s.to_owned()).to_string();
    format!(
        "# Editing job '{id}' ({state}). Save to apply; leave it unchanged to change nothing.\n\
         # run_at is RFC 3339; to make it due some time from now, replace it with delay = \"5m\".\n\
         command = {command}\n\
         priority = {priority}\n\
         run_at = {run_at}\n\
         max_retries = {retries}\n\
         timeout_seconds = {timeout}\n\
         queue = {queue}\n",
        id = job.id,
        state = job.state,
        command = string(&job.command),
        priority = job.priority,
        // UTC to the second: what `run_at` takes back.
        run_at = string(
            &job.run_at
                .round(jiff::Unit::Second)
                .unwrap_or(job.run_at)
                .to_string()
        ),
        retries = job.max_retries,
        timeout = job.timeout_seconds,
        queue = string(&job.queue),
    )
}

/// The fields whose value differs between the two documents, validated.
fn changes(before: &str, after: &str) -> Result<JobEdit> {
    let parse = |text: &str| -> Result<Map<String, Value>> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::Invalid(format!("the edited job is not valid TOML: {}", e.message()))
        })?;
        Ok(table
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    // An unquoted TOML date-time is the RFC 3339 text.
                    toml::Value::Datetime(at) => Value::String(at.to_string()),
                    other => serde_json::to_value(other).unwrap_or(Value::Null),
                };
                (name, value)
            })
            .collect())
    };
    let before = parse(before)?;
    let mut changed = parse(after)?;
    changed.retain(|name, value| before.get(name) != Some(value));
    // A field deleted from the file is not in `changed`: it stays.
    Ok(edit_from_value(&Value::Object(changed))?)
}

/// `$VISUAL`, else `$EDITOR`, else `vi` when a person is at the terminal:
/// without one, vi would draw its screen into a pipe.
fn editor(id: &str) -> Result<String> {
    let named = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty());
    match named {
        Some(editor) => Ok(editor),
        None if std::io::stdin().is_terminal() => Ok("vi".into()),
        None => Err(Error::Invalid(format!(
            "no editor: $VISUAL and $EDITOR are not set and stdin is not a terminal; \
             change the job by flags instead, e.g. queuectl edit {id} --command '...' --priority 5 \
             (see queuectl edit --help)"
        ))),
    }
}

/// Runs `editor` by the shell so that one with arguments (`code --wait`)
/// works; the file is its last argument.
fn run_editor(editor: &str, path: &Path) -> Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .context(|| "cannot run the editor".into())?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "the editor ({editor}) failed ({status}); nothing was changed"
        )));
    }
    Ok(())
}

/// A private directory (0700) for the file being edited, removed with it.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch> {
        let template = std::env::temp_dir().join("queuectl-edit-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template)
            .map_err(|e| Error::io("cannot make a private temporary directory", e.into()))?;
        Ok(Scratch { dir })
    }

    /// Creates `name` (0600, never an existing file) holding `text`.
    fn file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .context(|| format!("cannot create {}", path.display()))?;
        file.write_all(text.as_bytes())
            .context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Editors may leave backups or swap files beside it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "command = \"x\"\npriority = 0\nrun_at = \"2026-01-01T00:00:00Z\"\nmax_retries = 3\ntimeout_seconds = 0\nqueue = \"default\"\n";

    #[test]
    fn only_changed_fields_are_applied() {
        assert!(changes(BEFORE, BEFORE).unwrap().is_empty());
        let after = BEFORE.replace("priority = 0", "priority = 5");
        let edit = changes(BEFORE, &after).unwrap();
        assert_eq!(edit.priority, Some(5));
        assert_eq!((edit.command, edit.schedule), (None, None));
        let delayed = BEFORE.replace("run_at = \"2026-01-01T00:00:00Z\"", "delay = \"5m\"");
        assert!(changes(BEFORE, &delayed).unwrap().schedule.is_some());
        let unquoted = BEFORE.replace("\"2026-01-01T00:00:00Z\"", "2027-01-01T00:00:00Z");
        assert!(changes(BEFORE, &unquoted).unwrap().schedule.is_some());
        let moved = BEFORE.replace("\"default\"", "\"slow\"");
        assert_eq!(
            changes(BEFORE, &moved).unwrap().queue.unwrap().as_str(),
            "slow"
        );
    }

    #[test]
    fn bad_edits_are_input_errors() {
        for (after, needle) in [
            ("command = ", "not valid TOML"),
            ("command = \"\"", "field 'command': must not be empty"),
            ("env = { A = \"1\" }", "field 'env': cannot be edited"),
            ("max_retries = -1", "field 'max_retries'"),
            ("queue = \"a b\"", "field 'queue'"),
        ] {
            let err = changes(BEFORE, after).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{after}");
            assert!(err.to_string().contains(needle), "{after}: {err}");
        }
    }
}
