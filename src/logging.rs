//! Logging setup. A worker under systemd logs to journald with structured
//! fields named like the job output's (`QUEUECTL_JOB_ID=…`, `QUEUECTL_ATTEMPT=…`);
//! everything else logs to stderr.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// `long_running` is true for workers and the dashboard, which log at info
/// by default; CLI commands only warn. `QUEUECTL_LOG` overrides (e.g.
/// `QUEUECTL_LOG=debug`). `identifier` names the program in the journal
/// (`SYSLOG_IDENTIFIER`: `queuectl-worker`, `queuectl-web`).
pub fn init(long_running: bool, identifier: &str) {
    let default = if long_running { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("QUEUECTL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if long_running && libsystemd::logging::connected_to_journal() {
        if let Ok(journal) = tracing_journald::layer() {
            let journal = journal
                // `job_id` becomes QUEUECTL_JOB_ID: a bare JOB_ID is the
                // manager's own field (its job numbers).
                .with_field_prefix(Some("QUEUECTL".to_owned()))
                .with_syslog_identifier(identifier.to_owned());
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journal)
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
