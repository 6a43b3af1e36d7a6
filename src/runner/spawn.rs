//! Starting a job's process the cheap way, without giving up its parent-death
//! signal.
//!
//! `std::process::Command` uses `posix_spawn` (a vfork: the child borrows the
//! parent's memory until it execs) unless a `pre_exec` hook is set, and then
//! it forks. A fork copies the worker's page tables and write-protects its
//! memory, so the worker pays a page fault on each page it touches next;
//! measured on a worker running `true` jobs, that was ~260 us more per spawn
//! and ~60 us more in the next database transaction. The hook was needed for
//! `PR_SET_PDEATHSIG`, which `posix_spawn` cannot set.
//!
//! So this module does what glibc's `posix_spawn` does — `clone` with
//! `CLONE_VM | CLONE_VFORK` onto a small separate stack, the parent suspended
//! until the child has exec'd or failed — and adds the `prctl` in the child,
//! and, under systemd, its move into the attempt's own cgroup (a write of
//! "0" to its `cgroup.procs`, opened by the parent), so the job's first
//! instruction already runs contained.
//! Everything the child needs (argv, envp, the PATH candidates) is built
//! beforehand in the parent: between clone and exec the child only makes
//! async-signal-safe system calls and never allocates, locks or panics.
//!
//! This is one of the crate's two rooms where `unsafe` is allowed (the other
//! is the store's WAL sync): the clone above, the pre-exec hooks other
//! modules put on a `std::process::Command` ([`in_new_session`],
//! [`killed_with_parent`]) and `pidfd_open`, which `nix` lacks.
#![allow(unsafe_code)]

use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
use std::borrow::Cow;
#[cfg(test)]
use std::ffi::OsString;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Stack for the child between clone and exec. It only runs the handful of
/// system-call wrappers in [`child_main`]; glibc's posix_spawn uses 32 KiB.
const CHILD_STACK_BYTES: usize = 64 * 1024;
static CHILD_STACK: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Where execvp's search goes when PATH is unset (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// One `KEY=VALUE` entry of a child's environment: borrowed when it comes
/// from a cache that lives as long as the process.
pub type EnvEntry = Cow<'static, CStr>;

/// A process to start: what execve needs, prepared in the parent.
pub struct ProcessSpec {
    argv: Vec<CString>,
    envp: Vec<EnvEntry>,
    cwd: Option<CString>,
    /// Paths to try in order, as execvp would (the program itself if it
    /// contains a '/', else each PATH entry joined with it).
    candidates: Vec<CString>,
    /// The directory of the cgroup the child starts in (or joins before it
    /// execs).
    cgroup: Option<RawFd>,
}

/// Starts `cmd`'s process in a new session (`setsid`), detached from our
/// terminal, so a Ctrl-C or hangup there does not reach it.
pub fn in_new_session(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before exec and only calls
    // setsid, which is async-signal-safe and touches no parent memory.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
}

/// Makes `cmd`'s process get SIGKILL when the thread that started it exits
/// (`PR_SET_PDEATHSIG`), so it does not outlive us.
pub fn killed_with_parent(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before exec and only calls
    // prctl, which is async-signal-safe and touches no parent memory.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            Ok(())
        });
    }
}

/// A descriptor that becomes readable when `pid` exits, so a watcher can wait
/// for an exit and for output in one poll; `None` on kernels before 5.3
/// (and wherever it fails), and the caller then polls for the exit instead.
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of ours.
    match unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } {
        -1 => None,
        // SAFETY: a fresh descriptor that nothing else owns.
        fd => Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
    }
}

fn nul_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} contains a NUL byte"),
    )
}

fn c_string(bytes: impl Into<Vec<u8>>, what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| nul_error(what))
}

/// `KEY=VALUE` as a C string.
pub fn env_entry(key: &OsStr, value: &OsStr) -> io::Result<CString> {
    let mut entry = key.as_bytes().to_vec();
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    c_string(entry, "an environment variable")
}

