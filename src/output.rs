//! Where a job's output goes: a per-job log file, or the journal (falling
//! back to the log file when the journal cannot be reached) with
//! structured fields (`QUEUECTL_JOB_ID`, `QUEUECTL_ATTEMPT`, `QUEUECTL_STREAM`;
//! never `JOB_ID`, which is systemd's own field for its job numbers).
//! Beside the sink, the last [`OUTPUT_TAIL_BYTES`] of each attempt's output
//! are kept ([`OutputTail`]) and stored with the attempt, so the queue can
//! show them on any host.

use crate::error::{IoContext, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where an attempt's output went; recorded with the attempt so `logs`
/// knows where to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    File,
    Journal,
}

impl Destination {
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::File => "file",
            Destination::Journal => "journal",
        }
    }

    pub fn parse(text: &str) -> Option<Destination> {
        [Destination::File, Destination::Journal]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

/// What became of an attempt's output, reported with the job's exit and
/// recorded with the attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputReport {
    /// Where the output is. `Journal` when any line reached the journal (if
    /// it became unreachable later, the rest is in the log file, which `logs`
    /// always reads); otherwise `File`, also for an attempt that printed
    /// nothing: the journal then holds none of it.
    pub destination: Destination,
    /// Some of the output could not be stored (a full disk, ...).
    pub truncated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Receives a job's output a line at a time (the final line may lack its
/// newline). Implementations must not fail the job: output errors are logged
/// (once per attempt) and reported.
pub trait OutputSink: Send {
    fn line(&mut self, stream: Stream, line: &[u8]);
    fn flush(&mut self) {}
    /// Where the output went and whether all of it was kept.
    fn report(&self) -> OutputReport;
}

/// Appends both streams to `logs/<job id>.log`, as a terminal would show them.
/// The file is created with the job's first line of output, so a silent job
/// costs no file (creating one is a large share of a short job's overhead).
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    /// Why the log could not be opened, once that failed (not retried).
    open_error: Option<String>,
    truncated: bool,
    /// The attempt whose output this is, and the log's index labelling it
    /// (see [`log_index_path`]): `None` until opened, or after it failed.
    attempt: u32,
    index: Option<File>,
    /// The log's size: where the next line goes.
    offset: u64,
    /// The stream of the run being written (a new one gets an index line).
    run: Option<Stream>,
}

impl FileSink {
    /// A sink for `attempt`'s output that creates the log (and its index)
    /// only when the first line arrives.
    pub fn lazy(path: &Path, attempt: u32) -> FileSink {
        FileSink {
            path: path.to_owned(),
            file: None,
            open_error: None,
            truncated: false,
            attempt,
            index: None,
            offset: 0,
            run: None,
        }
    }

    fn write(&mut self, stream: Stream, line: &[u8]) -> std::result::Result<(), String> {
        if let Some(why) = &self.open_error {
            return Err(why.clone());
        }
        if self.file.is_none() {
            let file = open_log(&self.path).map_err(|e| e.to_string());
            self.open_error = file.as_ref().err().cloned();
            let file = file?;
            self.offset = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.index = open_log(&log_index_path(&self.path))
                .inspect_err(|e| tracing::warn!(error = %e, "job output is not labelled by attempt and stream"))
                .ok();
            self.file = Some(file);
        }
        if self.run != Some(stream) {
            self.label(stream);
        }
        let file = self.file.as_mut().expect("opened above");
        let written = file.write_all(line);
        self.offset = match written {
            Ok(()) => self.offset + line.len() as u64,
            // Part of it may be there.
            Err(_) => file.metadata().map_or(self.offset, |m| m.len()),
        };
        written.map_err(|e| e.to_string())
    }

    /// Starts a run of `stream` at the log's end, in the index first, so a
    /// reader that reads the log and then the index has every byte's label.
    fn label(&mut self, stream: Stream) {
        self.run = Some(stream);
        let Some(index) = &mut self.index else {
            return;
        };
        let line = format_log_run(&LogRun {
            offset: self.offset,
            attempt: self.attempt,
            stream,
        });
        if let Err(e) = index.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "job output is no longer labelled by attempt and stream");
            self.index = None;
        }
    }
}

/// The index beside a job's log (`<id>.log.idx`): which attempt and stream
/// each byte of the log came from, so `logs` can show attempts apart and
/// mark stderr while the log itself stays exactly what the job printed.
/// One line per run of output, `<attempt> <o|e> <offset>`, written before
/// the run's first byte; a run lasts until the next line's offset.
pub fn log_index_path(log: &Path) -> PathBuf {
    let mut path = log.as_os_str().to_owned();
    path.push(".idx");
    PathBuf::from(path)
}

/// A run of one attempt's output on one stream in a job's log, from
/// `offset` to the next run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRun {
    pub offset: u64,
    pub attempt: u32,
    pub stream: Stream,
}

fn format_log_run(run: &LogRun) -> String {
    let stream = match run.stream {
        Stream::Stdout => 'o',
        Stream::Stderr => 'e',
    };
    format!("{} {stream} {}\n", run.attempt, run.offset)
}

