//! Where a job's output goes: a per-job log file, or the journal with
//! structured fields (`QUEUECTL_JOB_ID`, `QUEUECTL_ATTEMPT`, `QUEUECTL_STREAM`;
//! never `JOB_ID`, which is systemd's own field for its job numbers).

use crate::error::{IoContext, Result};
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
/// newline). Implementations must not fail the job: output errors are logged.
pub trait OutputSink: Send {
    fn line(&mut self, stream: Stream, line: &[u8]);
    fn flush(&mut self) {}
}

/// Appends both streams to `logs/<job id>.log`, as a terminal would show them.
/// The file is created with the job's first line of output, so a silent job
/// costs no file (creating one is a large share of a short job's overhead).
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    failed: bool,
}

impl FileSink {
    /// Opens the log now (creating it empty if need be).
    pub fn open(path: &Path) -> Result<FileSink> {
        let mut sink = FileSink::lazy(path);
        sink.file = Some(open_log(path)?);
        Ok(sink)
    }

    /// A sink that creates the log only when the first line arrives.
    pub fn lazy(path: &Path) -> FileSink {
        FileSink {
            path: path.to_owned(),
            file: None,
            failed: false,
        }
    }

    fn file(&mut self) -> Option<&mut File> {
        if self.file.is_none() && !self.failed {
            match open_log(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(e) => {
                    self.failed = true;
                    tracing::warn!(error = %e, "job output is lost");
                }
            }
        }
        self.file.as_mut()
    }
}

/// Private whatever the umask, and never through a symlink planted at the
/// log's name (or at `logs/` itself).
fn open_log(path: &Path) -> Result<File> {
    crate::files::append_private(path).context(|| format!("cannot open job log {}", path.display()))
}

impl OutputSink for FileSink {
    fn line(&mut self, _stream: Stream, line: &[u8]) {
        // Unbuffered, so `logs -f` sees each line as it happens.
        if let Some(file) = self.file()
            && let Err(e) = file.write_all(line)
        {
            tracing::warn!(error = %e, "cannot write job output");
        }
    }
}

/// Sends each line to journald as its own entry with the job's fields.
pub struct JournalSink {
    pub job_id: String,
    pub attempt: u32,
    pub worker: String,
}

/// The `SYSLOG_IDENTIFIER` of job output entries.
pub const JOB_SYSLOG_IDENTIFIER: &str = "queuectl-job";

impl OutputSink for JournalSink {
    fn line(&mut self, stream: Stream, line: &[u8]) {
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
        if let Err(e) = libsystemd::logging::journal_send(priority, text, fields.into_iter()) {
            tracing::warn!(error = %e, job_id = %self.job_id, "cannot send job output to the journal");
        }
    }
}
