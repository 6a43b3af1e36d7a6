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
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use queuectl::domain::{JobState, NewJob};
use queuectl::error::{Error, Result};
use queuectl::store::JobDefaults;
use queuectl::wakeup::wake_workers;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PICKUP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let samples = bench.size(200, 40);
    let queue = bench.queue("latency")?;
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

    let workers: Vec<WorkerProcess> = queue.spawn_workers("l", 1, 1)?;
    let mut store = queue.store()?;
    let defaults = JobDefaults {
        max_retries: 0,
        timeout_seconds: 0,
    };
    let mut pickup = Vec::new();
    for i in 0..samples {
        // The previous job is recorded, so the worker is (about to be) idle.
        wait_for(
            &mut store,
            &workers,
            PICKUP_TIMEOUT,
            "the probe job to complete",
            |s| Ok(s.counts()?.get(&JobState::Completed).copied().unwrap_or(0) >= i as u64),
        )?;
        std::thread::sleep(gap(i));
        let name = format!("p{i}");
        let command = format!("touch {}", probes.join(&name).display());
        store.enqueue(&[(1, NewJob::new(command))], &defaults)?;
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
    // p50 from the throughput issue (both backends); p99 from the first
    // performance issue.
    for (metric, p, target) in [("p50", 50.0, 2.0), ("p99", 99.0, 20.0)] {
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
    inotify: Inotify,
}

impl Watch {
    fn new(dir: &Path) -> io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        inotify.add_watch(dir, AddWatchFlags::IN_CREATE)?;
        Ok(Watch { inotify })
    }

    /// Waits until a file named `name` is created; returns when it was seen.
    fn wait_for(&self, name: &str, timeout: Duration) -> io::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.inotify.read_events() {
                Ok(events) => {
                    let seen = Instant::now();
                    if events
                        .iter()
                        .any(|e| e.name.as_deref() == Some(name.as_ref()))
                    {
                        return Ok(seen);
                    }
                    continue;
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{name} was not created within {timeout:?}"),
                ));
            }
            let ms = left.as_millis().clamp(1, 60_000) as u16;
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            // Readable, interrupted or timed out: the read above tells which.
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_file_created() {
        let dir = tempfile::tempdir().unwrap();
        let watch = Watch::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("other"), "").unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        assert!(watch.wait_for("x", Duration::from_secs(5)).is_ok());
    }
}
