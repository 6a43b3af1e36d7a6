//! Dependencies as both backends enqueue them, outside SQL: which stored
//! jobs a batch names, and what each new job becomes once their states are
//! known (how many dependencies it waits for, or cancelled at once because
//! one already ended dead or cancelled). The SQL (`sqlite/deps.rs`,
//! `postgres/deps.rs`) locks the stored dependencies, inserts the jobs in
//! the order planned here, and records the edges.

use crate::domain::deps::order_batch;
use crate::domain::{InputError, JobId, JobState, NewJob};
use crate::error::Error;
use crate::store::JobRecord;
use serde::Serialize;
use std::collections::HashMap;

/// A job on either side of a dependency, as `show` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Linked {
    pub id: String,
    pub state: JobState,
}

/// A job's dependencies (the jobs it waits for, in enqueue order) and its
/// dependents (the jobs waiting for it, in enqueue order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dependencies {
    pub after: Vec<Linked>,
    pub dependents: Vec<Linked>,
}

/// The message a job cancelled because of its dependency `id` carries.
pub(crate) fn ended_reason(id: &str, state: JobState) -> String {
    format!("dependency {id} is {state}")
}

/// SQL (both engines) true when the row `jobs` waits for a dependency that
/// ended dead or cancelled: put back to waiting (restart, `dlq retry`) it
/// would wait forever, so those actions leave it alone until that
/// dependency is restarted (which revives it). Read in the action's own
/// statement, so a dependency ending meanwhile is seen.
macro_rules! dependency_ended {
    () => {
        concat!(
            "(jobs.deps_left > 0 AND EXISTS ",
            $crate::store::deps::ended_dependency!("seq"),
            ")"
        )
    };
}
pub(crate) use dependency_ended;

/// SQL (both engines): `$column` (`id`, `state`, `seq`) of the first
/// dependency of the row `jobs` that ended dead or cancelled, if any.
macro_rules! ended_dependency {
    ($column:literal) => {
        concat!(
            "(SELECT ended.",
            $column,
            " FROM job_deps ended_edge JOIN jobs ended ON ended.seq = ended_edge.dep_seq
             WHERE ended_edge.job_seq = jobs.seq AND ended.state IN ('dead', 'cancelled')
             ORDER BY ended.seq LIMIT 1)"
        )
    };
}
pub(crate) use ended_dependency;

/// The links of jobs `copy` moves: every edge (dependent id, dependency
/// id), and which dependency cancelled each job (job id, dependency id).
pub(crate) type CopiedLinks<'a> = ((Vec<&'a str>, Vec<&'a str>), Vec<(&'a str, &'a str)>);

pub(crate) fn copied_links(records: &[JobRecord]) -> CopiedLinks<'_> {
    let mut edges = (Vec::new(), Vec::new());
    for record in records {
        for dep in &record.after {
            edges.0.push(record.job.id.as_str());
            edges.1.push(dep.as_str());
        }
    }
    let cancelled = records
        .iter()
        .filter_map(|r| Some((r.job.id.as_str(), r.cancelled_by.as_deref()?)))
        .collect();
    (edges, cancelled)
}

/// What one new job of a batch becomes (by default: pending, waiting for
/// nothing, nothing waiting for it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NewRow {
    /// Its dependencies not yet completed (those of the batch count).
    pub deps_left: u32,
    /// Jobs of the same batch that wait for it.
    pub dependents: u32,
    /// A dependency already ended dead or cancelled: its id and the reason;
    /// the job is stored cancelled.
    pub cancelled: Option<(String, String)>,
}

impl NewRow {
    pub fn state(&self) -> JobState {
        match self.cancelled {
            Some(_) => JobState::Cancelled,
            None => JobState::Pending,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        self.cancelled.as_ref().map(|(_, why)| why.as_str())
    }
}

/// Each job's id: its own, or a new one made at `now`.
pub(crate) fn batch_ids(jobs: &[(usize, NewJob)], now: jiff::Timestamp) -> Vec<JobId> {
    jobs.iter()
        .map(|(_, job)| job.id.clone().unwrap_or_else(|| JobId::generate(now)))
        .collect()
}

/// A batch as it is inserted: in dependency order.
pub(crate) struct BatchPlan<'a> {
    jobs: &'a [(usize, NewJob)],
    ids: &'a [JobId],
    /// Indices into `jobs`, dependencies first.
    pub order: Vec<usize>,
}

