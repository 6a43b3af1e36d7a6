//! `queue list|pause|resume|set`: named queues' settings and their jobs.
//! The settings live in the queue (so they hold on every host); a change
//! wakes idle workers, which may now have room for more.

use super::Context;
use super::args::QueueCommand;
use super::format::print_json;
use queuectl::domain::{QueueChange, QueueName, echo};
use queuectl::error::{Error, Result};
use queuectl::store::{OpenMode, QueueRow, Store};
use queuectl::wakeup::wake_workers;

pub fn run(ctx: &Context, command: QueueCommand) -> Result<()> {
    let (name, change) = match command {
        QueueCommand::List => return list(ctx),
        QueueCommand::Pause { name } => (
            name,
            QueueChange {
                paused: Some(true),
                ..QueueChange::default()
            },
        ),
        QueueCommand::Resume { name } => (
            name,
            QueueChange {
                paused: Some(false),
                ..QueueChange::default()
            },
        ),
        QueueCommand::Set {
            name,
            parallel,
            paused,
        } => {
            if parallel.is_none() && paused.is_none() {
                return Err(Error::Invalid(
                    "queue set: give --parallel N|none or --paused true|false".into(),
                ));
            }
            (
                name,
                QueueChange {
                    parallel: parallel.map(|p| p.0),
                    paused,
                },
            )
        }
    };
    let name = QueueName::parse(&name)
        .map_err(|why| Error::Invalid(format!("queue name '{}' {why}", echo::shown(&name))))?;
    // Like cancel and restart: a mistyped --db is "no queue", never a new one.
    let mut store = ctx.store(OpenMode::Existing)?;
    let known = find(&mut store, name.as_str())?.is_some();
    let queue = store.configure_queue(&name, &change)?;
    wake_workers(&ctx.state.wake());
    if !known && change.paused == Some(true) {
        // Allowed (a queue may be paused ahead of its jobs), but a typo
        // would pass silently.
        eprintln!("queuectl: queue '{name}' has no jobs yet; pausing it ahead of them");
    }
    warn_config_pins(ctx, &name, &queue);
    if ctx.json {
        return print_json(&queue);
    }
    println!("queue '{}': {}", queue.name, settings(&queue));
    Ok(())
}

/// The queue named `name` as `queue list` shows it; `None` when it has no
/// settings and no unfinished jobs.
pub fn find(store: &mut Store, name: &str) -> Result<Option<QueueRow>> {
    Ok(store.queues()?.into_iter().find(|q| q.name == name))
}

/// The config's `[queues.NAME]` is written into the queue at every worker
/// start: a setting it pins otherwise would come back then, so say so.
fn warn_config_pins(ctx: &Context, name: &QueueName, queue: &QueueRow) {
    let Some(pinned) = ctx.config.queues.get(name) else {
        return;
    };
    let mut pins = Vec::new();
    if let Some(paused) = pinned.paused.filter(|p| *p != queue.paused) {
        pins.push(format!("paused = {paused}"));
    }
    if let Some(parallel) = pinned.parallel.filter(|p| *p != queue.parallel) {
        pins.push(format!(
            "parallel = {}",
            parallel.map_or("\"none\"".to_owned(), |n| n.to_string())
        ));
    }
    for pin in pins {
        eprintln!(
            "queuectl: warning: {} sets [queues.{name}] {pin}: the next worker start sets it back",
            ctx.config_path.display()
        );
    }
}

/// A queue's settings in words: "parallel 2, paused".
fn settings(queue: &QueueRow) -> String {
    let parallel = match queue.parallel {
        Some(n) => format!("parallel {n}"),
        None => "no limit".to_owned(),
    };
    let state = if queue.paused { "paused" } else { "running" };
    format!("{parallel}, {state}")
}

fn list(ctx: &Context) -> Result<()> {
    let queues = ctx.store(OpenMode::ReadOnly)?.queues()?;
    if ctx.json {
        return print_json(&queuectl::views::queue_list(&queues));
    }
    if queues.is_empty() {
        eprintln!("no queues (every job goes to \"default\" unless it names one)");
        return Ok(());
    }
    let name_width = queues
        .iter()
        .map(|q| q.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{}",
        ctx.paint.bold(&format!(
            "{:<name_width$}  {:>8}  {:<7}  {:>7}  {:>7}  {:>7}",
            "NAME", "PARALLEL", "STATE", "WAITING", "RUNNING", "BLOCKED"
        ))
    );
    for queue in &queues {
        let parallel = queue.parallel.map_or("-".to_owned(), |n| n.to_string());
        let state = if queue.paused { "paused" } else { "running" };
        println!(
            "{:<name_width$}  {parallel:>8}  {state:<7}  {:>7}  {:>7}  {:>7}",
            queue.name, queue.waiting, queue.running, queue.blocked
        );
    }
    Ok(())
}
