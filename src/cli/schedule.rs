//! `schedule add|list|remove|run` and the hidden `schedule fire` that a
//! schedule's service runs. The queue holds each schedule (with its job);
//! a systemd timer only says when (`systemd::timers`), or the workers do.

use super::Context;
use super::args::{DriverArg, OverlapArg, ScheduleAddArgs, ScheduleCommand, ScopeArgs};
use super::format::{print_json, table};
use super::job_fields::flag_error;
use queuectl::domain::calendar::{Calendar, Zone};
use queuectl::domain::echo;
use queuectl::domain::schedule::{
    Driver, Overlap, ScheduleName, check_calendar_text, job_template, parse_calendars,
};
use queuectl::error::{Error, IoContext, Result};
use queuectl::store::OpenMode;
use queuectl::store::schedules::{FireOutcome, Fired, NewSchedule, ScheduleRow};
use queuectl::systemd::systemctl::{Scope, Systemctl};
use queuectl::systemd::timers::{self, TimerSpec};
use queuectl::views::{self, NextElapse};
use queuectl::wakeup::wake_workers;
use queuectl::worker::hostname;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub fn run(ctx: &Context, command: ScheduleCommand) -> Result<()> {
    match command {
        ScheduleCommand::Add(args) => add(ctx, *args),
        ScheduleCommand::List { scope } => list(ctx, scope),
        ScheduleCommand::Remove { name, scope } => remove(ctx, &name, scope),
        ScheduleCommand::Run { name } => fire(ctx, &name),
        ScheduleCommand::Fire { name, spec } => {
            if let Some(spec) = spec {
                upsert_declared(ctx, &name, &spec)?;
            }
            fire(ctx, &name)
        }
    }
}

fn name_of(text: &str) -> Result<ScheduleName> {
    ScheduleName::parse(text).map_err(Error::Invalid)
}