impl<'a> BatchPlan<'a> {
    /// Orders `jobs` (whose ids are `ids`); refuses cycles and self-references.
    pub fn new(jobs: &'a [(usize, NewJob)], ids: &'a [JobId]) -> Result<BatchPlan<'a>, Error> {
        Ok(BatchPlan {
            jobs,
            ids,
            order: order_batch(jobs)?,
        })
    }

    /// Whether any job waits for another: otherwise nothing below is needed.
    pub fn has_dependencies(&self) -> bool {
        self.jobs.iter().any(|(_, job)| !job.after.is_empty())
    }

    /// What each job becomes: plain rows when no job waits for another,
    /// else [`rows`](Self::rows) of the stored jobs `lock_stored` locks and
    /// reads (a backend's own statement).
    pub fn rows_locking<E: From<Error>>(
        &self,
        lock_stored: impl FnOnce(&[(String, i64)]) -> Result<HashMap<String, JobState>, E>,
    ) -> Result<Vec<NewRow>, E> {
        if !self.has_dependencies() {
            return Ok(vec![NewRow::default(); self.jobs.len()]);
        }
        Ok(self.rows(&lock_stored(&self.stored())?)?)
    }

    fn in_batch(&self) -> HashMap<&'a str, usize> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect()
    }

    /// The stored jobs the batch names, each with how many new edges point
    /// to it, in id order.
    pub fn stored(&self) -> Vec<(String, i64)> {
        let batch = self.in_batch();
        let mut named: std::collections::BTreeMap<&str, i64> = Default::default();
        for (_, job) in self.jobs {
            for dep in &job.after {
                if !batch.contains_key(dep.as_str()) {
                    *named.entry(dep.as_str()).or_default() += 1;
                }
            }
        }
        named
            .into_iter()
            .map(|(id, n)| (id.to_owned(), n))
            .collect()
    }

    /// The jobs `rows` cancel at once (job id, the dependency that ended).
    pub fn cancelled<'r>(&self, rows: &'r [NewRow]) -> Vec<(&'a str, &'r str)> {
        self.ids
            .iter()
            .zip(rows)
            .filter_map(|(id, row)| Some((id.as_str(), row.cancelled.as_ref()?.0.as_str())))
            .collect()
    }

    /// Every edge (dependent id, dependency id).
    pub fn edges(&self) -> (Vec<&'a str>, Vec<&'a str>) {
        let mut edges = (Vec::new(), Vec::new());
        for ((_, job), id) in self.jobs.iter().zip(self.ids) {
            for dep in &job.after {
                edges.0.push(id.as_str());
                edges.1.push(dep.as_str());
            }
        }
        edges
    }

    /// What each job becomes (by index into the batch), given the states of
    /// the stored jobs it names (`stored`: those found). An id neither
    /// stored nor in the batch is refused, naming the job's line.
    pub fn rows(&self, stored: &HashMap<String, JobState>) -> Result<Vec<NewRow>, Error> {
        let batch = self.in_batch();
        let many = self.jobs.len() > 1;
        let mut rows: Vec<Option<NewRow>> = vec![None; self.jobs.len()];
        let mut dependents = vec![0u32; self.jobs.len()];
        for (_, job) in self.jobs {
            for dep in &job.after {
                if let Some(&d) = batch.get(dep.as_str()) {
                    dependents[d] += 1;
                }
            }
        }
        for &i in &self.order {
            let (line, job) = &self.jobs[i];
            let mut row = NewRow {
                deps_left: 0,
                dependents: dependents[i],
                cancelled: None,
            };
            for dep in &job.after {
                let state = match batch.get(dep.as_str()) {
                    // Earlier in the order, so already planned.
                    Some(&d) => rows[d].as_ref().expect("dependencies come first").state(),
                    None => *stored.get(dep.as_str()).ok_or_else(|| {
                        let err = InputError::field(
                            "after",
                            format!("no job '{dep}' in the queue or in this batch"),
                        );
                        if many { err.at_line(*line) } else { err }
                    })?,
                };
                if state != JobState::Completed {
                    row.deps_left += 1;
                }
                if row.cancelled.is_none() && matches!(state, JobState::Dead | JobState::Cancelled)
                {
                    row.cancelled = Some((dep.to_string(), ended_reason(dep.as_str(), state)));
                }
            }
            rows[i] = Some(row);
        }
        Ok(rows
            .into_iter()
            .map(|row| row.expect("every job planned"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::spec::parse_batch;

    #[test]
    fn new_jobs_count_unfinished_dependencies_and_inherit_an_ended_one() {
        let jobs = parse_batch(
            r#"[{"id":"c","command":"x","after":["b","done"]},
                {"id":"b","command":"x","after":["dead","done"]},
                {"id":"a","command":"x","after":["running"]}]"#,
        )
        .unwrap();
        let ids: Vec<JobId> = jobs.iter().map(|(_, j)| j.id.clone().unwrap()).collect();
        let plan = BatchPlan::new(&jobs, &ids).unwrap();
        assert_eq!(
            plan.stored(),
            [
                ("dead".into(), 1),
                ("done".into(), 2),
                ("running".into(), 1)
            ]
        );
        let states: HashMap<String, JobState> = [
            ("dead".to_owned(), JobState::Dead),
            ("done".to_owned(), JobState::Completed),
            ("running".to_owned(), JobState::Processing),
        ]
        .into();
        let rows = plan.rows(&states).unwrap();
        assert_eq!(rows[2].deps_left, 1);
        assert_eq!(rows[2].cancelled, None);
        assert_eq!(
            (rows[1].deps_left, rows[1].dependents, rows[1].reason()),
            (1, 1, Some("dependency dead is dead"))
        );
        // c waits for b, cancelled in the same batch.
        assert_eq!(rows[0].reason(), Some("dependency b is cancelled"));
        let unknown = plan.rows(&HashMap::new()).unwrap_err().to_string();
        assert_eq!(
            unknown,
            "line 2: field 'after': no job 'dead' in the queue or in this batch"
        );
    }
}
