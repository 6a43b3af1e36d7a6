//! `logs`: a job's output, from its log file and from the journal (an
//! attempt's recorded destination says which holds it), then plain notes on
//! stderr when there is none or some of it was cut. An attempt whose output
//! is not on this host (it ran on another, or its log file is gone) is shown
//! by the tail the queue kept, after notes saying so and where the full
//! output is. `--json` prints this host's output with each attempt's
//! destination, truncation, host, tail and where its full output is.
//!
//! Output is gathered as pieces labelled with their attempt and stream (the
//! log file's index, the journal's fields), so `--attempt` and `--lines`
//! work per attempt. On a terminal each attempt gets a header and stderr
//! lines a red `│` mark; otherwise the bytes are exactly the job's.

use super::Context;
use super::args::LogsArgs;
use super::format::print_json;
use super::output_place::{Here, notes};
use queuectl::domain::AttemptOutcome;
use queuectl::error::{Error, IoContext, Result};
use queuectl::output::{
    Destination, JOB_SYSLOG_IDENTIFIER, LogRun, Stream, log_index_path, parse_log_index,
};
use queuectl::store::{Attempt, OpenMode};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How often `logs -f` looks for new output and for the job's end.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub fn run(ctx: &Context, args: &LogsArgs) -> Result<()> {
    let id = args.id.as_str();
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    store.get(id)?; // not found → exit 3
    if let Some(number) = args.attempt {
        let attempts = store.attempts(id)?;
        if !attempts.iter().any(|a| a.number == number) {
            return Err(Error::NoAttempt {
                id: id.to_owned(),
                attempt: number,
                attempts: attempts.len(),
            });
        }
    }
    let here = Here::new(ctx.state.job_log(id));
    let mut out = Sink::new(ctx, args);
    let mut offset = 0;
    let mut cursor: Option<String> = None;
    loop {
        // Read the state first, so output written before the job finished is
        // always picked up by the reads that follow.
        let finished = !args.follow || store.get(id)?.state.is_terminal();
        let attempts = store.attempts(id)?;
        let local: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| here.place(a).is_here())
            .collect();
        let mut pieces = out.tails(&here, id, &attempts);
        if !local.is_empty() {
            // Every attempt whose output went to the file (or fell back to
            // it) appended to this one file.
            offset = read_file_from(&here.log, offset, &mut pieces)?;
        }
        if local.iter().any(|a| a.output == Destination::Journal) {
            cursor = read_journal_after(id, cursor.as_deref(), &mut pieces)?.or(cursor);
        }
        out.show(pieces, &attempts)?;
        if finished {
            report(id, &attempts, &here, out)?;
            // Followed to its end: exit as `wait` would.
            return match args.follow {
                true => super::wait::ended_as([(id, store.get(id)?.state)]),
                false => Ok(()),
            };
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Some of a job's output: one attempt's (when known), one stream's (a
/// kept tail holds both), and the notes to print before it.
#[derive(Debug)]
struct Piece {
    attempt: Option<u32>,
    stream: Stream,
    bytes: Vec<u8>,
    notes: Vec<String>,
}

/// Adds output to `pieces`, joined to the last piece when it is the same
/// attempt's and stream's.
fn push(pieces: &mut Vec<Piece>, attempt: Option<u32>, stream: Stream, bytes: &[u8]) {
    match pieces.last_mut() {
        Some(last) if last.attempt == attempt && last.stream == stream && last.notes.is_empty() => {
            last.bytes.extend_from_slice(bytes)
        }
        _ => pieces.push(Piece {
            attempt,
            stream,
            bytes: bytes.to_vec(),
            notes: Vec::new(),
        }),
    }
}

/// Where the output goes: straight to stdout (decorated on a terminal), or
/// kept for `--json`.
struct Sink {
    json: Option<Vec<u8>>,
    /// Headers and stderr marks: output a person reads (coloured only
    /// where colour is allowed).
    decorated: bool,
    paint: super::format::Painter,
    times: super::format::Times,
    only: Option<u32>,
    /// `--lines`: applied to the first look (later output of `-f` is new).
    lines: Option<usize>,
    printed: u64,
    headers_shown: BTreeSet<u32>,
    /// Attempts whose header said "running" and whose end is not shown yet.
    shown_running: BTreeSet<u32>,
    at_line_start: bool,
    /// Attempts elsewhere whose notes were shown while they ran, and those
    /// whose tail was shown (with its notes) after they ended.
    running_noted: BTreeSet<u32>,
    tails_shown: BTreeSet<u32>,
}

impl Sink {
    fn new(ctx: &Context, args: &LogsArgs) -> Sink {
        Sink {
            json: ctx.json.then(Vec::new),
            decorated: ctx.for_person && !ctx.json,
            paint: ctx.paint,
            times: ctx.times.clone(),
            only: args.attempt,
            lines: args.lines,
            printed: 0,
            headers_shown: BTreeSet::new(),
            shown_running: BTreeSet::new(),
            at_line_start: true,
            running_noted: BTreeSet::new(),
            tails_shown: BTreeSet::new(),
        }
    }

    /// The kept tails of attempts whose output is not on this host, once
    /// each, after notes saying so, once they ended (an attempt's tail is
    /// stored when it ends; until then, only the notes). `--json` lists the
    /// tails per attempt instead.
    fn tails(&mut self, here: &Here, id: &str, attempts: &[Attempt]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        for attempt in attempts.iter().filter(|a| !here.place(a).is_here()) {
            let shown = match attempt.finished_at {
                _ if self.json.is_some() => continue,
                Some(_) => &mut self.tails_shown,
                None => &mut self.running_noted,
            };
            if !shown.insert(attempt.number) {
                continue;
            }
            pieces.push(Piece {
                attempt: Some(attempt.number),
                stream: Stream::Stdout,
                bytes: attempt.output_tail.clone().unwrap_or_default().into_bytes(),
                notes: notes(here, id, attempt),
            });
        }
        pieces
    }

    /// Shows one look's pieces in attempt order (as asked: one attempt,
    /// the last lines of each), each attempt after its header on a terminal.
    fn show(&mut self, mut pieces: Vec<Piece>, attempts: &[Attempt]) -> Result<()> {
        pieces.retain(|p| self.only.is_none() || p.attempt == self.only);
        // Stable: each attempt's pieces stay in the order they were written.
        pieces.sort_by_key(|p| p.attempt);
        if let Some(n) = self.lines.take() {
            keep_last_lines(&mut pieces, n);
        }
        let mut numbers: BTreeSet<Option<u32>> = pieces.iter().map(|p| p.attempt).collect();
        // Every attempt gets its header, also one that printed nothing;
        // unless the output is unlabelled (a log from before its index).
        if self.decorated && !numbers.contains(&None) {
            numbers.extend(
                attempts
                    .iter()
                    .map(|a| Some(a.number))
                    .filter(|n| self.only.is_none() || *n == self.only),
            );
        }
        for number in numbers {
            if let Some(n) = number.filter(|n| self.decorated && !self.headers_shown.contains(n)) {
                self.header(n, attempts)?;
            }
            for piece in pieces.iter().filter(|p| p.attempt == number) {
                for note in &piece.notes {
                    eprintln!("note: {note}");
                }
                self.write(piece.stream, &piece.bytes)?;
            }
            if let Some(n) = number {
                self.close_if_ended(n, attempts)?;
            }
        }
        Ok(())
    }

    /// "── attempt 1 ended · exit 1" after the output of an attempt whose
    /// header said it was running (`-f`), once it has ended. The attempts
    /// were read before the output, so all of its output came before.
    fn close_if_ended(&mut self, number: u32, attempts: &[Attempt]) -> Result<()> {
        let Some(a) = attempts.iter().find(|a| a.number == number) else {
            return Ok(());
        };
        if a.finished_at.is_none() || !self.shown_running.remove(&number) {
            return Ok(());
        }
        self.rule(&format!("── attempt {number} ended · {}", ending(a)))
    }

    /// "── attempt 2 · worker w1 · started 2026-11-30 04:20:01 UTC · exit 1"
    fn header(&mut self, number: u32, attempts: &[Attempt]) -> Result<()> {
        self.headers_shown.insert(number);
        let mut text = format!("── attempt {number}");
        if let Some(a) = attempts.iter().find(|a| a.number == number) {
            text.push_str(&format!(
                " · worker {} · started {} · {}",
                a.worker,
                self.times.at(a.started_at),
                ending(a)
            ));
            if a.finished_at.is_none() {
                self.shown_running.insert(number);
            }
        }
        self.rule(&text)
    }

    /// A bold line of its own (a header or an attempt's end).
    fn rule(&mut self, text: &str) -> Result<()> {
        let line = format!(
            "{}{}\n",
            if self.at_line_start { "" } else { "\n" },
            self.paint.bold(text)
        );
        self.at_line_start = true;
        emit(line.as_bytes())
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.printed += bytes.len() as u64;
        if let Some(kept) = &mut self.json {
            kept.extend_from_slice(bytes);
            return Ok(());
        }
        if !self.decorated {
            return emit(bytes);
        }
        let mark = format!("{} ", self.paint.red("│"));
        let mut marked = Vec::with_capacity(bytes.len() + 16);
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start && stream == Stream::Stderr {
                marked.extend_from_slice(mark.as_bytes());
            }
            marked.extend_from_slice(line);
            self.at_line_start = line.ends_with(b"\n");
        }
        emit(&marked)
    }
}

