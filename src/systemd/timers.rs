//! A schedule's systemd units: `queuectl-schedule-NAME.timer` with its
//! calendar, and `queuectl-schedule-NAME.service`, a oneshot that runs
//! `queuectl schedule fire NAME`. The units never carry the job (its
//! command or env): the store holds it, so no secret reaches a unit file
//! and nothing needs quoting but the binary's path and the calendar.
//!
//! Files are written only under names made of a [`ScheduleName`], and
//! changed or removed only when their first line says queuectl wrote them
//! for that schedule; never where a package or NixOS manages the units.

use super::systemctl::Systemctl;
use super::units;
use crate::domain::schedule::ScheduleName;
use crate::error::{Error, Result};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

pub const UNIT_PREFIX: &str = "queuectl-schedule-";

pub fn timer_unit(name: &ScheduleName) -> String {
    format!("{UNIT_PREFIX}{name}.timer")
}

pub fn service_unit(name: &ScheduleName) -> String {
    format!("{UNIT_PREFIX}{name}.service")
}

/// The first line of every file queuectl writes for a schedule.
fn marker(name: &ScheduleName) -> String {
    format!("# Written by queuectl schedule add ({name})")
}

/// What the timer says.
pub struct TimerSpec<'a> {
    pub name: &'a ScheduleName,
    /// One `OnCalendar=` line each (checked: one line, no control characters).
    pub calendars: &'a [String],
    pub persistent: bool,
    pub randomized_delay: Duration,
}

/// The timer and service files, as (file name, text).
pub fn render(spec: &TimerSpec, binary: &Path, config: &Path, db: &Path) -> [(String, String); 2] {
    let name = spec.name;
    let mut timer = format!(
        "{}\n[Unit]\nDescription=queuectl schedule {name}\n\n[Timer]\n",
        marker(name)
    );
    for calendar in spec.calendars {
        timer.push_str(&format!(
            "OnCalendar={}\n",
            units::escape_unit_value(calendar)
        ));
    }
    timer.push_str(&format!(
        "Persistent={}\nRandomizedDelaySec={}ms\n# systemd's default accuracy is a minute.\nAccuracySec=1s\nUnit={}\n\n[Install]\nWantedBy=timers.target\n",
        if spec.persistent { "yes" } else { "no" },
        spec.randomized_delay.as_millis(),
        service_unit(name),
    ));
    let service = format!(
        "{}\n[Unit]\nDescription=queuectl schedule {name}: enqueue its job\n\n[Service]\nType=oneshot\nExecStart={} schedule fire {name}\n{}",
        marker(name),
        units::exec_word(binary),
        units::environment_lines(config, db),
    );
    [(timer_unit(name), timer), (service_unit(name), service)]
}

/// Who wrote a schedule's unit files.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// Neither file exists.
    Absent,
    /// queuectl, for this schedule (both files that exist say so).
    Queuectl,
    /// Someone else, or a symlink: left alone.
    Other(String),
}

