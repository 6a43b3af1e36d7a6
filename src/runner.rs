//! The process runner: starts one job attempt as a child process in its own
//! process group (with a vfork-style spawn, see `runner/spawn.rs`), streams
//! its output to a sink line by line (keeping its tail for the queue), and
//! reports its exit (after its output is drained) as one event on the
//! worker's channel. One job-watcher thread
//! per process follows every running job. It decides nothing about retries
//! and never touches the database.

pub mod contain;
mod spawn;

pub use spawn::{in_new_session, killed_with_parent};

use crate::output::{OutputReport, OutputSink, OutputTail, Stream};
use contain::AttemptCgroup;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use spawn::{EnvEntry, ProcessSpec, env_entry};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Mutex, OnceLock};
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
    /// The attempt's unguessable token (`QUEUECTL_ATTEMPT_TOKEN`).
    pub token: &'a str,
    /// The attempt's own cgroup, created here, if attempts get one.
    pub cgroup: Option<&'a str>,
    pub command: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a str>,
}

/// How a job's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobExit {
    /// The job's main process (and process group): which job this was.
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The last bytes of stderr, lossily decoded and trimmed.
    pub stderr_tail: String,
    /// Where its output went, and whether all of it was kept.
    pub output: OutputReport,
    /// The end of its output, both streams ([`OutputTail`]).
    pub output_tail: String,
}

