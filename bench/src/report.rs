//! The benchmark's results: one [`Row`] per figure, each beside the baseline
//! measured in the same run, and the machine they were measured on; printed
//! as a table or serialized as one JSON document.

use super::stats::{Target, ratio, trim_number};
use queuectl::store::postgres::ServerSettings;
use serde::Serialize;
use std::fmt::Write;

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    /// What was measured, e.g. "W=2" or "p99".
    pub metric: String,
    pub figure: f64,
    pub unit: &'static str,
    pub baseline: Option<f64>,
    pub baseline_unit: &'static str,
    /// What the baseline is, e.g. "sh -c true spawned by 2 threads".
    pub baseline_what: String,
    /// figure / baseline.
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    /// The target as text, e.g. "ratio >= 0.85".
    pub target_text: Option<String>,
    /// Whether the target is met; absent when the row has no target.
    pub met: Option<bool>,
    /// How many samples the figure summarizes.
    pub samples: usize,
    pub note: Option<String>,
}

impl Row {
    pub fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        figure: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            scenario,
            metric: metric.into(),
            figure,
            unit,
            baseline: None,
            baseline_unit: unit,
            baseline_what: String::new(),
            ratio: None,
            target: None,
            target_text: None,
            met: None,
            samples: 1,
            note: None,
        }
    }

    pub fn baseline(mut self, value: f64, what: impl Into<String>) -> Row {
        self.baseline = Some(value);
        self.baseline_what = what.into();
        self.evaluate()
    }

    pub fn baseline_in(mut self, value: f64, unit: &'static str, what: impl Into<String>) -> Row {
        self.baseline_unit = unit;
        self.baseline(value, what)
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self.target_text = Some(target.describe(self.unit));
        self.evaluate()
    }

    pub fn samples(mut self, n: usize) -> Row {
        self.samples = n;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }

    fn evaluate(mut self) -> Row {
        self.ratio = ratio(self.figure, self.baseline);
        self.met = self.target.map(|t| t.met(self.figure, self.ratio));
        self
    }
}

/// Where the figures were measured.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub os: String,
    /// Filesystem type of the benchmark directory (fsync cost depends on it).
    pub bench_fs: String,
}

impl Machine {
    pub fn detect(bench_dir: &std::path::Path) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: u64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib: memory_kib / 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os,
            bench_fs: filesystem_of(bench_dir, &read("/proc/self/mounts")),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} x {}, {} MiB RAM, {}, Linux {}, bench dir on {}",
            self.cores, self.cpu, self.memory_mib, self.os, self.kernel, self.bench_fs
        )
    }
}

/// The type of the filesystem holding `path`: the longest mount point that
/// is a prefix of it.
fn filesystem_of(path: &std::path::Path, mounts: &str) -> String {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount_point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), fs.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
        .unwrap_or_else(|| "unknown".into())
}

/// A scenario that could not be measured (the benchmark broke, not a target).
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub scenario: &'static str,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub queuectl_version: &'static str,
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    pub machine: Machine,
    /// "full" or "quick".
    pub mode: &'static str,
    /// Where the queues were: "sqlite" or "postgresql".
    pub backend: &'static str,
    /// The PostgreSQL server measured, if any.
    pub server: Option<ServerSettings>,
    /// The durability setting every queue and raw-SQLite baseline used.
    pub durability: &'static str,
    pub results: Vec<Row>,
    pub failures: Vec<Failure>,
    pub duration_seconds: f64,
}

impl Report {
    /// Targets met, out of rows that have one.
    pub fn tally(&self) -> (usize, usize) {
        let judged: Vec<bool> = self.results.iter().filter_map(|r| r.met).collect();
        (judged.iter().filter(|m| **m).count(), judged.len())
    }