/// Reads the first line of each of the schedule's files without following
/// a symlink.
pub fn owner(dir: &Path, name: &ScheduleName) -> Result<Owner> {
    let mut found = false;
    for file in [timer_unit(name), service_unit(name)] {
        let path = dir.join(&file);
        let mut text = String::new();
        match crate::files::read_nofollow(&path) {
            Ok(mut f) => {
                f.by_ref()
                    .take(512)
                    .read_to_string(&mut text)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return Ok(Owner::Other(path.display().to_string())),
        }
        found = true;
        if text.lines().next() != Some(marker(name).as_str()) {
            return Ok(Owner::Other(path.display().to_string()));
        }
    }
    Ok(if found {
        Owner::Queuectl
    } else {
        Owner::Absent
    })
}

/// Refuses a schedule whose unit files queuectl did not write (exit 4).
pub fn refuse_foreign(dir: &Path, name: &ScheduleName) -> Result<()> {
    match owner(dir, name)? {
        Owner::Other(path) => Err(Error::Conflict(format!(
            "{path} was not written by `queuectl schedule add` for '{name}'; leaving it alone"
        ))),
        Owner::Absent | Owner::Queuectl => Ok(()),
    }
}

/// Refuses to write or remove unit files where the system manages them
/// (`QUEUECTL_UNITS_MANAGED=1`, e.g. NixOS).
pub fn refuse_managed() -> Result<()> {
    if crate::supervisor::systemd::units_managed() {
        return Err(Error::Invalid(
            "unit files are managed by the system here (QUEUECTL_UNITS_MANAGED=1): declare schedules there (NixOS: services.queuectl.schedules)".into(),
        ));
    }
    Ok(())
}

/// Writes (or rewrites) the schedule's units, reloads the manager and
/// starts the timer.
pub fn install(
    systemctl: &Systemctl,
    spec: &TimerSpec,
    binary: &Path,
    config: &Path,
    db: &Path,
) -> Result<()> {
    refuse_managed()?;
    let dir = systemctl.scope.unit_dir();
    refuse_foreign(&dir, spec.name)?;
    let files = render(spec, binary, config, db).to_vec();
    // What was there (queuectl's own files, checked above), to put back
    // when the manager refuses the new units.
    let before: Vec<(String, Option<String>)> = files
        .iter()
        .map(|(file, _)| (file.clone(), std::fs::read_to_string(dir.join(file)).ok()))
        .collect();
    let started = units::write_if_changed(&dir, &files).and_then(|changed| {
        if changed {
            systemctl.run(&["daemon-reload"])?;
        }
        systemctl.run(&["enable", "--now", &timer_unit(spec.name)])?;
        // A rewritten timer starts over from its new calendar.
        systemctl.run(&["restart", &timer_unit(spec.name)])?;
        Ok(())
    });
    let Err(e) = started else {
        return Ok(());
    };
    let undone = restore(systemctl, &dir, &before);
    Err(Error::Supervisor(format!("{e}; {undone}")))
}

/// Puts a schedule's unit files back as they were before a failed install;
/// says what is left.
fn restore(systemctl: &Systemctl, dir: &Path, before: &[(String, Option<String>)]) -> String {
    let mut left = vec![];
    for (file, text) in before {
        let path = dir.join(file);
        let put_back = match text {
            Some(text) => crate::paths::write_atomically_readable(&path, text.as_bytes()),
            None => match crate::files::remove_nofollow(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io(format!("cannot remove {}", path.display()), e))
                }
                _ => Ok(()),
            },
        };
        if put_back.is_err() {
            left.push(path.display().to_string());
        }
    }
    if systemctl.scope.manager_running() {
        let _ = systemctl.run(&["daemon-reload"]);
    }
    let previous = before.iter().any(|(_, text)| text.is_some());
    match (left.is_empty(), previous) {
        (true, false) => "no unit files were left behind".into(),
        (true, true) => "the previous unit files were put back".into(),
        (false, _) => format!("left behind: {}", left.join(", ")),
    }
}

/// Stops and removes the schedule's units (only queuectl's); returns
/// whether there were any.
pub fn uninstall(systemctl: &Systemctl, name: &ScheduleName) -> Result<bool> {
    let dir = systemctl.scope.unit_dir();
    match owner(&dir, name)? {
        Owner::Absent => return Ok(false),
        _ if crate::supervisor::systemd::units_managed() => {
            return refuse_managed().map(|()| false);
        }
        Owner::Other(path) => {
            return Err(Error::Conflict(format!(
                "{path} was not written by `queuectl schedule add` for '{name}'; leaving it alone"
            )));
        }
        Owner::Queuectl => {}
    }
    if systemctl.scope.manager_running() {
        // A timer that is not loaded is fine: it is removed all the same.
        let _ = systemctl.run(&["disable", "--now", &timer_unit(name)]);
    }
    for file in [timer_unit(name), service_unit(name)] {
        match crate::files::remove_nofollow(&dir.join(&file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(
                    format!("cannot remove {}", dir.join(&file).display()),
                    e,
                ));
            }
            _ => {}
        }
    }
    if systemctl.scope.manager_running() {
        systemctl.run(&["daemon-reload"])?;
    }
    Ok(true)
}

/// What the manager says about a schedule's timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerState {
    pub next_elapse: Option<Timestamp>,
    pub last_trigger: Option<Timestamp>,
}

