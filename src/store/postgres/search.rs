//! The jobs search's SQL on PostgreSQL ([`crate::store::search`] decides
//! what to read), the same statements as SQLite's: each range read newest
//! first through its index, the filters no index serves a `hit` column
//! over at most `rows` jobs. The text is compared under the "C" collation,
//! so ILIKE folds ASCII letters only, as SQLite's LIKE does.

use super::rows::{self, job_columns};
use super::session::{Sql, TxError, TxResult};
use crate::store::Job;
use crate::store::search::{Range, Scan, SearchSql};
use postgres::GenericClient;

/// The hits of a range: `$1` before, `$2` pattern, `$3` states, `$4` rows
/// read at most, `$5` hits, `$6` the range's value. A subquery with a
/// LIMIT is not flattened, so the outer LIMIT stops the index scan.
macro_rules! hits_sql {
    ($range:literal) => {
        concat!(
            "SELECT seq FROM (
                 SELECT j.seq,
                        ($2::text IS NULL OR j.id COLLATE \"C\" ILIKE $2 ESCAPE '\\'
                                          OR j.command COLLATE \"C\" ILIKE $2 ESCAPE '\\')
                        AND (cardinality($3::text[]) = 0 OR j.state = ANY($3)) AS hit
                 FROM jobs j WHERE ",
            $range,
            " j.seq < $1 ORDER BY j.seq DESC LIMIT $4) s
             WHERE hit LIMIT $5"
        )
    };
}

/// The `$2 + 1`-th job of a range below `$1` (`$3` the range's value).
macro_rules! last_read_sql {
    ($range:literal) => {
        concat!(
            "SELECT j.seq FROM jobs j WHERE ",
            $range,
            " j.seq < $1 ORDER BY j.seq DESC LIMIT 1 OFFSET $2"
        )
    };
}

impl<C: GenericClient> SearchSql for Sql<'_, C> {
    type Error = TxError;

    fn hits(&mut self, scan: &Scan) -> TxResult<Vec<i64>> {
        let (rows, hits) = (i64::from(scan.rows), i64::from(scan.hits));
        let common: [&(dyn postgres::types::ToSql + Sync); 5] =
            [&scan.before, &scan.pattern, &scan.states, &rows, &hits];
        let found = match scan.range {
            Range::All => self.query(hits_sql!(""), &common)?,
            Range::State(state) => {
                let value = state.as_str();
                self.query(
                    hits_sql!("j.state = $6 AND"),
                    &[&common[..], &[&value]].concat(),
                )?
            }
            Range::Queue(queue) => self.query(
                hits_sql!("j.queue = $6 AND"),
                &[&common[..], &[&queue]].concat(),
            )?,
        };
        Ok(found
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    fn last_read(&mut self, scan: &Scan) -> TxResult<Option<i64>> {
        let offset = i64::from(scan.rows) - 1;
        let row = match scan.range {
            Range::All => self.query_opt(last_read_sql!(""), &[&scan.before, &offset])?,
            Range::State(state) => self.query_opt(
                last_read_sql!("j.state = $3 AND"),
                &[&scan.before, &offset, &state.as_str()],
            )?,
            Range::Queue(queue) => self.query_opt(
                last_read_sql!("j.queue = $3 AND"),
                &[&scan.before, &offset, &queue],
            )?,
        };
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn jobs(&mut self, seqs: &[i64]) -> TxResult<Vec<Job>> {
        self.query(
            concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs j WHERE j.seq = ANY($1) ORDER BY j.seq DESC"
            ),
            &[&seqs],
        )?
        .iter()
        .map(rows::job)
        .collect()
    }
}
