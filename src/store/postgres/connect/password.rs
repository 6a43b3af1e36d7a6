//! Where a connection's password comes from, in libpq's order: the address,
//! `PGPASSWORD`, a file holding only the password (`$QUEUECTL_DB_PASSWORD_FILE`:
//! a path, or a systemd credential's name in `$CREDENTIALS_DIRECTORY`), then
//! the pgpass file (`passfile=`, `$PGPASSFILE`, `~/.pgpass`). No password
//! reaches a message or a log: errors and warnings name files only.

use super::Env;
use crate::domain::environment::EnvFileRef;
use crate::error::{Error, Result};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Names the password file (path or credential name).
pub(super) const PASSWORD_FILE_VAR: &str = "QUEUECTL_DB_PASSWORD_FILE";

/// Password files and pgpass files larger than this are not what they claim.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The libpq defaults' socket directories: a connection through either
/// matches pgpass entries for `localhost`, as libpq's default directory does.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/run/postgresql", "/var/run/postgresql"];

/// What a pgpass entry is matched against: one host attempt's facts.
pub(super) struct Lookup<'a> {
    /// The host name, a socket directory, or the `hostaddr` when no name.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
    /// The address's `passfile=`, which wins over `$PGPASSFILE`.
    pub passfile: Option<&'a str>,
}

/// The password for one connection attempt, or `None` when no source has
/// one (the server may not ask). A named password file that cannot be read
/// is an error; a pgpass file that is missing, unreadable or open to other
/// users is skipped, as libpq does (the last with a warning).
pub(super) fn resolve(
    inline: Option<&str>,
    lookup: &Lookup<'_>,
    env: &Env<'_>,
) -> Result<Option<String>> {
    if let Some(password) = inline {
        return Ok(Some(password.to_owned()));
    }
    if let Some(password) = env.var("PGPASSWORD") {
        return Ok(Some(password));
    }
    if let Some(name) = env.var(PASSWORD_FILE_VAR) {
        return read_password_file(&name, env).map(Some);
    }
    let Some(path) = pgpass_path(lookup.passfile, env) else {
        return Ok(None);
    };
    Ok(read_pgpass(&path).and_then(|text| find_in_pgpass(&text, lookup)))
}

/// `passfile=`, else `$PGPASSFILE`, else `~/.pgpass`.
fn pgpass_path(passfile: Option<&str>, env: &Env<'_>) -> Option<PathBuf> {
    if let Some(path) = passfile.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if let Some(path) = env.var("PGPASSFILE") {
        return Some(PathBuf::from(path));
    }
    env.home().map(|home| home.join(".pgpass"))
}

/// The file `$QUEUECTL_DB_PASSWORD_FILE` names: its one line, without the
/// trailing newline. Like a job's env file, it must be a regular file that
/// other users cannot access.
fn read_password_file(name: &str, env: &Env<'_>) -> Result<String> {
    let invalid = |why: String| Error::Invalid(format!("${PASSWORD_FILE_VAR}: {why}"));
    let path = match EnvFileRef::parse(name).map_err(invalid)? {
        EnvFileRef::Path(path) => PathBuf::from(path),
        EnvFileRef::Credential(name) => match env.var("CREDENTIALS_DIRECTORY") {
            Some(dir) => PathBuf::from(dir).join(name),
            None => {
                return Err(invalid(format!(
                    "credential {name}: there is no $CREDENTIALS_DIRECTORY \
                     (give the unit LoadCredential={name}:/path/to/file, or name the file by absolute path)"
                )));
            }
        },
    };
    let what = format!("password file {}", path.display());
    let (text, mode) = read_small_file(&path).map_err(|e| Error::io(&what, e))?;
    if mode & 0o007 != 0 {
        return Err(Error::Invalid(format!(
            "{what}: other users can access it (mode {mode:04o}); make it private with chmod 600"
        )));
    }
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.contains('\n') {
        return Err(Error::Invalid(format!(
            "{what}: holds more than one line; it must hold only the password"
        )));
    }
    if password.is_empty() {
        return Err(Error::Invalid(format!("{what}: is empty")));
    }
    Ok(password.to_owned())
}

/// A regular file's text and permission bits (read through one descriptor,
/// so the mode checked is the file's that was read).
fn read_small_file(path: &Path) -> std::io::Result<(String, u32)> {
    // O_NONBLOCK: a FIFO named here must not hang the connect (it is then
    // refused as not a regular file).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other("too large"));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
    Ok((text, meta.permissions().mode() & 0o7777))
}