impl ProcessSpec {
    /// `argv[0]` is looked up in the `PATH` of `env` (the child's environment),
    /// like execvp would after the environment is set.
    #[cfg(test)]
    pub fn new(
        argv: &[&OsStr],
        env: &[(OsString, OsString)],
        cwd: Option<&OsStr>,
    ) -> io::Result<ProcessSpec> {
        let envp = env
            .iter()
            .map(|(k, v)| env_entry(k, v).map(Cow::Owned))
            .collect::<io::Result<_>>()?;
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_bytes());
        ProcessSpec::with_envp(argv, envp, path, cwd)
    }

    /// Like [`new`](Self::new) with the environment already as entries;
    /// `path` is the value of `PATH` among them, if any.
    pub fn with_envp(
        argv: &[&OsStr],
        envp: Vec<EnvEntry>,
        path: Option<&[u8]>,
        cwd: Option<&OsStr>,
    ) -> io::Result<ProcessSpec> {
        let program = argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| c_string(a.as_bytes(), "an argument"))
            .collect::<io::Result<_>>()?;
        let candidates = if program.as_bytes().contains(&b'/') {
            vec![argv[0].clone()]
        } else {
            path.unwrap_or(DEFAULT_PATH.as_bytes())
                .split(|b| *b == b':')
                .map(|dir| {
                    // An empty entry means the current directory.
                    let mut full = if dir.is_empty() {
                        b".".to_vec()
                    } else {
                        dir.to_vec()
                    };
                    full.push(b'/');
                    full.extend_from_slice(program.as_bytes());
                    c_string(full, "PATH")
                })
                .collect::<io::Result<_>>()?
        };
        Ok(ProcessSpec {
            argv,
            envp,
            cwd: cwd
                .map(|d| c_string(d.as_bytes(), "the working directory"))
                .transpose()?,
            candidates,
            cgroup: None,
        })
    }

    /// The child starts in the cgroup whose directory is open as `dir`
    /// (or, where the kernel cannot do that, moves itself there before it
    /// execs), so not one instruction of the job runs outside it. `dir` must
    /// stay open until [`spawn`] returns.
    pub fn in_cgroup(mut self, dir: &File) -> ProcessSpec {
        self.cgroup = Some(dir.as_raw_fd());
        self
    }
}

/// A started process: its pid (also its process group), a pidfd for it
/// when the kernel gave one with the clone, and the parent's ends of its
/// stdout and stderr pipes.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    pub stdout: File,
    pub stderr: File,
}

/// Starts the process in a new process group, with stdin from /dev/null,
/// stdout and stderr piped, an empty signal mask, default signal handlers,
/// and SIGKILL as its parent-death signal. Returns once it has exec'd; an
/// exec failure is returned as the error execvp would report.
pub fn spawn(spec: &ProcessSpec) -> io::Result<Spawned> {
    match spawn_once(spec) {
        // A file without a #! line: execvp hands it to the shell, so do we.
        Err(Failure::NoExec(path)) => {
            let mut argv = vec![c_string("/bin/sh", "")?, path];
            argv.extend(spec.argv.iter().skip(1).cloned());
            let script = ProcessSpec {
                candidates: vec![argv[0].clone()],
                argv,
                envp: spec.envp.clone(),
                cwd: spec.cwd.clone(),
                cgroup: spec.cgroup,
            };
            spawn_once(&script).map_err(Failure::into_io)
        }
        other => other.map_err(Failure::into_io),
    }
}

enum Failure {
    Io(io::Error),
    /// execve said ENOEXEC for this candidate.
    NoExec(CString),
}

