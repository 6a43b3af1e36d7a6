//! What a process costs, read from `/proc`: resident memory and CPU time.

use nix::unistd::{SysconfVar, sysconf};
use std::path::Path;
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MiB.
pub fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field).map(|kib| kib as f64 / 1024.0)
}

fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// How CPU time was measured, for the report's notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuClock {
    /// `se.sum_exec_runtime` of each thread in `/proc/<pid>/task/*/sched`
    /// (nanosecond accounting; threads that exited are not counted).
    Scheduler,
    /// utime + stime from `/proc/<pid>/stat`, in clock ticks (usually 10 ms).
    Ticks,
}

/// CPU time the process has used so far (user + system, all threads).
pub fn cpu_time(pid: u32) -> Option<(Duration, CpuClock)> {
    if let Some(t) = scheduler_cpu_time(pid) {
        return Some((t, CpuClock::Scheduler));
    }
    tick_cpu_time(pid).map(|t| (t, CpuClock::Ticks))
}

fn scheduler_cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total_ms = 0.0;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("sched")).ok()?;
        total_ms += parse_sum_exec_ms(&text)?;
    }
    Some(Duration::from_secs_f64(total_ms / 1000.0))
}

fn parse_sum_exec_ms(text: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with("se.sum_exec_runtime"))
        .and_then(|line| line.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time of the whole process, including threads that have exited, at
/// clock-tick resolution (utime + stime of `/proc/<pid>/stat`).
pub fn total_cpu_time(pid: u32) -> Option<Duration> {
    tick_cpu_time(pid)
}

fn tick_cpu_time(pid: u32) -> Option<Duration> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    let per_second = match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    };
    Some(Duration::from_secs_f64(ticks as f64 / per_second))
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last ')'.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let text = "Name:\tqueuectl\nVmHWM:\t   9216 kB\nVmRSS:\t    7168 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(7168));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(9216));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_an_awkward_name() {
        let text = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 1000 1 1";
        assert_eq!(parse_stat_ticks(text), Some(12));
    }

    #[test]
    fn reads_scheduler_runtime() {
        let text = "queuectl (42, #threads: 3)\n---\nse.exec_start : 1.0\nse.sum_exec_runtime                          :           179.057494\n";
        assert_eq!(parse_sum_exec_ms(text), Some(179.057494));
    }

    #[test]
    fn measures_this_process() {
        let me = std::process::id();
        assert!(status_mib(me, "VmRSS").is_some_and(|m| m > 0.0));
        assert!(cpu_time(me).is_some());
    }
}
