//! Tests only: a fresh database per test on the test server named by
//! `$QUEUECTL_TEST_PG` (an admin address: a role that may create
//! databases), dropped when the test ends.

use super::PgTarget;
use crate::store::Database;
use std::sync::atomic::{AtomicU32, Ordering};

pub const SERVER_ENV: &str = "QUEUECTL_TEST_PG";

pub struct TestDatabase {
    admin: String,
    name: String,
    address: String,
}

impl TestDatabase {
    /// A new empty database, or `None` (printing why) when no test server
    /// is configured; with `CI=true` there must be one.
    pub fn create() -> Option<TestDatabase> {
        let Some(admin) = std::env::var(SERVER_ENV).ok().filter(|v| !v.is_empty()) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but ${SERVER_ENV} is not set: the PostgreSQL tests must run in CI"
            );
            eprintln!("skipped: ${SERVER_ENV} names no PostgreSQL test server");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "queuectl_test_{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut client = admin_client(&admin);
        client
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let address = with_dbname(&admin, &name);
        Some(TestDatabase {
            admin,
            name,
            address,
        })
    }

    pub fn database(&self) -> Database {
        Database::Postgres(self.target())
    }

    pub fn target(&self) -> PgTarget {
        PgTarget::parse(&self.address).unwrap()
    }

    /// The address of this database (for a second, raw connection).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A connection as the test server's admin role, to this database.
    pub fn admin(&self) -> postgres::Client {
        admin_client(&with_dbname(&self.admin, &self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.admin, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

fn admin_client(address: &str) -> postgres::Client {
    postgres::Client::connect(address, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test server ${SERVER_ENV}: {e}"))
}

/// `address` (a URL or key=value conninfo) naming database `name` instead.
fn with_dbname(address: &str, name: &str) -> String {
    if address.starts_with("postgres://") || address.starts_with("postgresql://") {
        let (base, query) = match address.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (address, None),
        };
        let authority_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| base[start..].find('/').map(|i| start + i))
            .unwrap_or(base.len());
        let mut url = format!("{}/{name}", &base[..authority_end]);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    } else {
        format!("{address} dbname={name}")
    }
}

#[test]
fn with_dbname_replaces_or_adds_the_database() {
    assert_eq!(
        with_dbname("postgres://u@h:5/postgres?sslmode=disable", "t"),
        "postgres://u@h:5/t?sslmode=disable"
    );
    assert_eq!(with_dbname("postgresql://u@h", "t"), "postgresql://u@h/t");
    assert_eq!(
        with_dbname("host=/tmp port=5 user=postgres", "t"),
        "host=/tmp port=5 user=postgres dbname=t"
    );
}
