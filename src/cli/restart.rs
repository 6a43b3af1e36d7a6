use super::Context;
use super::args::SelectArgs;
use queuectl::error::Result;
use queuectl::store::{BulkAction, OpenMode};
use queuectl::wakeup::wake_workers;

/// `restart` and `dlq retry`: finished jobs become due again.
pub fn run_again(
    ctx: &Context,
    command: &str,
    action: BulkAction,
    select: &SelectArgs,
) -> Result<()> {
    let selection = select.required(command, action)?;
    let outcome = ctx.store(OpenMode::Existing)?.act(action, &selection)?;
    if !outcome.done.is_empty() {
        wake_workers(&ctx.state.wake());
    }
    super::bulk::report(ctx, action, &outcome)
}

pub fn run(ctx: &Context, select: &SelectArgs) -> Result<()> {
    run_again(ctx, "restart", BulkAction::Restart, select)
}
