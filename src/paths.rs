//! Where queuectl keeps things: the config file, the database, and the state
//! directory beside the database (job logs, worker wake-up sockets, pid files).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::files::{self, Sharing};
use crate::store::Database;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> PathBuf {
    env_path("HOME").unwrap_or_else(|| PathBuf::from("/"))
}

/// `--config PATH`, else `$QUEUECTL_CONFIG`, else `/etc/queuectl/config.toml`
/// for root, else `$XDG_CONFIG_HOME/queuectl/config.toml`.
pub fn config_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    if let Some(path) = env_path("QUEUECTL_CONFIG") {
        return path;
    }
    if is_root() {
        return PathBuf::from("/etc/queuectl/config.toml");
    }
    env_path("XDG_CONFIG_HOME")
        .unwrap_or_else(|| home().join(".config"))
        .join("queuectl/config.toml")
}

/// `$QUEUECTL_DB`, else the config's `db_path`, else `queue.db` in
/// [`default_state_root`].
/// A PostgreSQL URL or conninfo in either names a PostgreSQL queue.
pub fn database(config: &Config) -> Result<Database> {
    if let Some(text) = std::env::var_os("QUEUECTL_DB").filter(|v| !v.is_empty()) {
        return Database::from_os(&text);
    }
    if let Some(path) = &config.db_path {
        return Database::from_os(path.as_os_str());
    }
    Ok(Database::Sqlite(default_state_root().join("queue.db")))
}

/// A program that ships with queuectl (`queuectl-bench` for `queuectl bench`,
/// `queuectl` for the benchmark): the one beside the running executable, so
/// a build or a package finds its own twin, else the first on `$PATH`.
pub fn companion_program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name));
    beside.into_iter().chain(on_path).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `$QUEUECTL_STATE_DIR`, else `/var/lib/queuectl` for root, else
/// `$XDG_STATE_HOME/queuectl`: the default queue's directory, and the local
/// state of a PostgreSQL queue's workers (logs, wake sockets, pid files).
/// The variable lets a benchmark or a test give a PostgreSQL queue files of
/// its own instead of the machine's.
pub fn default_state_root() -> PathBuf {
    if let Some(dir) = env_path("QUEUECTL_STATE_DIR") {
        return dir;
    }
    if is_root() {
        return PathBuf::from("/var/lib/queuectl");
    }
    env_path("XDG_STATE_HOME")
        .unwrap_or_else(|| home().join(".local/state"))
        .join("queuectl")
}

/// `postgresql-<address>`: this host's directory for a shared queue, named
/// after its address without password (so it is recognisable in `ls`).
fn shared_queue_dir(db: &Database) -> String {
    let name: String = db
        .to_string()
        .trim_start_matches("postgresql://")
        .trim_start_matches("postgres://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("postgresql-{name}")
}

/// A queue and this host's files for it: beside an SQLite database, or in
/// `postgresql-<address>/` under [`default_state_root`] for a PostgreSQL one.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub db: Database,
    root: PathBuf,
}