fn add(ctx: &Context, args: ScheduleAddArgs) -> Result<()> {
    let name = name_of(&args.name)?;
    for expr in &args.on_calendar {
        check_calendar_text(expr).map_err(|why| Error::Invalid(format!("--on-calendar: {why}")))?;
    }
    let job = match &args.job_json {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("--job: malformed JSON: {e}")))?,
        None => Value::Object(args.job.fields_of(&args.command)?),
    };
    job_template(&job).map_err(|e| match args.job_json {
        Some(_) => Error::Invalid(format!("--job: {e}")),
        None => flag_error(e, "COMMAND"),
    })?;
    let scope = args.scope.scope();
    let driver = driver_for(args.driver, &args.scope)?;
    let calendars = match driver {
        // The subset the workers run.
        Driver::Workers => parse_calendars(&args.on_calendar)
            .map_err(|why| Error::Invalid(format!("--on-calendar: {why}")))?,
        // systemd's own verdict, before anything is written.
        Driver::Systemd => {
            for expr in &args.on_calendar {
                queuectl::systemd::calendar::check(expr)?;
            }
            args.on_calendar
                .iter()
                .filter_map(|expr| Calendar::parse(expr).ok())
                .collect()
        }
    };
    let schedule = NewSchedule {
        time_zone: zone_for(&calendars, args.on_calendar.len(), driver)?,
        name: name.clone(),
        on_calendar: args.on_calendar.clone(),
        job,
        overlap: match args.overlap {
            OverlapArg::Skip => Overlap::Skip,
            OverlapArg::Queue => Overlap::Queue,
            OverlapArg::Replace => Overlap::Replace,
        },
        persistent: args.persistent,
        randomized_delay: args.randomized_delay.unwrap_or(Duration::ZERO),
        driver,
        host: (driver == Driver::Systemd).then(hostname),
        managed: false,
    };
    if driver == Driver::Systemd {
        // Refused before anything is written: units the system manages, or
        // that queuectl did not write.
        timers::refuse_managed()?;
        timers::refuse_foreign(&scope.unit_dir(), &name)?;
    }
    let mut store = ctx.store(OpenMode::Create)?;
    // What --replace replaces, put back if the new timer cannot start.
    let previous = match args.replace {
        true => store
            .schedules()?
            .into_iter()
            .find(|r| r.name == name.as_str()),
        false => None,
    };
    store.add_schedule(&schedule, args.replace)?;
    if driver == Driver::Systemd
        && let Err(e) = install_units(ctx, scope, &schedule)
    {
        // Without its timer the row would never fire: take it back.
        let undone = match &previous {
            Some(row) => name_of(&row.name)
                .and_then(|old_name| {
                    let old = NewSchedule {
                        name: old_name,
                        on_calendar: row.on_calendar.clone(),
                        time_zone: row.time_zone.clone(),
                        job: row.job.clone(),
                        overlap: row.overlap,
                        persistent: row.persistent,
                        randomized_delay: row.randomized_delay,
                        driver: row.driver,
                        host: row.host.clone(),
                        managed: row.managed,
                    };
                    store.add_schedule(&old, true)
                })
                .map(|()| "the previous schedule was put back"),
            None => store
                .remove_schedule(name.as_str())
                .map(|_| "no schedule was added"),
        };
        return Err(match undone {
            Ok(said) => Error::Supervisor(format!("{e}; {said}")),
            Err(why) => Error::Supervisor(format!(
                "{e}; the schedule '{name}' is left in the queue ({why}): remove it with `queuectl schedule remove {name}`"
            )),
        });
    }
    if driver == Driver::Workers {
        if args.replace {
            // A timer of the schedule it replaces (in either scope) would
            // fire it too.
            for scope in [Scope::User, Scope::System] {
                if timers::owner(&scope.unit_dir(), &name)? == timers::Owner::Queuectl {
                    timers::uninstall(&Systemctl { scope }, &name)?;
                }
            }
        }
        // Idle workers here look at the schedules now, not at their next tick.
        wake_workers(&ctx.state.wake());
    }
    if ctx.json {
        return print_json(&serde_json::json!({
            "added": name.as_str(), "driver": driver, "timer": (driver == Driver::Systemd).then(|| timers::timer_unit(&name)),
        }));
    }
    match driver {
        Driver::Systemd => println!(
            "schedule {name} added: {} ({} scope)",
            timers::timer_unit(&name),
            scope.as_str()
        ),
        Driver::Workers => println!("schedule {name} added: fired by the workers"),
    }
    Ok(())
}

/// `--driver` as asked, `auto` being systemd where its manager runs.
fn driver_for(asked: DriverArg, scope: &ScopeArgs) -> Result<Driver> {
    let manager = scope.scope().manager_running();
    match asked {
        DriverArg::Workers if scope.explicit() => Err(Error::Invalid(
            "--user and --system choose a systemd manager; --driver workers uses none".into(),
        )),
        DriverArg::Workers => Ok(Driver::Workers),
        DriverArg::Auto if !manager && !scope.explicit() => Ok(Driver::Workers),
        DriverArg::Auto | DriverArg::Systemd if manager => Ok(Driver::Systemd),
        DriverArg::Auto | DriverArg::Systemd => Err(Error::Supervisor(format!(
            "no systemd {} manager is running here: use --driver workers",
            scope.scope().as_str()
        ))),
    }
}

/// The zone local times are read in: this host's IANA zone, which the
/// workers (maybe on other hosts) need by name; `UTC` when every
/// expression names its own.
fn zone_for(calendars: &[Calendar], exprs: usize, driver: Driver) -> Result<String> {
    let all_zoned = calendars.len() == exprs && calendars.iter().all(|c| *c.zone() != Zone::Local);
    match jiff::tz::TimeZone::system().iana_name() {
        Some(name) => Ok(name.to_owned()),
        None if all_zoned || driver == Driver::Systemd => Ok("UTC".into()),
        None => Err(Error::Invalid(
            "cannot tell this host's time zone by name (set TZ, e.g. TZ=Europe/Berlin), or name the zone in each calendar ('02:00 Europe/Berlin')".into(),
        )),
    }
}

