//! Where queuectl keeps things: the config file, the database, and the state
//! directory beside the database (job logs, worker wake-up sockets, pid files).

use crate::config::Config;
use crate::error::{IoContext, Result};
use std::ffi::OsString;
use std::io::Write;
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

/// `$QUEUECTL_DB`, else the config's `db_path`, else
/// `/var/lib/queuectl/queue.db` for root or `$XDG_STATE_HOME/queuectl/queue.db`.
pub fn db_path(config: &Config) -> PathBuf {
    if let Some(path) = env_path("QUEUECTL_DB") {
        return path;
    }
    if let Some(path) = &config.db_path {
        return path.clone();
    }
    if is_root() {
        return PathBuf::from("/var/lib/queuectl/queue.db");
    }
    env_path("XDG_STATE_HOME")
        .unwrap_or_else(|| home().join(".local/state"))
        .join("queuectl/queue.db")
}

/// The files that live beside one database.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub db: PathBuf,
    root: PathBuf,
}

impl StateDir {
    pub fn for_db(db: &Path) -> StateDir {
        let root = match db.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        StateDir {
            db: db.to_owned(),
            root,
        }
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
}

/// Replaces `path` with `bytes` so a reader sees the old or the new file,
/// never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().context(|| format!("cannot write {}", path.display()))
}
