use super::Context;
use super::format::print_json;
use queuectl::domain::JobState;
use queuectl::domain::schedule::Driver;
use queuectl::error::{Error, Result};
use queuectl::store::{Database, OpenMode, Store};
use std::path::Path;

pub fn run(ctx: &Context, from: &Path, to: &Path) -> Result<()> {
    let from = Database::from_os(from.as_os_str())?;
    let to = Database::from_os(to.as_os_str())?;
    if from == to {
        return Err(Error::Invalid("--from and --to name the same queue".into()));
    }
    let mut source = Store::open_as(&from, ctx.config.durability, OpenMode::ReadOnly)?;
    let running = source
        .counts()?
        .get(&JobState::Processing)
        .copied()
        .unwrap_or(0);
    if running > 0 {
        return Err(Error::Conflict(format!(
            "{from} has {running} job(s) running; stop its workers first (queuectl worker stop)"
        )));
    }
    let records = source.export()?;
    let queues: Vec<_> = source
        .queues()?
        .into_iter()
        .filter(|q| q.has_settings())
        .collect();
    let schedules = source.schedules()?;
    let attempts: usize = records.iter().map(|r| r.attempts.len()).sum();
    let mut target = Store::open_as(&to, ctx.config.durability, OpenMode::Create)?;
    target.import(&records, &queues, &schedules)?;
    let timers: Vec<&str> = schedules
        .iter()
        .filter(|s| s.driver == Driver::Systemd)
        .map(|s| s.name.as_str())
        .collect();
    if !timers.is_empty() {
        eprintln!(
            "note: schedule(s) {} are fired by systemd timers on the source host, which still enqueue into {from}; \
             run `queuectl schedule add ... --replace` against {to} on the host that should fire them",
            timers.join(", ")
        );
    }
    if ctx.json {
        return print_json(&serde_json::json!({
            "from": from,
            "to": to,
            "jobs": records.len(),
            "attempts": attempts,
            "queues": queues.len(),
            "schedules": schedules.len(),
        }));
    }
    println!(
        "copied {} job(s) with {attempts} attempt(s), {} queue setting(s) and {} schedule(s) from {from} to {to}",
        records.len(),
        queues.len(),
        schedules.len()
    );
    Ok(())
}
