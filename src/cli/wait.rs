//! `wait`: blocks until jobs end, then exits by how they ended (0 all
//! completed, 5 some dead, 6 some cancelled, 7 `--timeout` ran out).
//!
//! It polls the queue: finishing a job wakes nobody (wake sockets and
//! `NOTIFY` announce new work to workers, not ends), and a poll of the
//! unfinished jobs every 0.2 s, slowing to 1 s while nothing changes, costs
//! the queue little. On a terminal a one-line progress is drawn on stderr.

use super::Context;
use super::args::WaitArgs;
use super::format::print_json;
use queuectl::domain::JobState;
use queuectl::error::{Error, Result};
use queuectl::store::{Backend, ListFilter, OpenMode};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const POLL_FIRST: Duration = Duration::from_millis(200);
const POLL_MAX: Duration = Duration::from_secs(1);

pub fn run(ctx: &Context, args: WaitArgs) -> Result<()> {
    let mut store = ctx.store(OpenMode::ReadOnly)?;
    let ids = if args.all {
        unfinished(&mut *store)?
    } else {
        let mut ids = Vec::new();
        for id in args.ids {
            store.get(&id)?; // unknown → exit 3, before waiting
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    };
    if ids.is_empty() {
        // `--all` with every job finished: say so rather than draw "0/0 done".
        if !ctx.json {
            eprintln!("nothing to wait for");
        }
        print_states(ctx, &mut *store, &ids)?;
        return Ok(());
    }
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut progress = Progress::new(std::io::stderr().is_terminal() && !ctx.json);
    let mut states: BTreeMap<String, JobState> = BTreeMap::new();
    let mut pause = POLL_FIRST;
    loop {
        let mut changed = false;
        // A job seen ended stays counted as ended.
        for id in &ids {
            if states.get(id).is_some_and(|s| s.is_terminal()) {
                continue;
            }
            let state = store.get(id)?.state;
            changed |= states.insert(id.clone(), state) != Some(state);
        }
        let tally = Tally::of(states.values().copied());
        progress.draw(&tally.line(ids.len()));
        if tally.ended == ids.len() {
            progress.finish(&tally.line(ids.len()));
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            progress.clear();
            print_states(ctx, &mut *store, &ids)?;
            return Err(Error::WaitTimedOut(format!(
                "{} of {} job(s) did not end within {}s",
                ids.len() - tally.ended,
                ids.len(),
                args.timeout.unwrap_or_default().as_secs()
            )));
        }
        pause = if changed {
            POLL_FIRST
        } else {
            (pause * 3 / 2).min(POLL_MAX)
        };
        let nap = deadline.map_or(pause, |d| {
            pause.min(d.saturating_duration_since(Instant::now()))
        });
        std::thread::sleep(nap);
    }
    print_states(ctx, &mut *store, &ids)?;
    ended_as(ids.iter().map(|id| (id.as_str(), states[id])))
}

/// Every job not finished now, in enqueue order.
fn unfinished(store: &mut dyn Backend) -> Result<Vec<String>> {
    let waiting = [JobState::Pending, JobState::Processing, JobState::Failed];
    let newest_first = store.list(&ListFilter::states(&waiting), None)?.jobs;
    Ok(newest_first.into_iter().rev().map(|job| job.id).collect())
}

/// `--json`: each job's final (or, after a timeout, current) state.
fn print_states(ctx: &Context, store: &mut dyn Backend, ids: &[String]) -> Result<()> {
    if !ctx.json {
        return Ok(());
    }
    let mut jobs = Vec::new();
    for id in ids {
        let job = store.get(id)?;
        jobs.push(serde_json::json!({
            "id": job.id,
            "state": job.state,
            "attempts": job.attempts,
            "last_error": job.last_error,
        }));
    }
    print_json(&serde_json::json!({ "jobs": jobs }))
}

/// The result of jobs that ended in these states: an error (exit 5) when
/// any is dead, else (exit 6) when any was cancelled, naming every job that
/// did not complete with how it ended. `logs -f` uses it too.
pub fn ended_as<'a>(jobs: impl IntoIterator<Item = (&'a str, JobState)>) -> Result<()> {
    const SHOWN: usize = 10;
    let failed: Vec<(&str, JobState)> = jobs
        .into_iter()
        .filter(|(_, state)| matches!(state, JobState::Dead | JobState::Cancelled))
        .collect();
    let dead = failed.iter().any(|(_, state)| *state == JobState::Dead);
    let message = match failed.as_slice() {
        [] => return Ok(()),
        [(id, state)] => format!("job '{id}' ended {state}"),
        _ => {
            let shown: Vec<String> = failed
                .iter()
                .take(SHOWN)
                .map(|(id, state)| format!("'{id}' {state}"))
                .collect();
            let more = match failed.len() {
                n if n > SHOWN => format!(" and {} more", n - SHOWN),
                _ => String::new(),
            };
            format!(
                "{} jobs did not complete: {}{more}",
                failed.len(),
                shown.join(", ")
            )
        }
    };
    Err(Error::NotCompleted { message, dead })
}

