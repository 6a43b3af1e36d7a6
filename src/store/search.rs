//! The jobs search ([`Backend::search_jobs`](super::Backend::search_jobs))
//! without its SQL: which index ranges a [`JobSearch`] reads, and how their
//! hits become one page. Each backend's `search.rs` runs the [`Scan`]s.
//!
//! Keyset paging, newest first: a page is the jobs with `seq` below the
//! cursor. With several states asked for, each state's range of the
//! `(state, seq)` index is read newest first and the ranges are merged,
//! since `state IN (...) ORDER BY seq` would sort every match. A filter no
//! index serves (the text; states within one queue) reads at most
//! [`SEARCH_SCAN_ROWS`] jobs per range: a page never costs more than that,
//! and one that stopped short says so (`scanned_all`) and goes on, with its
//! `next`, from the last job it read, so paging still meets every job once.

use super::dashboard::{JobCursor, JobSearch, SEARCH_LIMIT_MAX, SEARCH_SCAN_ROWS, SearchPage};
use super::{Job, distinct_states};
use crate::domain::JobState;
use crate::error::Error;

/// The longest search text accepted (SQLite refuses very long patterns).
pub const SEARCH_TEXT_MAX: usize = 1000;

/// One index range, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range<'a> {
    /// Every job (the primary key).
    All,
    /// One state's jobs (`jobs_state`).
    State(JobState),
    /// One queue's jobs (`jobs_queue`).
    Queue(&'a str),
}

/// What a backend reads for one range: the `seq`s of up to `hits` jobs
/// below `before` that match the filters, among at most `rows` jobs read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scan<'a> {
    pub range: Range<'a>,
    pub before: i64,
    /// States kept within a queue's range (empty: every state).
    pub states: Vec<&'static str>,
    /// The text as a LIKE pattern: escaped with `\`, between `%`s.
    pub pattern: Option<String>,
    /// The page's limit plus one, to learn whether more follow.
    pub hits: u32,
    /// How many jobs of the range are read at most.
    pub rows: u32,
    /// Whether a filter beyond the range drops jobs (so `rows` may run out
    /// before `hits` are found).
    pub filtered: bool,
}

/// The SQL a backend runs for [`search`], all in one snapshot.
pub(crate) trait SearchSql {
    type Error: From<Error>;
    /// The matching `seq`s of `scan`, newest first.
    fn hits(&mut self, scan: &Scan) -> Result<Vec<i64>, Self::Error>;
    /// The `seq` of the `scan.rows`-th job of its range below `before`:
    /// where a scan that read that many stopped; `None` when there are
    /// fewer (the scan read them all).
    fn last_read(&mut self, scan: &Scan) -> Result<Option<i64>, Self::Error>;
    /// The jobs with these `seq`s, newest first.
    fn jobs(&mut self, seqs: &[i64]) -> Result<Vec<Job>, Self::Error>;
}

/// Checks `search` and says which ranges to read.
pub(crate) fn scans(search: &JobSearch) -> Result<Vec<Scan<'_>>, Error> {
    if !(1..=SEARCH_LIMIT_MAX).contains(&search.limit) {
        return Err(Error::Invalid(format!(
            "a page holds 1 to {SEARCH_LIMIT_MAX} jobs, not {}",
            search.limit
        )));
    }
    let pattern = match search.text.as_deref() {
        None | Some("") => None,
        Some(text) if text.len() > SEARCH_TEXT_MAX => {
            return Err(Error::Invalid(format!(
                "the search text is longer than {SEARCH_TEXT_MAX} bytes"
            )));
        }
        Some(text) if text.contains('\0') => {
            return Err(Error::Invalid("the search text holds a NUL byte".into()));
        }
        Some(text) => Some(like_pattern(text)),
    };
    let states = distinct_states(&search.states);
    let names = states.iter().map(|s| s.as_str()).collect::<Vec<_>>();
    let ranges: Vec<(Range, Vec<&'static str>)> = match (&search.queue, states.is_empty()) {
        (Some(queue), _) => vec![(Range::Queue(queue), names)],
        (None, true) => vec![(Range::All, vec![])],
        (None, false) => states.iter().map(|&s| (Range::State(s), vec![])).collect(),
    };
    let hits = search.limit + 1;
    Ok(ranges
        .into_iter()
        .map(|(range, states)| {
            let filtered = pattern.is_some() || !states.is_empty();
            Scan {
                range,
                before: search.before.map_or(i64::MAX, |c| c.0),
                states,
                pattern: pattern.clone(),
                hits,
                rows: if filtered { SEARCH_SCAN_ROWS } else { hits },
                filtered,
            }
        })
        .collect())
}

/// `text` as a LIKE pattern matching it anywhere, its `%`, `_` and `\`
/// plain characters (the statements say `ESCAPE '\'`).
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// What one range gave: its hits, newest first, and the lowest `seq` down
/// to which every match of the range is among them (`None`: all of them).
#[derive(Debug)]
pub(crate) struct RangeHits {
    pub seqs: Vec<i64>,
    pub known_down_to: Option<i64>,
}

