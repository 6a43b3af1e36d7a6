//! Which jobs a user action is about (named ids, or a filter the database
//! evaluates), what each action applies to, and what it did. One type for
//! `cancel`, `restart`, `dlq retry` and `purge`, so the four read alike and
//! each backend evaluates every selection in SQL, never by loading jobs.
//!
//! Named ids are acted on one by one: those that apply are changed, the
//! others are reported (not found, or in a state the action does not apply
//! to) and change nothing. A filter reports the jobs it chose but left for
//! their unique key's holder. No I/O here.

use crate::domain::JobState;
use crate::error::Error;
use std::time::Duration;

/// A user action on jobs, each guarded by the states it applies to (the SQL
/// changes a row only while it is still in one of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkAction {
    /// A waiting job ends `cancelled` at once; a running one is flagged and
    /// its worker stops it.
    Cancel,
    /// A finished job (completed, dead or cancelled) is pending again, due
    /// now, with a fresh retry budget; its attempt history stays.
    Restart,
    /// `dlq retry`: a restart of dead jobs only.
    RetryDead,
    /// A finished job is deleted with its history.
    Purge,
}

impl BulkAction {
    /// The states this action applies to.
    pub fn applies_to(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            BulkAction::Cancel => &[Pending, Failed, Processing],
            BulkAction::Restart | BulkAction::Purge => &[Completed, Dead, Cancelled],
            BulkAction::RetryDead => &[Dead],
        }
    }

    /// Whether it acts on finished jobs, whose age is counted from when they
    /// finished (`finished_at`); the others' from when they were enqueued.
    pub fn on_finished_jobs(self) -> bool {
        self != BulkAction::Cancel
    }

    /// Whether the jobs it acts on become due (idle workers should wake).
    pub fn adds_work(self) -> bool {
        matches!(self, BulkAction::Restart | BulkAction::RetryDead)
    }

    /// What a job it acted on became: "cancelled", "restarted", ...
    pub fn past_tense(self) -> &'static str {
        match self {
            BulkAction::Cancel => "cancelled",
            BulkAction::Restart => "restarted",
            BulkAction::RetryDead => "retried",
            BulkAction::Purge => "purged",
        }
    }

    /// Why job `id` was not acted on: it does not exist (`None`) or is in
    /// `state`, which this action does not apply to.
    pub fn refusal(self, id: &str, state: Option<JobState>) -> Error {
        let Some(state) = state else {
            return Error::NotFound(id.to_owned());
        };
        let id = crate::domain::echo::shown(id);
        Error::Conflict(match self {
            BulkAction::Cancel => format!("job '{id}' is already {state}; nothing to cancel"),
            BulkAction::RetryDead => {
                format!("job '{id}' is {state}, not in the dead letter queue")
            }
            BulkAction::Restart => format!(
                "job '{id}' is {state}; only completed, dead or cancelled jobs can be restarted"
            ),
            BulkAction::Purge => {
                format!(
                    "job '{id}' is {state}; only finished (completed, dead, cancelled) jobs are purged"
                )
            }
        })
    }
}

/// Which jobs an action is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// These jobs, each acted on or refused on its own (duplicates once).
    Ids(Vec<String>),
    /// Every job in one of `states` (never empty, all of them states the
    /// action applies to) older than `older_than`: by `finished_at` for
    /// finished jobs, by `created_at` otherwise. Jobs that enter the
    /// selection while the action runs (enqueued or finished after it
    /// started) are left alone.
    Filter {
        states: Vec<JobState>,
        older_than: Duration,
    },
}

impl Selection {
    /// A filter for `action`: `states` (empty: every state it applies to)
    /// older than `older_than` (none: any age). A state the action does not
    /// apply to is an input error, named.
    pub fn filter(
        action: BulkAction,
        states: &[JobState],
        older_than: Option<Duration>,
    ) -> Result<Selection, Error> {
        let allowed = action.applies_to();
        if let Some(wrong) = states.iter().find(|s| !allowed.contains(s)) {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            return Err(Error::Invalid(format!(
                "--state {wrong}: not a state jobs can be {} from (choose among {})",
                action.past_tense(),
                names.join(", ")
            )));
        }
        let mut chosen: Vec<JobState> = if states.is_empty() {
            allowed.to_vec()
        } else {
            states.to_vec()
        };
        chosen.sort();
        chosen.dedup();
        Ok(Selection::Filter {
            states: chosen,
            older_than: older_than.unwrap_or(Duration::ZERO),
        })
    }

    /// Named jobs, each once, in the order given.
    pub fn ids(ids: impl IntoIterator<Item = String>) -> Selection {
        let mut seen = std::collections::HashSet::new();
        Selection::Ids(
            ids.into_iter()
                .filter(|id| seen.insert(id.clone()))
                .collect(),
        )
    }
}

