//! Optional authentication: a bearer token or a basic `user:password`, each
//! read from a file only its owner may read. The secret is compared in
//! constant time and never logged, echoed or put in a URL; messages name the
//! file, never its content.

use super::http::Request;
use crate::error::{Error, Result};
use base64::Engine;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use subtle::ConstantTimeEq;

/// What a request must carry.
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Token(Vec<u8>),
    /// `Authorization: Basic <base64 of user:password>`.
    Basic(Vec<u8>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Token(_) => "Auth::Token(hidden)",
            Auth::Basic(_) => "Auth::Basic(hidden)",
        })
    }
}

impl Auth {
    /// Reads the file one of the options names; `None` when neither does.
    pub fn load(token_file: Option<&Path>, basic_file: Option<&Path>) -> Result<Option<Auth>> {
        match (token_file, basic_file) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(Error::Invalid(
                "give either an auth token file or an auth basic file, not both".into(),
            )),
            (Some(path), None) => Ok(Some(Auth::Token(read_secret(path)?))),
            (None, Some(path)) => {
                let line = read_secret(path)?;
                match line.iter().position(|b| *b == b':') {
                    Some(at) if at > 0 => Ok(Some(Auth::Basic(line))),
                    _ => Err(Error::Invalid(format!(
                        "auth basic file {}: its line must be user:password",
                        path.display()
                    ))),
                }
            }
        }
    }

    /// Whether `request` carries the credentials.
    pub fn allows(&self, request: &Request) -> bool {
        let Some((scheme, value)) = request
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
        else {
            return false;
        };
        let value = value.trim();
        match self {
            Auth::Token(token) if scheme.eq_ignore_ascii_case("bearer") => {
                bool::from(value.as_bytes().ct_eq(token))
            }
            Auth::Basic(pair) if scheme.eq_ignore_ascii_case("basic") => {
                match base64::engine::general_purpose::STANDARD.decode(value) {
                    Ok(given) => bool::from(given.ct_eq(pair)),
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }

    /// The `WWW-Authenticate` challenge of a 401.
    pub fn challenge(&self) -> &'static str {
        match self {
            Auth::Token(_) => "Bearer realm=\"queuectl\"",
            Auth::Basic(_) => "Basic realm=\"queuectl\"",
        }
    }
}

/// The first line of `path`, which only its owner may read or write.
fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let what = || format!("cannot read auth file {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Invalid(format!("auth file {} does not exist", path.display()))
        }
        _ => Error::io(what(), e),
    })?;
    let meta = file.metadata().map_err(|e| Error::io(what(), e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "auth file {} is not a regular file",
            path.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "auth file {} may be read or written by others (mode {:04o}): make it private, e.g. chmod 600",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(what(), e))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Invalid(format!(
            "auth file {} is empty: its first line is the secret",
            path.display()
        )));
    }
    Ok(line.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::http::Method;
    use std::os::unix::fs::PermissionsExt;

    fn request(authorization: &str) -> Request {
        Request::new(
            Method::Get,
            "/",
            vec![("Authorization".into(), authorization.into())],
            vec![],
        )
    }

    fn secret_file(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("secret");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_token_or_a_basic_pair_must_match_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let token = Auth::load(Some(&secret_file(dir.path(), "s3cret\n", 0o600)), None)
            .unwrap()
            .unwrap();
        assert!(token.allows(&request("Bearer s3cret")));
        assert!(token.allows(&request("bearer s3cret")));
        assert!(!token.allows(&request("Bearer s3cre")));
        assert!(!token.allows(&request("Bearer s3cret2")));
        assert!(!token.allows(&request("Basic s3cret")));
        let basic = Auth::load(None, Some(&secret_file(dir.path(), "ops:pa:ss\r\n", 0o400)))
            .unwrap()
            .unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode("ops:pa:ss");
        assert!(basic.allows(&request(&format!("Basic {encoded}"))));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:pa:sx");
        assert!(!basic.allows(&request(&format!("Basic {wrong}"))));
        assert!(!basic.allows(&request("Basic !!!")));
        assert_eq!(basic.challenge(), "Basic realm=\"queuectl\"");
    }

    #[test]
    fn a_file_others_may_read_is_refused_without_showing_its_content() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o620] {
            let path = secret_file(dir.path(), "hunter2\n", mode);
            let err = Auth::load(Some(&path), None).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let empty = secret_file(dir.path(), "\n", 0o600);
        assert!(Auth::load(Some(&empty), None).is_err());
        let no_user = secret_file(dir.path(), ":hunter2\n", 0o600);
        let err = Auth::load(None, Some(&no_user)).unwrap_err().to_string();
        assert!(
            err.contains("user:password") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
