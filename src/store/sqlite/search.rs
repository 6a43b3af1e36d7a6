//! The jobs search's SQL on SQLite ([`crate::store::search`] decides what
//! to read). Each range is read newest first through its index; the
//! filters no index serves are a `hit` column over at most `rows` jobs, so
//! a scan stops after `hits` matches or `rows` jobs, whichever comes first.

use super::{JOB_COLUMNS, database_error, job_from_row};
use crate::error::Error;
use crate::store::Job;
use crate::store::search::{Range, Scan, SearchSql};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use std::path::Path;

/// One page's reads, inside one read transaction (a snapshot).
pub(super) struct Searcher<'a> {
    pub conn: &'a Connection,
    pub path: &'a Path,
}

/// The range's condition (its value, if any, is parameter ?1).
fn range_condition(range: &Range) -> &'static str {
    match range {
        Range::All => "",
        Range::State(_) => "state = ?1 AND",
        Range::Queue(_) => "queue = ?1 AND",
    }
}

/// The range's value, then `before`: the first parameters of both scans.
fn range_params(scan: &Scan) -> Vec<Value> {
    let mut values = match scan.range {
        Range::All => vec![],
        Range::State(state) => vec![Value::Text(state.as_str().to_owned())],
        Range::Queue(queue) => vec![Value::Text(queue.to_owned())],
    };
    values.push(Value::Integer(scan.before));
    values
}

impl Searcher<'_> {
    fn error(&self, e: rusqlite::Error) -> Error {
        database_error(self.path, e)
    }
}

impl SearchSql for Searcher<'_> {
    type Error = Error;

    fn hits(&mut self, scan: &Scan) -> Result<Vec<i64>, Error> {
        let mut values = range_params(scan);
        let n = values.len();
        // The inner LIMIT bounds the rows read, the outer one the hits; a
        // subquery with a LIMIT runs as a co-routine, so both stop early.
        let sql = format!(
            "SELECT seq FROM (
                 SELECT seq, (?{p} IS NULL OR id LIKE ?{p} ESCAPE '\\' OR command LIKE ?{p} ESCAPE '\\')
                             AND (?{s} = '[]' OR state IN (SELECT value FROM json_each(?{s}))) AS hit
                 FROM jobs WHERE {range} seq < ?{n} ORDER BY seq DESC LIMIT ?{rows})
             WHERE hit LIMIT ?{hits}",
            range = range_condition(&scan.range),
            p = n + 1,
            s = n + 2,
            rows = n + 3,
            hits = n + 4,
        );
        values.extend([
            scan.pattern.clone().map_or(Value::Null, Value::Text),
            Value::Text(serde_json::to_string(&scan.states).expect("strings serialize")),
            Value::Integer(scan.rows.into()),
            Value::Integer(scan.hits.into()),
        ]);
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map(params_from_iter(values), |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| self.error(e))
    }

    fn last_read(&mut self, scan: &Scan) -> Result<Option<i64>, Error> {
        let mut values = range_params(scan);
        let n = values.len();
        let sql = format!(
            "SELECT seq FROM jobs WHERE {range} seq < ?{n} ORDER BY seq DESC LIMIT 1 OFFSET ?{offset}",
            range = range_condition(&scan.range),
            offset = n + 1,
        );
        values.push(Value::Integer(i64::from(scan.rows) - 1));
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(params_from_iter(values), |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    fn jobs(&mut self, seqs: &[i64]) -> Result<Vec<Job>, Error> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE seq IN (SELECT value FROM json_each(?1))
             ORDER BY seq DESC"
        );
        let seqs = serde_json::to_string(seqs).expect("numbers serialize");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_map([seqs], job_from_row)?.collect())
            .map_err(|e| self.error(e))
    }
}
