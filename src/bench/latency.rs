//! Pick-up latency: how long a job waits between its enqueue and its process
//! starting, on an idle worker.
//!
//! Each sample enqueues one job, `touch <probe dir>/pN`, in this process and
//! starts the clock when the commit returns (what `queuectl enqueue` does
//! next is wake the workers, which is timed). The clock stops when inotify
//! reports the file created: the job's process has been started, exec'd
//! `touch` and run it. The baseline is the same `touch` spawned directly by
//! this process, timed the same way, so the process's own start-up cost
//! shows up in both. Samples are spaced out so the worker is idle each time.

use super::report::Row;
use super::sandbox::{WorkerProcess, wait_for};
use super::stats::{Target, millis, percentile};
use super::{Bench, no_samples};
use crate::domain::{JobState, NewJob};
use crate::error::{Error, Result};
use crate::store::JobDefaults;
use crate::wakeup::wake_workers;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PICKUP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let samples = bench.size(200, 40);
    let queue = bench.sandbox.queue("latency")?;
    let probes = queue.dir.join("probe");
    std::fs::create_dir_all(&probes).map_err(|e| Error::io("cannot create probe dir", e))?;
    let watch = Watch::new(&probes).map_err(|e| Error::io("inotify", e))?;

    let mut raw = Vec::new();
    for i in 0..samples {
        std::thread::sleep(gap(i));
        let name = format!("b{i}");
        let started = Instant::now();
        let mut child = Command::new("touch")
            .arg(probes.join(&name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("cannot run touch", e))?;
        let seen = watch.wait_for(&name, PICKUP_TIMEOUT);
        let _ = child.wait();
        raw.push(seen.map_err(|e| Error::io("waiting for the probe", e))? - started);
    }

    let workers: Vec<WorkerProcess> = queue.spawn_workers("l", 1)?;
    let mut store = queue.store()?;
    let defaults = JobDefaults {
        max_retries: 0,
        timeout_seconds: 0,
    };
    let mut pickup = Vec::new();
    for i in 0..samples {
        // The previous job is recorded, so the worker is (about to be) idle.
        wait_for(
            &store,
            &workers,
            PICKUP_TIMEOUT,
            "the probe job to complete",
            |s| Ok(s.counts()?.get(&JobState::Completed).copied().unwrap_or(0) >= i as u64),
        )?;
        std::thread::sleep(gap(i));
        let name = format!("p{i}");
        let command = format!("touch {}", probes.join(&name).display());
        store.enqueue(
            &[(1, NewJob::new(command))],
            &defaults,
            jiff::Timestamp::now(),
        )?;
        let committed = Instant::now();
        wake_workers(&queue.state.wake());
        let seen = watch
            .wait_for(&name, PICKUP_TIMEOUT)
            .map_err(|e| Error::io("waiting for the probe job", e));
        if seen.is_err() {
            workers[0].check_alive()?;
        }
        pickup.push(seen? - committed);
    }
    drop(workers);

    let (pickup, raw) = (millis(&pickup), millis(&raw));
    let mut rows = Vec::new();
    for (metric, p, target) in [("p50", 50.0, 5.0), ("p99", 99.0, 20.0)] {
        let figure = percentile(&pickup, p).ok_or_else(|| no_samples("pick-up latency"))?;
        let baseline = percentile(&raw, p).ok_or_else(|| no_samples("raw spawn latency"))?;
        bench.progress(&format!(
            "latency {metric}: {figure:.2} ms, raw spawn {baseline:.2} ms"
        ));
        let mut note = format!(
            "{samples} jobs, each `touch <file>` enqueued to an idle worker; from the enqueue's commit to inotify seeing the file"
        );
        if bench.quick && metric == "p99" {
            note.push_str(&format!("; with {samples} samples p99 is the maximum"));
        }
        rows.push(
            Row::new("latency", format!("pick-up {metric}"), figure, "ms")
                .baseline(baseline, format!("{metric} of the same `touch` spawned directly by the benchmark, to the file appearing"))
                .target(Target::at_most(target))
                .samples(samples)
                .note(note),
        );
    }
    Ok(rows)
}

/// Time between samples: long enough for the worker to settle into its idle
/// wait, and varied so samples do not lock step with any periodic work.
fn gap(i: usize) -> Duration {
    Duration::from_millis(15 + (i as u64 * 7) % 11)
}

/// An inotify watch for files created in one directory.
struct Watch {
    fd: OwnedFd,
}

impl Watch {
    fn new(dir: &Path) -> io::Result<Watch> {
        // SAFETY: plain syscalls; the returned descriptor is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: fd is valid and path is NUL-terminated.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_CREATE) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watch { fd })
    }

    /// Waits until a file named `name` is created; returns when it was seen.
    fn wait_for(&self, name: &str, timeout: Duration) -> io::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length; fd is valid.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let seen = Instant::now();
                if created_names(&buf[..n as usize]).any(|created| created == name.as_bytes()) {
                    return Ok(seen);
                }
                continue;
            }
            let err = io::Error::last_os_error();
            if n < 0
                && err.kind() != io::ErrorKind::WouldBlock
                && err.kind() != io::ErrorKind::Interrupted
            {
                return Err(err);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{name} was not created within {timeout:?}"),
                ));
            }
            let mut pollfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 60_000) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pollfd, 1, ms) };
        }
    }
}

/// The names in a buffer of `struct inotify_event`s.
fn created_names(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    std::iter::from_fn(move || {
        if buf.len() < HEADER {
            return None;
        }
        let len = u32::from_ne_bytes(buf[12..16].try_into().ok()?) as usize;
        let name = buf.get(HEADER..HEADER + len)?;
        buf = &buf[(HEADER + len).min(buf.len())..];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        Some(&name[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, padded: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1i32.to_ne_bytes());
        bytes.extend_from_slice(&libc::IN_CREATE.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut name = name.as_bytes().to_vec();
        name.resize(padded, 0);
        bytes.extend_from_slice(&name);
        bytes
    }

    #[test]
    fn parses_event_names() {
        let mut buf = event("p1", 16);
        buf.extend(event("probe-22", 16));
        let names: Vec<&[u8]> = created_names(&buf).collect();
        assert_eq!(names, [b"p1".as_slice(), b"probe-22".as_slice()]);
    }

    #[test]
    fn sees_a_file_created() {
        let dir = tempfile::tempdir().unwrap();
        let watch = Watch::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("other"), "").unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        assert!(watch.wait_for("x", Duration::from_secs(5)).is_ok());
    }
}
