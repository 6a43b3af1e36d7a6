//! The process runner: starts one job attempt as a child process in its own
//! process group, streams its output to a sink line by line, and reports its
//! exit (after its output is drained) as one event on the worker's channel.
//! It decides nothing about retries and never touches the database.

use crate::output::{OutputSink, Stream};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

fn build(job: &JobCommand, direct: bool) -> Command {
    let mut cmd = match plain_words(job.command).filter(|_| direct) {
        Some(words) => {
            let mut cmd = Command::new(words[0]);
            cmd.args(&words[1..]);
            cmd
        }
        None => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(job.command);
            cmd
        }
    };
    for var in WORKER_ONLY_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(job.env)
        .env("QUEUECTL_JOB_ID", job.job_id)
        .env("QUEUECTL_JOB_ATTEMPT", job.attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = job.cwd {
        cmd.current_dir(dir);
    }
    // If the worker dies (kill -9, OOM), take the job's main process with it,
    // so the job does not go on running while its lease expires and another
    // worker starts it again.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Starts the job. When its processes are gone and its output drained, sends
/// `E::from(JobExit)` on `events`.
pub fn spawn<E: From<JobExit> + Send + 'static>(
    job: &JobCommand,
    sink: Box<dyn OutputSink>,
    events: Sender<E>,
) -> io::Result<RunningJob> {
    let mut child = match build(job, true).spawn() {
        // Not a program (a shell builtin such as `exit 3`, or a typo): let the
        // shell run it, so the job fails the way it would in a terminal.
        Err(e) if e.kind() == io::ErrorKind::NotFound && plain_words(job.command).is_some() => {
            build(job, false).spawn()?
        }
        other => other?,
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let sink = Arc::new(Mutex::new(sink));
    let (drained_tx, drained_rx) = mpsc::channel::<(Stream, String)>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    for (stream, pipe) in [
        (Stream::Stdout, Box::new(stdout) as Box<dyn Read + Send>),
        (Stream::Stderr, Box::new(stderr)),
    ] {
        let sink = Arc::clone(&sink);
        let drained_tx = drained_tx.clone();
        std::thread::spawn(move || {
            let tail = copy_lines(pipe, stream, &sink);
            let _ = drained_tx.send((stream, tail));
        });
    }
    drop(drained_tx);
    std::thread::spawn(move || {
        let status = wait_and_clean_up(&mut child, pgid);
        let mut stderr_tail = String::new();
        let deadline = std::time::Instant::now() + DRAIN_GRACE;
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match drained_rx.recv_timeout(left) {
                Ok((Stream::Stderr, tail)) => stderr_tail = tail,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        sink.lock().unwrap_or_else(|p| p.into_inner()).flush();
        let _ = events.send(E::from(JobExit::from_status(status, stderr_tail)));
    });
    Ok(RunningJob { pgid })
}

/// Waits for the job's main process, kills whatever it left running in its
/// group (before reaping it, so the group id cannot have been reused), then
/// reaps it.
fn wait_and_clean_up(child: &mut Child, pgid: Pid) -> ExitStatus {
    let _ = waitid(Id::Pid(pgid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
    let _ = killpg(pgid, Signal::SIGKILL);
    loop {
        match child.wait() {
            Ok(status) => return status,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Only if someone else reaped it; report it as killed.
            Err(_) => return ExitStatus::from_raw(Signal::SIGKILL as i32),
        }
    }
}

/// Copies `pipe` to the sink a line at a time; returns the stream's tail.
fn copy_lines(
    pipe: Box<dyn Read + Send>,
    stream: Stream,
    sink: &Mutex<Box<dyn OutputSink>>,
) -> String {
    let mut reader = BufReader::with_capacity(64 * 1024, pipe);
    let mut line = Vec::with_capacity(1024);
    let mut tail: Vec<u8> = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .line(stream, &line);
                if stream == Stream::Stderr {
                    tail.extend_from_slice(&line);
                    if tail.len() > 2 * STDERR_TAIL_BYTES {
                        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let start = tail.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&tail[start..]).trim().to_owned()
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
