use super::Context;
use super::args::SelectArgs;
use queuectl::error::{Error, Result};
use queuectl::store::{BulkAction, OpenMode, Selection};
use queuectl::worker::maintenance;
use std::time::Duration;

/// With neither ids nor a filter: what retention would purge now.
pub fn run(ctx: &Context, select: &SelectArgs) -> Result<()> {
    let selection = match select.selection(BulkAction::Purge)? {
        Some(selection) => selection,
        // retention_seconds = 0 keeps finished jobs forever: nothing to
        // purge by default, and never "everything".
        None if ctx.config.retention_seconds == 0 => {
            return Err(Error::Invalid(
                "retention_seconds is 0 (finished jobs are kept forever): say what to purge \
                 (job ids, --older-than AGE, --state STATE or --all)"
                    .into(),
            ));
        }
        None => {
            let retention = Duration::from_secs(ctx.config.retention_seconds);
            Selection::filter(BulkAction::Purge, &[], Some(retention))?
        }
    };
    let outcome = maintenance::purge(&mut ctx.store(OpenMode::Existing)?, &ctx.state, &selection)?;
    super::bulk::report(ctx, BulkAction::Purge, &outcome)
}
