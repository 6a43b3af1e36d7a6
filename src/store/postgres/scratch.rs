//! Scratch databases on a PostgreSQL server, for `queuectl bench`: each a new
//! database beside the one the address names (which is only connected to,
//! never changed), dropped with any connections left to it when the value
//! is dropped.

use super::{PgTarget, connect};
use crate::error::{Error, Result};
use postgres::error::SqlState;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every scratch database's name starts with this (a benchmark killed
/// outright leaves one behind; the name says whose it is).
pub const SCRATCH_PREFIX: &str = "queuectl_bench_";

/// What the benchmark reports about the server it measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServerSettings {
    /// The address measured, without its password.
    pub address: String,
    pub version: String,
    pub synchronous_commit: String,
    pub fsync: String,
}

pub struct ScratchDatabase {
    server: PgTarget,
    target: PgTarget,
    name: String,
}

impl ScratchDatabase {
    /// Creates an empty database on `server`'s server, named after this
    /// process and `label`. A role that may not create databases gets an
    /// error saying so.
    pub fn create(server: &PgTarget, label: &str) -> Result<ScratchDatabase> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(20)
            .collect();
        let name = format!(
            "{SCRATCH_PREFIX}{}_{}_{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = connect::connect(server)?;
        // The name is ours (ASCII letters, digits, underscores): no quoting issue.
        if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
        {
            if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                return Err(Error::Postgres {
                    target: server.to_string(),
                    message: "the benchmark creates scratch databases beside yours and drops them \
                              afterwards, but this role may not create databases: give it CREATEDB, \
                              or use a server where it can"
                        .into(),
                });
            }
            return Err(connect::map_error(server, e));
        }
        Ok(ScratchDatabase {
            server: server.clone(),
            target: server.with_dbname(&name),
            name,
        })
    }

    /// The scratch database's address (the server's, with its name).
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain connection to the scratch database, for a raw baseline.
    pub fn raw_client(&self) -> Result<postgres::Client> {
        connect::connect(&self.target)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let dropped = connect::connect(&self.server).and_then(|mut client| {
            client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(|e| connect::map_error(&self.server, e))
        });
        if let Err(e) = dropped {
            eprintln!(
                "queuectl: could not drop scratch database {}: {e}",
                self.name
            );
        }
    }
}

/// The server's version and the settings a durability figure depends on.
pub fn server_settings(server: &PgTarget) -> Result<ServerSettings> {
    let mut client = connect::connect(server)?;
    let mut show = |name: &str| -> Result<String> {
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .map_err(|e| connect::map_error(server, e))?;
        row.try_get(0).map_err(|e| connect::map_error(server, e))
    };
    Ok(ServerSettings {
        address: server.to_string(),
        version: show("server_version")?,
        synchronous_commit: show("synchronous_commit")?,
        fsync: show("fsync")?,
    })
}
