//! The process runner: starts one job attempt as a child process in its own
//! process group, streams its output to a sink line by line, and reports its
//! exit (after its output is drained) as one event on the worker's channel.
//! It decides nothing about retries and never touches the database.

mod spawn;

use crate::output::{OutputSink, Stream};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use spawn::ProcessSpec;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How much of the end of stderr is kept as the attempt's error.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// How long to wait for output pipes after the job's processes are gone; a
/// daemonized grandchild may hold them open forever.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What to run.
pub struct JobCommand<'a> {
    pub job_id: &'a str,
    pub attempt: u32,
    pub command: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a str>,
}

/// How a job's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The last bytes of stderr, lossily decoded and trimmed.
    pub stderr_tail: String,
}

impl JobExit {
    fn from_status(status: ExitStatus, stderr_tail: String) -> JobExit {
        JobExit {
            code: status.code(),
            signal: status.signal(),
            stderr_tail,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A started job. Dropping it does not stop the process: call [`signal`].
pub struct RunningJob {
    pgid: Pid,
}

impl RunningJob {
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw() as u32
    }

    /// Sends `signal` to every process in the job's group.
    pub fn signal(&self, signal: Signal) {
        // ESRCH just means the group is already gone.
        let _ = killpg(self.pgid, signal);
    }
}

/// Variables of the worker's systemd service that a job must not inherit:
/// a job speaking on the worker's notify socket would confuse systemd.
const WORKER_ONLY_VARS: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// Shell keywords that also exist as programs but mean something else to a shell.
const SHELL_KEYWORDS: [&str; 16] = [
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done",
    "function", "select", "time", "coproc",
];

/// The words of a command that needs no shell: only plain characters, no
/// quoting, globbing, expansion, redirection or variable assignment. Such a
/// command is executed directly, which halves the cost of starting it.
pub fn plain_words(command: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:,+@%-=".contains(c);
    if !command.chars().all(|c| plain(c) || c == ' ' || c == '\t') {
        return None;
    }
    let words: Vec<&str> = command.split_ascii_whitespace().collect();
    let first = *words.first()?;
    if first.contains('=') || SHELL_KEYWORDS.contains(&first) {
        return None;
    }
    Some(words)
}

/// The job's environment: the worker's, minus its service-only variables,
/// plus the job's own and `QUEUECTL_JOB_ID`/`QUEUECTL_JOB_ATTEMPT`.
fn job_env(job: &JobCommand) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os()
        .filter(|(key, _)| !WORKER_ONLY_VARS.iter().any(|var| key == var))
        .collect();
    for (key, value) in job.env {
        env.insert(key.into(), value.into());
    }
    env.insert("QUEUECTL_JOB_ID".into(), job.job_id.into());
    env.insert(
        "QUEUECTL_JOB_ATTEMPT".into(),
        job.attempt.to_string().into(),
    );
    env.into_iter().collect()
}

fn process_spec(
    job: &JobCommand,
    env: &[(OsString, OsString)],
    direct: bool,
) -> io::Result<ProcessSpec> {
    let cwd = job.cwd.map(OsStr::new);
    match plain_words(job.command).filter(|_| direct) {
        Some(words) => {
            let argv: Vec<&OsStr> = words.iter().map(OsStr::new).collect();
            ProcessSpec::new(&argv, env, cwd)
        }
        None => {
            let argv = ["/bin/sh", "-c", job.command].map(OsStr::new);
            ProcessSpec::new(&argv, env, cwd)
        }
    }
}

/// Starts the job. When its processes are gone and its output drained, sends
/// `E::from(JobExit)` on `events`.
pub fn spawn<E: From<JobExit> + Send + 'static>(
    job: &JobCommand,
    sink: Box<dyn OutputSink>,
    events: Sender<E>,
) -> io::Result<RunningJob> {
    let env = job_env(job);
    let child = match spawn::spawn(&process_spec(job, &env, true)?) {
        // Not a program (a shell builtin such as `exit 3`, or a typo): let the
        // shell run it, so the job fails the way it would in a terminal.
        Err(e) if e.kind() == io::ErrorKind::NotFound && plain_words(job.command).is_some() => {
            spawn::spawn(&process_spec(job, &env, false)?)?
        }
        other => other?,
    };
    let pid = child.pid;
    // A pidfd lets one thread wait for the exit and the output at once; on
    // kernels without one (before 5.3) the thread checks the exit every 10 ms.
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let pidfd = match unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } {
        -1 => None,
        // SAFETY: a fresh descriptor that nothing else owns.
        fd => Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
    };
    std::thread::Builder::new()
        .name("job-output".into())
        .stack_size(WATCHER_STACK_BYTES)
        .spawn(move || {
            let exit = watch(pid, pidfd, child.stdout, child.stderr, sink);
            let _ = events.send(E::from(exit));
        })
        .inspect_err(|_| {
            // No thread to reap it: do not leave the job running unwatched.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = reap(pid);
        })?;
    Ok(RunningJob {
        pgid: Pid::from_raw(pid),
    })
}

/// The watcher thread needs little: a read buffer lives on the heap.
const WATCHER_STACK_BYTES: usize = 64 * 1024;

