//! The SQLite backend: the embedded default, one file per queue.
//!
//! A claim hands one job to one worker (a single `UPDATE … RETURNING`
//! inside an immediate transaction: SQLite has one writer at a time). Busy
//! and locked conditions are retried here and never reach the user. Times
//! are this host's clock, the only clock an SQLite queue has.

mod claims;
mod dashboard;
mod deps;
mod fixture;
mod queues;
mod schedules;
mod search;
mod unique;
mod wal;

use claims::{claim_in, finish_and_claim, finish_in, renew_in};

use super::dashboard::{JobSearch, SearchPage};
use super::deps::{BatchPlan, Dependencies, batch_ids};
use super::selection::{self, Acted, BulkAction, BulkOutcome, Found, Selection};
use super::types::*;
use super::{
    Backend, Finish, Finished, Holder, OpenMode, WakeFn, decode_env, from_millis, millis,
    parse_state, to_millis,
};
use crate::config::Durability;
use crate::domain::spec::check_batch_keys;
use crate::domain::{
    AttemptOutcome, JobEdit, JobState, NewJob, QueueChange, QueueName, RetryPolicy,
};
use crate::error::{Error, Result};
use crate::output::Destination;
use crate::paths::StateDir;
use jiff::Timestamp;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The schema as numbered migrations; `PRAGMA user_version` counts those
/// applied. Append only: a migration that has shipped is never edited.
const MIGRATIONS: [&str; 11] = [
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_attempt_containment.sql"),
    include_str!("migrations/003_env_file.sql"),
    include_str!("migrations/004_output_tail.sql"),
    include_str!("migrations/005_worker_unit.sql"),
    include_str!("migrations/006_worker_slots.sql"),
    include_str!("migrations/007_drop_attempts_finished.sql"),
    include_str!("migrations/008_workflows.sql"),
    include_str!("migrations/009_stats.sql"),
    include_str!("migrations/010_search.sql"),
    include_str!("migrations/011_blocked_counts.sql"),
];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Prepared statements kept per connection. A worker's batches come in up
/// to seven sizes, each a statement of its own for the claim's attempts,
/// the finish's two writes and the renewal (`claims.rs`): with rusqlite's
/// default of 16, batches of varying size pushed each other out and were
/// compiled again and again.
const STATEMENT_CACHE: usize = 64;

/// `PRAGMA application_id` of a queuectl database ("QCTL"), so that a
/// mistyped `--db` never takes over another application's SQLite file.
pub const APPLICATION_ID: i32 = 0x5143_544C;

/// How long a write waits for other writers before it gives up. The busy
/// handler ([`wait_for_lock`]) waits inside each attempt; the loop in
/// [`Store::write`] retries what it still reports as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const BUSY_DEADLINE: Duration = Duration::from_secs(120);

/// The first and the longest pause of the busy handler.
const LOCK_PAUSE_FIRST: Duration = Duration::from_micros(20);
const LOCK_PAUSE_MAX: Duration = Duration::from_millis(1);

/// SQLite's busy handler: called with the number of earlier calls while
/// another connection holds the lock; returns false to give up.
///
/// SQLite's built-in handler (`busy_timeout`) sleeps 1, 2, 5, 10, 15, 20,
/// 25 ... ms between attempts. Our transactions hold the lock for about
/// 0.1-0.3 ms, so a worker that collided slept ten times longer than the
/// wait it needed, and two workers ran barely faster than one. These pauses
/// start at 20 us and double up to 1 ms.
fn wait_for_lock(calls: i32) -> bool {
    let pause = pause_before_retry(calls);
    if pause.is_zero() {
        return false;
    }
    std::thread::sleep(pause);
    true
}

/// The pause before retry number `calls` (0-based), or zero once the pauses
/// so far add up to [`BUSY_TIMEOUT`].
fn pause_before_retry(calls: i32) -> Duration {
    const RAMP: u32 = 16;
    let pause = |i: u32| (LOCK_PAUSE_FIRST * (1 << i.min(RAMP))).min(LOCK_PAUSE_MAX);
    let calls = u32::try_from(calls).unwrap_or(0);
    let waited = (0..calls.min(RAMP)).map(pause).sum::<Duration>()
        + LOCK_PAUSE_MAX * calls.saturating_sub(RAMP);
    if waited >= BUSY_TIMEOUT {
        Duration::ZERO
    } else {
        pause(calls)
    }
}

/// Columns of a full job row, in the order [`job_from_row`] reads them.
const JOB_COLUMNS: &str = "id, command, state, priority, run_at, max_retries, timeout_seconds, env, cwd, \
     attempts, failures, created_at, updated_at, finished_at, worker, lease_expires_at, cancel_requested, last_error, env_file, \
     queue, deps_left, unique_key, schedule";

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Tests pin the clock ([`Backend::pin_clock`]).
    pinned_now: Option<Timestamp>,
    /// Durability full: [`Store::write`] fsyncs the WAL itself after each
    /// commit (see [`Store::open`]).
    sync_after_commit: bool,
}

type TxError = super::TxError<rusqlite::Error>;

/// A row an action read about a job it left alone: id, state, unique key,
/// and the key's unfinished holder.
/// A job an action left alone: id, state, unique key and its holder, id
/// and state of the dependency that ended.
type FoundRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn found_row(r: &Row) -> rusqlite::Result<FoundRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn into_found(rows: Vec<FoundRow>) -> Result<Vec<Found>> {
    rows.into_iter()
        .map(|(id, state, key, holder, ended, ended_state)| {
            let ended = match (ended, ended_state) {
                (Some(dep), Some(state)) => Some((dep, parse_state(&state)?)),
                _ => None,
            };
            Ok(Found::from_row(
                id,
                parse_state(&state)?,
                key,
                holder,
                ended,
            ))
        })
        .collect()
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> TxError {
        TxError::Sql(e)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A database error about `path`; "read-only" when that is the reason.
fn database_error(path: &Path, source: rusqlite::Error) -> Error {
    let read_only = match source.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => true,
        Some(ErrorCode::CannotOpen) => on_read_only_fs(path),
        _ => false,
    };
    if read_only {
        return Error::ReadOnly(path.to_owned());
    }
    Error::Database {
        path: path.to_owned(),
        source,
    }
}

fn on_read_only_fs(db: &Path) -> bool {
    crate::files::on_read_only_fs(StateDir::for_path(db).root())
}

/// "No queue" when nothing is at `path` (or it is not a file); a queue we
/// may not look at is a plain I/O error, not "no queue".
fn queue_file_exists(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::NoQueue(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoQueue(path.to_owned())),
        Err(e) => Err(Error::io(format!("cannot open {}", path.display()), e)),
    }
}

