//! Percent-encoding (RFC 3986) of URL parts: PostgreSQL addresses and the
//! dashboard's links.

/// Percent-encodes what a URL part cannot hold as it is: every byte but
/// the unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-decoding; `what` names the part in an error (never its text).
pub fn decode(text: &str, what: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {what}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("a b&c/d?é"), "a%20b%26c%2Fd%3F%C3%A9");
        assert_eq!(encode(""), "");
    }

    #[test]
    fn decoding_undoes_encoding_and_refuses_what_is_broken() {
        for text in ["a b&c/d?é", "%", "<script>"] {
            assert_eq!(decode(&encode(text), "x").as_deref(), Ok(text));
        }
        assert_eq!(
            decode("%2", "the host"),
            Err("bad percent-encoding in the host".into())
        );
        assert_eq!(
            decode("%FF", "the host"),
            Err("the host is not valid UTF-8".into())
        );
    }
}
