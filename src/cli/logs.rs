//! `logs`: a job's output, from its log file and from the journal (an
//! attempt's recorded destination says which holds it), then plain notes on
//! stderr when there is none or some of it was cut. An attempt whose output
//! is not on this host (it ran on another, or its log file is gone) is shown
//! by the tail the queue kept, after notes saying so and where the full
//! output is. `--json` prints this host's output with each attempt's
//! destination, truncation, host, tail and where its full output is.

use super::Context;
use super::format::print_json;
use super::output_place::{Here, notes};
use queuectl::error::{Error, IoContext, Result};
use queuectl::output::{Destination, JOB_SYSLOG_IDENTIFIER};
use queuectl::store::{Attempt, OpenMode};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How often `logs -f` looks for new output and for the job's end.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub fn run(ctx: &Context, id: &str, follow: bool) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    store.get(id)?; // not found → exit 3
    let here = Here::new(ctx.state.job_log(id));
    let mut out = Sink::new(ctx.json);
    let mut offset = 0;
    let mut cursor: Option<String> = None;
    loop {
        // Read the state first, so output written before the job finished is
        // always picked up by the reads that follow.
        let finished = !follow || store.get(id)?.state.is_terminal();
        let attempts = store.attempts(id)?;
        let (local, elsewhere): (Vec<&Attempt>, Vec<&Attempt>) =
            attempts.iter().partition(|a| here.place(a).is_here());
        // Output kept elsewhere, in attempt order around this host's (which
        // is one file and one journal query, however many attempts wrote it).
        let first_local = local.first().map(|a| a.number).unwrap_or(u32::MAX);
        let (before, after): (Vec<&Attempt>, Vec<&Attempt>) =
            elsewhere.iter().partition(|a| a.number < first_local);
        out.tails(&here, id, &before)?;
        if !local.is_empty() {
            // Every attempt whose output went to the file (or fell back to
            // it) appended to this one file.
            offset = read_file_from(&here.log, offset, &mut out)?;
        }
        if local.iter().any(|a| a.output == Destination::Journal) {
            cursor = read_journal_after(id, cursor.as_deref(), &mut out)?.or(cursor);
        }
        out.tails(&here, id, &after)?;
        if finished {
            report(id, &attempts, &here, out)?;
            // Followed to its end: exit as `wait` would.
            return match follow {
                true => super::wait::ended_as([(id, store.get(id)?.state)]),
                false => Ok(()),
            };
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Where the output goes: straight to stdout, or kept for `--json`.
struct Sink {
    json: Option<Vec<u8>>,
    printed: u64,
    /// Attempts elsewhere whose notes were shown while they ran, and those
    /// whose tail was shown (with its notes) after they ended.
    running_noted: BTreeSet<u32>,
    tails_shown: BTreeSet<u32>,
}

impl Sink {
    fn new(json: bool) -> Sink {
        Sink {
            json: json.then(Vec::new),
            printed: 0,
            running_noted: BTreeSet::new(),
            tails_shown: BTreeSet::new(),
        }
    }

    /// Shows, once each, the kept tails of `attempts` whose output is not on
    /// this host, after notes saying so, once they ended (an attempt's tail
    /// is stored when it ends; until then, only the notes). `--json` lists
    /// the tails per attempt instead.
    fn tails(&mut self, here: &Here, id: &str, attempts: &[&Attempt]) -> Result<()> {
        for attempt in attempts {
            let shown = match attempt.finished_at {
                _ if self.json.is_some() => continue,
                Some(_) => &mut self.tails_shown,
                None => &mut self.running_noted,
            };
            if !shown.insert(attempt.number) {
                continue;
            }
            for note in notes(here, id, attempt) {
                eprintln!("note: {note}");
            }
            if let Some(tail) = &attempt.output_tail {
                self.write(tail.as_bytes())?;
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.printed += bytes.len() as u64;
        if let Some(kept) = &mut self.json {
            kept.extend_from_slice(bytes);
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|_| out.flush())
            .context(|| "cannot write output".into())
    }
}

/// Ends with what the output alone does not say: that there is none, or
/// that an attempt's output is incomplete.
fn report(id: &str, attempts: &[Attempt], here: &Here, out: Sink) -> Result<()> {
    let truncated: Vec<u32> = attempts
        .iter()
        .filter(|a| a.output_truncated)
        .map(|a| a.number)
        .collect();
    if let Some(kept) = out.json {
        let attempts: Vec<_> = attempts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "number": a.number,
                    "host": a.host,
                    "output": a.output,
                    "output_truncated": a.output_truncated,
                    // Whether "output" above holds this attempt's output.
                    "output_here": here.place(a).is_here(),
                    "output_location": here.location(id, a),
                    "output_tail": a.output_tail,
                })
            })
            .collect();
        return print_json(&serde_json::json!({
            "id": id,
            "output": String::from_utf8_lossy(&kept),
            "truncated": !truncated.is_empty(),
            "attempts": attempts,
        }));
    }
    if out.printed == 0 && out.tails_shown.is_empty() && out.running_noted.is_empty() {
        match attempts.len() {
            0 => eprintln!("job '{id}' has no output: it has not run yet"),
            1 => eprintln!("job '{id}' has no output: its attempt printed nothing"),
            n => eprintln!("job '{id}' has no output: none of its {n} attempts printed anything"),
        }
    }
    for number in truncated {
        eprintln!(
            "note: the output of attempt {number} is incomplete: some of it could not be stored (the worker's log says why)"
        );
    }
    Ok(())
}

/// Adds `path` from byte `offset` to `out`; returns the new offset.
fn read_file_from(path: &Path, offset: u64, out: &mut Sink) -> Result<u64> {
    let mut file = match queuectl::files::read_nofollow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    file.seek(SeekFrom::Start(offset))
        .context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .context(|| format!("cannot read {}", path.display()))?;
    out.write(&bytes)?;
    Ok(offset + bytes.len() as u64)
}

/// Adds the job's journal entries after `cursor` to `out`: `journalctl
/// QUEUECTL_JOB_ID=<id> SYSLOG_IDENTIFIER=queuectl-job` (the worker's own
/// lines about the job carry QUEUECTL_JOB_ID too, under another
/// identifier). Returns the new cursor.
fn read_journal_after(id: &str, cursor: Option<&str>, out: &mut Sink) -> Result<Option<String>> {
    let mut cmd = Command::new("journalctl");
    cmd.args([
        "--no-pager",
        "--output=cat",
        "--show-cursor",
        &format!("QUEUECTL_JOB_ID={id}"),
        &format!("SYSLOG_IDENTIFIER={JOB_SYSLOG_IDENTIFIER}"),
    ]);
    if let Some(cursor) = cursor {
        cmd.arg(format!("--after-cursor={cursor}"));
    }
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .context(|| "cannot run journalctl to read the job's output".into())?;
    if !output.status.success() {
        // An attempt recorded its output in the journal, which cannot be read
        // now (no journal files, no permission to read them, ...).
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = match stderr.trim() {
            "" => output.status.to_string(),
            text => text.to_owned(),
        };
        return Err(Error::Supervisor(format!(
            "cannot read the output of job '{id}' from the journal (journalctl: {why})"
        )));
    }
    let text = output.stdout;
    let marker = b"-- cursor: ";
    let (body, new_cursor) = match text.windows(marker.len()).rposition(|w| w == marker) {
        Some(at) => (
            &text[..at],
            Some(
                String::from_utf8_lossy(&text[at + marker.len()..])
                    .trim()
                    .to_owned(),
            ),
        ),
        None => (&text[..], None),
    };
    out.write(body)?;
    Ok(new_cursor)
}
