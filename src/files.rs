//! queuectl's files on disk: private whatever the umask, tightened when an
//! older install left them open, and opened without following a symlink
//! where a planted link could redirect a write or a removal (job logs).
//!
//! One rule for modes: a setgid directory is shared with its group (the
//! NixOS module's `StateDirectoryMode=2770`), so what queuectl makes in it is
//! 2770 (directories) or 0660 (files); anywhere else 0700 or 0600.

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fchmod};
use std::fs::{File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Who besides the owner may use what is in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    Owner,
    /// The directory is setgid: its group shares the queue.
    Group,
}

impl Sharing {
    pub fn of(dir: &Metadata) -> Sharing {
        if dir.mode() & 0o2000 != 0 {
            Sharing::Group
        } else {
            Sharing::Owner
        }
    }

    pub fn dir_mode(self) -> u32 {
        match self {
            Sharing::Owner => 0o700,
            Sharing::Group => 0o2770,
        }
    }

    pub fn file_mode(self) -> u32 {
        match self {
            Sharing::Owner => 0o600,
            Sharing::Group => 0o660,
        }
    }
}

/// Takes from `path` the permission bits beyond `allowed` (keeping its
/// setgid bit); warns when it had to. Returns whether it changed the mode.
pub fn tighten(path: &Path, meta: &Metadata, allowed: u32) -> io::Result<bool> {
    let mode = meta.mode() & 0o7777;
    let extra = mode & 0o777 & !allowed;
    if extra == 0 {
        return Ok(false);
    }
    let tightened = mode & !extra;
    match std::fs::set_permissions(path, Permissions::from_mode(tightened)) {
        // A group member sharing the queue cannot change its owner's files:
        // say so, but do not refuse to work.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            tracing::warn!(
                "{} is accessible to other users (mode {mode:04o}) and only its owner can tighten it",
                path.display()
            );
            return Ok(false);
        }
        other => other?,
    }
    tracing::warn!(
        "{} was accessible to other users (mode {mode:04o}); tightened it to {tightened:04o}",
        path.display()
    );
    Ok(true)
}

/// Makes sure `dir` is a directory private to the queue: created (with
/// missing parents) as [`Sharing::dir_mode`] of its parent, or tightened if
/// it exists and is too open. A symlink in its place is refused. Returns
/// the directory's sharing and whether it was too open (so its files may be
/// too).
pub fn private_dir(dir: &Path) -> io::Result<(Sharing, bool)> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(io::Error::other(format!(
            "{} is a symlink; refusing to use it",
            dir.display()
        ))),
        Ok(meta) if !meta.is_dir() => Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Ok(meta) => {
            let sharing = Sharing::of(&meta);
            let was_open = tighten(dir, &meta, sharing.dir_mode())?;
            Ok((sharing, was_open))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(dir).map(|sharing| (sharing, false))
        }
        Err(e) => Err(e),
    }
}

/// Creates `dir` and missing parents, private whatever the umask; a
/// directory inside a setgid one stays shared with that group.
pub fn create_private_dir(dir: &Path) -> io::Result<Sharing> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let sharing = Sharing::of(&std::fs::metadata(parent)?);
    std::fs::set_permissions(dir, Permissions::from_mode(sharing.dir_mode()))?;
    Ok(sharing)
}

/// Tightens every file directly in `dir` to `sharing`'s file mode (an older
/// install's job logs, for example). Errors are warned about, not fatal.
pub fn tighten_files_in(dir: &Path, sharing: Sharing) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.is_file()
            && let Err(e) = tighten(&path, &meta, sharing.file_mode())
        {
            tracing::warn!(error = %e, "cannot tighten {}", path.display());
        }
    }
}

/// Opens `dir` itself, refusing a symlink in its place.
pub fn open_dir_nofollow(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => io::Error::other(format!(
                "{} is a symlink or not a directory; refusing to use it",
                dir.display()
            )),
            _ => e,
        })
}

/// Opens (creating if need be) `name` in the already opened directory `dir`
/// for appending, without following a symlink at `name`. A new file gets the
/// directory's [`Sharing::file_mode`] whatever the umask.
pub fn append_in(dir: &File, name: &str) -> io::Result<File> {
    let sharing = Sharing::of(&dir.metadata()?);
    let mode = Mode::from_bits_truncate(sharing.file_mode());
    let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // Create it exclusively so that a new file is known to be ours and gets
    // its exact mode (the umask took bits from it); else open what is there.
    let file = match openat(
        dir.as_fd(),
        name,
        flags | OFlag::O_CREAT | OFlag::O_EXCL,
        mode,
    ) {
        Ok(fd) => {
            let file = File::from(fd);
            fchmod(file.as_fd(), mode)?;
            file
        }
        Err(nix::errno::Errno::EEXIST) => {
            // O_NONBLOCK: a FIFO planted here must not hang the worker.
            let flags = flags | OFlag::O_NONBLOCK;
            let file = File::from(
                openat(dir.as_fd(), name, flags, Mode::empty()).map_err(nofollow_error)?,
            );
            let meta = file.metadata()?;
            if meta.mode() & 0o777 & !sharing.file_mode() != 0 {
                fchmod(
                    file.as_fd(),
                    Mode::from_bits_truncate(meta.mode() & sharing.file_mode()),
                )?;
            }
            file
        }
        Err(errno) => return Err(nofollow_error(errno)),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!("{name} is not a regular file")));
    }
    Ok(file)
}