fn emit(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .context(|| "cannot write output".into())
}

/// How an attempt ended, for its header.
fn ending(a: &Attempt) -> String {
    if a.finished_at.is_none() {
        return "running".into();
    }
    match (a.outcome, a.exit_code, a.signal) {
        (Some(AttemptOutcome::Succeeded | AttemptOutcome::Failed) | None, Some(code), _) => {
            format!("exit {code}")
        }
        (Some(AttemptOutcome::Failed) | None, None, Some(signal)) => {
            format!("killed by signal {signal}")
        }
        (Some(AttemptOutcome::TimedOut), ..) => "timed out".into(),
        (Some(outcome), ..) => outcome.as_str().replace('_', " "),
        (None, None, None) => "ended".into(),
    }
}

/// Keeps the last `n` lines of each attempt's pieces (sorted by attempt).
fn keep_last_lines(pieces: &mut [Piece], n: usize) {
    let mut start = 0;
    while start < pieces.len() {
        let attempt = pieces[start].attempt;
        let end = start
            + pieces[start..]
                .iter()
                .take_while(|p| p.attempt == attempt)
                .count();
        // Walk back from the end, counting line ends (a last line without
        // one counts too), and cut where the n-th line from the end begins.
        let mut newlines = 0;
        let mut first = true;
        'walk: for i in (start..end).rev() {
            let bytes = &pieces[i].bytes;
            for at in (0..bytes.len()).rev() {
                if bytes[at] != b'\n' {
                    first = false;
                    continue;
                }
                if first {
                    first = false;
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    pieces[i].bytes.drain(..=at);
                    for earlier in &mut pieces[start..i] {
                        earlier.bytes.clear();
                    }
                    break 'walk;
                }
            }
        }
        if n == 0 {
            for piece in &mut pieces[start..end] {
                piece.bytes.clear();
            }
        }
        start = end;
    }
}

