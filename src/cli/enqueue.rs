use super::Context;
use super::args::EnqueueArgs;
use super::format::print_json;
use queuectl::domain::spec::{parse_batch, parse_job};
use queuectl::domain::{InputError, NewJob, echo};
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
        (Some(text), _) => vec![(1, parse_job(text).map_err(|e| hint_add(text, e))?)],
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
    submit(ctx, &jobs)
}

/// Enqueues `jobs` (each with its input line) in one transaction, wakes
/// idle workers, and prints the new ids.
pub fn submit(ctx: &Context, jobs: &[(usize, NewJob)]) -> Result<()> {
    let mut store = ctx.store(OpenMode::Create)?;
    let ids = store.enqueue(jobs, &ctx.job_defaults())?;
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

/// `enqueue "echo hi"`: a shell command where a JSON job was expected.
/// The error says how to queue it with `add`; JSON input keeps its error.
fn hint_add(text: &str, err: InputError) -> Error {
    let json_like = matches!(text.trim_start().chars().next(), Some('{' | '[' | '"'));
    if json_like || serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return err.into();
    }
    // As typed when it is plain words; else as one quoted word (a pipeline).
    let plain = shlex::split(text)
        .and_then(|words| shlex::try_join(words.iter().map(String::as_str)).ok())
        .is_some_and(|joined| joined == text);
    let command = match shlex::try_quote(text) {
        Ok(quoted) if !plain => quoted.into_owned(),
        _ => text.to_owned(),
    };
    Error::Invalid(format!(
        "not a JSON job ({err}); to queue a shell command, run: queuectl add -- {}",
        echo::shown(&command)
    ))
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