/// Counts of the jobs waited for, by how far they got.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    ended: usize,
    running: usize,
    waiting: usize,
    dead: usize,
    cancelled: usize,
}

impl Tally {
    fn of(states: impl IntoIterator<Item = JobState>) -> Tally {
        let mut tally = Tally::default();
        for state in states {
            tally.ended += usize::from(state.is_terminal());
            tally.running += usize::from(state == JobState::Processing);
            tally.waiting += usize::from(matches!(state, JobState::Pending | JobState::Failed));
            tally.dead += usize::from(state == JobState::Dead);
            tally.cancelled += usize::from(state == JobState::Cancelled);
        }
        tally
    }

    /// "3/10 done · 1 running · 0 dead" (and the waiting and cancelled,
    /// when any).
    fn line(&self, total: usize) -> String {
        let mut line = format!(
            "{}/{total} done · {} running · {} dead",
            self.ended, self.running, self.dead
        );
        if self.waiting > 0 {
            line.push_str(&format!(" · {} waiting", self.waiting));
        }
        if self.cancelled > 0 {
            line.push_str(&format!(" · {} cancelled", self.cancelled));
        }
        line
    }
}

/// The live line on a terminal: redrawn in place, cleared at the end.
struct Progress {
    enabled: bool,
    shown: Option<String>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            shown: None,
        }
    }

    fn draw(&mut self, line: &str) {
        if !self.enabled || self.shown.as_deref() == Some(line) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        self.shown = Some(line.to_owned());
    }

    fn clear(&mut self) {
        if self.enabled && self.shown.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }

    /// Replaces the live line with the final one, ended by a newline.
    fn finish(&mut self, line: &str) {
        if self.enabled {
            self.clear();
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_wins_over_cancelled_and_completed_is_success() {
        use JobState::*;
        assert!(ended_as([("a", Completed), ("b", Completed)]).is_ok());
        let err = ended_as([("a", Cancelled), ("b", Dead), ("c", Completed)]).unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert_eq!(
            err.to_string(),
            "2 jobs did not complete: 'a' cancelled, 'b' dead"
        );
        let err = ended_as([("a", Cancelled), ("b", Completed)]).unwrap_err();
        assert_eq!(err.exit_code(), 6);
        assert_eq!(err.to_string(), "job 'a' ended cancelled");
        let ids: Vec<String> = (1..=12).map(|n| format!("j{n}")).collect();
        let err = ended_as(ids.iter().map(|id| (id.as_str(), Dead))).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("'j9' dead, 'j10' dead and 2 more"),
            "{err}"
        );
    }

    #[test]
    fn the_progress_line_counts_done_running_and_dead() {
        use JobState::*;
        let tally = Tally::of([Completed, Processing, Pending, Dead]);
        assert_eq!(tally.line(4), "2/4 done · 1 running · 1 dead · 1 waiting");
        let tally = Tally::of([Completed, Processing]);
        assert_eq!(tally.line(2), "1/2 done · 1 running · 0 dead");
        let tally = Tally::of([Cancelled]);
        assert_eq!(tally.line(1), "1/1 done · 0 running · 0 dead · 1 cancelled");
    }
}