/// Every loaded schedule timer of the scope's manager, by schedule name.
pub fn timer_states(systemctl: &Systemctl) -> Result<BTreeMap<String, TimerState>> {
    let pattern = format!("{UNIT_PREFIX}*.timer");
    let out = systemctl
        .command()
        .args([
            "show",
            "--timestamp=unix",
            "--property=Id,NextElapseUSecRealtime,LastTriggerUSec",
            &pattern,
        ])
        // systemd 252 ignores --timestamp=unix for these properties and
        // prints local times: make them UTC.
        .env("TZ", "UTC")
        .output()
        .map_err(|e| Error::io("cannot run systemctl", e))?;
    if !out.status.success() {
        return Err(Error::Supervisor(format!(
            "systemctl show {pattern} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
}

/// A time as `systemctl show` prints it: `@SECONDS` (`--timestamp=unix`)
/// or `Tue 2026-12-01 03:17:00 UTC`; `None` when empty or `n/a`.
fn shown_time(value: &str) -> Option<Timestamp> {
    if let Some(seconds) = value.strip_prefix('@') {
        let seconds: i64 = seconds.trim().parse().ok()?;
        return Timestamp::from_second(seconds).ok().filter(|_| seconds > 0);
    }
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [_, date, time, "UTC"] => format!("{date}T{time}Z").parse().ok(),
        _ => None,
    }
}

/// `systemctl show` blocks (`Key=value` lines, blank lines between units).
fn parse_show(text: &str) -> BTreeMap<String, TimerState> {
    let mut states = BTreeMap::new();
    for block in text.split("\n\n") {
        let props: BTreeMap<&str, &str> = block
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let Some(name) = props
            .get("Id")
            .and_then(|id| id.strip_prefix(UNIT_PREFIX)?.strip_suffix(".timer"))
        else {
            continue;
        };
        let time = |key: &str| shown_time(props.get(key)?);
        states.insert(
            name.to_owned(),
            TimerState {
                next_elapse: time("NextElapseUSecRealtime"),
                last_trigger: time("LastTriggerUSec"),
            },
        );
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> ScheduleName {
        ScheduleName::parse(text).unwrap()
    }

    #[test]
    fn units_carry_the_calendar_and_the_fire_command_never_the_job() {
        let n = name("nightly");
        let calendars = ["Mon..Fri 02:00".to_owned(), "Sat 100%".to_owned()];
        let [(timer_file, timer), (service_file, service)] = render(
            &TimerSpec {
                name: &n,
                calendars: &calendars,
                persistent: true,
                randomized_delay: Duration::from_secs(90),
            },
            Path::new("/opt/q bin/queuectl"),
            Path::new("/etc/queuectl/config.toml"),
            Path::new("/var/lib/queuectl/queue.db"),
        );
        assert_eq!(timer_file, "queuectl-schedule-nightly.timer");
        assert_eq!(service_file, "queuectl-schedule-nightly.service");
        assert!(timer.starts_with("# Written by queuectl schedule add (nightly)\n"));
        assert!(
            timer.contains("OnCalendar=Mon..Fri 02:00\nOnCalendar=Sat 100%%\n"),
            "{timer}"
        );
        assert!(
            timer.contains("Persistent=yes\nRandomizedDelaySec=90000ms\n"),
            "{timer}"
        );
        assert!(timer.contains("AccuracySec=1s\n"));
        assert!(timer.contains("WantedBy=timers.target"));
        assert!(service.contains("Type=oneshot\n"));
        assert!(
            service.contains("ExecStart=\"/opt/q bin/queuectl\" schedule fire nightly\n"),
            "{service}"
        );
        assert!(service.contains("Environment=\"QUEUECTL_DB=/var/lib/queuectl/queue.db\""));
    }

    #[test]
    fn only_files_with_the_marker_are_queuectls() {
        let dir = tempfile::tempdir().unwrap();
        let n = name("x");
        assert_eq!(owner(dir.path(), &n).unwrap(), Owner::Absent);
        std::fs::write(
            dir.path().join(timer_unit(&n)),
            format!("{}\n[Timer]\n", marker(&n)),
        )
        .unwrap();
        assert_eq!(owner(dir.path(), &n).unwrap(), Owner::Queuectl);
        // Another schedule's marker is not this one's.
        std::fs::write(
            dir.path().join(service_unit(&n)),
            format!("{}\n", marker(&name("y"))),
        )
        .unwrap();
        assert!(matches!(owner(dir.path(), &n).unwrap(), Owner::Other(_)));
        std::fs::remove_file(dir.path().join(service_unit(&n))).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join(timer_unit(&n)),
            dir.path().join(service_unit(&n)),
        )
        .unwrap();
        assert!(matches!(owner(dir.path(), &n).unwrap(), Owner::Other(_)));
    }

    #[test]
    fn show_output_gives_each_timers_times() {
        let text = "Id=queuectl-schedule-a.timer\nNextElapseUSecRealtime=@1800000000\nLastTriggerUSec=n/a\n\nNextElapseUSecRealtime=\nLastTriggerUSec=Fri 2027-01-15 07:59:50 UTC\nId=queuectl-schedule-b.timer\n";
        let states = parse_show(text);
        assert_eq!(
            states["a"],
            TimerState {
                next_elapse: Some(Timestamp::from_second(1_800_000_000).unwrap()),
                last_trigger: None
            }
        );
        assert_eq!(states["b"].next_elapse, None);
        assert_eq!(
            states["b"].last_trigger,
            Some(Timestamp::from_second(1_799_999_990).unwrap())
        );
    }
}
