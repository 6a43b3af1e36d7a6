//! Cross-site request forgery defence for the actions: a signed
//! double-submit cookie. Each browser gets a random nonce in the cookie
//! `queuectl_csrf` (`HttpOnly; SameSite=Strict`); its forms carry
//! `HMAC-SHA256(process secret, nonce)` in the field `csrf`. A POST must
//! bring both, matching, and must not say (by `Sec-Fetch-Site` or `Origin`)
//! that another site sent it. The secret lives in memory only: a restart
//! makes old forms fail once (reload the page).

use super::http::Request;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const COOKIE: &str = "queuectl_csrf";
/// The form field carrying the token.
pub const FIELD: &str = "csrf";
const NONCE_BYTES: usize = 16;

pub struct Csrf {
    secret: [u8; 32],
}

/// The token a page's forms carry, and the cookie to set when the browser
/// had none.
pub struct Issued {
    pub token: String,
    pub set_cookie: Option<String>,
}

impl Csrf {
    pub fn new() -> Csrf {
        let mut secret = [0; 32];
        rand::rng().fill_bytes(&mut secret);
        Csrf { secret }
    }

    /// The token for the browser that sent `request`.
    pub fn issue(&self, request: &Request) -> Issued {
        if let Some(nonce) = request.cookie(COOKIE).and_then(nonce_of) {
            return Issued {
                token: hex(&self.mac(&nonce).finalize().into_bytes()),
                set_cookie: None,
            };
        }
        let mut nonce = [0; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        Issued {
            token: hex(&self.mac(&nonce).finalize().into_bytes()),
            set_cookie: Some(format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                hex(&nonce)
            )),
        }
    }

    /// Why `request` (a POST with form `token`) is refused, if it is.
    pub fn check(&self, request: &Request, token: Option<&str>) -> Result<(), &'static str> {
        let site = request.header("sec-fetch-site");
        if let Some(site) = site {
            if !matches!(site, "same-origin" | "none") {
                return Err("the request came from another site");
            }
        }
        // Under `Referrer-Policy: no-referrer` a browser posts a form with
        // `Origin: null`; only `Sec-Fetch-Site` then says where it came from.
        let hidden = request.header("origin") == Some("null") && site == Some("same-origin");
        if let Some(origin) = request.header("origin").filter(|_| !hidden) {
            let host = request.header("host").unwrap_or_default();
            let same = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(host));
            if !same {
                return Err("the request came from another origin");
            }
        }
        let nonce = request
            .cookie(COOKIE)
            .and_then(nonce_of)
            .ok_or("the CSRF cookie is missing (reload the page)")?;
        let wrong = "the form's CSRF token is wrong (reload the page)";
        let token = token.ok_or("the form's CSRF token is missing")?;
        let token = unhex(token).ok_or(wrong)?;
        self.mac(&nonce).verify_slice(&token).map_err(|_| wrong)
    }

    fn mac(&self, nonce: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(nonce);
        mac
    }
}

impl Default for Csrf {
    fn default() -> Self {
        Csrf::new()
    }
}

/// A cookie value we could have issued.
fn nonce_of(text: &str) -> Option<Vec<u8>> {
    unhex(text).filter(|n| n.len() == NONCE_BYTES)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::http::Method;

    fn post(headers: &[(&str, &str)]) -> Request {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Request::new(Method::Post, "/jobs/a/retry", headers, vec![])
    }

    #[test]
    fn only_the_token_of_the_browsers_own_cookie_passes() {
        let csrf = Csrf::new();
        let first = csrf.issue(&post(&[]));
        let cookie = first.set_cookie.expect("a new browser gets a cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let pair = cookie.split(';').next().unwrap().to_owned();
        let with_cookie = post(&[("Cookie", &pair), ("Host", "127.0.0.1:9750")]);
        let again = csrf.issue(&with_cookie);
        assert_eq!(again.token, first.token, "the same cookie, the same token");
        assert!(again.set_cookie.is_none());

        assert_eq!(csrf.check(&with_cookie, Some(&first.token)), Ok(()));
        assert!(csrf.check(&with_cookie, None).is_err());
        assert!(csrf.check(&with_cookie, Some("00")).is_err());
        let other = Csrf::new().issue(&with_cookie).token;
        assert!(csrf.check(&with_cookie, Some(&other)).is_err());
        assert!(
            csrf.check(&post(&[]), Some(&first.token)).is_err(),
            "no cookie"
        );

        let cross = post(&[("Cookie", &pair), ("Sec-Fetch-Site", "cross-site")]);
        assert!(csrf.check(&cross, Some(&first.token)).is_err());
        let foreign = post(&[
            ("Cookie", &pair),
            ("Host", "127.0.0.1:9750"),
            ("Origin", "http://evil.example"),
        ]);
        assert!(csrf.check(&foreign, Some(&first.token)).is_err());
        let same = post(&[
            ("Cookie", &pair),
            ("Host", "127.0.0.1:9750"),
            ("Origin", "http://127.0.0.1:9750"),
            ("Sec-Fetch-Site", "same-origin"),
        ]);
        assert_eq!(csrf.check(&same, Some(&first.token)), Ok(()));
        // A form posted under no-referrer (Chromium's headers): Origin
        // null, the site in Sec-Fetch-Site.
        let hidden = |site: Option<&'static str>| {
            let mut headers = vec![
                ("Cookie", pair.as_str()),
                ("Host", "127.0.0.1:9750"),
                ("Origin", "null"),
            ];
            headers.extend(site.map(|s| ("Sec-Fetch-Site", s)));
            post(&headers)
        };
        let token = Some(first.token.as_str());
        assert_eq!(csrf.check(&hidden(Some("same-origin")), token), Ok(()));
        assert!(csrf.check(&hidden(Some("cross-site")), token).is_err());
        assert!(
            csrf.check(&hidden(None), token).is_err(),
            "no word on the site"
        );
    }
}