/// The pgpass file's text, or `None` as libpq would ignore it: missing or
/// unreadable (silently), not a regular file or open to group or others
/// (with a warning naming the file).
fn read_pgpass(path: &Path) -> Option<String> {
    let (text, mode) = match read_small_file(path) {
        Ok(read) => read,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound) => return None,
        Err(e) => {
            tracing::warn!(
                "password file {} cannot be read, ignored: {e}",
                path.display()
            );
            return None;
        }
    };
    if mode & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access (mode {mode:04o}), ignored; \
             permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    Some(text)
}

/// The password of the first pgpass line matching `lookup`:
/// `host:port:dbname:user:password`, `*` matching anything, `\` escaping
/// the next character (`\:`, `\\`), `#` starting a comment line.
fn find_in_pgpass(text: &str, lookup: &Lookup<'_>) -> Option<String> {
    let host = match lookup.host {
        dir if DEFAULT_SOCKET_DIRS.contains(&dir) => "localhost",
        host => host,
    };
    let port = lookup.port.to_string();
    let wanted = [host, port.as_str(), lookup.dbname, lookup.user];
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = [h, p, d, u]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field.matches(value));
            matches.then(|| password.text.clone())
        })
}

struct Field {
    text: String,
    /// The field was a bare `*` (an escaped `\*` is a literal star).
    wildcard: bool,
}

impl Field {
    fn matches(&self, value: &str) -> bool {
        self.wildcard || self.text == value
    }
}