/// Ends with what the output alone does not say: that there is none, or
/// that an attempt's output is incomplete.
fn report(id: &str, attempts: &[Attempt], here: &Here, out: Sink) -> Result<()> {
    let attempts: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| out.only.is_none() || Some(a.number) == out.only)
        .collect();
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
        match (out.only, attempts.len()) {
            (Some(n), _) => eprintln!("job '{id}' has no output: its attempt {n} printed nothing"),
            (None, 0) => eprintln!("job '{id}' has no output: it has not run yet"),
            (None, 1) => eprintln!("job '{id}' has no output: its attempt printed nothing"),
            (None, n) => {
                eprintln!("job '{id}' has no output: none of its {n} attempts printed anything")
            }
        }
    }
    for number in truncated {
        eprintln!(
            "note: the output of attempt {number} is incomplete: some of it could not be stored (the worker's log says why)"
        );
    }
    Ok(())
}

/// Adds `path` from byte `offset` to `pieces`, each run labelled by the
/// log's index; returns the new offset.
fn read_file_from(path: &Path, offset: u64, pieces: &mut Vec<Piece>) -> Result<u64> {
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
    // Read after the log: the writer adds a run's label before its bytes,
    // so every byte read above has its label by now.
    let runs = read_index(path);
    let mut at = offset;
    for chunk in labelled(&runs, offset, &bytes) {
        let (attempt, stream) = chunk
            .0
            .map_or((None, Stream::Stdout), |r| (Some(r.attempt), r.stream));
        push(pieces, attempt, stream, chunk.1);
        at += chunk.1.len() as u64;
    }
    Ok(at)
}

