//! Requests and replies as the routes see them, apart from tiny_http: a
//! request already read (path decoded, query and form split, body bounded)
//! and a reply the server finishes with the headers every response carries.

use percent_encoding::percent_decode_str;
use serde::Serialize;

/// The most a request body may hold: actions post a few short fields.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

/// One request, read.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path, percent-decoded (lossily: a job id is ASCII).
    pub path: String,
    /// The path's segments, each decoded on its own (an encoded `/` stays
    /// inside its segment): `/jobs/a%2Fb` is `["jobs", "a/b"]`.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Splits `url` (path and query, as sent) into its parts.
    pub fn new(method: Method, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Request {
            method,
            path: decode(path, false),
            segments: path
                .strip_prefix('/')
                .unwrap_or(path)
                .split('/')
                .map(|segment| decode(segment, false))
                .collect(),
            query: pairs(query),
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
            body,
        }
    }

    /// A header's value (the first, if sent more than once).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's first non-empty value (an empty filter field
    /// means no filter).
    pub fn param(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    /// Every value of a query parameter (`state=dead&state=failed`).
    pub fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Vec<(String, String)> {
        pairs(&String::from_utf8_lossy(&self.body))
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Whether the client asked for JSON rather than a page.
    pub fn wants_json(&self) -> bool {
        self.path.starts_with("/api/")
            || self
                .header("accept")
                .is_some_and(|a| a.contains("application/json"))
    }
}

/// The first non-empty value of `name` in `pairs`.
pub fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// `a=1&b=x%20y` as pairs, `+` read as a space (form encoding).
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            (decode(name, true), decode(value, true))
        })
        .collect()
}

fn decode(text: &str, plus_is_space: bool) -> String {
    let text = if plus_is_space {
        text.replace('+', " ")
    } else {
        text.to_owned()
    };
    percent_decode_str(&text).decode_utf8_lossy().into_owned()
}

/// A reply before the server adds the common headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            headers: vec![],
            body: body.into(),
        }
    }

    pub fn html(status: u16, markup: maud::Markup) -> Reply {
        Reply::new(status, HTML, markup.into_string())
    }

    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        let mut body = serde_json::to_vec_pretty(value).expect("replies serialize");
        body.push(b'\n');
        Reply::new(status, JSON, body)
    }

    pub fn text(status: u16, text: impl Into<String>) -> Reply {
        Reply::new(status, TEXT, text.into())
    }

    /// `303 See Other` to `location` (a path of ours).
    pub fn see_other(location: &str) -> Reply {
        Reply::text(303, format!("see {location}\n")).with("Location", location)
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_queries_forms_and_cookies_are_decoded() {
        let request = Request::new(
            Method::Post,
            "/jobs/a%2Db/retry?state=dead&state=&q=a+b%26c&state=failed",
            vec![
                ("Cookie".into(), "x=1; queuectl_csrf=abc; y=2".into()),
                ("Accept".into(), "application/json".into()),
            ],
            b"csrf=t%3D1&older_than=7d".to_vec(),
        );
        assert_eq!(request.path, "/jobs/a-b/retry");
        assert_eq!(request.segments, ["jobs", "a-b", "retry"]);
        let encoded_slash = Request::new(Method::Get, "/jobs/%3Cb%3E%2Fi", vec![], vec![]);
        assert_eq!(encoded_slash.segments, ["jobs", "<b>/i"]);
        assert_eq!(
            request.params("state").collect::<Vec<_>>(),
            ["dead", "failed"]
        );
        assert_eq!(request.param("q"), Some("a b&c"));
        assert_eq!(request.cookie("queuectl_csrf"), Some("abc"));
        assert_eq!(first(&request.form(), "csrf"), Some("t=1"));
        assert!(request.wants_json());
        assert_eq!(request.header("ACCEPT"), Some("application/json"));
    }
}
