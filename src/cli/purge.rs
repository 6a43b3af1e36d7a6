use super::Context;
use super::args::SelectArgs;
use queuectl::error::Result;
use queuectl::store::{BulkAction, OpenMode, Selection};
use queuectl::worker::maintenance;
use std::time::Duration;

/// With neither ids nor a filter: what retention would purge now.
pub fn run(ctx: &Context, select: &SelectArgs) -> Result<()> {
    let selection = match select.selection(BulkAction::Purge)? {
        Some(selection) => selection,
        None => {
            let retention = Duration::from_secs(ctx.config.retention_seconds);
            Selection::filter(BulkAction::Purge, &[], Some(retention))?
        }
    };
    let outcome = maintenance::purge(&mut ctx.store(OpenMode::Existing)?, &ctx.state, &selection)?;
    super::bulk::report(ctx, BulkAction::Purge, &outcome)
}