/// The log's index, or none (a log from before indexes, or one that cannot
/// be read: the output is then shown unlabelled, never lost).
fn read_index(log: &Path) -> Vec<LogRun> {
    let mut text = Vec::new();
    let read = queuectl::files::read_nofollow(&log_index_path(log))
        .and_then(|mut file| file.read_to_end(&mut text));
    match read {
        Ok(_) => parse_log_index(&text),
        Err(_) => Vec::new(),
    }
}

/// `bytes` (from `offset` in the log) cut where the runs of `runs` begin,
/// each with its run (`None` before the first, or without an index).
fn labelled<'a>(
    runs: &'a [LogRun],
    offset: u64,
    bytes: &'a [u8],
) -> Vec<(Option<&'a LogRun>, &'a [u8])> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut at = offset;
    while !rest.is_empty() {
        let run = runs.iter().rev().find(|r| r.offset <= at);
        let next = runs.iter().find(|r| r.offset > at).map(|r| r.offset);
        let len = next.map_or(rest.len(), |n| ((n - at) as usize).min(rest.len()));
        chunks.push((run, &rest[..len]));
        rest = &rest[len..];
        at += len as u64;
    }
    chunks
}

/// Adds the job's journal entries after `cursor` to `pieces`: `journalctl
/// QUEUECTL_JOB_ID=<id> SYSLOG_IDENTIFIER=queuectl-job` (the worker's own
/// lines about the job carry QUEUECTL_JOB_ID too, under another
/// identifier), as JSON for each entry's attempt and stream. Returns the
/// new cursor.
fn read_journal_after(
    id: &str,
    cursor: Option<&str>,
    pieces: &mut Vec<Piece>,
) -> Result<Option<String>> {
    let mut cmd = Command::new("journalctl");
    cmd.args([
        "--no-pager",
        "--output=json",
        // Long fields whole, not as null.
        "--all",
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
    let mut last = None;
    for line in output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let Ok(entry) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let mut message = match &entry["MESSAGE"] {
            serde_json::Value::String(text) => text.clone().into_bytes(),
            // Bytes that are not printable UTF-8 come as an array of numbers.
            serde_json::Value::Array(bytes) => bytes
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as u8)
                .collect(),
            _ => Vec::new(),
        };
        message.push(b'\n');
        let attempt = entry["QUEUECTL_ATTEMPT"]
            .as_str()
            .and_then(|n| n.parse().ok());
        let stream = match entry["QUEUECTL_STREAM"].as_str() {
            Some("stderr") => Stream::Stderr,
            _ => Stream::Stdout,
        };
        push(pieces, attempt, stream, &message);
        if let Some(cursor) = entry["__CURSOR"].as_str() {
            last = Some(cursor.to_owned());
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(attempt: u32, stream: Stream, text: &str) -> Piece {
        Piece {
            attempt: Some(attempt),
            stream,
            bytes: text.as_bytes().to_vec(),
            notes: Vec::new(),
        }
    }

    fn texts(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
            .collect()
    }

    #[test]
    fn the_last_lines_are_kept_per_attempt_across_streams() {
        let mut pieces = vec![
            piece(1, Stream::Stdout, "a\nb\n"),
            piece(1, Stream::Stderr, "c\n"),
            piece(2, Stream::Stdout, "d\ne"),
        ];
        keep_last_lines(&mut pieces, 2);
        assert_eq!(texts(&pieces), ["b\n", "c\n", "d\ne"]);
        keep_last_lines(&mut pieces, 1);
        assert_eq!(texts(&pieces), ["", "c\n", "e"]);
        keep_last_lines(&mut pieces, 0);
        assert_eq!(texts(&pieces), ["", "", ""]);
    }

    #[test]
    fn log_bytes_are_cut_where_each_run_begins() {
        let runs = parse_log_index(b"1 o 0\n1 e 4\n2 o 6\n");
        let chunks = labelled(&runs, 2, b"b\nE\nsecond\n");
        let shown: Vec<_> = chunks
            .iter()
            .map(|(run, bytes)| {
                (
                    run.map(|r| (r.attempt, r.stream)),
                    String::from_utf8_lossy(bytes).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (Some((1, Stream::Stdout)), "b\n".to_owned()),
                (Some((1, Stream::Stderr)), "E\n".to_owned()),
                (Some((2, Stream::Stdout)), "second\n".to_owned()),
            ]
        );
        assert_eq!(labelled(&[], 0, b"x\n")[0].0, None, "no index: unlabelled");
    }
}
