use super::Context;
use super::args::SelectArgs;
use queuectl::error::Result;
use queuectl::store::{BulkAction, OpenMode};
use queuectl::wakeup::wake_workers;

pub fn run(ctx: &Context, select: &SelectArgs) -> Result<()> {
    let selection = select.required("cancel", BulkAction::Cancel)?;
    let outcome = ctx
        .store(OpenMode::Existing)?
        .act(BulkAction::Cancel, &selection)?;
    if !outcome.done.is_empty() {
        // A running job's worker checks for cancellation when woken.
        wake_workers(&ctx.state.wake());
    }
    super::bulk::report(ctx, BulkAction::Cancel, &outcome)
}
