//! The library's error type. Each variant maps to one documented exit code,
//! so scripts can tell a typo from a missing job from a broken disk.

use crate::domain::InputError;
use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes of `wait` and `logs -f` beyond the common ones (documented in
/// the CLI's help): a job ended dead, cancelled, or time ran out.
pub const EXIT_DEAD: u8 = 5;
pub const EXIT_CANCELLED: u8 = 6;
pub const EXIT_WAIT_TIMED_OUT: u8 = 7;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A job submission that failed validation.
    #[error("{0}")]
    Input(#[from] InputError),
    /// Any other bad value from the user: a config key, a flag, a config file.
    #[error("{0}")]
    Invalid(String),
    #[error("job '{}' not found", crate::domain::echo::shown(.0))]
    NotFound(String),
    #[error("schedule '{}' not found", crate::domain::echo::shown(.0))]
    ScheduleNotFound(String),
    /// The operation does not apply to the job in its current state.
    #[error("{0}")]
    Conflict(String),
    /// Some of several jobs (named, or a filter's held back by their unique
    /// key) were not acted on (up to 20 reported before this summary);
    /// `missing` when any of them does not exist.
    #[error("{summary}")]
    NotAllActed { summary: String, missing: bool },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("database {}: {source}", path.display())]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A PostgreSQL statement failed (the server's own message; never the
    /// address's password: `target` is shown without it).
    #[error("database {target}: {message}")]
    Postgres { target: String, message: String },
    /// The database cannot be reached now (refused, timed out, network cut,
    /// server restarting). Workers wait and reconnect; commands fail.
    #[error("database {target} is unreachable: {reason}")]
    Unreachable { target: String, reason: String },
    /// A supervisor (systemctl or the process supervisor) failed.
    #[error("{0}")]
    Supervisor(String),
    /// A command that only reads found no queue (it never creates one).
    #[error("no queue at {}", .0.display())]
    NoQueue(PathBuf),
    /// A command needed to write to a file or filesystem that is read-only.
    #[error("cannot write to {}: it is read-only", .0.display())]
    ReadOnly(PathBuf),
    /// The queue needs the schema upgrade this queuectl makes on open, but
    /// it is read-only.
    #[error(
        "database {} has schema version {found}, older than this queuectl's ({supported}), and cannot be upgraded: it is read-only",
        path.display()
    )]
    SchemaUpgradeReadOnly {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Jobs a command waited for (`wait`, `logs -f`) ended, not all
    /// completed: some dead (exit 5) or else some cancelled (exit 6).
    #[error("{message}")]
    NotCompleted { message: String, dead: bool },
    /// `logs --attempt N` of an attempt the job does not have.
    #[error("job '{}' has no attempt {attempt} (it has {attempts})", crate::domain::echo::shown(.id))]
    NoAttempt {
        id: String,
        attempt: u32,
        attempts: usize,
    },
    /// `wait --timeout` ran out before every job ended (exit 7).
    #[error("{0}")]
    WaitTimedOut(String),
    /// The queue was made by a newer queuectl.
    #[error(
        "database {} has schema version {found}, newer than this queuectl understands ({supported}); upgrade queuectl",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A failed write to `path`: says "read-only" when that is the reason.
    pub fn writing(path: &Path, context: impl Into<String>, source: io::Error) -> Error {
        if source.raw_os_error() == Some(libc::EROFS) {
            Error::ReadOnly(path.to_owned())
        } else {
            Error::io(context, source)
        }
    }

    /// Whether waiting and retrying may help (the database is unreachable).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// The process exit code documented in `--help`, the man page (EXIT STATUS) and docs/jobs.md ("Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) | Error::Invalid(_) => 2,
            Error::NotFound(_)
            | Error::ScheduleNotFound(_)
            | Error::NoQueue(_)
            | Error::NoAttempt { .. } => 3,
            Error::Conflict(_) => 4,
            Error::NotAllActed { missing, .. } => {
                if *missing {
                    3
                } else {
                    4
                }
            }
            Error::NotCompleted { dead: true, .. } => EXIT_DEAD,
            Error::NotCompleted { dead: false, .. } => EXIT_CANCELLED,
            Error::WaitTimedOut(_) => EXIT_WAIT_TIMED_OUT,
            Error::Io { .. }
            | Error::Database { .. }
            | Error::Postgres { .. }
            | Error::Unreachable { .. }
            | Error::Supervisor(_)
            | Error::ReadOnly(_)
            | Error::SchemaUpgradeReadOnly { .. }
            | Error::SchemaTooNew { .. } => 1,
        }
    }
}

/// Attaches "what we were doing" to I/O errors.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(what(), source))
    }
}
