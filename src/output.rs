//! Where a job's output goes: a per-job log file, or the journal with
//! structured fields (`JOB_ID`, `JOB_ATTEMPT`, `JOB_STREAM`).

use crate::error::{IoContext, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

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
pub struct FileSink {
    file: BufWriter<File>,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<FileSink> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .context(|| format!("cannot open job log {}", path.display()))?;
        Ok(FileSink {
            file: BufWriter::new(file),
        })
    }
}

impl OutputSink for FileSink {
    fn line(&mut self, _stream: Stream, line: &[u8]) {
        if let Err(e) = self.file.write_all(line) {
            tracing::warn!(error = %e, "cannot write job output");
        }
        // Flush per line so `logs -f` sees output as it happens.
        let _ = self.file.flush();
    }

    fn flush(&mut self) {
        let _ = self.file.flush();
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
            ("JOB_ID", self.job_id.as_str()),
            ("JOB_ATTEMPT", attempt.as_str()),
            ("JOB_STREAM", stream.as_str()),
            ("QUEUECTL_WORKER", self.worker.as_str()),
            ("SYSLOG_IDENTIFIER", JOB_SYSLOG_IDENTIFIER),
        ];
        if let Err(e) = libsystemd::logging::journal_send(priority, text, fields.into_iter()) {
            tracing::warn!(error = %e, job_id = %self.job_id, "cannot send job output to the journal");
        }
    }
}