/// Plans that never depend on the values bound to a statement (SQLite's
/// query planner stability guarantee). Without it, a statement with a bound
/// `LIMIT ?` (the batch claim) is compiled again on every run, because
/// SQLite may plan differently for another limit: 0.4 ms per claim, more
/// than the claim itself. Our plans are pinned by the SQL (INDEXED BY) anyway.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// `file:` URI of `path` for SQLite, with the bytes URIs reserve escaped.
fn file_uri(path: &Path, query: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode, and
    /// brings its schema up to date.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        SqliteStore::open_as(path, durability, OpenMode::Create)
    }

    /// Opens the queue at `path` as `mode` allows. Writing modes make its
    /// files private first ([`StateDir::prepare`]).
    pub fn open_as(path: &Path, durability: Durability, mode: OpenMode) -> Result<SqliteStore> {
        match mode {
            OpenMode::ReadOnly => return SqliteStore::open_read_only(path, durability),
            OpenMode::Existing => {
                queue_file_exists(path)?;
                SqliteStore::refuse_foreign(path)?;
                StateDir::for_path(path).prepare()?;
            }
            // SQLite's name for a database in memory: no files to prepare.
            OpenMode::Create if path == Path::new(":memory:") => {}
            OpenMode::Create => {
                SqliteStore::refuse_foreign(path)?;
                StateDir::for_path(path).prepare()?;
            }
        }
        let db_err = |source| database_error(path, source);
        let conn = Connection::open(path).map_err(db_err)?;
        conn.busy_handler(Some(wait_for_lock)).map_err(db_err)?;
        stable_plans(&conn).map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Durability full means every write transaction is on disk before
        // `write` returns (and so before a worker starts a job it claimed,
        // or `enqueue` reports its ids). SQLite's synchronous=FULL does that by fsyncing
        // while it still holds the write lock, so with several workers each
        // commit queued behind the previous one's fsync. Instead the
        // connection commits with synchronous=NORMAL and `write` fsyncs the
        // WAL right after, outside the lock: concurrent commits overlap and
        // one fsync covers all frames written before it. In that window
        // (about 0.2 ms) other connections can already read the transaction;
        // anything they act on goes through a write of their own, whose fsync
        // also covers this one (the WAL is sequential), so no job starts on a
        // claim or enqueue that a power loss could undo. Measured with four
        // workers on two cores: 1410 -> 1700 jobs/s.
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            sync_after_commit: false,
            pinned_now: None,
        };
        // Before anything is changed (WAL mode is persistent): is it ours?
        store.check_application_id()?;
        let wal = store.retry_busy(|conn| {
            // journal_mode is persistent; only switch when needed, since the
            // switch itself needs an exclusive lock.
            let mut mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                mode = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            }
            let wal = mode.eq_ignore_ascii_case("wal");
            // Without WAL (a filesystem that cannot share memory), NORMAL
            // would not be crash-safe: keep SQLite's own FULL there.
            let synchronous = match durability {
                Durability::Full if !wal => "FULL",
                _ => "NORMAL",
            };
            // temp_store: statement journals (every INSERT/UPDATE that fires
            // a trigger has one) stay in memory instead of spilling to a temp file.
            conn.execute_batch(&format!(
                "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
            ))?;
            Ok(wal)
        })?;
        store.sync_after_commit = durability == Durability::Full && wal;
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_error(&self, source: rusqlite::Error) -> Error {
        database_error(&self.path, source)
    }

    /// A reading command's connection: `SQLITE_OPEN_READ_ONLY`, so nothing
    /// is created or changed. On a read-only filesystem a WAL database whose
    /// -shm file is gone cannot be opened that way; there nothing can write
    /// to it either, so it is opened as `immutable`. An older schema is
    /// upgraded through a writing open (a read must see the current columns).
    fn open_read_only(path: &Path, durability: Durability) -> Result<SqliteStore> {
        queue_file_exists(path)?;
        let connect = |uri: String| SqliteStore::connect_read_only(path, uri);
        let version = |store: &mut SqliteStore| {
            store.retry_busy(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
        };
        let mut store = connect(file_uri(path, "mode=ro"))?;
        let found = match version(&mut store) {
            Err(_) if on_read_only_fs(path) => {
                store = connect(file_uri(path, "mode=ro&immutable=1"))?;
                version(&mut store)?
            }
            other => other?,
        };
        store.check_application_id()?;
        if found > SCHEMA_VERSION {
            return Err(store.schema_too_new(found));
        }
        if found < SCHEMA_VERSION {
            let tables: i64 = store.retry_busy(|c| {
                c.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
            })?;
            if tables == 0 {
                return Err(Error::NoQueue(path.to_owned()));
            }
            drop(store);
            return SqliteStore::open_as(path, durability, OpenMode::Existing).map_err(
                |e| match e {
                    Error::ReadOnly(path) => Error::SchemaUpgradeReadOnly {
                        path,
                        found,
                        supported: SCHEMA_VERSION,
                    },
                    other => other,
                },
            );
        }
        Ok(store)
    }

    /// A `SQLITE_OPEN_READ_ONLY` connection to `uri`, the queue at `path`.
    fn connect_read_only(path: &Path, uri: String) -> Result<SqliteStore> {
        let db_err = |source| database_error(path, source);
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(uri, flags).map_err(db_err)?;
        conn.busy_handler(Some(wait_for_lock)).map_err(db_err)?;
        stable_plans(&conn).map_err(db_err)?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            sync_after_commit: false,
            pinned_now: None,
        })
    }

    /// Before a writing open changes anything (the files' modes come first):
    /// a file already at `path` must be a queue, or empty. Other failures of
    /// this look are left for the writing open to report.
    fn refuse_foreign(path: &Path) -> Result<()> {
        let refuse = |what: &str| {
            Err(Error::Invalid(format!(
                "{} is not a queuectl queue ({what}); refusing to change it",
                path.display()
            )))
        };
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => return refuse("it is not a regular file"),
            Ok(meta) if meta.len() > 0 => {}
            _ => return Ok(()),
        }
        // Looked at through SQLite only, never a descriptor of our own:
        // SQLite's locks are POSIX locks, which belong to the process, and
        // closing any descriptor of the file drops every one of them, also
        // those of this process's other connections (a `queuectl web`
        // thread opening its connection beside the others). Another process
        // then thought itself the last one, checkpointed and deleted the WAL
        // under them, and they read a deleted WAL for ever after.
        let looked = SqliteStore::connect_read_only(path, file_uri(path, "mode=ro"))
            .and_then(|mut store| store.check_application_id());
        match looked {
            Err(foreign @ Error::Invalid(_)) => Err(foreign),
            Err(Error::Database { source, .. })
                if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) =>
            {
                refuse("it is not an SQLite database")
            }
            _ => Ok(()),
        }
    }

    fn schema_too_new(&self, found: i64) -> Error {
        Error::SchemaTooNew {
            path: self.path.clone(),
            found,
            supported: SCHEMA_VERSION,
        }
    }

    /// Runs `op` until it stops reporting busy or the deadline passes.
    fn retry_busy<T>(
        &mut self,
        mut op: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + BUSY_DEADLINE;
        let mut pause = Duration::from_millis(1);
        loop {
            match op(&self.conn) {
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other.map_err(|e| self.db_error(e)),
            }
        }
    }

    /// Runs `body` in an immediate (write-locking) transaction, retrying the
    /// whole transaction while the database is busy.
    fn write<T>(
        &mut self,
        mut body: impl FnMut(&rusqlite::Transaction) -> Result<T, TxError>,
    ) -> Result<T> {
        let deadline = Instant::now() + BUSY_DEADLINE;
        let mut pause = Duration::from_millis(1);
        loop {
            let attempt = (|| {
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = body(&tx)?;
                tx.commit()?;
                Ok(value)
            })();
            match attempt {
                Ok(value) => {
                    if self.sync_after_commit {
                        self.sync_wal()?;
                    }
                    return Ok(value);
                }
                Err(TxError::App(e)) => return Err(e),
                Err(TxError::Sql(e)) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(TxError::Sql(e)) => return Err(self.db_error(e)),
            }
        }
    }

    /// Flushes the WAL to disk; an error when there is no WAL to sync.
    fn sync_wal(&self) -> Result<()> {
        wal::sync(&self.conn).map_err(|e| self.db_error(e))
    }

    /// Refuses a database that holds another application's tables. An empty
    /// file is a new queue; an untagged queuectl database from before the tag
    /// (migration 1 only) is recognised by its tables and tagged on upgrade.
    fn check_application_id(&mut self) -> Result<()> {
        // One statement, so one snapshot: read apart, the tag could predate
        // another process's creation of the queue and the tables follow it.
        let (id, tables, legacy): (i32, i64, i64) = self.retry_busy(|c| {
            c.query_row(
                "SELECT (SELECT application_id FROM pragma_application_id()), COUNT(*),
                     COUNT(*) FILTER (WHERE name IN ('jobs', 'attempts', 'state_counts', 'workers'))
                 FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        let untagged_queuectl = id == 0 && tables == 4 && legacy == 4;
        if id == APPLICATION_ID || tables == 0 || untagged_queuectl {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "{} is not a queuectl queue (it is another application's SQLite database); refusing to change it",
            self.path.display()
        )))
    }

    /// Applies the migrations this database lacks, each in its own write
    /// transaction; safe when several processes open a new queue at once.
    fn migrate(&mut self) -> Result<()> {
        let version: i64 =
            self.retry_busy(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if version > SCHEMA_VERSION {
            return Err(self.schema_too_new(version));
        }
        self.write(|tx| {
            // Another process may have migrated while we waited for the lock.
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            for (applied, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize)
            {
                tx.execute_batch(migration)?;
                tx.execute_batch(&format!("PRAGMA user_version = {}", applied + 1))?;
            }
            tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
            Ok(())
        })
    }

    /// The clock this queue's times are written with: this host's (or the
    /// one a test pinned).
    fn clock(&self) -> Timestamp {
        self.pinned_now.unwrap_or_else(Timestamp::now)
    }

    /// Runs `read` in one read transaction (one snapshot of the queue).
    fn read_snapshot<T>(
        &mut self,
        read: impl Fn(&Connection) -> std::result::Result<T, dashboard::ReadError>,
    ) -> Result<T> {
        self.retry_busy(|c| {
            let tx = c.unchecked_transaction()?;
            match read(&tx) {
                Ok(value) => Ok(Ok(value)),
                Err(dashboard::ReadError::Sql(e)) => Err(e),
                Err(dashboard::ReadError::Corrupt(e)) => Ok(Err(e)),
            }
        })?
    }

    fn read_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.query_row(params, map))
            .map_err(|e| self.db_error(e))
    }

    fn read_all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.query_map(params, map)?.collect())
            .map_err(|e| self.db_error(e))
    }

    /// Inserts one exported job and its history as they were.
    fn import_one(tx: &rusqlite::Transaction, record: &JobRecord) -> rusqlite::Result<()> {
        let job = &record.job;
        let seq: i64 = tx
            .prepare_cached(
                "INSERT INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds, env, cwd,
                     attempts, failures, created_at, updated_at, finished_at, worker, lease_token, lease_expires_at,
                     cancel_requested, last_error, env_file, queue, unique_key, schedule, deps_left)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                     ?21, ?22, ?23, ?24)
                 RETURNING seq",
            )?
            .query_row(
                params![
                    job.id,
                    job.command,
                    job.state.as_str(),
                    job.priority,
                    to_millis(job.run_at),
                    job.max_retries,
                    job.timeout_seconds,
                    record.env_text,
                    job.cwd,
                    job.attempts,
                    job.failures,
                    to_millis(job.created_at),
                    to_millis(job.updated_at),
                    job.finished_at.map(to_millis),
                    job.worker,
                    record.lease_token,
                    job.lease_expires_at.map(to_millis),
                    job.cancel_requested,
                    job.last_error,
                    job.env_file,
                    job.queue,
                    job.unique_key,
                    job.schedule,
                    job.deps_left,
                ],
                |r| r.get(0),
            )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO attempts (job_seq, number, worker, started_at, finished_at, outcome, exit_code, signal,
                 error, output, host, cgroup, output_truncated, output_tail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for a in &record.attempts {
            insert.execute(params![
                seq,
                a.number,
                a.worker,
                to_millis(a.started_at),
                a.finished_at.map(to_millis),
                a.outcome.map(|o| o.as_str()),
                a.exit_code,
                a.signal,
                a.error,
                a.output.as_str(),
                a.host,
                a.cgroup,
                a.output_truncated,
                a.output_tail,
            ])?;
        }
        Ok(())
    }
}