/// A job an action changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Acted {
    pub id: String,
    /// A running job whose cancel was requested: the worker that will stop
    /// it (it ends `cancelled` then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping_on: Option<String>,
}

impl Acted {
    /// From a changed row: its id, new state and worker (a worker only
    /// while it runs).
    pub(crate) fn from_row(id: String, state: &str, worker: Option<String>) -> Acted {
        Acted {
            id,
            stopping_on: worker.filter(|_| state == "processing"),
        }
    }
}

/// A job an action did not change: a named one not found (`state` none) or
/// in a state the action does not apply to, or a named or filtered one in a
/// state it applies to but held back (`blocked_by`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub id: String,
    pub state: Option<JobState>,
    pub blocked_by: Option<Blocked>,
}

/// Why a job in a state the action applies to was still left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Restarting it would give its unique key a second unfinished holder.
    KeyTaken { key: String, holder: String },
    /// It waits for `dependency`, which ended `state` (dead or cancelled):
    /// put back to waiting it would wait forever.
    DependencyEnded { dependency: String, state: JobState },
}

impl Refused {
    /// The error that tells why `action` left this job alone.
    pub fn error(&self, action: BulkAction) -> Error {
        match &self.blocked_by {
            None => action.refusal(&self.id, self.state),
            Some(Blocked::KeyTaken { key, holder }) => Error::Conflict(format!(
                "job '{}' was not {}: {}",
                crate::domain::echo::shown(&self.id),
                action.past_tense(),
                crate::domain::unique::key_held(key, holder, false)
            )),
            Some(Blocked::DependencyEnded { dependency, state }) => Error::Conflict(format!(
                "job '{}' was not {}: dependency {} is {state}: restart {} first",
                crate::domain::echo::shown(&self.id),
                action.past_tense(),
                crate::domain::echo::shown(dependency),
                crate::domain::echo::shown(dependency)
            )),
        }
    }
}

/// What an action did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// In the order named (ids), or as found (filters).
    pub done: Vec<Acted>,
    /// Jobs left alone: named ones in the order named; of a filter, the
    /// jobs it chose but left for their unique key's holder.
    pub refused: Vec<Refused>,
    /// Jobs changed with them through dependencies: the pending dependents
    /// a cancel cancelled, the dependents a restart revived.
    pub cascaded: Vec<String>,
}

impl BulkOutcome {
    pub fn done_ids(&self) -> Vec<String> {
        self.done.iter().map(|a| a.id.clone()).collect()
    }

    /// From one transaction over `ids`: those changed (`done`, any order),
    /// the state of those found but left alone (`found`), and the jobs
    /// changed with them (`cascaded`); the rest of `ids` do not exist. A
    /// named job changed with another (`restart D X`, X revived by D's
    /// restart) counts as done. Both lists come out in the order of `ids`.
    pub(crate) fn of_ids(
        &mut self,
        ids: &[String],
        mut done: Vec<Acted>,
        found: &[Found],
        mut cascaded: Vec<String>,
    ) {
        for id in ids {
            if let Some(at) = done.iter().position(|a| &a.id == id) {
                self.done.push(done.swap_remove(at));
            } else if let Some(at) = cascaded.iter().position(|c| c == id) {
                cascaded.remove(at);
                self.done.push(Acted {
                    id: id.clone(),
                    stopping_on: None,
                });
            } else {
                let found = found.iter().find(|f| &f.id == id);
                self.refused.push(match found {
                    Some(found) => found.clone().into(),
                    None => Refused {
                        id: id.clone(),
                        state: None,
                        blocked_by: None,
                    },
                });
            }
        }
        self.cascaded.extend(cascaded);
    }
}

impl From<Found> for Refused {
    fn from(found: Found) -> Refused {
        Refused {
            id: found.id,
            state: Some(found.state),
            blocked_by: found.blocked_by,
        }
    }
}

/// A named job as an action's transaction found it: its state, and (for
/// the actions that put jobs back to waiting) what holds it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub id: String,
    pub state: JobState,
    pub blocked_by: Option<Blocked>,
}

impl Found {
    /// From a row: id, state, the key and its holder (both, or neither),
    /// and the first dependency that ended dead or cancelled (id and state,
    /// both or neither; a held key is said first).
    pub(crate) fn from_row(
        id: String,
        state: JobState,
        key: Option<String>,
        holder: Option<String>,
        ended: Option<(String, JobState)>,
    ) -> Found {
        let key_taken = key
            .zip(holder)
            .map(|(key, holder)| Blocked::KeyTaken { key, holder });
        let dependency_ended =
            ended.map(|(dependency, state)| Blocked::DependencyEnded { dependency, state });
        Found {
            id,
            state,
            blocked_by: key_taken.or(dependency_ended),
        }
    }
}