impl JobExit {
    fn from_status(
        pid: u32,
        status: ExitStatus,
        stderr_tail: String,
        output: JobOutput,
    ) -> JobExit {
        JobExit {
            pid,
            code: status.code(),
            signal: status.signal(),
            stderr_tail,
            output: output.sink.report(),
            output_tail: output.tail.into_text(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A started job. Dropping it does not stop the process: call [`signal`].
#[derive(Clone, Debug)]
pub struct RunningJob {
    pgid: Pid,
    cgroup: Option<AttemptCgroup>,
}

impl RunningJob {
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw() as u32
    }

    /// Sends `signal` to every process in the job's group; SIGKILL also
    /// goes to every process in its cgroup, wherever it went since.
    pub fn signal(&self, signal: Signal) {
        // ESRCH just means the group is already gone.
        let _ = killpg(self.pgid, signal);
        if let (Signal::SIGKILL, Some(cgroup)) = (signal, &self.cgroup) {
            cgroup.signal_kill();
        }
    }
}

/// Variables of the worker's systemd service that a job must not inherit:
/// a job speaking on the worker's notify socket would confuse systemd.
const WORKER_ONLY_VARS: [&str; 9] = [
    contain::DELEGATED_VAR,
    // How the worker reaches a PostgreSQL queue: not the job's business.
    "PGPASSWORD",
    "QUEUECTL_DB_PASSWORD_FILE",
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

/// The worker's environment minus its service-only variables, as
/// `KEY=VALUE` strings, read once at the first spawn (building it anew was
/// ~120 allocations per job). The worker never changes its environment.
static BASE_ENV: OnceLock<Vec<(OsString, CString)>> = OnceLock::new();

fn base_env() -> &'static [(OsString, CString)] {
    BASE_ENV.get_or_init(|| {
        std::env::vars_os()
            .filter(|(key, _)| !WORKER_ONLY_VARS.iter().any(|var| key == var))
            .filter_map(|(key, value)| Some((key.clone(), env_entry(&key, &value).ok()?)))
            .collect()
    })
}

/// The job's environment: the worker's, minus its service-only variables,
/// plus the job's own and `QUEUECTL_JOB_ID`/`QUEUECTL_JOB_ATTEMPT`/
/// `QUEUECTL_ATTEMPT_TOKEN`. Also returns the `PATH` the program is looked
/// up in.
fn job_env(job: &JobCommand) -> io::Result<(Vec<EnvEntry>, Option<Vec<u8>>)> {
    let attempt = job.attempt.to_string();
    let own = [
        ("QUEUECTL_JOB_ID", job.job_id),
        ("QUEUECTL_JOB_ATTEMPT", attempt.as_str()),
        (contain::TOKEN_VAR, job.token),
    ];
    let replaced = |key: &OsStr| {
        key.to_str()
            .is_some_and(|k| job.env.contains_key(k) || own.iter().any(|(o, _)| *o == k))
    };
    let mut envp: Vec<EnvEntry> = Vec::with_capacity(base_env().len() + job.env.len() + own.len());
    let mut path = None;
    for (key, entry) in base_env() {
        if replaced(key) {
            continue;
        }
        if key == "PATH" {
            path = entry.to_bytes().strip_prefix(b"PATH=").map(<[u8]>::to_vec);
        }
        envp.push(Cow::Borrowed(entry.as_c_str()));
    }
    // queuectl's own variables win over a job's (an older queue may hold a
    // job that sets one): a job must never choose its attempt's token.
    for (key, value) in job
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
        .chain(own)
    {
        if key == "PATH" {
            path = Some(value.as_bytes().to_vec());
        }
        envp.push(Cow::Owned(env_entry(OsStr::new(key), OsStr::new(value))?));
    }
    Ok((envp, path))
}

fn process_spec(
    job: &JobCommand,
    (envp, path): &(Vec<EnvEntry>, Option<Vec<u8>>),
    direct: bool,
) -> io::Result<ProcessSpec> {
    let cwd = job.cwd.map(OsStr::new);
    match plain_words(job.command).filter(|_| direct) {
        Some(words) => {
            let argv: Vec<&OsStr> = words.iter().map(OsStr::new).collect();
            ProcessSpec::with_envp(&argv, envp.clone(), path.as_deref(), cwd)
        }
        None => {
            let argv = ["/bin/sh", "-c", job.command].map(OsStr::new);
            ProcessSpec::with_envp(&argv, envp.clone(), path.as_deref(), cwd)
        }
    }
}

/// Starts the job (in its own cgroup when `job.cgroup` names one). When its
/// processes are gone and its output drained, sends `E::from(JobExit)` on
/// `events`.
pub fn spawn<E: From<JobExit> + Send + 'static>(
    job: &JobCommand,
    sink: Box<dyn OutputSink>,
    events: Sender<E>,
) -> io::Result<RunningJob> {
    let env = job_env(job)?;
    let cgroup = job.cgroup.map(AttemptCgroup::create).transpose()?;
    let spec = |direct| {
        let spec = process_spec(job, &env, direct)?;
        Ok::<_, io::Error>(match &cgroup {
            Some((_, dir)) => spec.in_cgroup(dir),
            None => spec,
        })
    };
    let started = match spawn::spawn(&spec(true)?) {
        // Not a program (a shell builtin such as `exit 3`, or a typo): let the
        // shell run it, so the job fails the way it would in a terminal. A
        // missing working directory stops the shell just the same.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                && !spawn::is_cwd_failure(&e)
                && plain_words(job.command).is_some() =>
        {
            spec(false).and_then(|spec| spawn::spawn(&spec))
        }
        other => other,
    };
    let cgroup = cgroup.map(|(cgroup, _dir)| cgroup);
    let child = match started {
        Ok(child) => child,
        Err(e) => {
            if let Some(cgroup) = &cgroup {
                cgroup.kill_and_remove();
            }
            return Err(e);
        }
    };
    let pid = child.pid;
    let job = Watched {
        pid,
        // Without a pidfd (kernels before 5.3) the watcher checks for the
        // exit every 10 ms.
        pidfd: child.pidfd.or_else(|| spawn::pidfd_open(pid)),
        streams: [
            Some(LineReader::new(child.stdout, Stream::Stdout)),
            Some(LineReader::new(child.stderr, Stream::Stderr)),
        ],
        status: None,
        drain_until: None,
        stderr_tail: String::new(),
        cgroup: cgroup.clone(),
        output: JobOutput {
            sink,
            tail: OutputTail::new(),
        },
        on_exit: Box::new(move |exit| {
            let _ = events.send(E::from(exit));
        }),
    };
    if let Err(e) = watcher().and_then(|w| w.add(job)) {
        // Nobody would reap it: do not leave the job running unwatched.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        if let Some(cgroup) = &cgroup {
            cgroup.signal_kill();
        }
        let _ = reap(pid);
        if let Some(cgroup) = &cgroup {
            cgroup.kill_and_remove();
        }
        return Err(e);
    }
    Ok(RunningJob {
        pgid: Pid::from_raw(pid),
        cgroup,
    })
}

/// How often exits are checked without a pidfd.
const EXIT_POLL_MS: libc::c_int = 10;

/// One thread per process watches every running job: it copies their output
/// to their sinks, reaps them and reports their exits. (A thread per job
/// cost a thread start and exit, with their stack and signal-stack mappings,
/// on every job.)
struct Watcher {
    jobs: Mutex<Sender<Watched>>,
    /// An eventfd that tells the thread a job was added.
    wake: OwnedFd,
}

static WATCHER: OnceLock<io::Result<Watcher>> = OnceLock::new();

fn watcher() -> io::Result<&'static Watcher> {
    WATCHER
        .get_or_init(Watcher::start)
        .as_ref()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the job watcher: {e}")))
}

