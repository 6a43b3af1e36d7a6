//! Unique jobs: a key that at most one unfinished job (pending, processing,
//! or failed and waiting for its retry) holds, and what enqueueing another
//! job with a held key does. The store enforces it (a partial unique index);
//! this module only validates keys and policies and names the outcomes.

use std::fmt;

/// Longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 200;

/// A unique key: 1 to [`MAX_KEY_CHARS`] characters, no control characters
/// (it is shown in messages and tables as it is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UniqueKey(String);

impl UniqueKey {
    pub fn parse(text: &str) -> Result<UniqueKey, String> {
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err(format!(
                "must be 1 to {MAX_KEY_CHARS} characters long, got {chars}"
            ));
        }
        if let Some(bad) = text.chars().find(|c| c.is_control()) {
            return Err(format!(
                "must not contain control characters (found '{}')",
                bad.escape_default()
            ));
        }
        Ok(UniqueKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UniqueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What enqueueing a job does when an unfinished job holds its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnDuplicate {
    /// Refuse it (exit 4, naming the holder); a batch is refused whole.
    #[default]
    Reject,
    /// Enqueue nothing and answer with the holder's id.
    Skip,
    /// Update the holder with the new job's settings while it waits; a
    /// running holder is not changed (refused).
    Replace,
}

impl OnDuplicate {
    pub const NAMES: [&'static str; 3] = ["reject", "skip", "replace"];

    pub fn parse(text: &str) -> Option<OnDuplicate> {
        match text {
            "reject" => Some(OnDuplicate::Reject),
            "skip" => Some(OnDuplicate::Skip),
            "replace" => Some(OnDuplicate::Replace),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for OnDuplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's key and what to do when it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unique {
    pub key: UniqueKey,
    pub on_duplicate: OnDuplicate,
}

/// What enqueueing one job did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new job was added.
    Created,
    /// `skip`: an unfinished job held the key; nothing was added, and the
    /// id given back is the holder's.
    Existing,
    /// `replace`: the waiting holder took the new job's settings; the id
    /// given back is the holder's.
    Replaced,
}

impl EnqueueOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EnqueueOutcome::Created => "created",
            EnqueueOutcome::Existing => "existing",
            EnqueueOutcome::Replaced => "replaced",
        }
    }
}

/// "unique key 'K' is held by unfinished job 'Y'": why a job with key `key`
/// was refused (reject, or replace of a running holder: `running`).
pub fn key_held(key: &str, holder: &str, running: bool) -> String {
    let key = super::echo::shown(key);
    let holder = super::echo::shown(holder);
    if running {
        format!(
            "unique key '{key}' is held by job '{holder}', which is running: a running job is not replaced"
        )
    } else {
        format!("unique key '{key}' is held by unfinished job '{holder}'")
    }
}

/// Why a batch was refused when its job on `line` met its key's holder
/// (`why`): the line named, as other batch errors do, and that none of the
/// batch was enqueued. A job enqueued alone (`line` none) is just `why`.
pub fn refused_in_batch(why: String, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("line {line}: {why}; nothing from this batch was enqueued"),
        None => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_200_characters_without_control_characters() {
        for ok in [
            "a",
            "report:2026-12-01",
            "schedule:nightly",
            "ключ",
            &"é".repeat(200),
        ] {
            assert_eq!(UniqueKey::parse(ok).unwrap().as_str(), ok);
        }
        for (bad, why) in [
            ("", "1 to 200"),
            (&"k".repeat(201), "got 201"),
            ("a\nb", "control characters"),
            ("a\0", "control characters"),
        ] {
            let err = UniqueKey::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn policies_read_and_print_by_name() {
        for name in OnDuplicate::NAMES {
            assert_eq!(OnDuplicate::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(OnDuplicate::default(), OnDuplicate::Reject);
        assert_eq!(OnDuplicate::parse("Skip"), None);
    }
}
