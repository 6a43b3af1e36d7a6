use super::Context;
use super::args::DlqCommand;
use queuectl::domain::JobState;
use queuectl::error::Result;
use queuectl::store::{BulkAction, OpenMode};

pub fn run(ctx: &Context, command: DlqCommand) -> Result<()> {
    match command {
        DlqCommand::List { limit } => {
            let mut store = ctx.store(OpenMode::ReadOnly)?;
            let jobs = store.list(Some(JobState::Dead), limit)?;
            super::list::print_jobs(ctx, &mut store, &jobs)
        }
        DlqCommand::Retry { select } => {
            super::restart::run_again(ctx, "dlq retry", BulkAction::RetryDead, &select)
        }
    }
}
