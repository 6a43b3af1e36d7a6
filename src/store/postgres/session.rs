//! One connection to the queue's database, kept across calls: reconnects
//! after a loss (with a short backoff, so a worker loop that keeps calling
//! does not spin), caches prepared statements, retries transactions the
//! server rolled back for serialization failures or deadlocks, and maps
//! errors to [`Error::Unreachable`] (the connection is gone: wait and call
//! again) or [`Error::Postgres`] (the server's own message).
//!
//! Nothing here retries a write whose connection broke: it may have
//! committed. The caller sees `Unreachable` and decides.

use super::{PgTarget, connect, map_error};
use crate::error::{Error, Result};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Reconnect pauses: the first after a failed connect, doubling up to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// How often a transaction the server rolled back (40001, 40P01) is retried.
const CONFLICT_RETRIES: u32 = 50;

/// A transaction the server rolled back so that another could go on: safe
/// to run again from the start.
fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

pub(super) type TxError = crate::store::TxError<postgres::Error>;

impl From<postgres::Error> for TxError {
    fn from(e: postgres::Error) -> TxError {
        TxError::Sql(e)
    }
}

pub(super) type TxResult<T> = std::result::Result<T, TxError>;

/// A client (or a transaction on it) with the connection's statement cache.
pub(super) struct Sql<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl<C: GenericClient> Sql<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    pub fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    /// Statements without parameters, unprepared (schema, session settings).
    pub fn batch(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }
}

struct Connection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// The store's connection and what must be set again on a new one.
pub(super) struct Session {
    target: PgTarget,
    connection: Option<Connection>,
    read_only: bool,
    /// A test's pinned clock (`SET queuectl.pinned_now_ms`).
    pinned_now_ms: Option<i64>,
    /// After a failed connect: no new attempt before this instant.
    retry_connect_at: Option<Instant>,
    reconnect_pause: Duration,
}

impl Session {
    /// Connects once; an unreachable server is reported at once.
    pub fn open(target: &PgTarget, read_only: bool) -> Result<Session> {
        let mut session = Session {
            target: target.clone(),
            connection: None,
            read_only,
            pinned_now_ms: None,
            retry_connect_at: None,
            reconnect_pause: RECONNECT_FIRST,
        };
        session.connection()?;
        Ok(session)
    }

    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// The live connection, reconnecting when it was lost. A reconnect right
    /// after a failed one first waits out the backoff.
    fn connection(&mut self) -> Result<&mut Connection> {
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.client.is_closed())
        {
            self.connection = None;
        }
        if self.connection.is_none() {
            if let Some(at) = self.retry_connect_at {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            match self.connect() {
                Ok(connection) => {
                    self.retry_connect_at = None;
                    self.reconnect_pause = RECONNECT_FIRST;
                    self.connection = Some(connection);
                }
                Err(e) => {
                    self.retry_connect_at = Some(Instant::now() + self.reconnect_pause);
                    self.reconnect_pause = (self.reconnect_pause * 2).min(RECONNECT_MAX);
                    return Err(e);
                }
            }
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// A new connection with this session's settings.
    fn connect(&self) -> Result<Connection> {
        let mut client = connect(&self.target)?;
        // Every statement is prepared once per connection and its plan does
        // not depend on the values: without this the server re-planned the
        // claim and finish statements on about half their runs (0.3 ms each,
        // as long as running them).
        let mut settings = String::from("SET plan_cache_mode = force_generic_plan;");
        if self.read_only {
            settings.push_str("SET default_transaction_read_only = on;");
        }
        if let Some(ms) = self.pinned_now_ms {
            settings.push_str(&format!("SET queuectl.pinned_now_ms = '{ms}';"));
        }
        client
            .batch_execute(&settings)
            .map_err(|e| map_error(&self.target, e))?;
        Ok(Connection {
            client,
            statements: HashMap::new(),
        })
    }

    /// Pins (or, with `None`, unpins) the session's clock.
    pub fn pin_clock(&mut self, ms: Option<i64>) -> Result<()> {
        self.pinned_now_ms = ms;
        let sql = match ms {
            Some(ms) => format!("SET queuectl.pinned_now_ms = '{ms}'"),
            None => "RESET queuectl.pinned_now_ms".to_owned(),
        };
        self.run(|sql_client| Ok(sql_client.batch(&sql)?))
    }

    /// Runs `op` on the connection outside a transaction (one statement,
    /// which commits by itself), retrying conflicts.
    pub fn run<T>(&mut self, mut op: impl FnMut(&mut Sql<Client>) -> TxResult<T>) -> Result<T> {
        self.retrying(|connection| {
            op(&mut Sql {
                client: &mut connection.client,
                statements: &mut connection.statements,
            })
        })
    }

    /// Runs `body` in a transaction, committed when it returns `Ok`, and
    /// retried from the start when the server rolled it back for a conflict.
    pub fn transaction<T>(
        &mut self,
        mut body: impl FnMut(&mut Sql<postgres::Transaction>) -> TxResult<T>,
    ) -> Result<T> {
        self.retrying(|connection| {
            let mut tx = connection.client.transaction()?;
            let value = body(&mut Sql {
                client: &mut tx,
                statements: &mut connection.statements,
            })?;
            tx.commit()?;
            Ok(value)
        })
    }

    fn retrying<T>(&mut self, mut op: impl FnMut(&mut Connection) -> TxResult<T>) -> Result<T> {
        let mut conflicts = 0;
        loop {
            let connection = self.connection()?;
            match op(connection) {
                Ok(value) => return Ok(value),
                Err(TxError::App(e)) => return Err(e),
                Err(TxError::Sql(e)) if is_conflict(&e) && conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    // Deadlock victims retry at once; a short random pause
                    // keeps two victims from colliding again.
                    let jitter = rand::random::<u64>() % (1 + u64::from(conflicts.min(10)));
                    std::thread::sleep(Duration::from_millis(jitter));
                }
                Err(TxError::Sql(e)) => {
                    let closed = connection.client.is_closed();
                    let error = match map_error(&self.target, e) {
                        Error::Postgres { target, message } if closed => Error::Unreachable {
                            target,
                            reason: message,
                        },
                        other => other,
                    };
                    if error.is_unreachable() {
                        // The next call connects anew (not before the backoff).
                        self.connection = None;
                        self.retry_connect_at = Some(Instant::now() + RECONNECT_FIRST);
                    }
                    return Err(error);
                }
            }
        }
    }
}