fn install_units(ctx: &Context, scope: Scope, schedule: &NewSchedule) -> Result<()> {
    let invocation = super::worker::invocation(ctx)?;
    let db = std::path::PathBuf::from(invocation.db.for_unit_file()?);
    timers::install(
        &Systemctl { scope },
        &TimerSpec {
            name: &schedule.name,
            calendars: &schedule.on_calendar,
            persistent: schedule.persistent,
            randomized_delay: schedule.randomized_delay,
        },
        &invocation.exe,
        &invocation.config,
        &db,
    )
}

fn list(ctx: &Context, scope: ScopeArgs) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let rows = store.schedules()?;
    let scope = scope.scope();
    let here = hostname();
    // Timers of this host's manager; none when it is not running.
    let asked = rows
        .iter()
        .any(|r| r.driver == Driver::Systemd && r.host.as_deref().is_none_or(|h| h == here));
    // A manager that cannot be asked leaves NEXT unknown, not the list failed.
    let states = match asked.then(|| timers::timer_states(&Systemctl { scope })) {
        None => Some(BTreeMap::new()),
        Some(Ok(states)) => Some(states),
        Some(Err(e)) => {
            eprintln!("note: next elapses of systemd schedules are unknown: {e}");
            None
        }
    };
    let next = |row: &ScheduleRow| views::next_elapse(row, &here, states.as_ref());
    if ctx.json {
        return print_json(&views::schedule_list(&rows, &here, states.as_ref()));
    }
    if rows.is_empty() {
        println!("no schedules (add one with `queuectl schedule add`)");
        return Ok(());
    }
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let next = match next(row) {
                // The workers fire within a second or so of an elapse.
                NextElapse::At(Some(at))
                    if row.driver == Driver::Workers
                        && at < jiff::Timestamp::now() - jiff::SignedDuration::from_secs(5) =>
                {
                    format!("{} overdue (no worker fired it)", ctx.times.at(at))
                }
                NextElapse::At(Some(at)) => ctx.times.at(at),
                NextElapse::At(None) => "never".into(),
                NextElapse::OnHost(host) => format!("on host {host}"),
                NextElapse::NoTimer => "no timer loaded".into(),
                NextElapse::Unknown => "unknown".into(),
            };
            let state = row
                .last_job_state
                .map_or("-".into(), |s| s.as_str().to_owned());
            [
                row.name.clone(),
                echo::shown(&row.on_calendar.join("; ")),
                next,
                row.last_job_id.clone().unwrap_or_else(|| "-".into()),
                state,
                format!("{}, {}", row.driver.as_str(), row.overlap.as_str()),
            ]
        })
        .collect();
    let (header, lines) = table(
        [
            "NAME",
            "CALENDAR",
            "NEXT",
            "LAST JOB",
            "STATE",
            "DRIVER, OVERLAP",
        ],
        [false; 6],
        &cells,
    );
    println!("{header}");
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn remove(ctx: &Context, text: &str, scope: ScopeArgs) -> Result<()> {
    let name = name_of(text)?;
    let mut store = ctx.store(OpenMode::Existing)?;
    let row = store
        .schedules()?
        .into_iter()
        .find(|r| r.name == name.as_str());
    let systemctl = Systemctl {
        scope: scope.scope(),
    };
    if let Some(row) = &row {
        // A declared schedule goes with its declaration: refused while the
        // system still has its timer.
        if row.managed && systemctl.unit_file_exists(&timers::timer_unit(&name)) {
            return Err(Error::Conflict(format!(
                "schedule '{name}' is declared by the system (NixOS: services.queuectl.schedules); remove it there"
            )));
        }
        if let Some(host) = row.host.as_deref().filter(|h| *h != hostname()) {
            return Err(Error::Conflict(format!(
                "schedule '{name}' has its timer on host {host}: remove it there"
            )));
        }
    }
    // A workers schedule has no units; a declared one's are the system's.
    let units = match &row {
        Some(row) if row.driver == Driver::Workers || row.managed => false,
        _ => timers::uninstall(&systemctl, &name)?,
    };
    let removed = store.remove_schedule(name.as_str())?;
    if !removed && !units {
        return Err(Error::ScheduleNotFound(name.to_string()));
    }
    if ctx.json {
        return print_json(&serde_json::json!({ "removed": name.as_str(), "units": units }));
    }
    println!("schedule {name} removed");
    Ok(())
}

