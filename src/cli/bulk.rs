//! What `cancel`, `restart`, `dlq retry` and `purge` share: choosing jobs
//! (ids, or `--all`/`--state`/`--older-than`) and reporting what was done.
//! Named jobs are acted on one by one: the valid ones are changed, each
//! other one is reported on stderr, and the exit code says so (3 when any is
//! missing, else 4). A filter's jobs left alone because an unfinished job
//! holds their unique key are reported the same way.

use super::Context;
use super::args::SelectArgs;
use super::format::print_json;
use queuectl::domain::JobState;
use queuectl::domain::duration::parse_duration;
use queuectl::error::{Error, Result};
use queuectl::store::{BulkAction, BulkOutcome, Selection};
use serde_json::json;

/// Up to this many jobs are named one per line; more get a count line.
const LIST_EACH_UP_TO: usize = 20;

impl SelectArgs {
    /// The jobs chosen for `action`; `None` when the command named none and
    /// gave no filter.
    pub fn selection(&self, action: BulkAction) -> Result<Option<Selection>> {
        if !self.ids.is_empty() {
            return Ok(Some(Selection::ids(self.ids.iter().cloned())));
        }
        if !self.all && self.state.is_empty() && self.older_than.is_none() {
            return Ok(None);
        }
        let states = self
            .state
            .iter()
            .map(|s| s.parse::<JobState>().map_err(Error::Invalid))
            .collect::<Result<Vec<_>>>()?;
        let age = self
            .older_than
            .as_deref()
            .map(|text| {
                parse_duration(text).map_err(|why| Error::Invalid(format!("--older-than: {why}")))
            })
            .transpose()?;
        Selection::filter(action, &states, age).map(Some)
    }

    /// The selection, required: "name jobs or filter" otherwise.
    pub fn required(&self, command: &str, action: BulkAction) -> Result<Selection> {
        self.selection(action)?.ok_or_else(|| {
            Error::Invalid(format!(
                "{command}: name job ids, or choose jobs with --all, --state or --older-than"
            ))
        })
    }
}

/// Prints what `action` did (on stdout: each job, or a count line; with
/// `--json`, the ids and the refusals), then the refusals on stderr (up to
/// [`LIST_EACH_UP_TO`]; more are only counted). Fails with the refusal
/// itself when one job was refused, or a summary when several were: the
/// jobs named that were not acted on, and those a filter chose but left
/// for their unique key's holder.
pub fn report(ctx: &Context, action: BulkAction, outcome: &BulkOutcome) -> Result<()> {
    if ctx.json {
        print_json(&json_report(action, outcome))?;
    } else {
        print_text(action, outcome);
    }
    let refused = &outcome.refused;
    let mut refusals = refused.iter().map(|r| r.error(action));
    match refused.len() {
        0 => Ok(()),
        1 if outcome.done.is_empty() => Err(refusals.next().expect("one refusal")),
        n => {
            let mut summary = format!(
                "{n} of {} job(s) not {}",
                n + outcome.done.len(),
                action.past_tense()
            );
            if n > LIST_EACH_UP_TO {
                if refused.iter().all(|r| r.blocked_by.is_some()) {
                    summary.push_str(": an unfinished job holds each one's unique key");
                }
                summary.push_str(" (--json lists each)");
            } else {
                for refusal in refusals {
                    eprintln!("queuectl: {refusal}");
                }
            }
            Err(Error::NotAllActed {
                summary,
                missing: refused.iter().any(|r| r.state.is_none()),
            })
        }
    }
}

/// `{"<past tense>": [ids], "failed": [{"id", "state", "error"}]}`; a
/// cancel also lists the running jobs asked to stop under "requested",
/// each with its worker.
fn json_report(action: BulkAction, outcome: &BulkOutcome) -> serde_json::Value {
    let (requested, done): (Vec<_>, Vec<_>) =
        outcome.done.iter().partition(|a| a.stopping_on.is_some());
    let done: Vec<&str> = done.iter().map(|a| a.id.as_str()).collect();
    let failed: Vec<serde_json::Value> = outcome
        .refused
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "state": r.state,
                "error": r.error(action).to_string(),
            })
        })
        .collect();
    let mut report = json!({ action.past_tense(): done, "failed": failed });
    if !outcome.cascaded.is_empty() {
        // Jobs changed with them: dependents cancelled or revived.
        report["dependents"] = json!(outcome.cascaded);
    }
    if action == BulkAction::Cancel {
        report["requested"] = json!(
            requested
                .iter()
                .map(|a| json!({"id": a.id, "worker": a.stopping_on}))
                .collect::<Vec<_>>()
        );
    }
    report
}

fn print_text(action: BulkAction, outcome: &BulkOutcome) {
    print_done(action, outcome);
    print_cascaded(action, &outcome.cascaded);
}

/// The dependents a cancel cancelled or a restart revived with the jobs
/// named.
fn print_cascaded(action: BulkAction, cascaded: &[String]) {
    let what = match action {
        BulkAction::Cancel => "cancelled with its dependency",
        BulkAction::Restart | BulkAction::RetryDead => "pending again with its dependency",
        BulkAction::Purge => return,
    };
    if cascaded.len() > LIST_EACH_UP_TO {
        println!(
            "{} waiting jobs {}",
            cascaded.len(),
            what.replace("its", "their")
        );
        return;
    }
    for id in cascaded {
        println!("job '{id}' {what}");
    }
}

fn print_done(action: BulkAction, outcome: &BulkOutcome) {
    let done = &outcome.done;
    if done.is_empty() {
        if outcome.refused.is_empty() {
            println!("no jobs {}", action.past_tense());
        }
        return;
    }
    if done.len() > LIST_EACH_UP_TO {
        let stopping = done.iter().filter(|a| a.stopping_on.is_some()).count();
        match action {
            BulkAction::Restart | BulkAction::RetryDead => {
                println!("{} jobs are pending again", done.len())
            }
            BulkAction::Purge => println!("purged {} finished jobs", done.len()),
            BulkAction::Cancel => println!(
                "cancelled {} jobs; {stopping} of them running, to be stopped and marked cancelled",
                done.len()
            ),
        }
        return;
    }
    for acted in done {
        let id = &acted.id;
        match (action, &acted.stopping_on) {
            (BulkAction::Cancel, Some(worker)) => println!(
                "job '{id}' is running on worker '{worker}'; it will be stopped and marked cancelled"
            ),
            (BulkAction::Cancel, None) => println!("cancelled job '{id}'"),
            (BulkAction::Restart | BulkAction::RetryDead, _) => {
                println!("job '{id}' is pending again")
            }
            (BulkAction::Purge, _) => println!("purged job '{id}'"),
        }
    }
}
