use super::Context;
use super::args::DlqCommand;
use super::format::print_json;
use queuectl::domain::JobState;
use queuectl::error::Result;
use queuectl::store::OpenMode;
use queuectl::wakeup::wake_workers;

pub fn run(ctx: &Context, command: DlqCommand) -> Result<()> {
    match command {
        DlqCommand::List { limit } => {
            let mut store = ctx.store(OpenMode::ReadOnly)?;
            let jobs = store.list(Some(JobState::Dead), limit)?;
            super::list::print_jobs(ctx, &mut store, &jobs)
        }
        DlqCommand::Retry { id, all: _ } => {
            let ids = ctx.store(OpenMode::Existing)?.retry_dead(id.as_deref())?;
            wake_workers(&ctx.state.wake());
            if ctx.json {
                return print_json(&serde_json::json!({ "retried": ids }));
            }
            match ids.len() {
                0 => println!("the dead letter queue is empty"),
                1 => println!("job '{}' is pending again", ids[0]),
                n => println!("{n} jobs are pending again"),
            }
            Ok(())
        }
    }
}