/// Enqueues the schedule's job now (`run`, and a timer's `fire`).
fn fire(ctx: &Context, text: &str) -> Result<()> {
    let name = name_of(text)?;
    let mut store = ctx.store(OpenMode::Existing)?;
    let fired = store.fire_schedule(name.as_str(), &ctx.job_defaults())?;
    wake_workers(&ctx.state.wake());
    let overlap = match fired.outcome {
        FireOutcome::Skipped { .. } => store
            .schedules()?
            .into_iter()
            .find(|r| r.name == name.as_str())
            .map_or(Overlap::Skip, |r| r.overlap),
        _ => Overlap::Skip,
    };
    report(ctx, &fired, overlap)
}

fn report(ctx: &Context, fired: &Fired, overlap: Overlap) -> Result<()> {
    if ctx.json {
        return print_json(fired);
    }
    match &fired.outcome {
        FireOutcome::Enqueued { id } => println!("{id}"),
        FireOutcome::Replaced { id } => {
            println!("{id}");
            eprintln!("updated the waiting job {id} of an earlier elapse");
        }
        FireOutcome::Skipped { holder } => {
            println!("{holder}");
            eprintln!(
                "skipped: job {holder} of an earlier elapse {}",
                match overlap {
                    Overlap::Replace =>
                        "is running (overlap replace: a running job is not replaced)",
                    _ => "has not finished (overlap skip)",
                }
            );
        }
        FireOutcome::Missed => {}
    }
    Ok(())
}

/// A schedule as the NixOS module declares it (`schedule fire --spec`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclaredSchedule {
    on_calendar: Vec<String>,
    job: Value,
    #[serde(default)]
    overlap: Option<String>,
    #[serde(default)]
    persistent: bool,
    #[serde(default)]
    randomized_delay_sec: u64,
}

/// Writes a declared schedule's row (marked managed) before it fires.
fn upsert_declared(ctx: &Context, text: &str, spec: &Path) -> Result<()> {
    let name = name_of(text)?;
    let bytes = std::fs::read(spec).context(|| format!("cannot read {}", spec.display()))?;
    let declared: DeclaredSchedule = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("--spec {}: {e}", spec.display())))?;
    job_template(&declared.job)
        .map_err(|e| Error::Invalid(format!("--spec {}: job: {e}", spec.display())))?;
    let overlap = match declared.overlap.as_deref() {
        None => Overlap::Skip,
        Some(word) => Overlap::parse(word).ok_or_else(|| {
            Error::Invalid(format!("--spec: unknown overlap '{}'", echo::shown(word)))
        })?,
    };
    let calendars: Vec<Calendar> = declared
        .on_calendar
        .iter()
        .filter_map(|expr| Calendar::parse(expr).ok())
        .collect();
    let schedule = NewSchedule {
        time_zone: zone_for(&calendars, declared.on_calendar.len(), Driver::Systemd)?,
        name,
        on_calendar: declared.on_calendar,
        job: declared.job,
        overlap,
        persistent: declared.persistent,
        randomized_delay: Duration::from_secs(declared.randomized_delay_sec),
        driver: Driver::Systemd,
        host: Some(hostname()),
        managed: true,
    };
    ctx.store(OpenMode::Create)?.add_schedule(&schedule, true)
}