/// Copies the job's output to the sink line by line while waiting for its
/// main process to exit; then kills what it left in its group, reaps it, and
/// drains the pipes (for at most [`DRAIN_GRACE`], since a daemonized
/// grandchild may hold them open forever).
fn watch(
    pid: i32,
    pidfd: Option<OwnedFd>,
    stdout: File,
    stderr: File,
    mut sink: Box<dyn OutputSink>,
) -> JobExit {
    let mut streams = [
        Some(LineReader::new(stdout, Stream::Stdout)),
        Some(LineReader::new(stderr, Stream::Stderr)),
    ];
    let mut status: Option<ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut stderr_tail = String::new();
    loop {
        if status.is_some() && streams.iter().all(Option::is_none) {
            break;
        }
        let timeout_ms = match (status, drain_until, &pidfd) {
            (Some(_), Some(until), _) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.as_millis().clamp(1, 60_000) as libc::c_int
            }
            (None, _, None) => 10,
            _ => -1,
        };
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
        for reader in streams.iter().flatten() {
            fds.push(pollfd(reader.file.as_raw_fd()));
        }
        let watch_exit = status.is_none() && pidfd.is_some();
        if let (true, Some(fd)) = (watch_exit, &pidfd) {
            fds.push(pollfd(fd.as_raw_fd()));
        }
        // SAFETY: fds is a valid array of pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
        let mut next = 0;
        for slot in streams.iter_mut() {
            let Some(reader) = slot else { continue };
            let revents = fds[next].revents;
            next += 1;
            if revents == 0 {
                continue;
            }
            if !reader.read(&mut buf, sink.as_mut()) {
                if reader.stream == Stream::Stderr {
                    stderr_tail = reader.tail();
                }
                *slot = None;
            }
        }
        let exited = match (&pidfd, status) {
            (_, Some(_)) => false,
            (Some(_), None) => fds.get(next).is_some_and(|p| p.revents != 0),
            (None, None) => has_exited(pid),
        };
        if exited {
            // Kill whatever the job left in its group before reaping its main
            // process, so the group id cannot have been reused.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            status = Some(reap(pid));
            drain_until = Some(Instant::now() + DRAIN_GRACE);
        }
    }
    // Output still unread after the grace stays unread; a partial last line
    // that did arrive is kept.
    for reader in streams.iter_mut().flatten() {
        reader.finish(sink.as_mut());
        if reader.stream == Stream::Stderr {
            stderr_tail = reader.tail();
        }
    }
    sink.flush();
    let status = status.unwrap_or_else(|| ExitStatus::from_raw(Signal::SIGKILL as i32));
    JobExit::from_status(status, stderr_tail)
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Whether `pid` has exited (without reaping it).
fn has_exited(pid: i32) -> bool {
    matches!(
        waitid(
            Id::Pid(Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG
        ),
        Ok(status) if status != nix::sys::wait::WaitStatus::StillAlive
    )
}

/// Reaps `pid`; a process someone else reaped is reported as killed.
fn reap(pid: i32) -> ExitStatus {
    let mut raw = 0;
    loop {
        // SAFETY: pid is our child; raw is valid storage for its status.
        match unsafe { libc::waitpid(pid, &mut raw, 0) } {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return ExitStatus::from_raw(Signal::SIGKILL as i32),
            _ => return ExitStatus::from_raw(raw),
        }
    }
}

/// One of the job's output pipes, cut into lines for the sink.
struct LineReader {
    file: File,
    stream: Stream,
    /// The current line, until its newline arrives.
    line: Vec<u8>,
    /// The end of stderr, for the attempt's error.
    tail: Vec<u8>,
}

impl LineReader {
    fn new(file: File, stream: Stream) -> LineReader {
        LineReader {
            file,
            stream,
            line: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// Reads what is available and passes on every complete line. Returns
    /// false at end of file (after passing on a final partial line).
    fn read(&mut self, buf: &mut [u8], sink: &mut dyn OutputSink) -> bool {
        let n = loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break 0,
                Ok(n) => break n,
            }
        };
        if n == 0 {
            self.finish(sink);
            return false;
        }
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(end + 1);
            if self.line.is_empty() {
                self.emit(head, sink);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.emit(&line, sink);
            }
            rest = tail;
        }
        self.line.extend_from_slice(rest);
        true
    }

    /// Passes on a final line that has no newline.
    fn finish(&mut self, sink: &mut dyn OutputSink) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.emit(&line, sink);
        }
    }

    fn emit(&mut self, line: &[u8], sink: &mut dyn OutputSink) {
        sink.line(self.stream, line);
        if self.stream == Stream::Stderr {
            self.tail.extend_from_slice(line);
            if self.tail.len() > 2 * STDERR_TAIL_BYTES {
                self.tail.drain(..self.tail.len() - STDERR_TAIL_BYTES);
            }
        }
    }

    fn tail(&self) -> String {
        let start = self.tail.len().saturating_sub(STDERR_TAIL_BYTES);
        String::from_utf8_lossy(&self.tail[start..])
            .trim()
            .to_owned()
    }
}

/// Kills every process still carrying `QUEUECTL_JOB_ID=<job_id>` in its
/// environment: what a dead worker's job left running (a shell's children
/// outlive the parent-death signal). Called before the job's expired lease is
/// rescued, so a job never runs twice at once. Returns how many were killed.
pub fn kill_leftovers(job_id: &str) -> usize {
    let needle = format!("QUEUECTL_JOB_ID={job_id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands_skip_the_shell() {
        assert_eq!(plain_words("true"), Some(vec!["true"]));
        assert_eq!(plain_words("  sleep   5 "), Some(vec!["sleep", "5"]));
        assert_eq!(
            plain_words("/usr/bin/env A=1 printenv A"),
            Some(vec!["/usr/bin/env", "A=1", "printenv", "A"])
        );
        for shell in [
            "echo $HOME",
            "ls *.txt",
            "a && b",
            "a; b",
            "echo 'x'",
            "cat < f",
            "A=1 env",
            "time sleep 1",
            "echo ~",
            "if true",
            "a | b",
            "echo \\n",
            "",
        ] {
            assert_eq!(plain_words(shell), None, "{shell:?} needs a shell");
        }
    }
}