/// Columns of an attempt row, in the order [`attempt_from_row`] reads them.
const ATTEMPT_COLUMNS: &str = "a.number, a.worker, a.started_at, a.finished_at, a.outcome, a.exit_code, a.signal, a.error, a.output,
     a.host, a.cgroup, a.output_truncated, a.output_tail";

fn attempt_from_row(r: &Row) -> rusqlite::Result<Attempt> {
    let outcome: Option<String> = r.get(4)?;
    Ok(Attempt {
        number: r.get(0)?,
        worker: r.get(1)?,
        started_at: from_millis(r.get(2)?),
        finished_at: r.get::<_, Option<i64>>(3)?.map(from_millis),
        outcome: outcome.as_deref().and_then(AttemptOutcome::parse),
        exit_code: r.get(5)?,
        signal: r.get(6)?,
        error: r.get(7)?,
        output: {
            let text: String = r.get(8)?;
            Destination::parse(&text).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    8,
                    rusqlite::types::Type::Text,
                    text.into(),
                )
            })?
        },
        host: r.get(9)?,
        cgroup: r.get(10)?,
        output_truncated: r.get(11)?,
        output_tail: r.get(12)?,
    })
}

/// Syncs a queue's WAL from another thread than the one writing it.
struct WalSyncer {
    conn: Connection,
    path: PathBuf,
}