/// The runs of an index's text; a line being written (no newline yet) or
/// not understood ends it.
pub fn parse_log_index(text: &[u8]) -> Vec<LogRun> {
    let mut runs = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break;
        };
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split(' ');
        let run = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(attempt), Some(stream), Some(offset), None) => (|| {
                Some(LogRun {
                    attempt: attempt.parse().ok()?,
                    stream: match stream {
                        "o" => Stream::Stdout,
                        "e" => Stream::Stderr,
                        _ => return None,
                    },
                    offset: offset.parse().ok()?,
                })
            })(),
            _ => None,
        };
        match run {
            Some(run) => runs.push(run),
            None => break,
        }
    }
    runs
}

/// Private whatever the umask, and never through a symlink planted at the
/// log's name (or at `logs/` itself).
fn open_log(path: &Path) -> Result<File> {
    crate::files::append_private(path).context(|| format!("cannot open job log {}", path.display()))
}

impl OutputSink for FileSink {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        // Unbuffered, so `logs -f` sees each line as it happens. After a
        // failure later lines are still tried (space may come back), but the
        // attempt's output is incomplete either way.
        if let Err(why) = self.write(stream, line) {
            if !self.truncated {
                tracing::warn!(error = %why, path = %self.path.display(), "job output is cut: it cannot all be written");
            }
            self.truncated = true;
        }
    }

    fn report(&self) -> OutputReport {
        OutputReport {
            destination: Destination::File,
            truncated: self.truncated,
        }
    }
}

/// Sends each line to journald as its own entry with the job's fields. When
/// the journal cannot be reached, this and the attempt's later lines go to
/// the job's log file instead, so nothing is dropped silently.
pub struct JournalSink {
    job_id: String,
    attempt: u32,
    worker: String,
    sent: bool,
    fallback: Option<FileSink>,
    fallback_path: PathBuf,
}

impl JournalSink {
    pub fn new(job_id: &str, attempt: u32, worker: &str, fallback_path: &Path) -> JournalSink {
        JournalSink {
            job_id: job_id.to_owned(),
            attempt,
            worker: worker.to_owned(),
            sent: false,
            fallback: None,
            fallback_path: fallback_path.to_owned(),
        }
    }

    fn send(&self, stream: Stream, line: &[u8]) -> std::result::Result<(), String> {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let priority = match stream {
            Stream::Stdout => libsystemd::logging::Priority::Info,
            Stream::Stderr => libsystemd::logging::Priority::Warning,
        };
        let attempt = self.attempt.to_string();
        let fields = [
            ("QUEUECTL_JOB_ID", self.job_id.as_str()),
            ("QUEUECTL_ATTEMPT", attempt.as_str()),
            ("QUEUECTL_STREAM", stream.as_str()),
            ("QUEUECTL_WORKER", self.worker.as_str()),
            ("SYSLOG_IDENTIFIER", JOB_SYSLOG_IDENTIFIER),
        ];
        libsystemd::logging::journal_send(priority, text, fields.into_iter())
            .map_err(|e| e.to_string())
    }
}

/// The `SYSLOG_IDENTIFIER` of job output entries.
pub const JOB_SYSLOG_IDENTIFIER: &str = "queuectl-job";

impl OutputSink for JournalSink {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        if self.fallback.is_none() {
            match self.send(stream, line) {
                Ok(()) => {
                    self.sent = true;
                    return;
                }
                Err(why) => {
                    tracing::warn!(error = %why, job_id = %self.job_id, path = %self.fallback_path.display(),
                        "the journal is unreachable; this attempt's output goes to the job's log file");
                    self.fallback = Some(FileSink::lazy(&self.fallback_path, self.attempt));
                }
            }
        }
        if let Some(file) = &mut self.fallback {
            file.line(stream, line);
        }
    }

    fn report(&self) -> OutputReport {
        let destination = if self.sent {
            Destination::Journal
        } else {
            Destination::File
        };
        OutputReport {
            destination,
            truncated: self.fallback.as_ref().is_some_and(|f| f.report().truncated),
        }
    }
}

/// How much of the end of an attempt's output the queue keeps with the
/// attempt (`attempts.output_tail`), for `show` and `logs` on hosts other
/// than the one that ran it. 8 KiB holds the last screenful or two (where a
/// failure usually explains itself) while a queue of a million attempts
/// stays within ~8 GB even if every one of them fills it; the full output
/// stays in the journal or the log file on the attempt's host.
pub const OUTPUT_TAIL_BYTES: usize = 8 * 1024;

/// The last [`OUTPUT_TAIL_BYTES`] of an attempt's output, both streams
/// interleaved as written (as the log file holds them), in a ring buffer
/// allocated with the first byte: a silent job costs nothing, a noisy one a
/// copy of each line into memory. Streams are not marked per line: the
/// tail reads the way `logs` shows the full output on the attempt's host.
#[derive(Debug, Default)]
pub struct OutputTail {
    ring: VecDeque<u8>,
    /// Bytes of output seen, kept or not.
    seen: u64,
}

impl OutputTail {
    pub fn new() -> OutputTail {
        OutputTail::default()
    }

