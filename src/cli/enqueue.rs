use super::Context;
use super::args::EnqueueArgs;
use super::format::print_json;
use queuectl::domain::spec::{parse_batch, parse_job};
use queuectl::error::{Error, IoContext, Result};
use queuectl::wakeup::wake_workers;
use std::io::Read;

pub fn run(ctx: &Context, args: EnqueueArgs) -> Result<()> {
    let jobs = match (args.job.as_deref(), &args.file) {
        (Some("-"), _) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context(|| "cannot read jobs from stdin".into())?;
            parse_batch(&text)?
        }
        (Some(json), _) => vec![(1, parse_job(json)?)],
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .context(|| format!("cannot read {}", path.display()))?;
            parse_batch(&text)?
        }
        (None, None) => {
            return Err(Error::Invalid(
                "give a job as JSON, --file PATH, or - for stdin".into(),
            ));
        }
    };
    let mut store = ctx.store()?;
    let ids = store.enqueue(&jobs, &ctx.job_defaults(), jiff::Timestamp::now())?;
    wake_workers(&ctx.state.wake());
    if ctx.json {
        return print_json(
            &serde_json::json!({ "enqueued": ids.len(), "ids": ids.iter().map(|id| id.as_str()).collect::<Vec<_>>() }),
        );
    }
    let mut out = String::with_capacity(ids.len() * 28);
    for id in &ids {
        out.push_str(id.as_str());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