impl Failure {
    fn into_io(self) -> io::Error {
        match self {
            Failure::Io(e) => e,
            Failure::NoExec(_) => io::Error::from_raw_os_error(libc::ENOEXEC),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

/// What the child reads (through the shared memory) and writes back.
struct ChildArgs {
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    candidates: *const *const libc::c_char,
    candidate_count: usize,
    cwd: *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// `cgroup.procs` to join, or -1 (the clone put it there already, or
    /// there is none).
    cgroup_procs: RawFd,
    /// Whether the clone left our signal handlers in place (the child then
    /// resets them itself).
    reset_handlers: bool,
    parent: libc::pid_t,
    /// Set by the child when it fails before or at exec.
    errno: AtomicI32,
    /// Which candidate failed with ENOEXEC.
    noexec_index: AtomicUsize,
    /// The step the child was at when it failed (a `STEP_` value).
    failed_step: AtomicU8,
}

/// What a child failed at, for the error: getting ready, changing into the
/// working directory, or exec'ing the program.
const STEP_SETUP: u8 = 0;
const STEP_CWD: u8 = 1;
const STEP_EXEC: u8 = 2;

/// A child that could not change into its working directory: the message
/// names the directory (the job's cwd, not a secret), and the runner knows
/// that no other way to run the command would get further.
#[derive(Debug)]
struct CwdFailed(String);

impl std::fmt::Display for CwdFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CwdFailed {}

/// Whether `err` says the working directory could not be entered.
pub fn is_cwd_failure(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<CwdFailed>())
}

/// The error a child's failure at `step` with `errno` means, naming what
/// failed: "working directory /x: No such file or directory", or
/// "./run.sh: Permission denied".
fn child_failure(spec: &ProcessSpec, step: u8, errno: libc::c_int) -> io::Error {
    let kind = io::Error::from_raw_os_error(errno).kind();
    let why = nix::errno::Errno::from_raw(errno).desc();
    let shown = |c: &CStr| String::from_utf8_lossy(c.to_bytes()).into_owned();
    match (step, &spec.cwd, spec.argv.first()) {
        (STEP_CWD, Some(cwd), _) => io::Error::new(
            kind,
            CwdFailed(format!("working directory {}: {why}", shown(cwd))),
        ),
        (STEP_EXEC, _, Some(program)) => io::Error::new(kind, format!("{}: {why}", shown(program))),
        _ => io::Error::from_raw_os_error(errno),
    }
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Moves `fd` to a number >= 3, so the child's dup2 onto 0, 1 and 2 can
/// never overwrite one of the descriptors it still has to dup.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fd is open; F_DUPFD_CLOEXEC returns a new descriptor we own.
    let moved = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// `/dev/null`, opened once (close-on-exec, above the standard descriptors)
/// and shared by every child as its stdin: opening it anew cost an open and
/// a close per job.
static DEV_NULL: OnceLock<OwnedFd> = OnceLock::new();

fn dev_null() -> io::Result<RawFd> {
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let fd = above_stdio(OwnedFd::from(File::open("/dev/null")?))?;
    // Another thread may have won the race: then its descriptor is used.
    Ok(DEV_NULL.get_or_init(|| fd).as_raw_fd())
}

/// This process's id, which never changes (the worker never forks without
/// exec'ing).
fn own_pid() -> libc::pid_t {
    static PID: OnceLock<libc::pid_t> = OnceLock::new();
    *PID.get_or_init(|| nix::unistd::getpid().as_raw())
}

fn pointers<S: AsRef<CStr>>(strings: &[S]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ref().as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn spawn_once(spec: &ProcessSpec) -> Result<Spawned, Failure> {
    let stdin = dev_null()?;
    let (stdout_read, stdout_write) = pipe()?;
    let (stderr_read, stderr_write) = pipe()?;
    let (stdout_write, stderr_write) = (above_stdio(stdout_write)?, above_stdio(stderr_write)?);

    let argv = pointers(&spec.argv);
    let envp = pointers(&spec.envp);
    let candidates = pointers(&spec.candidates);
    let mut args = ChildArgs {
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        candidates: candidates.as_ptr(),
        candidate_count: spec.candidates.len(),
        cwd: spec.cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        stdin,
        stdout: stdout_write.as_raw_fd(),
        stderr: stderr_write.as_raw_fd(),
        cgroup_procs: -1,
        reset_handlers: true,
        parent: own_pid(),
        errno: AtomicI32::new(0),
        noexec_index: AtomicUsize::new(usize::MAX),
        failed_step: AtomicU8::new(STEP_SETUP),
    };
    // One stack, reused by every spawn (allocating and freeing 64 KiB per
    // job showed up in profiles); the lock also serializes spawns.
    let mut stack = CHILD_STACK.lock().unwrap_or_else(|p| p.into_inner());
    if stack.len() < CHILD_STACK_BYTES {
        stack.resize(CHILD_STACK_BYTES, 0);
    }
    // The stack grows down from its 16-byte aligned top.
    let base = (stack.as_mut_ptr() as usize + 15) & !15;
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK_BYTES) & !15;

    // Block every signal so no handler of ours runs in the child while it
    // shares our memory; the child restores defaults and unblocks.
    let mut previous = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut previous),
    )
    .map_err(|e| Failure::Io(e.into()))?;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: `base..top` is the locked stack, `args` and everything it
    // points to outlive the child's use of them (the clone is a vfork), and
    // the caller keeps the cgroup directory open.
    let cloned = unsafe { clone_child(&mut args, base, top, spec.cgroup, &mut pidfd) };
    // Restores the mask saved above (cannot fail with a valid set).
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
    drop(stack);
    let pid = cloned?;
    // SAFETY: a pidfd the clone just made for us, owned by nothing else.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let errno = args.errno.load(Ordering::SeqCst);
    if errno != 0 {
        // The child exited without exec'ing: reap it.
        while let Err(nix::errno::Errno::EINTR) =
            nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        {}
        let index = args.noexec_index.load(Ordering::SeqCst);
        if errno == libc::ENOEXEC && index < spec.candidates.len() {
            return Err(Failure::NoExec(spec.candidates[index].clone()));
        }
        let step = args.failed_step.load(Ordering::SeqCst);
        return Err(Failure::Io(child_failure(spec, step, errno)));
    }
    Ok(Spawned {
        pid,
        pidfd,
        stdout: File::from(stdout_read),
        stderr: File::from(stderr_read),
    })
}

/// Whether `clone3` can start a child for us: set to false the first time
/// the kernel (before 5.7) or a seccomp filter refuses it, so the fallback is
/// tried only once.
static CLONE3_WORKS: AtomicBool = AtomicBool::new(cfg!(target_arch = "x86_64"));

/// Starts `child_main(args)` on the stack `base..top`, sharing our memory,
/// and returns its pid once it has exec'd or exited (a vfork). Through
/// `clone3` where it can: the kernel then puts the child into the cgroup
/// (`CLONE_INTO_CGROUP`, which spares the 1.5-4 ms a move costs), resets
/// our signal handlers (`CLONE_CLEAR_SIGHAND`, instead of 64 sigaction calls
/// in the child) and returns a pidfd (`CLONE_PIDFD`). Otherwise through
/// `clone`, and the child does those itself.
///
/// # Safety
/// As for `clone` with `CLONE_VM | CLONE_VFORK`: `args` and all it points
/// to stay valid until this returns, `base..top` is writable memory nothing
/// else uses meanwhile, every signal is blocked, and `cgroup` (if any) is
/// an open directory.
unsafe fn clone_child(
    args: &mut ChildArgs,
    base: usize,
    top: usize,
    cgroup: Option<RawFd>,
    pidfd: &mut libc::c_int,
) -> Result<libc::pid_t, Failure> {
    if CLONE3_WORKS.load(Ordering::Relaxed) {
        // SAFETY: passed on from our caller.
        match unsafe { clone3_vfork(args, base, top, cgroup, pidfd) } {
            Ok(pid) => return Ok(pid),
            Err(e) => {
                // Refused outright: do not ask again. Anything else (the
                // cgroup, say) is tried again with the next job.
                let refused = matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
                );
                if refused {
                    CLONE3_WORKS.store(false, Ordering::Relaxed);
                }
                // Said once; a warning only where it costs: attempt cgroups.
                if !CLONE3_FAILED.swap(true, Ordering::Relaxed) {
                    if cgroup.is_some() {
                        tracing::warn!(error = %e, "cannot start a job through clone3; using clone, with which a job moves into its cgroup after it starts (milliseconds more per job)");
                    } else {
                        tracing::debug!(error = %e, "cannot start a job through clone3; using clone");
                    }
                }
            }
        }
    }
    let procs = match cgroup {
        Some(dir) => Some(open_procs(dir)?),
        None => None,
    };
    args.cgroup_procs = procs.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    args.reset_handlers = true;
    *pidfd = -1;
    // SAFETY: as for clone3 above; CLONE_PIDFD makes the kernel store the
    // child's pidfd in `pidfd` (kernels before 5.2 leave it at -1).
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            args as *mut ChildArgs as *mut libc::c_void,
            pidfd as *mut libc::c_int,
        )
    };
    if pid == -1 {
        return Err(Failure::Io(io::Error::last_os_error()));
    }
    Ok(pid)
}

