use super::Context;
use queuectl::error::{Error, IoContext, Result};
use queuectl::output::{Destination, JOB_SYSLOG_IDENTIFIER};
use queuectl::store::OpenMode;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How often `logs -f` looks for new output and for the job's end.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub fn run(ctx: &Context, id: &str, follow: bool) -> Result<()> {
    let store = ctx.store(OpenMode::ReadOnly)?;
    store.get(id)?; // not found → exit 3
    let attempts = store.attempts(id)?;
    let in_journal = attempts.iter().any(|a| a.output == Destination::Journal);
    let path = ctx.state.job_log(id);
    let mut offset = print_file_from(&path, 0)?;
    if in_journal {
        return journal(ctx, id, follow);
    }
    if !follow {
        return Ok(());
    }
    loop {
        let finished = store.get(id)?.state.is_terminal();
        offset = print_file_from(&path, offset)?;
        if finished {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints `path` from byte `offset`; returns the new offset.
fn print_file_from(path: &std::path::Path, offset: u64) -> Result<u64> {
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
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|_| out.flush())
        .context(|| "cannot write output".into())?;
    Ok(offset + bytes.len() as u64)
}

/// Job output that went to journald: `journalctl QUEUECTL_JOB_ID=<id>
/// SYSLOG_IDENTIFIER=queuectl-job` (the worker's own lines about the job carry
/// QUEUECTL_JOB_ID too, under another identifier). Following
/// reads on from the last cursor until the job has finished.
fn journal(ctx: &Context, id: &str, follow: bool) -> Result<()> {
    let store = ctx.store(OpenMode::ReadOnly)?;
    let mut cursor: Option<String> = None;
    loop {
        // Read the state first, so output written before the job finished is
        // always picked up by the read that follows.
        let finished = !follow || store.get(id)?.state.is_terminal();
        cursor = print_journal_after(id, cursor.as_deref())?.or(cursor);
        if finished {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints the job's journal entries after `cursor`; returns the new cursor.
fn print_journal_after(id: &str, cursor: Option<&str>) -> Result<Option<String>> {
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
        .stderr(Stdio::inherit())
        .output()
        .context(|| "cannot run journalctl".into())?;
    if !output.status.success() {
        return Err(Error::Supervisor(format!(
            "journalctl failed ({})",
            output.status
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
    let mut out = std::io::stdout().lock();
    out.write_all(body)
        .and_then(|_| out.flush())
        .context(|| "cannot write output".into())?;
    Ok(new_cursor)
}
