//! Footprint: what a worker costs the machine while it waits and while it
//! works. CPU over an idle window and resident memory when idle, for a
//! worker of one slot and one of [`MANY_SLOTS`] side by side (slots must not
//! make waiting dearer), and the peak (`VmHWM`) after a stream of jobs. Memory is shown beside a `sleep`
//! process's, the floor for any process on this system; idle CPU beside the
//! window's length, so the ratio is the share of one core.

use super::Bench;
use super::procfs::{CpuClock, cpu_time, status_mib};
use super::report::Row;
use super::sandbox::wait_for;
use super::stats::Target;
use queuectl::domain::{JobState, NewJob};
use queuectl::error::{Error, Result};
use queuectl::store::JobDefaults;
use queuectl::wakeup::wake_workers;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The idle worker with many slots: as many as the throughput table's widest.
pub const MANY_SLOTS: usize = 8;

/// An idle worker's CPU share over the window and its resident memory.
struct Idle {
    slots: usize,
    cpu_ms: f64,
    rss_mib: f64,
}

pub fn run(bench: &Bench) -> Result<Vec<Row>> {
    let window = Duration::from_secs(bench.size(10, 2) as u64);
    let busy_jobs = bench.size(1000, 200);
    let queue = bench.sandbox.queue("footprint")?;
    let workers = queue.spawn_workers("f", 1, 1)?;
    let pid = workers[0].pid();
    let unreadable = |pid: u32| Error::Supervisor(format!("cannot read /proc/{pid}"));
    let wide_queue = bench.sandbox.queue("footprint-slots")?;
    let wide = wide_queue.spawn_workers("f", 1, MANY_SLOTS)?;
    let idle_pids = [(1, pid), (MANY_SLOTS, wide[0].pid())];

    // Let start-up work (first maintenance pass) finish before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let mut before = Vec::new();
    for (_, pid) in idle_pids {
        before.push(cpu_time(pid).ok_or_else(|| unreadable(pid))?);
    }
    let clock = before[0].1;
    let window_started = Instant::now();
    std::thread::sleep(window);
    let window_ms = window_started.elapsed().as_secs_f64() * 1000.0;
    let mut idle = Vec::new();
    for ((slots, pid), (cpu_before, _)) in idle_pids.into_iter().zip(before) {
        let (cpu_after, _) = cpu_time(pid).ok_or_else(|| unreadable(pid))?;
        idle.push(Idle {
            slots,
            cpu_ms: cpu_after.saturating_sub(cpu_before).as_secs_f64() * 1000.0,
            rss_mib: status_mib(pid, "VmRSS").ok_or_else(|| unreadable(pid))?,
        });
    }
    drop(wide);

    let mut store = queue.store()?;
    let batch: Vec<(usize, NewJob)> = (1..=busy_jobs).map(|i| (i, NewJob::new("true"))).collect();
    let defaults = JobDefaults {
        max_retries: 0,
        timeout_seconds: 0,
    };
    store.enqueue(&batch, &defaults)?;
    wake_workers(&queue.state.wake());
    let mut busy_rss_sampled: f64 = 0.0;
    wait_for(
        &mut store,
        &workers,
        Duration::from_secs(300),
        "the footprint jobs",
        |s| {
            if let Some(rss) = status_mib(pid, "VmRSS") {
                busy_rss_sampled = busy_rss_sampled.max(rss);
            }
            Ok(s.counts()?.get(&JobState::Completed).copied().unwrap_or(0) >= busy_jobs as u64)
        },
    )?;
    let peak_rss = status_mib(pid, "VmHWM").ok_or_else(|| unreadable(pid))?;
    let after_rss = status_mib(pid, "VmRSS").ok_or_else(|| unreadable(pid))?;
    drop(workers);

    let floor_rss = sleep_rss()?;
    let clock_note = match clock {
        CpuClock::Scheduler => {
            "CPU from the scheduler's per-thread runtime (/proc/PID/task/*/sched)"
        }
        CpuClock::Ticks => "CPU from utime+stime in clock ticks (10 ms resolution)",
    };
    // A worker's periodic duties (lease renewal, heartbeat) run every third
    // of the lease; a shorter window may see none of them.
    let duties_every = queue.config.lease() / 3;
    let window_note = if window < duties_every {
        format!(
            "; quick mode: shorter than the {} s between a worker's periodic duties, which it may miss",
            duties_every.as_secs()
        )
    } else {
        String::new()
    };
    let mut rows = Vec::new();
    for idle in &idle {
        let percent = idle.cpu_ms / window_ms * 100.0;
        let (rss, slots) = (idle.rss_mib, idle.slots);
        bench.progress(&format!(
            "footprint: idle worker of {slots} slot(s): {percent:.3}% CPU, {rss:.1} MiB"
        ));
        let which = match slots {
            1 => String::new(),
            n => format!(", {n} slots"),
        };
        rows.push(
            Row::new("footprint", format!("idle worker CPU{which}"), percent, "% of a core")
                .baseline_in(window_ms, "ms window", "the idle window's length: ratio = CPU time / window")
                .target(Target::below(0.5))
                .note(format!(
                    "{:.1} ms of CPU in {:.0} s idle (`worker run --concurrency {slots}`); {clock_note}{window_note}",
                    idle.cpu_ms,
                    window_ms / 1000.0
                )),
        );
        rows.push(
            Row::new("footprint", format!("idle worker RSS{which}"), rss, "MiB")
                .baseline(
                    floor_rss,
                    "RSS of a `sleep` process (any process's floor here)",
                )
                .target(Target::below(10.0))
                .note(format!(
                    "VmRSS after the idle window (`worker run --concurrency {slots}`)"
                )),
        );
    }
    bench.progress(&format!("footprint: busy peak {peak_rss:.1} MiB"));
    rows.push(
        Row::new("footprint", "busy worker RSS", peak_rss, "MiB")
            .baseline(floor_rss, "RSS of a `sleep` process")
            .target(Target::below(20.0))
            .note(format!(
                "peak (VmHWM) over start-up and {busy_jobs} jobs of `true`; largest sampled VmRSS {busy_rss_sampled:.1} MiB, {after_rss:.1} MiB afterwards"
            )),
    );
    Ok(rows)
}

/// The resident memory of a freshly started `sleep`.
fn sleep_rss() -> Result<f64> {
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("cannot run sleep", e))?;
    std::thread::sleep(Duration::from_millis(100));
    let rss = status_mib(child.id(), "VmRSS");
    let _ = child.kill();
    let _ = child.wait();
    rss.ok_or_else(|| Error::Supervisor("cannot read the RSS of sleep".into()))
}