/// Whether clone3 failed once (said once in the log).
static CLONE3_FAILED: AtomicBool = AtomicBool::new(false);

/// The cgroup's `cgroup.procs`, for a child that moves itself there.
fn open_procs(dir: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: a path literal and a directory descriptor the caller holds.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct clone_args` of linux/sched.h, up to `cgroup` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3` with `CLONE_VM | CLONE_VFORK`. No libc wraps it, and the child
/// starts on the new stack with no frame to return into, so the call is
/// made here: the child calls `child_main(args)` and exits with its result
/// (it never returns: it execs or `_exit`s).
///
/// # Safety
/// See [`clone_child`].
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vfork(
    args: &mut ChildArgs,
    base: usize,
    top: usize,
    cgroup: Option<RawFd>,
    pidfd: &mut libc::c_int,
) -> io::Result<libc::pid_t> {
    args.reset_handlers = false;
    args.cgroup_procs = -1;
    let mut flags = libc::CLONE_VM as u64
        | libc::CLONE_VFORK as u64
        | libc::CLONE_PIDFD as u64
        | CLONE_CLEAR_SIGHAND;
    if cgroup.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    let clone_args = CloneArgs {
        flags,
        pidfd: pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: (top - base) as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = child_main;
    let ret: i64;
    // SAFETY: the kernel starts the child with the stack pointer at `top`
    // (16-byte aligned, so the `call` leaves it as the ABI expects), our
    // registers otherwise; it calls `entry(args)`, which never returns but
    // would exit if it did. The parent gets the pid or -errno in rax; the
    // syscall clobbers rcx and r11 only, and the parent's stack is not
    // touched (the child has its own).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &clone_args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") args as *mut ChildArgs as *mut libc::c_void,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        *pidfd = -1;
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as libc::pid_t)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_vfork(
    _: &mut ChildArgs,
    _: usize,
    _: usize,
    _: Option<RawFd>,
    _: &mut libc::c_int,
) -> io::Result<libc::pid_t> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// The child, between clone and exec. It shares the parent's memory and
/// runs on the borrowed stack: it must not allocate, lock, unwind or touch
/// anything but `args`. Each call below is a thin system-call wrapper.
extern "C" fn child_main(raw: *mut libc::c_void) -> libc::c_int {
    // SAFETY: the parent passes a valid ChildArgs and is suspended until we
    // exec or exit; every pointer in it is valid for that long.
    unsafe {
        let args = &*(raw as *const ChildArgs);
        let fail = |errno: libc::c_int| -> libc::c_int {
            args.errno.store(errno.max(1), Ordering::SeqCst);
            libc::_exit(127)
        };
        let errno = || *libc::__errno_location();

        // Default dispositions for every signal we handle (a handler must
        // never run in a child that shares our memory; clone3 did this
        // already), and for SIGPIPE, which the Rust runtime ignores and a job
        // must not inherit ignored.
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        if args.reset_handlers {
            let mut action: libc::sigaction = std::mem::zeroed();
            for signal in 1..=libc::SIGRTMAX() {
                if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                    continue;
                }
                if libc::sigaction(signal, std::ptr::null(), &mut action) != 0 {
                    continue;
                }
                if action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN {
                    libc::sigaction(signal, &default, std::ptr::null_mut());
                }
            }
        }
        libc::sigaction(libc::SIGPIPE, &default, std::ptr::null_mut());
        // "0" moves the writer itself: from here on the attempt's cgroup
        // holds every process the job will ever start.
        if args.cgroup_procs >= 0 && libc::write(args.cgroup_procs, b"0".as_ptr().cast(), 1) != 1 {
            return fail(errno());
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(errno());
        }
        // If the worker dies (kill -9, OOM), take the job's main process with
        // it, so the job does not go on running while its lease expires and
        // another worker starts it again.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return fail(errno());
        }
        if libc::getppid() != args.parent {
            // The worker died before the prctl took effect.
            return fail(libc::ESRCH);
        }
        for (from, to) in [(args.stdin, 0), (args.stdout, 1), (args.stderr, 2)] {
            if libc::dup2(from, to) == -1 {
                return fail(errno());
            }
        }
        if !args.cwd.is_null() && libc::chdir(args.cwd) != 0 {
            args.failed_step.store(STEP_CWD, Ordering::SeqCst);
            return fail(errno());
        }
        args.failed_step.store(STEP_EXEC, Ordering::SeqCst);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

        // execvp's search: the first candidate that execs wins; EACCES is
        // remembered, "not there" moves on, anything else stops the search.
        let mut result = libc::ENOENT;
        let mut saw_eacces = false;
        for i in 0..args.candidate_count {
            let path = *args.candidates.add(i);
            libc::execve(path, args.argv, args.envp);
            let e = errno();
            match e {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                libc::ENOEXEC => {
                    args.noexec_index.store(i, Ordering::SeqCst);
                    return fail(e);
                }
                _ => return fail(e),
            }
            result = e;
        }
        fail(if saw_eacces { libc::EACCES } else { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn env() -> Vec<(OsString, OsString)> {
        std::env::vars_os().collect()
    }

    fn run(
        argv: &[&str],
        env: &[(OsString, OsString)],
        cwd: Option<&str>,
    ) -> io::Result<(i32, String, String)> {
        let argv: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        let spec = ProcessSpec::new(&argv, env, cwd.map(OsStr::new))?;
        let mut child = spawn(&spec)?;
        let (mut out, mut err) = (String::new(), String::new());
        child.stdout.read_to_string(&mut out)?;
        child.stderr.read_to_string(&mut err)?;
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(child.pid, &mut status, 0) };
        Ok((libc::WEXITSTATUS(status), out, err))
    }

    #[test]
    fn runs_a_program_found_on_path_with_args_env_and_cwd() {
        let mut env = env();
        env.push(("QUEUECTL_SPAWN_TEST".into(), "yes".into()));
        let (code, out, _) = run(
            &[
                "sh",
                "-c",
                "echo $QUEUECTL_SPAWN_TEST $(pwd) $0; echo oops >&2; exit 3",
                "arg0",
            ],
            &env,
            Some("/"),
        )
        .unwrap();
        assert_eq!(code, 3);
        assert_eq!(out, "yes / arg0\n");
    }

    #[test]
    fn the_child_gets_its_own_group_and_a_clean_signal_state() {
        let (_, out, err) = run(
            &[
                "sh",
                "-c",
                "grep -E '^(SigBlk|SigIgn)' /proc/self/status; read -r pid comm state ppid pgrp rest < /proc/$$/stat; echo $pgrp $pid",
            ],
            &env(),
            None,
        )
        .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}{err}");
        assert_eq!(lines[0], "SigBlk:\t0000000000000000", "{out}");
        // SIGPIPE (bit 13) is not ignored.
        let ignored = lines[1].split_whitespace().nth(1).unwrap();
        let mask = u64::from_str_radix(ignored, 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
        let (pgrp, pid) = lines[2].split_once(' ').unwrap();
        assert_eq!(pgrp, pid, "leads its own process group: {out}");
    }

    /// Whether this kernel is at least `version`; where it is not, a test
    /// that needs it skips, saying why (never under CI=true).
    fn kernel_at_least(version: (u32, u32), for_what: &str) -> bool {
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| {
                let release = u.release().to_string_lossy().into_owned();
                let mut parts = release.split(|c: char| !c.is_ascii_digit());
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
            .unwrap_or((0, 0));
        if kernel >= version {
            return true;
        }
        let why = format!("{for_what} needs Linux >= {version:?}, this is {kernel:?}");
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true, so not skipping: {why}"
        );
        eprintln!("skipped: {why}");
        false
    }

    /// Where clone3 cannot work (other architectures, kernels before 5.7).
    fn clone3_expected() -> bool {
        if !cfg!(target_arch = "x86_64") {
            eprintln!("skipped: clone3 is used on x86_64 only");
            return false;
        }
        kernel_at_least((5, 7), "clone3 into a cgroup")
    }

    /// Starts `true` and returns its pidfd after checking that it is the
    /// child's (readable once the child exited, which is then reaped).
    fn true_with_pidfd() -> Option<OwnedFd> {
        let argv = [OsStr::new("true")];
        let child = spawn(&ProcessSpec::new(&argv, &env(), None).unwrap()).unwrap();
        if let Some(pidfd) = &child.pidfd {
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(pidfd),
                nix::poll::PollFlags::POLLIN,
            )];
            assert_eq!(nix::poll::poll(&mut fds, 20_000u16).unwrap(), 1);
        }
        let mut status = 0;
        // SAFETY: our child.
        let reaped = unsafe { libc::waitpid(child.pid, &mut status, 0) };
        assert_eq!(reaped, child.pid);
        child.pidfd
    }

    #[test]
    fn jobs_start_through_clone3_which_hands_back_a_pidfd() {
        if !clone3_expected() {
            return;
        }
        let pidfd = true_with_pidfd();
        assert!(
            CLONE3_WORKS.load(Ordering::Relaxed),
            "clone3 was refused, so jobs fall back to the slower clone"
        );
        assert!(pidfd.is_some(), "CLONE_PIDFD gives the pidfd");
    }

    #[test]
    fn without_clone3_the_child_still_gets_a_clean_signal_state_and_a_pidfd() {
        CLONE3_WORKS.store(false, Ordering::Relaxed);
        the_child_gets_its_own_group_and_a_clean_signal_state();
        let pidfd = true_with_pidfd();
        if kernel_at_least((5, 3), "a pidfd") {
            assert!(pidfd.is_some(), "CLONE_PIDFD through clone");
        }
    }

    #[test]
    fn the_child_dies_with_the_thread_that_started_it() {
        // PR_SET_PDEATHSIG fires when the parent thread exits; a worker
        // dying is the same event for its main thread.
        let pid = std::thread::spawn(|| {
            let argv = [OsStr::new("sleep"), OsStr::new("30")];
            spawn(&ProcessSpec::new(&argv, &env(), None).unwrap())
                .unwrap()
                .pid
        })
        .join()
        .unwrap();
        let mut status = 0;
        // SAFETY: our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFSIGNALED(status), "status {status}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGKILL);
    }

    #[test]
    fn reports_exec_errors_like_execvp() {
        let err = run(&["no-such-program-here"], &env(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "no-such-program-here: No such file or directory"
        );
        assert!(!is_cwd_failure(&err));
        let err = run(&["/etc/passwd"], &env(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(err.to_string(), "/etc/passwd: Permission denied");
        // The directory is named only when entering it is what failed.
        let err = run(&["true"], &env(), Some("/no/such/dir")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "working directory /no/such/dir: No such file or directory"
        );
        assert!(is_cwd_failure(&err));
        let err = run(&["no-such-program-here"], &env(), Some("/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no-such-program-here: No such file or directory"
        );
    }

    #[test]
    fn a_script_without_a_shebang_runs_in_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("plain-script");
        std::fs::write(&script, "echo from script $1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (code, out, _) = run(&[script.to_str().unwrap(), "x"], &env(), None).unwrap();
        assert_eq!((code, out.as_str()), (0, "from script x\n"));
    }

    #[test]
    fn the_path_of_the_childs_environment_is_searched() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("only-here");
        std::fs::write(&tool, "#!/bin/sh\necho found\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut env: Vec<_> = env().into_iter().filter(|(k, _)| k != "PATH").collect();
        env.push((
            "PATH".into(),
            format!("/nonexistent:{}:/bin:/usr/bin", dir.path().display()).into(),
        ));
        let (code, out, _) = run(&["only-here"], &env, None).unwrap();
        assert_eq!((code, out.as_str()), (0, "found\n"));
    }

    #[test]
    fn rejects_nul_bytes() {
        let env = vec![(OsString::from("A"), OsString::from("x\0y"))];
        let err = ProcessSpec::new(&[OsStr::new("true")], &env, None)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
