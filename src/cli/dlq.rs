use super::Context;
use super::args::DlqCommand;
use queuectl::domain::JobState;
use queuectl::error::Result;
use queuectl::store::{BulkAction, ListFilter};

pub fn run(ctx: &Context, command: DlqCommand) -> Result<()> {
    match command {
        DlqCommand::List { page } => super::list::print_list(
            ctx,
            &ListFilter::states(&[JobState::Dead]),
            &page,
            super::list::Columns::DeadLetters,
        ),
        DlqCommand::Retry { select } => {
            super::restart::run_again(ctx, "dlq retry", BulkAction::RetryDead, &select)
        }
    }
}
