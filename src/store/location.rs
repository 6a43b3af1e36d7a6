//! Where a queue lives: an SQLite file, or a PostgreSQL database.

use super::postgres::PgTarget;
use crate::error::Result;
use std::fmt;
use std::path::{Path, PathBuf};

/// A queue's address, as `--db`, `$QUEUECTL_DB` or the config give it.
/// Shown (`Display`) without any password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

impl Database {
    /// A `postgres://`/`postgresql://` URL or `key=value` conninfo is a
    /// PostgreSQL database; anything else is an SQLite file's path.
    pub fn parse(text: &str) -> Result<Database> {
        if PgTarget::looks_like(text) {
            return Ok(Database::Postgres(PgTarget::parse(text)?));
        }
        Ok(Database::Sqlite(PathBuf::from(text)))
    }

    /// Like [`parse`](Self::parse), for a path that may not be UTF-8 (it can
    /// then only be a file).
    pub fn from_os(text: &std::ffi::OsStr) -> Result<Database> {
        match text.to_str() {
            Some(text) => Database::parse(text),
            None => Ok(Database::Sqlite(PathBuf::from(text))),
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// The address to hand another process in argv or a unit file: never
    /// with a password (argv is readable by every user in /proc).
    pub fn public_address(&self) -> std::ffi::OsString {
        match self {
            Database::Sqlite(path) => path.clone().into_os_string(),
            Database::Postgres(target) => target.without_password().into(),
        }
    }

    /// The address for a unit file (readable by every user): refused when
    /// the password is written in it.
    pub fn for_unit_file(&self) -> Result<std::ffi::OsString> {
        if self.inline_password().is_some() {
            return Err(crate::error::Error::Invalid(
                "the database address holds a password, which must not go into a unit file: \
                 put it in ~/.pgpass (or $PGPASSFILE) or a file named by $QUEUECTL_DB_PASSWORD_FILE"
                    .into(),
            ));
        }
        Ok(self.public_address())
    }

    /// A password given inline in the address, which a child process gets
    /// as `PGPASSWORD` in its (private) environment.
    pub fn inline_password(&self) -> Option<&str> {
        match self {
            Database::Sqlite(_) => None,
            Database::Postgres(target) => target.inline_password(),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(target) => write!(f, "{target}"),
        }
    }
}

impl serde::Serialize for Database {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