impl super::WalSync for WalSyncer {
    fn sync(&mut self) -> Result<()> {
        wal::sync(&self.conn).map_err(|e| database_error(&self.path, e))
    }
}

impl Backend for SqliteStore {
    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.clock())
    }

    fn pin_clock(&mut self, at: Option<Timestamp>) -> Result<()> {
        self.pinned_now = at;
        Ok(())
    }

    /// A second connection to the same database syncs the WAL: fsync
    /// flushes the file, whichever descriptor names it, and that
    /// connection's own WAL handle is the live WAL (see `wal.rs`).
    fn detach_sync(&mut self) -> Result<Option<Box<dyn super::WalSync>>> {
        if !self.sync_after_commit {
            return Ok(None);
        }
        let db_err = |source| database_error(&self.path, source);
        let conn = Connection::open(&self.path).map_err(db_err)?;
        conn.busy_handler(Some(wait_for_lock)).map_err(db_err)?;
        // A first read opens its WAL handle, kept while it lives.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(db_err)?;
        let mut syncer = WalSyncer {
            conn,
            path: self.path.clone(),
        };
        super::WalSync::sync(&mut syncer)?;
        self.sync_after_commit = false;
        Ok(Some(Box::new(syncer)))
    }

    fn enqueue(
        &mut self,
        jobs: &[(usize, NewJob)],
        defaults: &JobDefaults,
    ) -> Result<Vec<Enqueued>> {
        let now = self.clock();
        self.write(|tx| enqueue_in(tx, jobs, defaults, now))
    }

    fn claim(&mut self, request: &ClaimRequest, limit: usize) -> Result<Vec<Claimed>> {
        let now = self.clock();
        self.write(|tx| Ok(claim_in(tx, request, limit, now)?))
    }

    fn finish(
        &mut self,
        done: &[Finish],
        policy: &RetryPolicy,
        next: Option<(&ClaimRequest, usize)>,
    ) -> Result<Finished> {
        let now = self.clock();
        self.write(|tx| Ok(finish_and_claim(tx, done, policy, next, now)?))
    }

    fn renew_leases(
        &mut self,
        worker: &str,
        leases: &[&Lease],
        duration: Duration,
    ) -> Result<Vec<LeaseStatus>> {
        let now = self.clock();
        self.write(|tx| Ok(renew_in(tx, worker, leases, duration, now)?))
    }

    fn held_attempts(&mut self, holder: Holder) -> Result<Vec<HeldAttempt>> {
        let (sql, key) = holder_filter(holder, self.clock());
        self.read_all(
            &format!(
                "SELECT jobs.id, jobs.lease_token, a.host, a.cgroup FROM jobs
                 LEFT JOIN attempts a ON a.job_seq = jobs.seq AND a.number = jobs.attempts
                 WHERE jobs.state = 'processing' AND {sql}"
            ),
            [key],
            |r| Ok(HeldAttempt::new(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    fn rescue(
        &mut self,
        holder: Holder,
        ended: &[HeldAttempt],
        policy: &RetryPolicy,
    ) -> Result<Vec<String>> {
        let now = self.clock();
        let (filter, key) = holder_filter(holder, now);
        self.write(|tx| {
            let held: Vec<(String, Lease, i64)> = tx
                .prepare_cached(&format!(
                    "SELECT id, seq, lease_token, attempts, failures, max_retries, worker, lease_expires_at FROM jobs
                     WHERE state = 'processing' AND {filter}"
                ))?
                .query_map([&key], |r| {
                    Ok((
                        r.get(0)?,
                        Lease {
                            seq: r.get(1)?,
                            token: r.get(2)?,
                            attempt: r.get(3)?,
                            failures: r.get(4)?,
                            max_retries: r.get(5)?,
                            worker: r.get(6)?,
                        },
                        r.get(7)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(super::rescue_with(held, ended, holder, |done| {
                finish_in(tx, done, policy, now).map(|(held, ..)| held)
            })?)
        })
    }

    fn next_event_in(&mut self, request: &ClaimRequest) -> Result<Option<Duration>> {
        let now = to_millis(self.clock());
        let next = queues::next_event_at(&self.conn, request.queues.as_deref())
            .map_err(|e| self.db_error(e))?;
        Ok(next.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0))))
    }

    fn listen_for_work(&mut self, _wake: WakeFn) -> Result<bool> {
        Ok(false)
    }

    fn register_worker(&mut self, worker: &WorkerInfo) -> Result<()> {
        let now = self.clock();
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO workers (name, pid, host, started_at, heartbeat_at, status, unit, slots)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                worker.name,
                worker.pid,
                worker.host,
                to_millis(now),
                worker.status,
                worker.unit,
                worker.slots
            ])?;
            Ok(())
        })
    }

    fn worker_heartbeat(&mut self, name: &str, status: &str) -> Result<()> {
        let now = self.clock();
        self.write(|tx| {
            tx.prepare_cached("UPDATE workers SET heartbeat_at = ?1, status = ?2 WHERE name = ?3")?
                .execute(params![to_millis(now), status, name])?;
            Ok(())
        })
    }

    fn unregister_worker(&mut self, name: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM workers WHERE name = ?1", [name])?;
            Ok(())
        })
    }

    fn forget_silent_workers(&mut self, silent_for: Duration) -> Result<usize> {
        let before = to_millis(self.clock()) - millis(silent_for);
        self.write(|tx| Ok(tx.execute("DELETE FROM workers WHERE heartbeat_at < ?1", [before])?))
    }

    fn workers(&mut self) -> Result<Vec<WorkerRow>> {
        self.read_all(
            "SELECT w.name, w.pid, w.host, w.started_at, w.heartbeat_at, w.status, w.unit, w.slots,
                 (SELECT group_concat(j.id, ',') FROM jobs j
                  WHERE j.state = 'processing' AND j.worker = w.name)
             FROM workers w ORDER BY w.name",
            [],
            |r| {
                Ok(WorkerRow {
                    name: r.get(0)?,
                    pid: r.get(1)?,
                    host: r.get(2)?,
                    started_at: from_millis(r.get(3)?),
                    heartbeat_at: from_millis(r.get(4)?),
                    status: r.get(5)?,
                    unit: r.get(6)?,
                    slots: r.get(7)?,
                    jobs: job_list(r.get(8)?),
                })
            },
        )
    }

    fn act(&mut self, action: BulkAction, selection: &Selection) -> Result<BulkOutcome> {
        let now = to_millis(self.clock());
        let change = bulk_change(action);
        let applies = selection::sql_states(action.applies_to());
        // Jobs put back to waiting take their unique key again (only a free
        // one), and wait for their dependencies (none may have ended dead or
        // cancelled: they would wait forever; reported instead).
        let key_free = if action.adds_work() {
            format!(
                "{} AND NOT {}",
                unique::KEY_FREE,
                crate::store::deps::dependency_ended!()
            )
        } else {
            String::new()
        };
        // The jobs acted on: `?1` is the time now, `?2` the ids or the
        // filter's cutoff. A filter's jobs left for their key's holder
        // (`?1` the cutoff) are read after it.
        let mut held_back = None;
        let (chosen, before) = match selection {
            Selection::Ids(_) => (
                format!(
                    "WHERE id IN (SELECT value FROM json_each(?2)) AND state IN ({applies}) {key_free}"
                ),
                0,
            ),
            Selection::Filter { states, older_than } => {
                // Finished jobs are found by age through jobs_finished
                // (`finished_at` is set exactly in finished states; `+state`
                // keeps the planner off the state index, which would read
                // every finished job of a large history to find the old
                // ones, inside the write lock). Waiting and running jobs are
                // few: by state, then their age.
                let (state, age) = if action.on_finished_jobs() {
                    ("+state", "finished_at")
                } else {
                    ("state", "created_at")
                };
                let sql = format!(
                    "WHERE seq IN (
                         SELECT seq FROM jobs WHERE {state} IN ({}) AND {age} < ?2
                             AND NOT (state = 'processing' AND cancel_requested) {key_free}
                         LIMIT {}
                     ) AND state IN ({applies})",
                    selection::sql_states(states),
                    selection::CHUNK
                );
                if action.adds_work() {
                    held_back = Some(unique::held_back(states));
                }
                (sql, now.saturating_sub(millis(*older_than)))
            }
        };
        let statements = ActStatements {
            action,
            change: format!("{change} {chosen} RETURNING id, state, worker, seq, dependents"),
            // Before the change: the jobs whose dependents it affects
            // (completed ones that are restarted, unfinished ones purged).
            before: format!(
                "SELECT seq FROM jobs {chosen} AND dependents > 0 AND (state = 'completed') = ?3"
            ),
        };
        selection::act_in_chunks(
            self,
            selection,
            |store, ids| {
                let ids = serde_json::to_string(ids).expect("strings serialize");
                store.write(|tx| {
                    let (done, cascaded) = statements.run(tx, now, &ids)?;
                    let ended = format!(
                        "?2 AND state IN ({applies}) AND {}",
                        crate::store::deps::dependency_ended!()
                    );
                    let found = tx
                        .prepare_cached(&format!(
                            "SELECT id, state, unique_key, CASE WHEN ?2 THEN {} END,
                                 CASE WHEN {ended} THEN {} END, CASE WHEN {ended} THEN {} END
                             FROM jobs WHERE id IN (SELECT value FROM json_each(?1))",
                            unique::KEY_HOLDER,
                            crate::store::deps::ended_dependency!("id"),
                            crate::store::deps::ended_dependency!("state"),
                        ))?
                        .query_map(params![&ids, action.adds_work()], found_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((done, into_found(found)?, cascaded))
                })
            },
            |store| store.write(|tx| Ok(statements.run(tx, now, &before)?)),
            |store| match &held_back {
                None => Ok(Vec::new()),
                Some(sql) => into_found(store.read_all(sql, [before], found_row)?),
            },
        )
    }

    fn edit(&mut self, id: &str, edit: &JobEdit) -> Result<Job> {
        let now = self.clock();
        let run_at = edit.schedule.map(|s| to_millis(s.due_at(now)));
        self.write(|tx| {
            // Guarded by the state: a claim that won the write lock first
            // left the job processing, and nothing is changed.
            let edited = tx
                .prepare_cached(&format!(
                    "UPDATE jobs SET command = COALESCE(?2, command), priority = COALESCE(?3, priority),
                         run_at = COALESCE(?4, run_at), max_retries = COALESCE(?5, max_retries),
                         timeout_seconds = COALESCE(?6, timeout_seconds), updated_at = ?7,
                         queue = COALESCE(?8, queue)
                     WHERE id = ?1 AND (state = 'pending' OR state = 'failed')
                     RETURNING {JOB_COLUMNS}"
                ))?
                .query_row(
                    params![
                        id,
                        edit.command,
                        edit.priority,
                        run_at,
                        edit.max_retries,
                        edit.timeout_seconds,
                        to_millis(now),
                        edit.queue.as_ref().map(QueueName::as_str)
                    ],
                    job_from_row,
                )
                .optional()?;
            if let Some(job) = edited {
                return Ok(job);
            }
            let state: Option<String> = tx
                .query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let state = state.as_deref().map(parse_state).transpose()?;
            Err(super::not_editable(id, state).into())
        })
    }

    fn get(&mut self, id: &str) -> Result<Job> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row([id], job_from_row).optional())
            .map_err(|e| self.db_error(e))?
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    fn dependencies(&mut self, id: &str) -> Result<Dependencies> {
        self.get(id)?;
        deps::dependencies(&self.conn, id).map_err(|e| self.db_error(e))
    }

    fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        self.read_all(
            &format!(
                "SELECT {ATTEMPT_COLUMNS}
                 FROM attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = ?1 ORDER BY a.number"
            ),
            [id],
            attempt_from_row,
        )
    }

    fn list(&mut self, filter: &ListFilter, limit: Option<u32>) -> Result<JobPage> {
        let states = &filter.states;
        let rows = limit.map_or(-1, i64::from);
        let seq_and_job = |r: &Row| Ok((r.get(23)?, job_from_row(r)?));
        if filter.blocked {
            // Pending jobs are few; the blocked ones among them by seq.
            let matching = "FROM jobs WHERE state = 'pending' AND deps_left > 0 AND (?1 IS NULL OR queue = ?1)";
            let jobs = self.read_all(
                &format!("SELECT {JOB_COLUMNS}, seq {matching} ORDER BY seq DESC LIMIT ?2"),
                params![filter.queue, rows],
                seq_and_job,
            )?;
            let total: i64 = self.read_one(
                &format!("SELECT count(*) {matching}"),
                params![filter.queue],
                |r| r.get(0),
            )?;
            return Ok(JobPage {
                jobs: super::newest_first(vec![jobs], limit),
                total: total.max(0) as u64,
            });
        }
        if let Some(queue) = &filter.queue {
            // One queue: its range of jobs_queue (queue, seq) newest first
            // (the claim and due indexes hold only waiting jobs), states
            // checked per job.
            let names = serde_json::to_string(
                &super::distinct_states(states)
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            )
            .expect("strings serialize");
            let matching = "FROM jobs WHERE queue = ?1 AND (?2 = '[]' OR state IN (SELECT value FROM json_each(?2)))";
            let jobs = self.read_all(
                &format!("SELECT {JOB_COLUMNS}, seq {matching} ORDER BY seq DESC LIMIT ?3"),
                params![queue, names, rows],
                seq_and_job,
            )?;
            let total: i64 = self.read_one(
                &format!("SELECT count(*) {matching}"),
                params![queue, names],
                |r| r.get(0),
            )?;
            return Ok(JobPage {
                jobs: super::newest_first(vec![jobs], limit),
                total: total.max(0) as u64,
            });
        }
        let per_state = if states.is_empty() {
            let sql = format!("SELECT {JOB_COLUMNS}, seq FROM jobs ORDER BY seq DESC LIMIT ?1");
            vec![self.read_all(&sql, [rows], seq_and_job)?]
        } else {
            // One range of the (state, seq) index each, read backwards.
            let sql = format!(
                "SELECT {JOB_COLUMNS}, seq FROM jobs WHERE state = ?1 ORDER BY seq DESC LIMIT ?2"
            );
            super::distinct_states(states)
                .into_iter()
                .map(|state| self.read_all(&sql, params![state.as_str(), rows], seq_and_job))
                .collect::<Result<_>>()?
        };
        // The trigger-kept counters hold COUNT(*) per state: the total
        // without reading a row per job.
        let counts = self.counts()?;
        let total = if states.is_empty() {
            counts.values().sum()
        } else {
            super::distinct_states(states)
                .iter()
                .filter_map(|state| counts.get(state))
                .sum()
        };
        Ok(JobPage {
            jobs: super::newest_first(per_state, limit),
            total,
        })
    }

    fn search_jobs(&mut self, search: &JobSearch) -> Result<SearchPage> {
        let scans = super::search::scans(search)?;
        // One snapshot for the page's statements: a purge between them
        // could otherwise make a range look read further than it was.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.db_error(e))?;
        let mut searcher = search::Searcher {
            conn: &tx,
            path: &self.path,
        };
        let page = super::search::search(&mut searcher, &scans, search.limit)?;
        tx.finish().map_err(|e| self.db_error(e))?;
        Ok(page)
    }

    fn queues(&mut self) -> Result<Vec<QueueRow>> {
        queues::rows(&self.conn, None).map_err(|e| self.db_error(e))
    }

    fn configure_queue(&mut self, name: &QueueName, change: &QueueChange) -> Result<QueueRow> {
        let now = self.clock();
        self.write(|tx| {
            queues::configure(tx, name, change, now)?;
            Ok(queues::row(tx, name)?)
        })
    }

    fn job_ids(
        &mut self,
        prefix: &str,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.read_all(
            "SELECT id FROM jobs
             WHERE substr(id, 1, length(?1)) = ?1 AND (?2 IS NULL OR state = ?2)
             ORDER BY seq DESC LIMIT ?3",
            params![prefix, state.map(JobState::as_str), limit],
            |row| row.get(0),
        )
    }

    /// From the trigger-maintained counters.
    fn counts(&mut self) -> Result<BTreeMap<JobState, u64>> {
        let rows = self.read_all(
            "SELECT state, SUM(n) FROM queue_counts GROUP BY state",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )?;
        let mut counts: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|&s| (s, 0)).collect();
        for (state, n) in rows {
            counts.insert(parse_state(&state)?, n.max(0) as u64);
        }
        Ok(counts)
    }

    fn overview(&mut self) -> Result<super::dashboard::Overview> {
        let now = self.clock();
        self.read_snapshot(|c| dashboard::overview(c, now))
    }

    fn stats(&mut self) -> Result<super::dashboard::Stats> {
        self.read_snapshot(dashboard::stats)
    }

    fn metrics(&mut self) -> Result<Metrics> {
        let now = to_millis(self.clock());
        let counts = self.counts()?;
        let (avg_attempts, finished): (Option<f64>, i64) = self.read_one(
            "SELECT AVG(attempts), COUNT(*) FROM jobs WHERE state IN ('completed', 'dead')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let durations = "SELECT finished_at - started_at AS d FROM attempts WHERE outcome IN ('succeeded', 'failed', 'timed_out')";
        let (avg_duration_ms, timed): (Option<f64>, i64) = self.read_one(
            &format!("SELECT AVG(d), COUNT(*) FROM ({durations})"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let p95_duration_ms: Option<i64> = if timed == 0 {
            None
        } else {
            self.read_one(
                &format!("{durations} ORDER BY d LIMIT 1 OFFSET ?1"),
                [super::p95_offset(timed)],
                |r| r.get(0),
            )
            .map(Some)?
        };
        let finished_since = |ago: Duration| {
            self.read_one(
                "SELECT COUNT(*) FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= ?1",
                [now - millis(ago)],
                |r| r.get::<_, i64>(0),
            )
        };
        let last_minute = finished_since(Duration::from_secs(60))?;
        let last_hour = finished_since(Duration::from_secs(3600))?;
        Ok(Metrics::new(
            counts,
            finished,
            avg_attempts,
            avg_duration_ms,
            p95_duration_ms,
            last_minute,
            last_hour,
        ))
    }

    fn add_schedule(
        &mut self,
        schedule: &super::schedules::NewSchedule,
        replace: bool,
    ) -> Result<()> {
        self.add_schedule_row(schedule, replace)
    }

    fn remove_schedule(&mut self, name: &str) -> Result<bool> {
        self.remove_schedule_row(name)
    }

    fn schedules(&mut self) -> Result<Vec<super::schedules::ScheduleRow>> {
        self.schedule_rows()
    }

    fn fire_schedule(
        &mut self,
        name: &str,
        defaults: &JobDefaults,
    ) -> Result<super::schedules::Fired> {
        self.fire_now(name, defaults)
    }

    fn fire_due_schedules(
        &mut self,
        catch_up_after: Duration,
        defaults: &JobDefaults,
    ) -> Result<Vec<super::schedules::Fired>> {
        self.fire_due(catch_up_after, defaults)
    }

    fn next_schedule_in(&mut self) -> Result<Option<Duration>> {
        self.next_schedule_due_in()
    }

    fn export(&mut self) -> Result<Vec<JobRecord>> {
        let jobs = self.read_all(
            &format!(
                "SELECT {JOB_COLUMNS}, env, lease_token,
                     (SELECT c.id FROM jobs c WHERE c.seq = jobs.cancelled_by)
                 FROM jobs ORDER BY seq"
            ),
            [],
            |r| {
                Ok((
                    job_from_row(r)?,
                    r.get::<_, Option<String>>(23)?,
                    r.get::<_, Option<i64>>(24)?,
                    r.get::<_, Option<String>>(25)?,
                ))
            },
        )?;
        let mut after = deps::edges_by_job(&self.conn).map_err(|e| self.db_error(e))?;
        let mut records = Vec::with_capacity(jobs.len());
        for (job, env_text, lease_token, cancelled_by) in jobs {
            let attempts = self.attempts(&job.id)?;
            records.push(JobRecord {
                after: after.remove(&job.id).unwrap_or_default(),
                job,
                env_text,
                lease_token,
                attempts,
                cancelled_by,
            });
        }
        Ok(records)
    }

    fn import(
        &mut self,
        records: &[JobRecord],
        queues: &[QueueRow],
        schedules: &[super::schedules::ScheduleRow],
    ) -> Result<()> {
        self.write(|tx| {
            let count = |table: &str| -> rusqlite::Result<i64> {
                tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            };
            super::refuse_filled_target(count("jobs")?, count("queues")?, count("schedules")?)?;
            for record in records {
                SqliteStore::import_one(tx, record)?;
            }
            deps::import_links(tx, records)?;
            self::queues::import_settings(tx, queues)?;
            self::schedules::import_rows(tx, schedules)?;
            Ok(())
        })
    }
}

/// Enqueues `jobs` inside the caller's write transaction (see
/// [`Backend::enqueue`]); jobs with a unique key meet its holder first
/// (`unique.rs`).
pub(crate) fn enqueue_in(
    tx: &rusqlite::Transaction,
    jobs: &[(usize, NewJob)],
    defaults: &JobDefaults,
    now: Timestamp,
) -> Result<Vec<Enqueued>, TxError> {
    check_batch_keys(jobs).map_err(Error::from)?;
    let batch = jobs.len() > 1;
    let ids = batch_ids(jobs, now);
    let plan = BatchPlan::new(jobs, &ids)?;
    let rows = plan.rows_locking(|stored| Ok::<_, TxError>(deps::lock_stored(tx, stored)?))?;
    // OR ROLLBACK: any failure ends the whole transaction anyway, and
    // it spares SQLite a statement journal per row (the insert fires
    // a trigger, which otherwise needs one): ~20% of a large batch.
    let mut insert = tx.prepare_cached(
        "INSERT OR ROLLBACK INTO jobs (id, command, state, priority, run_at, max_retries, timeout_seconds, env, cwd,
             created_at, updated_at, env_file, unique_key, queue, deps_left, dependents, finished_at, last_error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    let mut enqueued: Vec<Option<Enqueued>> = vec![None; jobs.len()];
    // Dependencies first: an edge always points to an earlier job.
    for &i in &plan.order {
        let ((line, job), id, row) = (&jobs[i], &ids[i], &rows[i]);
        let fields = unique::Replacement {
            command: &job.command,
            priority: job.priority,
            run_at: to_millis(job.schedule.due_at(now)),
            max_retries: job.max_retries.unwrap_or(defaults.max_retries),
            timeout_seconds: job.timeout_seconds.unwrap_or(defaults.timeout_seconds),
            env: super::encode_env(&job.env),
            env_file: job.env_file.as_deref(),
            cwd: job.cwd.as_deref(),
            queue: job.queue.as_str(),
            now: to_millis(now),
        };
        if let Some(unique) = &job.unique
            && let Some(met) = unique::meet_holder(tx, unique, &fields)
                .map_err(|e| e.in_batch(batch.then_some(*line)))?
        {
            enqueued[i] = Some(met);
            continue;
        }
        let key = job.unique.as_ref().map(|u| u.key.as_str());
        let ended = row.cancelled.is_some().then_some(fields.now);
        insert
            .execute(params![
                id.as_str(),
                fields.command,
                row.state().as_str(),
                fields.priority,
                fields.run_at,
                fields.max_retries,
                fields.timeout_seconds,
                fields.env,
                fields.cwd,
                fields.now,
                fields.env_file,
                key,
                fields.queue,
                row.deps_left,
                row.dependents,
                ended,
                row.reason(),
            ])
            .map_err(|e| {
                unique::insert_refusal(e, id, batch.then_some(*line), key)
                    .in_batch(batch.then_some(*line))
            })?;
        enqueued[i] = Some(Enqueued::created(id));
    }
    if plan.has_dependencies() {
        deps::link_in(tx, plan.edges(), &plan.cancelled(&rows))?;
    }
    Ok(enqueued
        .into_iter()
        .map(|e| e.expect("every job enqueued"))
        .collect())
}

/// A user action's statements for one transaction, over the jobs its
/// `WHERE` chooses (`?2`: the ids, or a filter's cutoff time).
struct ActStatements {
    action: BulkAction,
    /// The change, returning (id, state, worker, seq, dependents).
    change: String,
    /// The seqs of the chosen jobs that have dependents, completed or not
    /// (`?3`), before the change.
    before: String,
}

impl ActStatements {
    /// Acts on the chosen jobs and carries the change to their dependents:
    /// a cancel cancels theirs, a restart revives those its end cancelled
    /// (and a completed job's dependents that never ran wait for it again),
    /// a purge of an unfinished job stops its dependents waiting for it.
    /// Returns the jobs changed and those changed with them.
    fn run<K: rusqlite::ToSql>(
        &self,
        tx: &rusqlite::Transaction,
        now: i64,
        chosen: &K,
    ) -> rusqlite::Result<(Vec<Acted>, Vec<String>)> {
        let before = |completed: bool| -> rusqlite::Result<Vec<i64>> {
            tx.prepare_cached(&self.before)?
                .query_map(params![now, chosen, completed], |r| r.get(0))?
                .collect()
        };
        match self.action {
            BulkAction::Restart | BulkAction::RetryDead => {
                deps::hold_back_in(tx, &before(true)?, now)?;
            }
            BulkAction::Purge => {
                deps::release_in(tx, &before(false)?, now)?;
            }
            BulkAction::Cancel => {}
        }
        let rows: Vec<(Acted, i64, String, i64)> = tx
            .prepare_cached(&self.change)?
            .query_map(params![now, chosen], |r| {
                let state: String = r.get(1)?;
                let acted = Acted::from_row(r.get(0)?, &state, r.get(2)?);
                Ok((acted, r.get(3)?, state, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let linked: Vec<i64> = rows
            .iter()
            .filter(|(_, _, state, dependents)| *dependents > 0 && state != "processing")
            .map(|&(_, seq, _, _)| seq)
            .collect();
        let cascaded = match self.action {
            BulkAction::Cancel if !linked.is_empty() => {
                deps::cancel_dependents_in(tx, &linked, now)?
            }
            BulkAction::Restart | BulkAction::RetryDead if !linked.is_empty() => {
                deps::revive_in(tx, &linked, now)?
            }
            _ => Vec::new(),
        };
        Ok((
            rows.into_iter().map(|(acted, ..)| acted).collect(),
            cascaded,
        ))
    }
}

/// The statement (up to its `WHERE`) that applies `action` to a job; `?1`
/// is the time now.
fn bulk_change(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Cancel => {
            "UPDATE jobs SET
                 state = CASE state WHEN 'processing' THEN state ELSE 'cancelled' END,
                 cancel_requested = (state = 'processing'),
                 finished_at = CASE state WHEN 'processing' THEN finished_at ELSE ?1 END,
                 last_error = CASE state WHEN 'processing' THEN last_error
                     ELSE COALESCE(last_error, 'cancelled by user') END,
                 updated_at = ?1"
        }
        // OR IGNORE: of two finished jobs of one unique key restarted in one
        // statement, both pass the key check (it reads the rows as they were
        // before the statement); the first takes the key and the second is
        // left alone (and reported) instead of failing the statement.
        BulkAction::Restart | BulkAction::RetryDead => {
            "UPDATE OR IGNORE jobs SET state = 'pending', failures = 0, run_at = ?1, updated_at = ?1,
                 finished_at = NULL, cancel_requested = 0"
        }
        BulkAction::Purge => "DELETE FROM jobs",
    }
}

/// The SQL condition (with its one parameter) selecting `holder`'s jobs.
fn holder_filter(holder: Holder, now: Timestamp) -> (&'static str, rusqlite::types::Value) {
    match holder {
        Holder::Expired => ("jobs.lease_expires_at < ?1", to_millis(now).into()),
        Holder::Worker(name) => ("jobs.worker = ?1", name.to_string().into()),
    }
}
fn job_from_row(r: &Row) -> rusqlite::Result<Job> {
    let state: String = r.get(2)?;
    Ok(Job {
        id: r.get(0)?,
        command: r.get(1)?,
        state: state.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        priority: r.get(3)?,
        run_at: from_millis(r.get(4)?),
        max_retries: r.get(5)?,
        timeout_seconds: r.get(6)?,
        env: decode_env(r.get(7)?),
        env_file: r.get(18)?,
        cwd: r.get(8)?,
        attempts: r.get(9)?,
        failures: r.get(10)?,
        created_at: from_millis(r.get(11)?),
        updated_at: from_millis(r.get(12)?),
        finished_at: r.get::<_, Option<i64>>(13)?.map(from_millis),
        worker: r.get(14)?,
        lease_expires_at: r.get::<_, Option<i64>>(15)?.map(from_millis),
        cancel_requested: r.get(16)?,
        last_error: r.get(17)?,
        queue: r.get(19)?,
        deps_left: r.get(20)?,
        unique_key: r.get(21)?,
        schedule: r.get(22)?,
    })
}

#[cfg(test)]
mod tests;