impl StateDir {
    pub fn for_db(db: &Database) -> StateDir {
        let root = match db {
            Database::Sqlite(path) => match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                _ => PathBuf::from("."),
            },
            // One directory per shared queue: two queues' workers on one
            // host must not share pid files or instance numbers.
            Database::Postgres(_) => default_state_root().join(shared_queue_dir(db)),
        };
        StateDir {
            db: db.clone(),
            root,
        }
    }

    /// `db` with its host-local files in `root` (a benchmark's scratch
    /// PostgreSQL queue keeps them in its throwaway directory).
    pub fn in_dir(db: &Database, root: &Path) -> StateDir {
        StateDir {
            db: db.clone(),
            root: root.to_owned(),
        }
    }

    /// The SQLite database file, for the queue at `path`.
    pub fn for_path(path: &Path) -> StateDir {
        StateDir::for_db(&Database::Sqlite(path.to_owned()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Per-job output files, `logs/<job id>.log`.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn job_log(&self, id: &str) -> PathBuf {
        self.logs().join(format!("{id}.log"))
    }

    /// One datagram socket per idle worker, poked when work arrives.
    pub fn wake(&self) -> PathBuf {
        self.root.join("wake")
    }

    /// Pid files and logs of workers started by the process supervisor.
    pub fn workers(&self) -> PathBuf {
        self.root.join("workers")
    }

    /// Makes the queue's files private before a command writes: creates the
    /// directory if missing; tightens the database (and its -wal, -shm),
    /// `logs/`, `wake/` and `workers/` (and the files of a directory that
    /// was too open) when an older install left them open. An existing
    /// directory is tightened itself only when it holds nothing but the
    /// queue: one chosen with `--db` may be the user's (a project directory).
    pub fn prepare(&self) -> Result<Sharing> {
        let fail =
            |what: &Path, e| Error::writing(what, format!("cannot set up {}", what.display()), e);
        let sharing = match std::fs::metadata(&self.root) {
            Ok(meta) => {
                let sharing = Sharing::of(&meta);
                if self.holds_only_the_queue() {
                    files::tighten(&self.root, &meta, sharing.dir_mode())
                        .map_err(|e| fail(&self.root, e))?;
                }
                sharing
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                files::create_private_dir(&self.root).map_err(|e| {
                    Error::writing(
                        &self.root,
                        format!("cannot create {}", self.root.display()),
                        e,
                    )
                })?
            }
            Err(e) => return Err(fail(&self.root, e)),
        };
        if let Database::Sqlite(db) = &self.db {
            files::private_file(db, sharing).map_err(|e| fail(db, e))?;
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                let path = PathBuf::from(name);
                files::tighten_if_present(&path, sharing).map_err(|e| fail(&path, e))?;
            }
        }
        for dir in [self.logs(), self.wake(), self.workers()] {
            if !dir.exists() {
                continue;
            }
            let (sharing, was_open) = files::private_dir(&dir).map_err(|e| fail(&dir, e))?;
            if was_open {
                files::tighten_files_in(&dir, sharing);
            }
        }
        Ok(sharing)
    }

    /// Whether every entry of the directory is one of the queue's own.
    fn holds_only_the_queue(&self) -> bool {
        let Some(db) = self.db.sqlite_path().and_then(Path::file_name) else {
            return false;
        };
        let ours = |name: &std::ffi::OsStr| {
            ["logs", "wake", "workers"].iter().any(|own| name == *own)
                || ["", "-wal", "-shm", "-journal"].iter().any(|suffix| {
                    let mut own = db.to_owned();
                    own.push(suffix);
                    name == own
                })
        };
        std::fs::read_dir(&self.root).is_ok_and(|entries| {
            entries
                .map(|entry| entry.map(|e| ours(&e.file_name())))
                .all(|ours| ours.unwrap_or(false))
        })
    }
}

/// Replaces `path` with `bytes` so a reader sees the old or the new file,
/// never half of one. The file is private (its directory's
/// [`Sharing::file_mode`]) whatever the umask.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, bytes, None)
}

/// [`write_atomically`] for a file everyone may read (a systemd unit: it
/// holds no secret, and `systemctl cat` works for every user).
pub fn write_atomically_readable(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, bytes, Some(0o644))
}

fn replace_file(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let mut tmp_name = OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        let mode = match mode {
            Some(mode) => mode,
            None => Sharing::of(&std::fs::metadata(dir)?).file_mode(),
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        nix::sys::stat::fchmod(file.as_fd(), nix::sys::stat::Mode::from_bits_truncate(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::writing(path, format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn replaced_files_are_private_unless_meant_for_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "old").unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&config, b"new").unwrap();
        assert_eq!(
            (
                std::fs::read_to_string(&config).unwrap().as_str(),
                mode(&config)
            ),
            ("new", 0o600)
        );
        let unit = dir.path().join("queuectl-worker@.service");
        write_atomically_readable(&unit, b"[Unit]\n").unwrap();
        assert_eq!(mode(&unit), 0o644);
    }
}