/// Splits on unescaped `:` into at most five fields (what follows the
/// password's own unescaped `:` is ignored, as in libpq).
fn split_pgpass_line(line: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut text = String::new();
    let mut escaped_any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                escaped_any = true;
                text.extend(chars.next());
            }
            ':' => {
                let done = fields.len() == 4;
                fields.push(Field {
                    wildcard: !escaped_any && text == "*",
                    text: std::mem::take(&mut text),
                });
                escaped_any = false;
                if done {
                    return fields;
                }
            }
            c => text.push(c),
        }
    }
    fields.push(Field {
        wildcard: !escaped_any && text == "*",
        text,
    });
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> Lookup<'a> {
        Lookup {
            host,
            port,
            dbname,
            user,
            passfile: None,
        }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// An environment of exactly these variables (never the real one, so
    /// never the real home directory).
    fn env_of(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve_with(
        inline: Option<&str>,
        lookup: &Lookup<'_>,
        vars: &HashMap<String, String>,
    ) -> Result<Option<String>> {
        let var = |name: &str| vars.get(name).cloned();
        resolve(inline, lookup, &Env::from_fn(&var))
    }

    const PGPASS: &str = "\
# comment:*:*:*:nope
db.example:5432:jobs:alice:first
db.example:*:*:alice:second
*:*:*:bob:wild\\:card\\\\pw
a\\:b:5432:*:*:escaped-host
\\*:*:*:carol:literal-star
localhost:5432:*:dave:socket
/tmp/sock:5432:*:dave:custom-socket
*:*:*:erin:pw:trailing:fields
";

    #[test]
    fn pgpass_matches_in_order_with_wildcards_and_escapes() {
        let find = |host, port, db, user| find_in_pgpass(PGPASS, &lookup(host, port, db, user));
        assert_eq!(
            find("db.example", 5432, "jobs", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(
            find("db.example", 6000, "other", "alice").as_deref(),
            Some("second")
        );
        assert_eq!(find("elsewhere", 5432, "jobs", "alice"), None);
        assert_eq!(find("any", 1, "x", "bob").as_deref(), Some(r"wild:card\pw"));
        assert_eq!(
            find("a:b", 5432, "x", "zed").as_deref(),
            Some("escaped-host")
        );
        assert_eq!(
            find("db", 5432, "x", "carol"),
            None,
            "\\* is a literal star"
        );
        assert_eq!(
            find("*", 5432, "x", "carol").as_deref(),
            Some("literal-star")
        );
        assert_eq!(find("x", 5432, "x", "erin").as_deref(), Some("pw"));
        assert_eq!(find("# comment", 1, "x", "y"), None);
    }

    #[test]
    fn the_default_socket_directories_match_localhost_others_their_path() {
        let find = |host| find_in_pgpass(PGPASS, &lookup(host, 5432, "q", "dave"));
        assert_eq!(find("/run/postgresql").as_deref(), Some("socket"));
        assert_eq!(find("/var/run/postgresql").as_deref(), Some("socket"));
        assert_eq!(find("localhost").as_deref(), Some("socket"));
        assert_eq!(find("/tmp/sock").as_deref(), Some("custom-socket"));
        assert_eq!(find("/elsewhere"), None);
    }

    #[test]
    fn a_pgpass_open_to_others_is_ignored_a_private_one_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        let at = path.to_str().unwrap();
        let vars = env_of(&[("PGPASSFILE", at)]);
        let l = lookup("h", 5432, "q", "u");
        write(&path, "*:*:*:u:from-pgpass\n", 0o600);
        assert_eq!(
            resolve_with(None, &l, &vars).unwrap().as_deref(),
            Some("from-pgpass")
        );
        for mode in [0o640, 0o644, 0o604, 0o610] {
            write(&path, "*:*:*:u:from-pgpass\n", mode);
            assert_eq!(
                resolve_with(None, &l, &vars).unwrap(),
                None,
                "mode {mode:o}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(resolve_with(None, &l, &vars).unwrap(), None, "missing");
    }

    #[test]
    fn pgpass_comes_from_passfile_then_pgpassfile_then_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        write(&home.join(".pgpass"), "*:*:*:*:home\n", 0o600);
        let env_file = dir.path().join("env.pgpass");
        write(&env_file, "*:*:*:*:env\n", 0o600);
        let param_file = dir.path().join("param.pgpass");
        write(&param_file, "*:*:*:*:param\n", 0o600);

        let mut l = lookup("h", 5432, "q", "u");
        let home_only = env_of(&[("HOME", home.to_str().unwrap())]);
        assert_eq!(
            resolve_with(None, &l, &home_only).unwrap().as_deref(),
            Some("home")
        );
        let both = env_of(&[
            ("HOME", home.to_str().unwrap()),
            ("PGPASSFILE", env_file.to_str().unwrap()),
        ]);
        assert_eq!(
            resolve_with(None, &l, &both).unwrap().as_deref(),
            Some("env")
        );
        l.passfile = param_file.to_str();
        assert_eq!(
            resolve_with(None, &l, &both).unwrap().as_deref(),
            Some("param")
        );
    }

    #[test]
    fn sources_in_libpq_order() {
        let dir = tempfile::tempdir().unwrap();
        let pgpass = dir.path().join("pgpass");
        write(&pgpass, "*:*:*:*:pgpass\n", 0o600);
        let file = dir.path().join("password");
        write(&file, "from-file\n", 0o600);
        let l = lookup("h", 5432, "q", "u");
        let mut vars = env_of(&[("PGPASSFILE", pgpass.to_str().unwrap())]);
        assert_eq!(
            resolve_with(None, &l, &vars).unwrap().as_deref(),
            Some("pgpass")
        );
        vars.insert(PASSWORD_FILE_VAR.into(), file.to_str().unwrap().into());
        assert_eq!(
            resolve_with(None, &l, &vars).unwrap().as_deref(),
            Some("from-file")
        );
        vars.insert("PGPASSWORD".into(), "from-env".into());
        assert_eq!(
            resolve_with(None, &l, &vars).unwrap().as_deref(),
            Some("from-env")
        );
        assert_eq!(
            resolve_with(Some("inline"), &l, &vars).unwrap().as_deref(),
            Some("inline")
        );
    }

    #[test]
    fn a_password_file_by_path_or_credential_name() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("db-password"), "s3cret\r\n", 0o400);
        let l = lookup("h", 5432, "q", "u");
        let by_path = env_of(&[(
            PASSWORD_FILE_VAR,
            dir.path().join("db-password").to_str().unwrap(),
        )]);
        assert_eq!(
            resolve_with(None, &l, &by_path).unwrap().as_deref(),
            Some("s3cret")
        );
        let by_name = env_of(&[
            (PASSWORD_FILE_VAR, "db-password"),
            ("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap()),
        ]);
        assert_eq!(
            resolve_with(None, &l, &by_name).unwrap().as_deref(),
            Some("s3cret")
        );
        // No newline at all is fine too.
        write(&dir.path().join("db-password"), "s3cret", 0o600);
        assert_eq!(
            resolve_with(None, &l, &by_name).unwrap().as_deref(),
            Some("s3cret")
        );
    }

    #[test]
    fn a_bad_password_file_is_an_error_that_names_the_file_not_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let l = lookup("h", 5432, "q", "u");
        let path = dir.path().join("pw");
        let at = path.to_str().unwrap();
        let err = |vars: &HashMap<String, String>| {
            let e = resolve_with(None, &l, vars).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
            e
        };
        let vars = env_of(&[(PASSWORD_FILE_VAR, at)]);
        assert!(err(&vars).contains(at), "missing file");
        write(&path, "s3cret\n", 0o644);
        assert!(err(&vars).contains("other users can access it"));
        write(&path, "s3cret\nsecond\n", 0o600);
        assert!(err(&vars).contains("more than one line"));
        write(&path, "\n", 0o600);
        assert!(err(&vars).contains("is empty"));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(err(&vars).contains("not a regular file"));
        let no_dir = env_of(&[(PASSWORD_FILE_VAR, "db-password")]);
        assert!(err(&no_dir).contains("$CREDENTIALS_DIRECTORY"));
        let relative = env_of(&[(PASSWORD_FILE_VAR, "../pw")]);
        assert!(err(&relative).contains("absolute path or a credential name"));
    }
}
