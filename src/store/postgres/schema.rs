//! The schema as numbered migrations, and how an open finds (and, when it
//! may, creates or upgrades) it.
//!
//! `queuectl_meta` tags the schema as queuectl's and holds its version. A
//! schema holding other tables but no tag is another application's and is
//! refused untouched, as SQLite's `application_id` does. Migrations run in
//! one transaction under a transaction-level advisory lock, re-checking the
//! version after taking it, so any number of hosts may start at once.

use super::session::{Session, Sql, TxResult};
use crate::error::{Error, Result};
use crate::store::OpenMode;
use postgres::GenericClient;
use std::path::PathBuf;

/// Append only: a migration that has shipped is never edited.
pub(super) const MIGRATIONS: [&str; 8] = [
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_worker_unit.sql"),
    include_str!("migrations/003_worker_slots.sql"),
    include_str!("migrations/004_drop_attempts_finished.sql"),
    include_str!("migrations/005_workflows.sql"),
    include_str!("migrations/006_stats.sql"),
    include_str!("migrations/007_search.sql"),
    include_str!("migrations/008_blocked.sql"),
];
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations take ("QCTLmigr").
const MIGRATION_LOCK: i64 = 0x5143_544C_6D69_6772;

/// What an open finds in the connection's current schema.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// No tables at all: a new queue may be made here.
    Empty,
    /// Tables, but not queuectl's.
    Foreign,
    Queue {
        version: i64,
    },
}

fn inspect<C: GenericClient>(sql: &mut Sql<C>) -> TxResult<Found> {
    let row = sql.query_one(
        "SELECT count(*) FILTER (WHERE c.relname = 'queuectl_meta'), count(*)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        &[],
    )?;
    let (tagged, tables): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if tagged == 0 {
        return Ok(if tables == 0 {
            Found::Empty
        } else {
            Found::Foreign
        });
    }
    let rows = sql.query(
        "SELECT key, value FROM queuectl_meta WHERE key IN ('application', 'schema_version')",
        &[],
    )?;
    let value = |key: &str| {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == key)
            .map(|r| r.get::<_, String>(1))
    };
    if value("application").as_deref() != Some("queuectl") {
        return Ok(Found::Foreign);
    }
    let version = value("schema_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Invalid("corrupt queuectl_meta: no schema_version".into()))?;
    Ok(Found::Queue { version })
}

/// Brings the schema up to date as `mode` allows, or says why not.
pub(super) fn prepare(session: &mut Session, mode: OpenMode) -> Result<()> {
    let found = session.run(inspect)?;
    if check(session, &found, mode)? {
        return Ok(());
    }
    session.transaction(|sql| {
        sql.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        // Another host may have migrated while we waited for the lock.
        let found = inspect(sql)?;
        let version = match found {
            Found::Empty => 0,
            Found::Queue { version } if version < SCHEMA_VERSION => version,
            _ => return Ok(()),
        };
        for migration in &MIGRATIONS[version as usize..] {
            sql.batch(migration)?;
        }
        sql.execute(
            "UPDATE queuectl_meta SET value = $1 WHERE key = 'schema_version'",
            &[&SCHEMA_VERSION.to_string()],
        )?;
        Ok(())
    })?;
    // The locked transaction re-checked; what it left must be current.
    let found = session.run(inspect)?;
    match check(session, &found, mode)? {
        true => Ok(()),
        false => Err(Error::Invalid(format!(
            "{}: the schema was not brought up to date",
            session.target()
        ))),
    }
}

/// Whether `found` is a current queue (true), needs migrating (false), or
/// must be refused (an error).
fn check(session: &Session, found: &Found, mode: OpenMode) -> Result<bool> {
    let target = session.target();
    let no_queue = || Error::NoQueue(PathBuf::from(target.to_string()));
    match *found {
        Found::Queue { version } if version == SCHEMA_VERSION => Ok(true),
        Found::Queue { version } if version > SCHEMA_VERSION => Err(Error::SchemaTooNew {
            path: PathBuf::from(target.to_string()),
            found: version,
            supported: SCHEMA_VERSION,
        }),
        Found::Foreign => Err(Error::Invalid(format!(
            "{target} is not a queuectl queue (its schema holds another application's tables); \
             refusing to change it (give queuectl a database or schema of its own)"
        ))),
        Found::Empty if mode != OpenMode::Create => Err(no_queue()),
        Found::Queue { version } if mode == OpenMode::ReadOnly => Err(Error::Invalid(format!(
            "{target} has schema version {version}, older than this queuectl's ({SCHEMA_VERSION}); \
             a reading command does not upgrade it: run a writing one (e.g. `queuectl worker start`) first"
        ))),
        _ => Ok(false),
    }
}