    /// Adds `bytes` at the end, forgetting the oldest beyond the limit.
    pub fn push(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        let bytes = &bytes[bytes.len().saturating_sub(OUTPUT_TAIL_BYTES)..];
        if self.ring.capacity() == 0 {
            self.ring.reserve_exact(OUTPUT_TAIL_BYTES);
        }
        let over = (self.ring.len() + bytes.len()).saturating_sub(OUTPUT_TAIL_BYTES);
        self.ring.drain(..over);
        self.ring.extend(bytes);
    }

    /// The kept bytes as text: starting on a character boundary and after a
    /// marker line when earlier output was cut; invalid UTF-8 and NUL (which
    /// a PostgreSQL text column refuses) become U+FFFD.
    pub fn into_text(self) -> String {
        let mut bytes = Vec::from(self.ring);
        let kept_all = self.seen == bytes.len() as u64;
        let mut start = 0;
        // At most three continuation bytes of a character whose start was cut.
        while !kept_all && start < 3 && bytes.get(start).is_some_and(|b| b & 0xC0 == 0x80) {
            start += 1;
        }
        bytes.drain(..start);
        let kept = bytes.len() as u64;
        // Valid UTF-8 without NUL (nearly always) is kept without a copy.
        let mut text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if text.contains('\0') {
            text = text.replace('\0', "\u{FFFD}");
        }
        if !kept_all {
            text.insert_str(0, &tail_cut_marker(self.seen - kept));
        }
        text
    }
}

/// The line that starts a tail whose first `cut` bytes are not kept.
pub fn tail_cut_marker(cut: u64) -> String {
    format!("[... {cut} earlier bytes of output not kept ...]\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(pieces: &[&[u8]]) -> String {
        let mut tail = OutputTail::new();
        for piece in pieces {
            tail.push(piece);
        }
        tail.into_text()
    }

    #[test]
    fn the_log_index_labels_each_run_by_attempt_and_stream() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("j.log");
        let mut first = FileSink::lazy(&log, 1);
        first.line(Stream::Stdout, b"a\n");
        first.line(Stream::Stdout, b"b\n");
        first.line(Stream::Stderr, b"E\n");
        let mut second = FileSink::lazy(&log, 2);
        second.line(Stream::Stdout, b"c");
        assert_eq!(
            std::fs::read(&log).unwrap(),
            b"a\nb\nE\nc",
            "the log is the output"
        );
        let index = std::fs::read(log_index_path(&log)).unwrap();
        assert_eq!(String::from_utf8_lossy(&index), "1 o 0\n1 e 4\n2 o 6\n");
        let run = |offset, attempt, stream| LogRun {
            offset,
            attempt,
            stream,
        };
        assert_eq!(
            parse_log_index(&index),
            [
                run(0, 1, Stream::Stdout),
                run(4, 1, Stream::Stderr),
                run(6, 2, Stream::Stdout)
            ]
        );
        // A line still being written ends it.
        assert_eq!(parse_log_index(b"1 o 0\n2 e 4").len(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(log_index_path(&log))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn short_output_is_kept_whole_without_a_marker() {
        assert_eq!(tail_of(&[]), "");
        assert_eq!(tail_of(&[b"out\n", b"err\n", b"last"]), "out\nerr\nlast");
    }

    #[test]
    fn long_output_keeps_exactly_the_last_bytes_after_a_marker() {
        let lines: Vec<String> = (0..20_000).map(|i| format!("{i}\n")).collect();
        let all = lines.concat();
        let pieces: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let kept = &all[all.len() - OUTPUT_TAIL_BYTES..];
        let cut = (all.len() - OUTPUT_TAIL_BYTES) as u64;
        assert_eq!(tail_of(&pieces), format!("{}{kept}", tail_cut_marker(cut)));
        // One line longer than the whole tail.
        let huge = "x".repeat(3 * OUTPUT_TAIL_BYTES) + "end";
        let text = tail_of(&[b"first\n", huge.as_bytes()]);
        let cut = ("first\n".len() + huge.len() - OUTPUT_TAIL_BYTES) as u64;
        let kept = &huge[huge.len() - OUTPUT_TAIL_BYTES..];
        assert_eq!(text, format!("{}{kept}", tail_cut_marker(cut)));
    }

    #[test]
    fn a_cut_starts_on_a_character_boundary() {
        // "é" is two bytes, "€" three: whichever way the limit falls, the
        // text starts with a whole character.
        for pad in 0..3 {
            let body = "x".repeat(pad) + &"é€".repeat(OUTPUT_TAIL_BYTES);
            let text = tail_of(&[body.as_bytes()]);
            let after = text.split_once("...]\n").unwrap().1;
            assert!(after.starts_with('é') || after.starts_with('€'), "{pad}");
            assert!(!after.contains('\u{FFFD}'));
            assert!(body.ends_with(after));
        }
    }

    #[test]
    fn nul_and_invalid_bytes_become_replacement_characters() {
        assert_eq!(tail_of(&[b"a\0b\xffc"]), "a\u{FFFD}b\u{FFFD}c");
    }
}
