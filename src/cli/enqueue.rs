use super::Context;
use super::args::EnqueueArgs;
use super::format::print_json;
use queuectl::domain::spec::{parse_batch, parse_job};
use queuectl::domain::{EnqueueOutcome, InputError, JobState, NewJob, echo};
use queuectl::error::{Error, IoContext, Result};
use queuectl::store::{Enqueued, OpenMode, Store};
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
        // An array on the command line is a batch, as in a file.
        (Some(text), _) if text.trim_start().starts_with('[') => parse_batch(text)?,
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
/// idle workers, and prints the ids: the new jobs', or for a job whose
/// unique key an unfinished job held, that job's (skipped or replaced, said
/// on stderr).
pub fn submit(ctx: &Context, jobs: &[(usize, NewJob)]) -> Result<()> {
    let mut store = ctx.store(OpenMode::Create)?;
    let enqueued = store.enqueue(jobs, &ctx.job_defaults())?;
    wake_workers(&ctx.state.wake());
    warn_cancelled_at_once(&mut store, jobs, &enqueued)?;
    if ctx.json {
        let created = enqueued
            .iter()
            .filter(|e| e.outcome == EnqueueOutcome::Created)
            .count();
        return print_json(&serde_json::json!({
            "enqueued": created,
            "ids": enqueued.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            "jobs": enqueued.iter().map(|e| serde_json::json!({
                "id": e.id, "outcome": e.outcome.as_str()
            })).collect::<Vec<_>>(),
        }));
    }
    let mut out = String::with_capacity(enqueued.len() * 28);
    for done in &enqueued {
        out.push_str(&done.id);
        out.push('\n');
    }
    print!("{out}");
    let notes: Vec<String> = jobs
        .iter()
        .zip(&enqueued)
        .filter_map(|((_, job), done)| met_holder_note(job, done))
        .collect();
    if notes.len() > NOTE_EACH_UP_TO {
        let skipped = enqueued
            .iter()
            .filter(|e| e.outcome == EnqueueOutcome::Existing)
            .count();
        eprintln!(
            "queuectl: {} job(s) met an unfinished job holding their unique key: {skipped} skipped, {} replaced",
            notes.len(),
            notes.len() - skipped
        );
    } else {
        for note in notes {
            eprintln!("queuectl: {note}");
        }
    }
    Ok(())
}

/// Up to this many jobs that met a key's holder get a line each on stderr;
/// more get a count line.
const NOTE_EACH_UP_TO: usize = 20;

/// What happened to a job whose unique key an unfinished job held.
fn met_holder_note(job: &NewJob, done: &Enqueued) -> Option<String> {
    let key = echo::shown(job.unique.as_ref()?.key.as_str());
    let holder = echo::shown(&done.id);
    match done.outcome {
        EnqueueOutcome::Created => None,
        EnqueueOutcome::Existing => Some(format!(
            "unique key '{key}' is held by unfinished job '{holder}': nothing enqueued (on_duplicate skip)"
        )),
        EnqueueOutcome::Replaced => Some(format!(
            "unique key '{key}' was held by waiting job '{holder}': it was replaced (on_duplicate replace)"
        )),
    }
}

/// A job enqueued after one that had already ended dead or cancelled is
/// stored cancelled: enqueueing it still succeeded, but say so (stderr).
fn warn_cancelled_at_once(
    store: &mut Store,
    jobs: &[(usize, NewJob)],
    enqueued: &[Enqueued],
) -> Result<()> {
    for ((_, job), done) in jobs.iter().zip(enqueued) {
        if job.after.is_empty() {
            continue;
        }
        let (id, stored) = (&done.id, store.get(&done.id)?);
        if stored.state == JobState::Cancelled {
            eprintln!(
                "queuectl: warning: job '{id}' was cancelled at once: {}",
                stored.last_error.as_deref().unwrap_or("a dependency ended")
            );
        }
    }
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