/// Runs `scans` (from [`scans`]) and builds the page of at most `limit`.
pub(crate) fn search<S: SearchSql>(
    sql: &mut S,
    scans: &[Scan],
    limit: u32,
) -> Result<SearchPage, S::Error> {
    let mut ranges = Vec::with_capacity(scans.len());
    for scan in scans {
        let seqs = sql.hits(scan)?;
        let known_down_to = if seqs.len() >= scan.hits as usize {
            seqs.last().copied()
        } else if scan.filtered {
            sql.last_read(scan)?
        } else {
            None
        };
        ranges.push(RangeHits {
            seqs,
            known_down_to,
        });
    }
    let (seqs, next, scanned_all) = merge(ranges, limit);
    Ok(SearchPage {
        jobs: sql.jobs(&seqs)?,
        next,
        scanned_all,
    })
}

/// The page from each range's hits: only hits down to the highest point
/// every range is known to (below it one range may not have looked yet),
/// newest first, at most `limit`. Returns the page's `seq`s, the next
/// cursor and whether the page is as full as the matches allow.
pub(crate) fn merge(ranges: Vec<RangeHits>, limit: u32) -> (Vec<i64>, Option<JobCursor>, bool) {
    let known_down_to = ranges.iter().filter_map(|r| r.known_down_to).max();
    let floor = known_down_to.unwrap_or(i64::MIN);
    let mut seqs: Vec<i64> = ranges
        .into_iter()
        .flat_map(|r| r.seqs)
        .filter(|&seq| seq >= floor)
        .collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.dedup();
    let limit = limit as usize;
    if seqs.len() > limit {
        seqs.truncate(limit);
        let last = seqs.last().copied().map(JobCursor);
        return (seqs, last, true);
    }
    // Not full: either every range ran out (the last page), or one stopped
    // at its row bound, and the next page goes on below that.
    (seqs, known_down_to.map(JobCursor), known_down_to.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(seqs: &[i64], known_down_to: Option<i64>) -> RangeHits {
        RangeHits {
            seqs: seqs.to_vec(),
            known_down_to,
        }
    }

    #[test]
    fn like_patterns_keep_metacharacters_literal() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }

    #[test]
    fn a_full_range_pages_at_its_last_hit() {
        let (seqs, next, all) = merge(vec![hits(&[9, 7, 5], Some(5))], 2);
        assert_eq!((seqs, next, all), (vec![9, 7], Some(JobCursor(7)), true));
    }

    #[test]
    fn exhausted_ranges_end_the_paging() {
        let (seqs, next, all) = merge(vec![hits(&[9, 3], None), hits(&[8], None)], 5);
        assert_eq!((seqs, next, all), (vec![9, 8, 3], None, true));
    }

    #[test]
    fn a_range_that_stopped_short_bounds_the_page_and_the_cursor() {
        // State A stopped reading at 6; state B's hit 4 lies below what A
        // has seen, so it waits for the next page (which starts below 6).
        let (seqs, next, all) = merge(vec![hits(&[8], Some(6)), hits(&[7, 4], None)], 5);
        assert_eq!((seqs, next, all), (vec![8, 7], Some(JobCursor(6)), false));
    }

    #[test]
    fn a_full_range_keeps_the_others_hits_below_its_last_one_for_later() {
        let (seqs, next, all) = merge(vec![hits(&[10, 6, 2], Some(2)), hits(&[9, 1], None)], 2);
        assert_eq!((seqs, next, all), (vec![10, 9], Some(JobCursor(9)), true));
    }

    #[test]
    fn limits_outside_one_to_the_maximum_are_refused() {
        for limit in [0, SEARCH_LIMIT_MAX + 1] {
            let search = JobSearch {
                limit,
                ..JobSearch::default()
            };
            assert!(matches!(scans(&search), Err(Error::Invalid(_))), "{limit}");
        }
    }

    #[test]
    fn only_filters_no_index_serves_bound_the_rows_read() {
        let search = |states: Vec<JobState>, queue: Option<&str>, text: Option<&str>| JobSearch {
            states,
            queue: queue.map(str::to_owned),
            text: text.map(str::to_owned),
            before: None,
            limit: 10,
        };
        let by_state = search(vec![JobState::Dead, JobState::Failed], None, None);
        let plan = scans(&by_state).unwrap();
        assert_eq!(plan.len(), 2);
        assert!(plan.iter().all(|s| !s.filtered && s.rows == 11));
        let in_queue = search(vec![JobState::Dead], Some("mail"), Some(""));
        let plan = scans(&in_queue).unwrap();
        assert_eq!(plan[0].range, Range::Queue("mail"));
        assert_eq!(plan[0].states, vec!["dead"]);
        assert_eq!(plan[0].pattern, None);
        assert!(plan[0].filtered && plan[0].rows == SEARCH_SCAN_ROWS);
        let text = search(vec![], None, Some("x"));
        assert!(scans(&text).unwrap()[0].filtered);
    }
}
