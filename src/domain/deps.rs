//! Dependencies between jobs: the rules that need no store. A job's `after`
//! names jobs that must complete before it runs. An edge is only ever made
//! when its dependent is enqueued and points to a stored job or to one
//! enqueued with it, so a cycle can only be written inside one batch: the
//! batch's topological order below is the whole cycle check.
//!
//! No I/O: what is stored (which ids exist, their states) is the store's.

use super::job::NewJob;
use super::spec::InputError;
use std::collections::{BTreeSet, HashMap};

/// The most dependencies one job may name.
pub const MAX_AFTER: usize = 1000;

/// The order in which a batch is inserted: each job after the jobs of the
/// same batch it names in `after`, otherwise in input order. Returns indices
/// into `jobs`. A job that names itself, or jobs that wait for each other,
/// are refused naming the ids and, in a batch of several, the line.
pub fn order_batch(jobs: &[(usize, NewJob)]) -> Result<Vec<usize>, InputError> {
    let at_line = |err: InputError, line: usize| match jobs.len() {
        1 => err,
        _ => err.at_line(line),
    };
    let by_id: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, (_, job))| Some((job.id.as_ref()?.as_str(), i)))
        .collect();
    // For each job, the jobs of the batch it waits for.
    let mut waits_for: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, (line, job)) in jobs.iter().enumerate() {
        for dep in &job.after {
            if job.id.as_ref() == Some(dep) {
                let err = InputError::field("after", format!("job '{dep}' cannot wait for itself"));
                return Err(at_line(err, *line));
            }
            if let Some(&d) = by_id.get(dep.as_str()) {
                waits_for[i].push(d);
            }
        }
    }
    let mut left: Vec<usize> = waits_for.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, deps) in waits_for.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    // Kahn's algorithm, always taking the earliest ready job: input order is
    // kept wherever the dependencies allow it.
    let mut ready: BTreeSet<usize> = (0..jobs.len()).filter(|&i| left[i] == 0).collect();
    let mut order = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            left[j] -= 1;
            if left[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == jobs.len() {
        return Ok(order);
    }
    Err(cycle_error(jobs, &waits_for, &left))
}

/// The error for a batch whose jobs still `left` waiting wait in a cycle:
/// found by walking from the earliest of them along dependencies that are
/// also still waiting, named from its earliest job.
fn cycle_error(jobs: &[(usize, NewJob)], waits_for: &[Vec<usize>], left: &[usize]) -> InputError {
    let start = (0..jobs.len())
        .find(|&i| left[i] > 0)
        .expect("a job of the cycle");
    let mut path = vec![start];
    let mut at = start;
    loop {
        at = *waits_for[at]
            .iter()
            .find(|&&d| left[d] > 0)
            .expect("a waiting job waits for another waiting job");
        if let Some(from) = path.iter().position(|&p| p == at) {
            path.drain(..from);
            break;
        }
        path.push(at);
    }
    let first = *path.iter().min().expect("a cycle has jobs");
    let turn = path.iter().position(|&p| p == first).expect("in the path");
    path.rotate_left(turn);
    path.push(first);
    let id = |i: usize| jobs[i].1.id.as_ref().map_or("", |id| id.as_str());
    let names: Vec<&str> = path.iter().map(|&i| id(i)).collect();
    InputError::field(
        "after",
        format!(
            "jobs wait for each other in a cycle: {} (each waits for the next)",
            names.join(" -> ")
        ),
    )
    .at_line(jobs[first].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::spec::parse_batch;

    fn order(text: &str) -> Result<Vec<String>, InputError> {
        let jobs = parse_batch(text).unwrap();
        let order = order_batch(&jobs)?;
        Ok(order
            .into_iter()
            .map(|i| {
                jobs[i]
                    .1
                    .id
                    .as_ref()
                    .map_or("-".into(), |id| id.to_string())
            })
            .collect())
    }

    #[test]
    fn a_batch_is_ordered_so_dependencies_come_first() {
        let cases: &[(&str, &[&str])] = &[
            // Already in order, or no edges: unchanged.
            (
                r#"[{"id":"a","command":"x"},{"id":"b","command":"x","after":["a"]}]"#,
                &["a", "b"],
            ),
            (
                r#"[{"id":"a","command":"x"},{"command":"x"},{"id":"c","command":"x"}]"#,
                &["a", "-", "c"],
            ),
            // A dependency given later comes first; the rest keep their places.
            (
                r#"[{"id":"c","command":"x","after":["b"]},{"id":"z","command":"x"},
                    {"id":"b","command":"x","after":["a"]},{"id":"a","command":"x"}]"#,
                &["z", "a", "b", "c"],
            ),
            // A fan-in and ids outside the batch (the store's to resolve).
            (
                r#"[{"id":"all","command":"x","after":["p1","p2","stored"]},
                    {"id":"p2","command":"x"},{"id":"p1","command":"x","after":["stored"]}]"#,
                &["p2", "p1", "all"],
            ),
        ];
        for (batch, expected) in cases {
            assert_eq!(order(batch).unwrap(), *expected, "{batch}");
        }
    }

    #[test]
    fn a_chain_of_a_thousand_given_backwards_is_reversed() {
        let lines: Vec<String> = (0..1000)
            .rev()
            .map(|i| match i {
                0 => r#"{"id":"j0","command":"x"}"#.to_owned(),
                _ => format!(r#"{{"id":"j{i}","command":"x","after":["j{}"]}}"#, i - 1),
            })
            .collect();
        let ordered = order(&lines.join("\n")).unwrap();
        let expected: Vec<String> = (0..1000).map(|i| format!("j{i}")).collect();
        assert_eq!(ordered, expected);
    }

    #[test]
    fn cycles_and_self_references_in_a_batch_are_refused_with_the_line() {
        let cases = [
            (
                r#"{"id":"a","command":"x","after":["a"]}"#,
                None,
                "job 'a' cannot wait for itself",
            ),
            (
                "{\"id\":\"ok\",\"command\":\"x\"}\n\
                 {\"id\":\"a\",\"command\":\"x\",\"after\":[\"b\"]}\n\
                 {\"id\":\"b\",\"command\":\"x\",\"after\":[\"a\"]}",
                Some(2),
                "a cycle: a -> b -> a",
            ),
            (
                r#"[{"id":"x","command":"x","after":["c"]},{"id":"c","command":"x","after":["b"]},
                    {"id":"b","command":"x","after":["a"]},{"id":"a","command":"x","after":["c"]}]"#,
                Some(2),
                "a cycle: c -> b -> a -> c",
            ),
        ];
        for (batch, line, needle) in cases {
            let err = order(batch).unwrap_err();
            assert_eq!(
                (err.line, err.field.as_deref()),
                (line, Some("after")),
                "{batch}"
            );
            assert!(err.to_string().contains(needle), "{batch}: {err}");
        }
    }
}
