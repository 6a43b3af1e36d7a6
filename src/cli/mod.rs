//! The command-line shell: parse, call the library, print. No queue logic
//! lives here.

mod add;
pub mod args;
mod bench;
mod bulk;
mod cancel;
pub mod complete;
mod config;
mod copy;
mod dlq;
mod edit;
mod enqueue;
mod format;
mod job_fields;
mod list;
mod logs;
mod man;
mod metrics;
mod output_place;
mod purge;
mod queue;
mod restart;
mod schedule;
mod show;
mod status;
mod units;
mod wait;
mod web;
mod worker;

use args::{Cli, ColorChoice, Command, ConfigCommand};
use format::{Painter, Times};
use queuectl::config::Config;
use queuectl::error::Result;
use queuectl::paths::{self, StateDir};
use queuectl::store::{Database, JobDefaults, OpenMode, Store};
use std::io::IsTerminal;
use std::path::PathBuf;

/// What every command needs: settings, where the queue is, how to print.
pub struct Context {
    pub config: Config,
    pub config_path: PathBuf,
    pub state: StateDir,
    pub json: bool,
    pub paint: Painter,
    /// Output is read by a person (stdout is a terminal, or `--color
    /// always`): worth structure such as `logs`' attempt headers, with or
    /// without colour.
    pub for_person: bool,
    /// The zone times are printed in.
    pub times: Times,
}

impl Context {
    pub fn load(cli: &Cli) -> Result<Context> {
        let config_path = paths::config_path(cli.config.as_deref());
        // A --config file must exist, except for the commands that make it
        // or only say where it is. The default path and $QUEUECTL_CONFIG may
        // be absent (the defaults apply): workers are handed the path that
        // way, and a config written later applies when they restart.
        let creates_config = matches!(
            cli.command,
            Command::Config(ConfigCommand::Set { .. } | ConfigCommand::Path)
        );
        let config = Config::load(&config_path, cli.config.is_none() || creates_config)?;
        let db = match &cli.db {
            Some(db) => Database::from_os(db.as_os_str())?,
            None => paths::database(&config)?,
        };
        let terminal = std::io::stdout().is_terminal();
        let colour = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
        };
        Ok(Context {
            config,
            config_path,
            state: StateDir::for_db(&db),
            json: cli.json,
            paint: Painter { enabled: colour },
            for_person: terminal || cli.color == ColorChoice::Always,
            times: Times::new(cli.utc),
        })
    }

    /// The queue, opened as the command needs: only commands that add work
    /// or run it create a queue; reading commands never change a file.
    pub fn store(&self, mode: OpenMode) -> Result<Store> {
        Store::open_as(&self.state.db, self.config.durability, mode)
    }

    pub fn job_defaults(&self) -> JobDefaults {
        JobDefaults {
            max_retries: self.config.max_retries,
            timeout_seconds: self.config.timeout_seconds,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    // These need no config or database (they run inside package builds).
    match cli.command {
        Command::Completions { shell } => return complete::print_script(shell),
        Command::Man { ref dir } => return man::run(dir.as_deref()),
        Command::Bench(ref args) => return bench::run(args, cli.db.as_deref(), cli.json),
        _ => {}
    }
    let ctx = Context::load(&cli)?;
    match cli.command {
        Command::Add(args) => add::run(&ctx, args),
        Command::Enqueue(args) => enqueue::run(&ctx, args),
        Command::Edit(args) => edit::run(&ctx, args),
        Command::Wait(args) => wait::run(&ctx, args),
        Command::List(args) => list::run(&ctx, args),
        Command::Show { id } => show::run(&ctx, &id),
        Command::Logs(args) => logs::run(&ctx, &args),
        Command::Cancel { select } => cancel::run(&ctx, &select),
        Command::Restart { select } => restart::run(&ctx, &select),
        Command::Purge { select } => purge::run(&ctx, &select),
        Command::Status { scope } => status::run(&ctx, scope),
        Command::Copy { from, to } => copy::run(&ctx, &from, &to),
        Command::Metrics => metrics::run(&ctx),
        Command::Dlq(command) => dlq::run(&ctx, command),
        Command::Config(command) => config::run(&ctx, command),
        Command::Worker(command) => worker::run(&ctx, command),
        Command::Queue(command) => queue::run(&ctx, command),

        Command::Schedule(command) => schedule::run(&ctx, command),
        Command::Units(command) => units::run(&ctx, command),
        Command::Web(args) => web::run(&ctx, args),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        Command::Bench(_) => unreachable!("handled above"),
    }
}