impl Watcher {
    fn start() -> io::Result<Watcher> {
        let wake: OwnedFd =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?
                .into();
        let thread_wake = wake.try_clone()?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("job-watcher".into())
            .spawn(move || watch_jobs(&thread_wake, &rx))?;
        Ok(Watcher {
            jobs: Mutex::new(tx),
            wake,
        })
    }

    fn add(&self, job: Watched) -> io::Result<()> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| io::Error::other("the job watcher has stopped"))?;
        // A full counter (never, at one per job) would only mean it is awake.
        let _ = nix::unistd::write(&self.wake, &1u64.to_ne_bytes());
        Ok(())
    }
}

/// A running job as the watcher sees it.
struct Watched {
    pid: i32,
    pidfd: Option<OwnedFd>,
    streams: [Option<LineReader>; 2],
    status: Option<ExitStatus>,
    /// Once the main process is reaped: how long its pipes may still be read.
    drain_until: Option<Instant>,
    stderr_tail: String,
    /// The attempt's cgroup: whatever is left in it dies with the job's
    /// main process, and the cgroup is removed.
    cgroup: Option<AttemptCgroup>,
    output: JobOutput,
    on_exit: Box<dyn FnOnce(JobExit) + Send>,
}

/// Where each line of a job's output goes: its sink, and the tail the queue
/// keeps.
struct JobOutput {
    sink: Box<dyn OutputSink>,
    tail: OutputTail,
}

impl JobOutput {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        self.tail.push(line);
        self.sink.line(stream, line);
    }
}

impl Watched {
    /// Adds this job's descriptors to `fds`.
    fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        for reader in self.streams.iter().flatten() {
            fds.push(PollFd::new(reader.file.as_fd(), PollFlags::POLLIN));
        }
        if let (None, Some(fd)) = (self.status, &self.pidfd) {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
    }

    /// The longest the watcher may sleep on this job's account.
    fn timeout_ms(&self, now: Instant) -> libc::c_int {
        match (self.status, self.drain_until, &self.pidfd) {
            (Some(_), Some(until), _) => {
                until.saturating_duration_since(now).as_millis().min(60_000) as libc::c_int
            }
            (None, _, None) => EXIT_POLL_MS,
            _ => -1,
        }
    }

    /// Handles this job's share of a poll result (whether each of its
    /// descriptors is ready, in the order [`poll_fds`] added them). Returns
    /// whether it is done.
    fn on_poll(&mut self, ready: &[bool], buf: &mut [u8]) -> bool {
        let mut next = 0;
        for slot in self.streams.iter_mut() {
            let Some(reader) = slot else { continue };
            let readable = ready.get(next).copied().unwrap_or(false);
            next += 1;
            if readable && !reader.read(buf, &mut self.output) {
                if reader.stream == Stream::Stderr {
                    self.stderr_tail = reader.tail();
                }
                *slot = None;
            }
        }
        let exited = match (&self.pidfd, self.status) {
            (_, Some(_)) => false,
            (Some(_), None) => ready.get(next).copied().unwrap_or(false),
            (None, None) => has_exited(self.pid),
        };
        if exited {
            // Kill whatever the job left in its group (and its cgroup)
            // before reaping its main process, so the group id cannot have
            // been reused.
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            if let Some(cgroup) = &self.cgroup {
                cgroup.signal_kill();
            }
            self.status = Some(reap(self.pid));
            if let Some(cgroup) = self.cgroup.take()
                && !cgroup.kill_and_remove()
            {
                tracing::warn!(
                    pid = self.pid,
                    "processes of a finished job survive SIGKILL in its cgroup"
                );
            }
            self.drain_until = Some(Instant::now() + DRAIN_GRACE);
        }
        let drained = self.streams.iter().all(Option::is_none);
        let out_of_time = self
            .drain_until
            .is_some_and(|until| Instant::now() >= until);
        self.status.is_some() && (drained || out_of_time)
    }

