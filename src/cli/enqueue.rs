use super::Context;
use super::args::EnqueueArgs;
use super::format::print_json;
use queuectl::domain::spec::{parse_batch, parse_job};
use queuectl::error::{Error, IoContext, Result};
use queuectl::store::OpenMode;
use queuectl::wakeup::wake_workers;
use std::io::Read;

pub fn run(ctx: &Context, args: EnqueueArgs) -> Result<()> {
    let jobs = match (args.job.as_deref(), &args.file) {
        (Some("-"), _) => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context(|| "cannot read jobs from stdin".into())?;
            parse_batch(&utf8(bytes, "stdin")?)?
        }
        (Some(json), _) => vec![(1, parse_job(json)?)],
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).context(|| format!("cannot read {}", path.display()))?;
            parse_batch(&utf8(bytes, &path.display().to_string())?)?
        }
        (None, None) => {
            return Err(Error::Invalid(
                "give a job as JSON, --file PATH, or - for stdin".into(),
            ));
        }
    };
    let mut store = ctx.store(OpenMode::Create)?;
    let ids = store.enqueue(&jobs, &ctx.job_defaults())?;
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

/// Job input must be UTF-8 JSON; anything else is the user's input error
/// (exit 2), not a failure to read.
fn utf8(bytes: Vec<u8>, source: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "jobs from {source} are not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}