/// Opens `name` in `dir` for reading, without following a symlink.
pub fn read_in(dir: &File, name: &str) -> io::Result<File> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK;
    let file = File::from(openat(dir.as_fd(), name, flags, Mode::empty()).map_err(nofollow_error)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!("{name} is not a regular file")));
    }
    Ok(file)
}

/// Removes `name` from `dir` (a symlink there is removed, never followed).
pub fn remove_in(dir: &File, name: &str) -> io::Result<()> {
    nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
        .map_err(io::Error::from)
}

/// `path`'s directory and file name, for the `*_in` functions.
fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Opens `path` for appending as [`append_in`] does, creating its directory
/// (private) if missing. Neither the file nor its directory may be a symlink.
pub fn append_private(path: &Path) -> io::Result<File> {
    let (dir, name) = split(path)?;
    let dir = match open_dir_nofollow(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(dir)?;
            open_dir_nofollow(dir)?
        }
        other => other?,
    };
    append_in(&dir, name)
}

/// Opens `path` for reading as [`read_in`] does (its directory not a symlink either).
pub fn read_nofollow(path: &Path) -> io::Result<File> {
    let (dir, name) = split(path)?;
    read_in(&open_dir_nofollow(dir)?, name)
}

/// Removes `path` as [`remove_in`] does (its directory not a symlink either).
pub fn remove_nofollow(path: &Path) -> io::Result<()> {
    let (dir, name) = split(path)?;
    remove_in(&open_dir_nofollow(dir)?, name)
}

/// O_NOFOLLOW reports a symlink as ELOOP; say what it means.
fn nofollow_error(errno: nix::errno::Errno) -> io::Error {
    if errno == nix::errno::Errno::ELOOP {
        io::Error::other("it is a symlink; refusing to follow it")
    } else {
        io::Error::from(errno)
    }
}

/// Creates `path` if it does not exist, as an empty file with `sharing`'s
/// mode (so that SQLite, which gives its -wal and -shm files the database's
/// mode, keeps them private too); tightens it if it exists and is too open.
pub fn private_file(path: &Path, sharing: Sharing) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(sharing.file_mode())
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => fchmod(file.as_fd(), Mode::from_bits_truncate(sharing.file_mode()))
            .map_err(io::Error::from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::metadata(path)?;
            tighten(path, &meta, sharing.file_mode()).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Tightens `path` if it exists (a database's -wal or -shm).
pub fn tighten_if_present(path: &Path, sharing: Sharing) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => tighten(path, &meta, sharing.file_mode()).map(|_| ()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the filesystem holding `path` is mounted read-only.
pub fn on_read_only_fs(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .is_ok_and(|fs| fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn new_dirs_and_files_are_private_and_setgid_dirs_stay_group_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert_eq!(create_private_dir(&dir).unwrap(), Sharing::Owner);
        assert_eq!(mode(&dir), 0o700);
        private_file(&dir.join("f"), Sharing::Owner).unwrap();
        assert_eq!(mode(&dir.join("f")), 0o600);

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o2770)).unwrap();
        assert_eq!(
            create_private_dir(&shared.join("logs")).unwrap(),
            Sharing::Group
        );
        assert_eq!(mode(&shared.join("logs")), 0o2770);
        let logs = open_dir_nofollow(&shared.join("logs")).unwrap();
        append_in(&logs, "j.log").unwrap();
        assert_eq!(mode(&shared.join("logs/j.log")), 0o660);
    }

    #[test]
    fn too_open_dirs_and_files_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("old.log"), "x").unwrap();
        std::fs::set_permissions(dir.join("old.log"), Permissions::from_mode(0o644)).unwrap();
        let (sharing, was_open) = private_dir(&dir).unwrap();
        assert_eq!((sharing, was_open), (Sharing::Owner, true));
        tighten_files_in(&dir, sharing);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("old.log")), 0o600);
        assert_eq!(private_dir(&dir).unwrap(), (Sharing::Owner, false));
    }

    #[test]
    fn symlinks_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        let dir = tmp.path().join("logs");
        create_private_dir(&dir).unwrap();
        symlink(&outside, dir.join("j.log")).unwrap();
        let logs = open_dir_nofollow(&dir).unwrap();
        let err = append_in(&logs, "j.log").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(read_in(&logs, "j.log").is_err());
        remove_in(&logs, "j.log").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");

        let linked_dir = tmp.path().join("linked");
        symlink(&dir, &linked_dir).unwrap();
        assert!(open_dir_nofollow(&linked_dir).is_err());
        assert!(private_dir(&linked_dir).is_err());
    }
}
