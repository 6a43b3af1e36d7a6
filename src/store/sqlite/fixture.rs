//! Benchmark fixtures: a long finished history, built without running a
//! job, for measuring how the queue behaves at size (`queuectl-bench`'s
//! scale scenario: a million jobs through workers would take many minutes).
//! queuectl itself never calls this. SQLite only, as that scenario is; the
//! SQL lives here because all SQL lives in the store.

use super::{SqliteStore, TxError};
use crate::error::Result;
use rusqlite::OptionalExtension;

/// The `count`-th oldest pending job's `seq`, the last one to complete.
const NTH_PENDING: &str =
    "SELECT seq FROM jobs WHERE state = 'pending' ORDER BY seq LIMIT 1 OFFSET ?1";

/// One succeeded attempt, 5 ms long, for each pending job up to `?1`.
const ADD_ATTEMPTS: &str = "
    INSERT INTO attempts (job_seq, number, worker, started_at, finished_at, outcome, exit_code, output)
    SELECT seq, attempts + 1, 'fixture', created_at, created_at + 5, 'succeeded', 0, 'file'
      FROM jobs WHERE state = 'pending' AND seq <= ?1";

/// Those jobs completed, as `finish` leaves a success: the schema's checks
/// and the state-count triggers apply as they would.
const COMPLETE: &str = "
    UPDATE jobs SET state = 'completed', attempts = attempts + 1,
                    finished_at = created_at + 5, updated_at = created_at + 5
     WHERE state = 'pending' AND seq <= ?1";

impl SqliteStore {
    /// Completes the `count` oldest pending jobs (all, when fewer) with one
    /// succeeded attempt each by worker `fixture`, in one transaction, then
    /// checkpoints the WAL to empty, as a long-idle queue's would be.
    /// Returns how many it completed.
    pub fn complete_oldest_pending_as_fixture(&mut self, count: usize) -> Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let offset = i64::try_from(count - 1).unwrap_or(i64::MAX);
        let completed = self.write(|tx| {
            let last: Option<i64> = tx
                .query_row(NTH_PENDING, [offset], |r| r.get(0))
                .optional()?;
            let last = last.unwrap_or(i64::MAX);
            tx.execute(ADD_ATTEMPTS, [last])?;
            Ok::<_, TxError>(tx.execute(COMPLETE, [last])?)
        })?;
        self.retry_busy(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))?;
        Ok(completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::domain::{JobState, NewJob};
    use crate::store::{Backend, JobDefaults};

    #[test]
    fn completes_the_oldest_pending_jobs_as_finish_would_and_empties_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
        let defaults = JobDefaults {
            max_retries: 0,
            timeout_seconds: 0,
        };
        let jobs: Vec<(usize, NewJob)> = (1..=10).map(|i| (i, NewJob::new("true"))).collect();
        let ids: Vec<String> = store
            .enqueue(&jobs, &defaults)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();

        assert_eq!(store.complete_oldest_pending_as_fixture(7).unwrap(), 7);

        let counts = store.counts().unwrap();
        assert_eq!(counts.get(&JobState::Completed), Some(&7), "{counts:?}");
        assert_eq!(counts.get(&JobState::Pending), Some(&3), "{counts:?}");
        for (i, id) in ids.iter().enumerate() {
            let job = store.get(id.as_str()).unwrap();
            let attempts = store.attempts(id.as_str()).unwrap();
            if i < 7 {
                assert_eq!(job.state, JobState::Completed, "{id}");
                assert_eq!(job.attempts, 1, "{id}");
                assert!(job.finished_at.is_some(), "{id}");
                assert_eq!(attempts.len(), 1, "{id}");
                assert_eq!(attempts[0].number, 1);
                assert_eq!(attempts[0].exit_code, Some(0));
            } else {
                assert_eq!(job.state, JobState::Pending, "{id}");
                assert!(attempts.is_empty(), "{id}");
            }
        }
        let wal = std::fs::metadata(dir.path().join("q.db-wal"))
            .unwrap()
            .len();
        assert_eq!(wal, 0, "the WAL is checkpointed empty");

        // Asking for more than remain completes what remains; none, nothing.
        assert_eq!(store.complete_oldest_pending_as_fixture(50).unwrap(), 3);
        assert_eq!(store.complete_oldest_pending_as_fixture(5).unwrap(), 0);
        assert_eq!(store.counts().unwrap().get(&JobState::Completed), Some(&10));
    }
}
