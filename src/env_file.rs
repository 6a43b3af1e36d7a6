//! A job's environment at the start of an attempt: the variables stored with
//! the job plus those of its `env_file`, read now from a file given by
//! absolute path or from a systemd credential of the worker
//! (`$CREDENTIALS_DIRECTORY/<name>`). The file's values go into the attempt's
//! environment and nowhere else: errors name the file, never a value.

use crate::domain::environment::{EnvFileRef, MAX_ENV_FILE_BYTES, check_var_name, parse_env_file};
use crate::store::StoredEnv;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// The variables a job's attempt gets on top of the worker's environment;
/// the env file's win over the job's `env` (as systemd's `EnvironmentFile=`
/// wins over `Environment=`). An error explains why the attempt cannot start.
pub fn job_environment(
    stored: &StoredEnv,
    env_file: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = stored.clone().map_err(|corrupt| corrupt.to_string())?;
    // Enqueue refuses these names; a queue from before that rule (or an
    // edited row) must not override what queuectl sets (the attempt token).
    for name in vars.keys() {
        check_var_name(name).map_err(|why| format!("stored env: {why}"))?;
    }
    if let Some(text) = env_file {
        let source = EnvFileRef::parse(text).map_err(|why| format!("env_file: {why}"))?;
        vars.extend(read(&source)?);
    }
    Ok(vars)
}

fn resolve(source: &EnvFileRef) -> Result<PathBuf, String> {
    match source {
        EnvFileRef::Path(path) => Ok(PathBuf::from(path)),
        EnvFileRef::Credential(name) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir).join(name)),
            _ => Err(format!(
                "env file {source}: this worker has no $CREDENTIALS_DIRECTORY \
                 (give its unit LoadCredential={name}:/path/to/file)"
            )),
        },
    }
}

/// Reads and parses the env file. It must be a regular file no other user
/// can read or write (group access is allowed, for shared system installs).
fn read(source: &EnvFileRef) -> Result<BTreeMap<String, String>, String> {
    let path = resolve(source)?;
    let name = match source {
        EnvFileRef::Path(_) => format!("env file {}", path.display()),
        EnvFileRef::Credential(_) => format!("env file {source} ({})", path.display()),
    };
    // O_NONBLOCK: a FIFO named here must not hang the worker (it is then
    // refused as not a regular file).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| format!("{name}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name}: not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "{name}: other users can access it (mode {mode:04o}); make it private with chmod 600 (or 640 for a group)"
        ));
    }
    if meta.len() > MAX_ENV_FILE_BYTES as u64 {
        return Err(format!(
            "{name}: larger than {MAX_ENV_FILE_BYTES} bytes; not an env file"
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{name}: not valid UTF-8"))?;
    parse_env_file(&text).map_err(|why| format!("{name}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CorruptEnv;

    fn write(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_file_adds_to_and_overrides_the_stored_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "job.env", "TOKEN=s3cr3t\nMODE=file\n", 0o600);
        let stored = Ok(BTreeMap::from([
            ("MODE".to_owned(), "job".to_owned()),
            ("OTHER".to_owned(), "1".to_owned()),
        ]));
        let vars = job_environment(&stored, Some(&path)).unwrap();
        assert_eq!(vars["TOKEN"], "s3cr3t");
        assert_eq!(vars["MODE"], "file");
        assert_eq!(vars["OTHER"], "1");
    }

    #[test]
    fn a_corrupt_stored_env_is_an_error_not_an_empty_environment() {
        let err = job_environment(&Err(CorruptEnv), None).unwrap_err();
        assert!(err.contains("cannot be decoded"), "{err}");
        let reserved = Ok(BTreeMap::from([(
            "QUEUECTL_ATTEMPT_TOKEN".to_owned(),
            "forged".to_owned(),
        )]));
        let err = job_environment(&reserved, None).unwrap_err();
        assert!(err.contains("reserved") && !err.contains("forged"), "{err}");
    }

    #[test]
    fn unusable_files_fail_with_the_file_named_and_no_value_shown() {
        let dir = tempfile::tempdir().unwrap();
        let open = write(dir.path(), "open.env", "TOKEN=s3cr3t\n", 0o644);
        let bad = write(
            dir.path(),
            "bad.env",
            "TOKEN=s3cr3t\nnot a pair s3cr3t\n",
            0o600,
        );
        let missing = dir.path().join("missing.env").display().to_string();
        let subdir = dir.path().display().to_string();
        let fifo = dir.path().join("fifo.env");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = fifo.display().to_string();
        for (path, needle) in [
            (&fifo, "not a regular file"),
            (&open, "other users can access it (mode 0644)"),
            (&bad, "line 2: expected KEY=VALUE"),
            (&missing, "No such file"),
            (&subdir, "not a regular file"),
        ] {
            let err = job_environment(&Ok(BTreeMap::new()), Some(path)).unwrap_err();
            assert!(err.contains(path.as_str()), "{err}");
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
