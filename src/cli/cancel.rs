use super::Context;
use super::format::print_json;
use queuectl::error::Result;
use queuectl::store::CancelResult;
use queuectl::store::OpenMode;
use queuectl::wakeup::wake_workers;

pub fn run(ctx: &Context, id: &str) -> Result<()> {
    let result = ctx.store(OpenMode::Existing)?.cancel(id)?;
    // A running job's worker checks for cancellation when woken.
    wake_workers(&ctx.state.wake());
    match (&result, ctx.json) {
        (CancelResult::Cancelled, true) => {
            print_json(&serde_json::json!({"id": id, "result": "cancelled"}))
        }
        (CancelResult::Requested { worker }, true) => {
            print_json(&serde_json::json!({"id": id, "result": "requested", "worker": worker}))
        }
        (CancelResult::Cancelled, false) => {
            println!("cancelled job '{id}'");
            Ok(())
        }
        (CancelResult::Requested { worker }, false) => {
            println!(
                "job '{id}' is running on worker '{worker}'; it will be stopped and marked cancelled"
            );
            Ok(())
        }
    }
}
