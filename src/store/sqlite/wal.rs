//! The WAL sync behind durability "full": one of the two rooms where
//! `unsafe` is allowed, because only SQLite's own handle of the WAL file is
//! sure to be the live WAL (a path could name a file that was replaced).
//! It syncs and nothing else.
#![allow(unsafe_code)]

use rusqlite::{Connection, ffi};

/// Flushes `conn`'s WAL to disk (what synchronous=FULL does inside COMMIT).
/// Fails when the connection has no WAL open: durability "full" relies on
/// this sync, so a database that left WAL mode (another program switched its
/// `journal_mode`) must not pass for durable.
pub(super) fn sync(conn: &Connection) -> rusqlite::Result<()> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the connection handle is valid while `conn` lives, and
    // SQLITE_FCNTL_JOURNAL_POINTER writes one sqlite3_file pointer to `file`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(failure(
            rc,
            "committed, but the WAL could not be found to sync it",
        ));
    }
    // SAFETY: a non-null pointer from SQLite is a sqlite3_file of this
    // connection, alive while the connection is and used on its thread. Its
    // pMethods is null when the file is not open (a rollback journal between
    // transactions: this connection is not in WAL mode).
    let methods = unsafe { file.as_ref().and_then(|wal| wal.pMethods.as_ref()) };
    let Some(sync) = methods.and_then(|m| m.xSync) else {
        return Err(failure(
            ffi::SQLITE_ERROR,
            "committed, but not durable: durability \"full\" syncs the WAL, and this database is no longer in WAL mode (did another program change its journal_mode?)",
        ));
    };
    // SAFETY: `sync` is the open file's own xSync, called with that file.
    let rc = unsafe { sync(file, ffi::SQLITE_SYNC_NORMAL) };
    if rc != ffi::SQLITE_OK {
        return Err(failure(
            rc,
            "committed, but the WAL could not be synced to disk",
        ));
    }
    Ok(())
}

fn failure(rc: i32, what: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(what.to_owned()))
}
