//! The rules for a job's environment: which variable names a job may set,
//! how an `env_file` is named, and the `KEY=VALUE` format of such a file.
//! Values are secrets: no error here ever contains one.

use super::echo::shown;
use std::collections::BTreeMap;
use std::fmt;

/// Names queuectl sets for every attempt (`QUEUECTL_JOB_ID`,
/// `QUEUECTL_JOB_ATTEMPT`, `QUEUECTL_ATTEMPT_TOKEN`, ...): a job may not set
/// or override any name with this prefix.
pub const RESERVED_PREFIX: &str = "QUEUECTL_";

/// Largest env file read; anything bigger is surely not one.
pub const MAX_ENV_FILE_BYTES: usize = 1 << 20;

/// Checks a variable name a job sets. The message shows at most the part
/// before a `=`, since `NAME=secret` in the name's place is a common slip.
pub fn check_var_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty variable name".into());
    }
    if name.contains(['=', '\0']) {
        let before = name.split(['=', '\0']).next().unwrap_or_default();
        return Err(format!(
            "invalid variable name starting \"{}\" (a name must not contain '=' or NUL bytes)",
            shown(before)
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "variable {} is reserved: names starting with {RESERVED_PREFIX} are set by queuectl",
            shown(name)
        ));
    }
    Ok(())
}

/// Checks a name in a job's `env`: [`check_var_name`], and a portable
/// environment variable name (`[A-Za-z_][A-Za-z0-9_]*`), since `sh` drops
/// any other, so such a variable could never reach the job. (Env files
/// keep the looser rule: a file shared with other tools may hold others.)
pub fn check_job_var_name(name: &str) -> Result<(), String> {
    check_var_name(name)?;
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid variable name '{}': a name is letters, digits and '_', not starting with a digit",
            shown(name)
        ));
    }
    Ok(())
}

/// Where a job's `env_file` is: an absolute path, or the name of a systemd
/// credential of the worker (`LoadCredential=NAME:...`), found in the
/// worker's `$CREDENTIALS_DIRECTORY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvFileRef {
    Path(String),
    Credential(String),
}

impl EnvFileRef {
    pub fn parse(text: &str) -> Result<EnvFileRef, String> {
        if text.contains('\0') {
            return Err("must not contain NUL bytes".into());
        }
        if text.starts_with('/') {
            return Ok(EnvFileRef::Path(text.to_owned()));
        }
        let credential_name = !text.is_empty()
            && text.len() <= 255
            && !text.starts_with('.')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if credential_name {
            return Ok(EnvFileRef::Credential(text.to_owned()));
        }
        Err(format!(
            "expected an absolute path or a credential name (letters, digits, '.', '_', '-', '@'), got \"{}\"",
            shown(text)
        ))
    }
}

impl fmt::Display for EnvFileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvFileRef::Path(path) => f.write_str(path),
            EnvFileRef::Credential(name) => write!(f, "credential {name}"),
        }
    }
}

/// Parses an env file: `KEY=VALUE` lines; blank lines and lines starting
/// with `#` are skipped; `export ` before a name is allowed; one pair of
/// matching quotes around a value is removed (nothing else is interpreted).
/// An error names the line, never its content.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", number + 1));
        };
        let name = name.trim();
        check_var_name(name).map_err(|why| format!("line {}: {why}", number + 1))?;
        if value.contains('\0') {
            return Err(format!(
                "line {}: the value contains a NUL byte",
                number + 1
            ));
        }
        vars.insert(name.to_owned(), unquote(value.trim_end()).to_owned());
    }
    Ok(vars)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_without_showing_what_follows_an_equals_sign() {
        assert!(check_var_name("API_TOKEN").is_ok());
        let err = check_var_name("API_TOKEN=s3cr3t").unwrap_err();
        assert!(
            err.contains("API_TOKEN") && !err.contains("s3cr3t"),
            "{err}"
        );
        assert!(check_var_name("").is_err());
        assert!(check_var_name("A\0B").is_err());
        for reserved in ["QUEUECTL_JOB_ID", "QUEUECTL_ATTEMPT_TOKEN", "QUEUECTL_X"] {
            assert!(check_var_name(reserved).unwrap_err().contains("reserved"));
        }
    }

    #[test]
    fn a_job_sets_only_portable_names() {
        for good in ["A", "_x", "API_TOKEN2", "path"] {
            assert!(check_job_var_name(good).is_ok(), "{good}");
        }
        for bad in ["bad name", "x-y", "1A", "A.B", "ü"] {
            let err = check_job_var_name(bad).unwrap_err();
            assert!(err.contains("invalid variable name"), "{bad}: {err}");
        }
        // The looser checks still come first, and hide what follows '='.
        let err = check_job_var_name("A B=s3cr3t").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(
            check_job_var_name("QUEUECTL_X")
                .unwrap_err()
                .contains("reserved")
        );
    }

    #[test]
    fn env_file_refs_are_paths_or_credential_names() {
        assert_eq!(
            EnvFileRef::parse("/etc/backup.env"),
            Ok(EnvFileRef::Path("/etc/backup.env".into()))
        );
        assert_eq!(
            EnvFileRef::parse("backup-env"),
            Ok(EnvFileRef::Credential("backup-env".into()))
        );
        for bad in ["", "rel/path", "../x", ".hidden", "a b", "a:b", "/a\0b"] {
            assert!(EnvFileRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_files_parse_and_errors_name_the_line_not_the_value() {
        let vars = parse_env_file(
            "# comment\n\nA=1\nexport B = two words \nC=\"quoted\"\nD='single'\nE=a=b\nF=\n",
        )
        .unwrap();
        let expected = [
            ("A", "1"),
            ("B", " two words"),
            ("C", "quoted"),
            ("D", "single"),
            ("E", "a=b"),
            ("F", ""),
        ];
        assert_eq!(
            vars,
            expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        for (text, needle) in [
            ("A=1\ns3cr3t\n", "line 2: expected KEY=VALUE"),
            (
                "QUEUECTL_JOB_ID=s3cr3t",
                "line 1: variable QUEUECTL_JOB_ID is reserved",
            ),
            ("A=s3cr3t\0", "line 1: the value contains a NUL byte"),
            ("=s3cr3t", "line 1: empty variable name"),
        ] {
            let err = parse_env_file(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