/// What one transaction on named ids found: the jobs changed, those found
/// but left alone, and the jobs changed with them
/// ([`BulkOutcome::cascaded`]).
pub(crate) type IdsChunk = (Vec<Acted>, Vec<Found>, Vec<String>);

/// What one transaction on a filter's chunk did: the jobs changed, and the
/// jobs changed with them.
pub(crate) type FilterChunk = (Vec<Acted>, Vec<String>);

/// Named ids are acted on in transactions of this many, and filters in
/// transactions of up to this many jobs, so that workers are never kept
/// waiting behind a large action.
pub(crate) const CHUNK: usize = 1000;

/// Runs an action on `selection` with `store` in bounded transactions: `by_ids` acts on
/// one chunk of named ids ([`IdsChunk`]), `by_filter` on up to [`CHUNK`]
/// jobs of the filter ([`FilterChunk`]). A filter's chunks go on until one finds
/// nothing: every change moves a job out of the filter, and a row another
/// transaction changed meanwhile may make a chunk short before the end.
/// Then `held_back` reads the jobs the filter still chooses but left alone
/// because an unfinished job holds their unique key or a dependency of
/// theirs ended dead or cancelled (only the actions that put jobs back to
/// waiting have any): they are reported as refused, as named ones are.
pub(crate) fn act_in_chunks<S: ?Sized, E>(
    store: &mut S,
    selection: &Selection,
    mut by_ids: impl FnMut(&mut S, &[String]) -> Result<IdsChunk, E>,
    mut by_filter: impl FnMut(&mut S) -> Result<FilterChunk, E>,
    held_back: impl FnOnce(&mut S) -> Result<Vec<Found>, E>,
) -> Result<BulkOutcome, E> {
    let mut outcome = BulkOutcome::default();
    match selection {
        Selection::Ids(ids) => {
            for chunk in ids.chunks(CHUNK) {
                let (done, found, cascaded) = by_ids(store, chunk)?;
                outcome.of_ids(chunk, done, &found, cascaded);
            }
        }
        Selection::Filter { .. } => loop {
            let (done, cascaded) = by_filter(store)?;
            if done.is_empty() {
                outcome
                    .refused
                    .extend(held_back(store)?.into_iter().map(Refused::from));
                return Ok(outcome);
            }
            outcome.done.extend(done);
            outcome.cascaded.extend(cascaded);
        },
    }
    Ok(outcome)
}

/// The SQL list of `states`: `'completed', 'dead'` (names from the enum,
/// never user text).
pub(crate) fn sql_states(states: &[JobState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn a_filter_takes_only_states_the_action_applies_to() {
        assert_eq!(
            Selection::filter(BulkAction::Restart, &[], None).unwrap(),
            Selection::Filter {
                states: vec![Completed, Dead, Cancelled],
                older_than: Duration::ZERO
            }
        );
        assert_eq!(
            Selection::filter(BulkAction::Cancel, &[Failed, Pending, Failed], None).unwrap(),
            Selection::Filter {
                states: vec![Pending, Failed],
                older_than: Duration::ZERO
            }
        );
        let err = Selection::filter(BulkAction::Cancel, &[Completed], None).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)));
        assert!(
            err.to_string().contains("pending, failed, processing"),
            "{err}"
        );
        assert!(Selection::filter(BulkAction::RetryDead, &[Cancelled], None).is_err());
    }

    #[test]
    fn ids_are_kept_once_in_order() {
        let ids = Selection::ids(["b", "a", "b"].map(String::from));
        assert_eq!(ids, Selection::Ids(vec!["b".into(), "a".into()]));
    }

    #[test]
    fn an_outcome_reports_named_jobs_in_order_found_or_not() {
        let mut outcome = BulkOutcome::default();
        let ids: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let done = vec![Acted {
            id: "z".into(),
            stopping_on: None,
        }];
        let found = Found::from_row("y".into(), Pending, None, None, None);
        outcome.of_ids(&ids, done, &[found], Vec::new());
        assert_eq!(outcome.done_ids(), ["z"]);
        assert_eq!(
            outcome.refused,
            [
                Refused {
                    id: "x".into(),
                    state: None,
                    blocked_by: None
                },
                Refused {
                    id: "y".into(),
                    state: Some(Pending),
                    blocked_by: None
                }
            ]
        );
        assert!(matches!(
            BulkAction::Restart.refusal("y", Some(Processing)),
            Error::Conflict(m) if m.contains("processing")
        ));
        assert!(matches!(
            BulkAction::Purge.refusal("x", None),
            Error::NotFound(_)
        ));
    }
}