    /// Reports the exit. Output still unread after the drain grace stays
    /// unread (a daemonized grandchild may hold the pipes open forever); a
    /// partial last line that did arrive is kept.
    fn finish(mut self) {
        for reader in self.streams.iter_mut().flatten() {
            reader.finish(&mut self.output);
            if reader.stream == Stream::Stderr {
                self.stderr_tail = reader.tail();
            }
        }
        self.output.sink.flush();
        let status = self
            .status
            .unwrap_or_else(|| ExitStatus::from_raw(Signal::SIGKILL as i32));
        (self.on_exit)(JobExit::from_status(
            self.pid as u32,
            status,
            self.stderr_tail,
            self.output,
        ));
    }
}

/// The watcher thread: one poll over the wake-up eventfd and every job's
/// pipes and pidfd.
fn watch_jobs(wake: &OwnedFd, added: &Receiver<Watched>) {
    let mut jobs: Vec<Watched> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut spans: Vec<usize> = Vec::new();
    loop {
        spans.clear();
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        let now = Instant::now();
        let mut timeout: libc::c_int = -1;
        for job in &jobs {
            let start = fds.len();
            job.poll_fds(&mut fds);
            spans.push(fds.len() - start);
            let t = job.timeout_ms(now);
            if t >= 0 && (timeout < 0 || t < timeout) {
                timeout = t;
            }
        }
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::NONE);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            // Cannot happen with valid descriptors; do not spin if it does.
            Err(_) => std::thread::sleep(Duration::from_millis(EXIT_POLL_MS as u64)),
        }
        // What poll found, so the jobs that lent their descriptors can act.
        let ready: Vec<bool> = fds.iter().map(|p| p.any().unwrap_or(false)).collect();
        drop(fds);
        let mut offset = 1;
        let mut done = Vec::new();
        for (i, job) in jobs.iter_mut().enumerate() {
            let span = spans[i];
            if job.on_poll(&ready[offset..offset + span], &mut buf) {
                done.push(i);
            }
            offset += span;
        }
        for i in done.into_iter().rev() {
            jobs.swap_remove(i).finish();
        }
        if ready[0] {
            let mut counter = [0u8; 8];
            let _ = nix::unistd::read(wake, &mut counter);
        }
        loop {
            match added.try_recv() {
                Ok(job) => jobs.push(job),
                Err(TryRecvError::Empty) => break,
                // Every sender is gone only at process exit.
                Err(TryRecvError::Disconnected) if jobs.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
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
    loop {
        // The raw wait status, as std's ExitStatus holds it.
        return match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, code)) => ExitStatus::from_raw((code & 0xff) << 8),
            Ok(WaitStatus::Signaled(_, signal, core)) => {
                ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 })
            }
            // Stopped and the like are not reported without WUNTRACED.
            Ok(_) | Err(_) => ExitStatus::from_raw(Signal::SIGKILL as i32),
        };
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
    fn read(&mut self, buf: &mut [u8], out: &mut JobOutput) -> bool {
        let n = loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break 0,
                Ok(n) => break n,
            }
        };
        if n == 0 {
            self.finish(out);
            return false;
        }
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(end + 1);
            if self.line.is_empty() {
                self.emit(head, out);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.emit(&line, out);
            }
            rest = tail;
        }
        self.line.extend_from_slice(rest);
        true
    }

    /// Passes on a final line that has no newline.
    fn finish(&mut self, out: &mut JobOutput) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.emit(&line, out);
        }
    }

    fn emit(&mut self, line: &[u8], out: &mut JobOutput) {
        out.line(self.stream, line);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_cannot_choose_its_attempts_token() {
        let env = BTreeMap::from([
            (contain::TOKEN_VAR.to_owned(), "chosen".to_owned()),
            ("OTHER".to_owned(), "kept".to_owned()),
        ]);
        let job = JobCommand {
            job_id: "j",
            attempt: 1,
            token: "0123456789abcdef",
            cgroup: None,
            command: "true",
            env: &env,
            cwd: None,
        };
        let (envp, _) = job_env(&job).unwrap();
        let entries: Vec<&[u8]> = envp.iter().map(|e| e.to_bytes()).collect();
        let tokens: Vec<_> = entries
            .iter()
            .filter(|e| e.starts_with(contain::TOKEN_VAR.as_bytes()))
            .collect();
        assert_eq!(tokens, [&&b"QUEUECTL_ATTEMPT_TOKEN=0123456789abcdef"[..]]);
        assert!(entries.contains(&&b"OTHER=kept"[..]));
    }

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
