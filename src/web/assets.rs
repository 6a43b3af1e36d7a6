//! The dashboard's static files (style sheet, script, icon), embedded in
//! the binary so `queuectl web` needs nothing on disk. Each is served under
//! a URL carrying a hash of its content ([`url`]), so browsers may cache it
//! for ever and a new release is fetched anew.

use std::sync::OnceLock;

/// One embedded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// A hash of `bytes` (16 hex digits), the `v=` of its URL.
    pub hash: &'static str,
}

/// Name, content type, content.
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
];

/// The embedded file called `name`, if any.
pub fn asset(name: &str) -> Option<Asset> {
    let index = FILES.iter().position(|(n, _, _)| *n == name)?;
    let (_, content_type, bytes) = FILES[index];
    Some(Asset {
        bytes,
        content_type,
        hash: &hashes()[index],
    })
}

/// `/assets/<name>?v=<hash>`: the URL pages link it by.
///
/// # Panics
/// When no asset has that name: pages only name files embedded here (the
/// tests render every page).
pub fn url(name: &str) -> String {
    let asset = asset(name).unwrap_or_else(|| panic!("no embedded asset {name}"));
    format!("/assets/{name}?v={}", asset.hash)
}

/// Every file's hash, computed once.
fn hashes() -> &'static [String; FILES.len()] {
    static HASHES: OnceLock<[String; FILES.len()]> = OnceLock::new();
    HASHES.get_or_init(|| FILES.map(|(_, _, bytes)| format!("{:016x}", fnv1a(bytes))))
}

/// 64-bit FNV-1a: enough to tell versions of a file apart (a cache key,
/// not a security check).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_found_with_its_type_and_a_stable_hash() {
        let css = asset("app.css").unwrap();
        assert!(css.content_type.starts_with("text/css"));
        assert!(!css.bytes.is_empty());
        assert_eq!(css.hash.len(), 16);
        assert_eq!(asset("app.css").unwrap().hash, css.hash);
        assert_eq!(url("app.css"), format!("/assets/app.css?v={}", css.hash));
        assert!(
            asset("app.js")
                .unwrap()
                .content_type
                .starts_with("text/javascript")
        );
        assert_eq!(asset("favicon.svg").unwrap().content_type, "image/svg+xml");
        assert_ne!(asset("app.js").unwrap().hash, css.hash);
    }

    #[test]
    fn unknown_names_are_not_assets() {
        for name in ["", "../Cargo.toml", "app.css/", "APP.CSS", "assets/app.css"] {
            assert_eq!(asset(name), None, "{name}");
        }
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // Published test vectors of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }
}
