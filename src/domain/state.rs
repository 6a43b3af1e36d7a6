//! The job state machine's states. The same words are used in the CLI, the
//! JSON output, the SQL schema and the journal; there are no synonyms.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its first run (possibly scheduled in the future).
    Pending,
    /// Claimed by a worker that holds its lease.
    Processing,
    /// Ran and exited 0.
    Completed,
    /// Its last attempt failed; it runs again at `run_at`.
    Failed,
    /// Retries spent: the dead letter queue.
    Dead,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Processing,
        JobState::Completed,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// Waiting to run (pending, or failed and waiting for its retry): the
    /// states `edit` may change.
    pub const EDITABLE: [JobState; 2] = [JobState::Pending, JobState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Terminal states never change again except by an explicit user action
    /// (`dlq retry`, `purge`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown state '{}' (expected one of: {})",
                    super::echo::shown(s),
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn only_finished_states_are_terminal() {
        let terminal: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [JobState::Completed, JobState::Dead, JobState::Cancelled]
        );
    }
}
