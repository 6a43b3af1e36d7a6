//! How values a user typed appear in messages: control characters escaped,
//! and cut with a marker when long, so that a 1 MB typo does not become a
//! 1 MB error message. Job `env` values never go through here: they are
//! never shown at all.

/// How many characters of a user's value a message shows.
pub const SHOWN_CHARS: usize = 64;

/// `text` ready for a message: escaped, and cut after [`SHOWN_CHARS`]
/// characters with a marker saying how long it was.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    for ch in chars.by_ref().take(SHOWN_CHARS) {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    if chars.next().is_some() {
        out.push_str(&format!("… (cut, {} bytes in all)", text.len()));
    }
    out
}

/// `text` as one shell word: as it is when it is a valid job id (those are
/// shell-safe), single-quoted otherwise (a row from a damaged queue).
pub fn shell_word(text: &str) -> String {
    if super::JobId::parse(text).is_ok() {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_shown_whole_and_escaped() {
        assert_eq!(shown("colour"), "colour");
        assert_eq!(shown("\"quoted\" é"), "\"quoted\" é");
        assert_eq!(shown("a\nb\0"), "a\\nb\\u{0}");
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let long = "k".repeat(1 << 20);
        let text = shown(&long);
        assert!(text.len() < 200, "{}", text.len());
        assert!(text.starts_with(&"k".repeat(SHOWN_CHARS)));
        assert!(text.ends_with("… (cut, 1048576 bytes in all)"), "{text}");
    }

    #[test]
    fn shell_words_are_job_ids_as_they_are_or_single_quoted() {
        assert_eq!(shell_word("job-1.a_b"), "job-1.a_b");
        assert_eq!(shell_word("x'; rm -rf ~"), r"'x'\''; rm -rf ~'");
        assert_eq!(shell_word("$(id)"), "'$(id)'");
    }
}