    /// The human-readable table, with the baselines and notes below it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "queuectl {} bench ({} mode, durability {}), {}",
            self.queuectl_version, self.mode, self.durability, self.date
        );
        let _ = writeln!(out, "machine: {}", self.machine.describe());
        if let Some(server) = &self.server {
            let _ = writeln!(
                out,
                "server: PostgreSQL {} at {} (synchronous_commit={}, fsync={}); scratch databases, dropped afterwards",
                server.version, server.address, server.synchronous_commit, server.fsync
            );
        }
        let _ = writeln!(out);
        let header = [
            "SCENARIO", "METRIC", "FIGURE", "BASELINE", "RATIO", "TARGET", "MET",
        ];
        let rows: Vec<[String; 7]> = self
            .results
            .iter()
            .map(|r| {
                [
                    r.scenario.to_owned(),
                    r.metric.clone(),
                    format!("{} {}", trim_number(r.figure), r.unit),
                    r.baseline
                        .map(|b| format!("{} {}", trim_number(b), r.baseline_unit))
                        .unwrap_or_else(|| "-".into()),
                    r.ratio.map(trim_number).unwrap_or_else(|| "-".into()),
                    r.target_text.clone().unwrap_or_else(|| "-".into()),
                    match r.met {
                        Some(true) => "yes".into(),
                        Some(false) => "NO".into(),
                        None => "-".into(),
                    },
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                // Numbers right-aligned, words left-aligned.
                if (2..=4).contains(&i) {
                    let _ = write!(text, "{cell:>w$}  ");
                } else {
                    let _ = write!(text, "{cell:<w$}  ");
                }
            }
            text.trim_end().to_owned()
        };
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        for row in &rows {
            let _ = writeln!(out, "{}", line(row));
        }
        let (met, judged) = self.tally();
        let _ = writeln!(out, "\ntargets met: {met} of {judged}");

        let mut baselines: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for r in &self.results {
            if !r.baseline_what.is_empty() {
                let text = format!("{} {}: {}", r.scenario, r.metric, r.baseline_what);
                baselines.push(text);
            }
            if let Some(note) = &r.note {
                notes.push(format!("{} {}: {note}", r.scenario, r.metric));
            }
        }
        if !baselines.is_empty() {
            let _ = writeln!(out, "\nbaselines (measured in this run):");
            for b in baselines {
                let _ = writeln!(out, "  {b}");
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "\nnotes:");
            for n in notes {
                let _ = writeln!(out, "  {n}");
            }
        }
        for f in &self.failures {
            let _ = writeln!(out, "\nFAILED {}: {}", f.scenario, f.error);
        }
        let _ = writeln!(out, "\ntook {:.0}s", self.duration_seconds);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_judged_against_its_baseline() {
        let row = Row::new("throughput", "W=1", 900.0, "jobs/s")
            .baseline(1000.0, "sh -c true")
            .target(Target::ratio_at_least(0.85));
        assert_eq!(row.ratio, Some(0.9));
        assert_eq!(row.met, Some(true));
        assert_eq!(row.target_text.as_deref(), Some("ratio >= 0.85"));

        let order_does_not_matter = Row::new("throughput", "W=1", 800.0, "jobs/s")
            .target(Target::ratio_at_least(0.85))
            .baseline(1000.0, "sh -c true");
        assert_eq!(order_does_not_matter.met, Some(false));

        let untargeted = Row::new("store", "x", 1.0, "ms");
        assert_eq!(untargeted.met, None);
    }

    #[test]
    fn finds_the_filesystem_of_a_path() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\ntmpfs /tmpx tmpfs rw 0 0\n";
        assert_eq!(
            filesystem_of(std::path::Path::new("/tmp/q"), mounts),
            "tmpfs"
        );
        assert_eq!(
            filesystem_of(std::path::Path::new("/tmpfoo/q"), mounts),
            "ext4"
        );
        assert_eq!(filesystem_of(std::path::Path::new("/var"), mounts), "ext4");
    }

    #[test]
    fn the_table_shows_every_row_and_the_tally() {
        let report = Report {
            queuectl_version: "0.1.0",
            date: "2026-01-01T00:00:00Z".into(),
            machine: Machine {
                cpu: "cpu".into(),
                cores: 2,
                memory_mib: 1024,
                kernel: "6.1".into(),
                os: "Debian".into(),
                bench_fs: "ext4".into(),
            },
            mode: "quick",
            backend: "sqlite",
            server: None,
            durability: "full",
            results: vec![
                Row::new("latency", "p50", 1.5, "ms").target(Target::at_most(5.0)),
                Row::new("latency", "p99", 25.0, "ms").target(Target::at_most(20.0)),
            ],
            failures: vec![Failure {
                scenario: "scale",
                error: "disk full".into(),
            }],
            duration_seconds: 3.0,
        };
        let table = report.table();
        assert!(table.contains("p50"), "{table}");
        assert!(table.contains("NO"), "{table}");
        assert!(table.contains("targets met: 1 of 2"), "{table}");
        assert!(table.contains("FAILED scale: disk full"), "{table}");
        assert_eq!(report.tally(), (1, 2));
    }
}
