//! A PostgreSQL address as the user writes it (`postgres://` URL or libpq
//! `key=value` conninfo), parsed into libpq's parameters and shown without
//! its password. Parsing never echoes a value (it may be the password): an
//! error names the parameter by keyword or position. Nothing here reads the
//! environment or the network; `connect` fills the defaults.

use crate::domain::percent::{decode, encode};
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// libpq's connection keywords (PostgreSQL 17), so that `key=value` text is
/// told apart from a file name and a misspelt keyword is refused.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// The keywords queuectl honours. The first group goes to tokio-postgres as
/// it is (`keepalives_count` under its name there, `keepalives_retries`);
/// the rest `connect` handles itself.
const PASSED_ON: &[(&str, &str)] = &[
    ("host", "host"),
    ("hostaddr", "hostaddr"),
    ("port", "port"),
    ("dbname", "dbname"),
    ("user", "user"),
    ("options", "options"),
    ("application_name", "application_name"),
    ("connect_timeout", "connect_timeout"),
    ("keepalives", "keepalives"),
    ("keepalives_idle", "keepalives_idle"),
    ("keepalives_interval", "keepalives_interval"),
    ("keepalives_count", "keepalives_retries"),
    ("target_session_attrs", "target_session_attrs"),
    ("channel_binding", "channel_binding"),
    ("load_balance_hosts", "load_balance_hosts"),
    ("sslnegotiation", "sslnegotiation"),
];
const HANDLED_HERE: &[&str] = &[
    "password",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslsni",
    "client_encoding",
    "fallback_application_name",
    // libpq's milliseconds; tokio-postgres would read seconds.
    "tcp_user_timeout",
];

/// The TLS modes of libpq that queuectl supports (not `allow`).
pub(super) const SSL_MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Url,
    KeyValue,
}

/// A PostgreSQL database to connect to: libpq's parameters, in the order
/// given (a repeated keyword keeps its last value). `Display` and `Debug`
/// show `postgresql://user@host:port/dbname` and nothing else: never the
/// password, never other parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    text: String,
    form: Form,
    params: Vec<(String, String)>,
}

impl PgTarget {
    /// Whether `text` is meant as a PostgreSQL address rather than an SQLite
    /// file's path: a `postgres://`/`postgresql://` URL, or conninfo whose
    /// first word is `KEYWORD=` with a libpq keyword.
    pub fn looks_like(text: &str) -> bool {
        if url_rest(text).is_some() {
            return true;
        }
        let text = text.trim_start();
        let key_end = text
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(text.len());
        let after = text[key_end..].trim_start();
        after.starts_with('=') && LIBPQ_KEYWORDS.contains(&&text[..key_end])
    }

    /// Parses and validates an address (URL or conninfo, as libpq reads
    /// them). Errors say what is wrong without quoting any value.
    pub fn parse(text: &str) -> Result<PgTarget> {
        let invalid = |why: String| Error::Invalid(format!("invalid PostgreSQL address: {why}"));
        let (form, raw) = match url_rest(text) {
            Some(rest) => (Form::Url, parse_url(rest).map_err(invalid)?),
            None => (Form::KeyValue, parse_key_values(text).map_err(invalid)?),
        };
        let mut params: Vec<(String, String)> = Vec::new();
        for (key, value) in raw {
            params.retain(|(k, _)| *k != key);
            params.push((key, value));
        }
        let target = PgTarget {
            text: text.to_owned(),
            form,
            params,
        };
        target.validate().map_err(invalid)?;
        Ok(target)
    }

    /// The address as given, password included: for connecting only, never
    /// for a message, a log or another process's argv.
    pub fn conninfo(&self) -> &str {
        &self.text
    }

    /// The same address without its password, still good to connect with
    /// (the password then comes from `PGPASSWORD`, a password file or
    /// pgpass): for argv and unit files. A URL stays a URL, conninfo stays
    /// conninfo.
    pub fn without_password(&self) -> String {
        match self.form {
            Form::Url => url_without_password(&self.text),
            Form::KeyValue => self
                .params
                .iter()
                .filter(|(key, _)| key != "password")
                .map(|(key, value)| format!("{key}={}", quote_conninfo(value)))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The password written in the address itself, if any (an empty one
    /// counts as none, as in libpq).
    pub fn inline_password(&self) -> Option<&str> {
        self.get("password").filter(|p| !p.is_empty())
    }

    /// The same server, user and settings, naming database `name` instead
    /// (as conninfo): a benchmark's scratch database beside the user's.
    pub fn with_dbname(&self, name: &str) -> PgTarget {
        self.with_param("dbname", name)
    }

    /// The same address with `key` set to `value` where the address does
    /// not set it (a variable such as `PGCONNECT_TIMEOUT` then no longer
    /// counts): shell completion's short `connect_timeout`.
    pub fn with_default(&self, key: &str, value: &str) -> PgTarget {
        match self.get(key) {
            Some(_) => self.clone(),
            None => self.with_param(key, value),
        }
    }

    /// The same parameters (as conninfo) but `key`, which is `value`.
    fn with_param(&self, key: &str, value: &str) -> PgTarget {
        let mut conninfo: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| k != key)
            .map(|(k, v)| format!("{k}={}", quote_conninfo(v)))
            .collect();
        conninfo.push(format!("{key}={}", quote_conninfo(value)));
        PgTarget::parse(&conninfo.join(" ")).expect("parameters that parsed before parse again")
    }

    /// A parameter's value as the address gives it.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters tokio-postgres takes as they are, under its names,
    /// but for the host list, which `connect` resolves itself.
    pub(super) fn passed_on(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.params.iter().filter_map(|(key, value)| {
            let (_, theirs) = PASSED_ON.iter().find(|(ours, _)| ours == key)?;
            let per_host = matches!(*theirs, "host" | "hostaddr" | "port");
            (!per_host).then_some((*theirs, value.as_str()))
        })
    }

    fn validate(&self) -> Result<(), String> {
        for (key, value) in &self.params {
            if let Some((_, theirs)) = PASSED_ON.iter().find(|(ours, _)| ours == key) {
                // tokio-postgres checks the value; its error is replaced by
                // ours, which names the keyword but not the value.
                let one = format!("{theirs}={}", quote_conninfo(value));
                if postgres::Config::from_str(&one).is_err() {
                    return Err(format!("invalid value for `{key}`"));
                }
            } else if !HANDLED_HERE.contains(&key.as_str()) {
                return Err(format!("`{key}` is not supported by queuectl"));
            }
        }
        if let Some(mode) = self.get("sslmode")
            && !SSL_MODES.contains(&mode)
        {
            return Err(format!(
                "invalid value for `sslmode` (one of {})",
                SSL_MODES.join(", ")
            ));
        }
        if let Some(sni) = self.get("sslsni")
            && sni != "1"
        {
            return Err("`sslsni` can only be 1 (rustls always sends it)".into());
        }
        if let Some(timeout) = self.get("tcp_user_timeout")
            && timeout.parse::<u64>().is_err()
        {
            return Err("invalid value for `tcp_user_timeout` (milliseconds)".into());
        }
        if let Some(encoding) = self.get("client_encoding")
            && !encoding.eq_ignore_ascii_case("utf8")
        {
            return Err("`client_encoding` can only be UTF8".into());
        }
        let hosts = self.list("host").len();
        let hostaddrs = self.list("hostaddr").len();
        if hosts > 0 && hostaddrs > 0 && hosts != hostaddrs {
            return Err("`host` and `hostaddr` list different numbers of hosts".into());
        }
        let ports = self.list("port").len();
        if ports > 1 && ports != hosts.max(hostaddrs) {
            return Err("`port` lists a different number of ports than there are hosts".into());
        }
        Ok(())
    }

    /// Sets `key` unless the address gives it (a default from the
    /// environment).
    pub(super) fn set_default(&mut self, key: &str, value: &str) {
        if self.get(key).is_none() {
            self.params.push((key.to_owned(), value.to_owned()));
        }
    }

    /// A comma-separated parameter (host, hostaddr, port) as a list; empty
    /// when absent.
    pub(super) fn list(&self, key: &str) -> Vec<&str> {
        self.get(key)
            .map(|v| v.split(',').collect())
            .unwrap_or_default()
    }
}

/// The text after a URL's scheme, when it is a PostgreSQL URL.
fn url_rest(text: &str) -> Option<&str> {
    text.strip_prefix("postgresql://")
        .or_else(|| text.strip_prefix("postgres://"))
}

/// `[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`, as
/// libpq reads it (percent-encoding in every part; `[...]` around IPv6).
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, String> {
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let mut params = Vec::new();
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.push(("user".into(), decode(user, "the user name")?));
            }
            if let Some(password) = password {
                params.push(("password".into(), decode(password, "the password")?));
            }
            hostspec
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for chunk in hostspec.split(',') {
            let (host, port) = split_host_port(chunk)?;
            hosts.push(decode(host, "a host")?);
            ports.push(decode(port, "a port")?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            params.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            params.push(("port".into(), ports.join(",")));
        }
    }
    if !path.is_empty() {
        params.push(("dbname".into(), decode(path, "the database name")?));
    }
    for (number, pair) in query.split('&').filter(|p| !p.is_empty()).enumerate() {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("URL parameter {} has no `=`", number + 1));
        };
        let key = decode(key, "a parameter name")?;
        let value = decode(value, "a parameter value")?;
        // libpq takes JDBC's `ssl=true` as `sslmode=require`.
        if key == "ssl" && value == "true" {
            params.push(("sslmode".into(), "require".into()));
            continue;
        }
        if !LIBPQ_KEYWORDS.contains(&key.as_str()) {
            return Err(format!(
                "URL parameter {} is not a libpq connection keyword",
                number + 1
            ));
        }
        params.push((key, value));
    }
    Ok(params)
}

/// `host[:port]` or `[ipv6][:port]`, still encoded.
fn split_host_port(chunk: &str) -> Result<(&str, &str), String> {
    if let Some(bracketed) = chunk.strip_prefix('[') {
        let Some((host, rest)) = bracketed.split_once(']') else {
            return Err("an IPv6 host has no closing `]`".into());
        };
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, port)),
            None if rest.is_empty() => Ok((host, "")),
            None => Err("unexpected text after an IPv6 host's `]`".into()),
        };
    }
    Ok(chunk.split_once(':').unwrap_or((chunk, "")))
}

/// libpq's `key = value` list: values bare (backslash escapes the next
/// character) or in single quotes (with `\'` and `\\`).
fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    for number in 1.. {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        // Not a keyword: it may be a password written in the wrong place,
        // so it is named by position only.
        if !LIBPQ_KEYWORDS.contains(&key.as_str()) {
            return Err(format!(
                "connection parameter {number} is not a libpq keyword (expected key=value pairs)"
            ));
        }
        skip_spaces(&mut chars);
        if chars.next() != Some('=') {
            return Err(format!("`{key}` has no `=` after it"));
        }
        skip_spaces(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(format!("the quoted value of `{key}` has no closing quote"));
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        params.push((key, value));
    }
    Ok(params)
}

/// A conninfo value: bare when that reads back the same, else quoted.
pub(super) fn quote_conninfo(value: &str) -> String {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '\\'));
    if bare {
        return value.to_owned();
    }
    let mut quoted = String::from("'");
    for c in value.chars() {
        if matches!(c, '\'' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

/// The URL with the password cut out of its user part and its query; the
/// rest kept as written.
fn url_without_password(text: &str) -> String {
    let rest_start = text.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = text.split_at(rest_start);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            if user.is_empty() {
                hostspec.to_owned()
            } else {
                format!("{user}@{hostspec}")
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
                    decode(key, "").map_or(true, |key| key != "password")
                })
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

impl fmt::Display for PgTarget {
    /// `postgresql://user@host:port,.../dbname`, with what the address
    /// names (a socket directory percent-encoded, as a URL needs it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgresql://")?;
        if let Some(user) = self.get("user") {
            write!(f, "{}@", encode(user))?;
        }
        let mut hosts = self.list("host");
        if hosts.is_empty() {
            hosts = self.list("hostaddr");
        }
        let ports = self.list("port");
        let count = hosts.len().max(ports.len());
        for i in 0..count {
            if i > 0 {
                f.write_str(",")?;
            }
            match hosts.get(i).copied().unwrap_or("") {
                host if host.contains(':') && !host.starts_with('/') => write!(f, "[{host}]")?,
                host => f.write_str(&encode(host))?,
            }
            let port = ports.get(i).or(ports.first()).copied().unwrap_or("");
            if !port.is_empty() {
                write!(f, ":{}", encode(port))?;
            }
        }
        f.write_str("/")?;
        if let Some(dbname) = self.get("dbname") {
            f.write_str(&encode(dbname))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr:t@pw";

    #[test]
    fn with_dbname_keeps_everything_but_the_database() {
        let url = PgTarget::parse("postgresql://u:p%20w@h1:5433/queue?sslmode=require").unwrap();
        let other = url.with_dbname("scratch");
        assert_eq!(other.get("dbname"), Some("scratch"));
        for key in ["user", "password", "host", "port", "sslmode"] {
            assert_eq!(other.get(key), url.get(key), "{key}");
        }
        let conninfo = PgTarget::parse("host=/run/postgresql user='a b'").unwrap();
        let other = conninfo.with_dbname("x y");
        assert_eq!(other.get("dbname"), Some("x y"));
        assert_eq!(other.get("user"), Some("a b"));
        assert!(!format!("{other}").contains("p w"));
    }

    #[test]
    fn a_default_fills_only_a_parameter_the_address_leaves_out() {
        let bare = PgTarget::parse("postgresql://u:pw@h1/queue").unwrap();
        let short = bare.with_default("connect_timeout", "2");
        assert_eq!(short.get("connect_timeout"), Some("2"));
        for key in ["user", "password", "host", "dbname"] {
            assert_eq!(short.get(key), bare.get(key), "{key}");
        }
        let given = PgTarget::parse("host=h1 connect_timeout=30").unwrap();
        let kept = given.with_default("connect_timeout", "2");
        assert_eq!(kept.get("connect_timeout"), Some("30"));
    }

    #[test]
    fn urls_and_conninfo_are_postgres_anything_else_a_path() {
        for text in [
            "postgres://db.example/jobs",
            "postgresql://",
            "host=/run/postgresql dbname=jobs",
            "dbname=jobs",
            "  user = me",
            "sslmode=require host=db",
        ] {
            assert!(PgTarget::looks_like(text), "{text}");
        }
        for text in [
            "jobs.db",
            "/var/lib/queuectl/queue.db",
            "./host=x",
            "hosts=x",
            "data base=x",
            "=x",
            "",
            "postgres:/x",
            "file:jobs.db",
        ] {
            assert!(!PgTarget::looks_like(text), "{text}");
        }
    }

    #[test]
    fn a_url_gives_libpq_parameters() {
        let t = PgTarget::parse(
            "postgresql://me:s3cr%3At%40pw@db.example:5433,[::1],%2Frun%2Fpostgresql/my%20jobs?sslmode=verify-full&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(t.get("user"), Some("me"));
        assert_eq!(t.inline_password(), Some(SECRET));
        assert_eq!(t.get("host"), Some("db.example,::1,/run/postgresql"));
        assert_eq!(t.get("port"), Some("5433,,"));
        assert_eq!(t.get("dbname"), Some("my jobs"));
        assert_eq!(t.get("sslmode"), Some("verify-full"));
        assert_eq!(t.get("connect_timeout"), Some("3"));
        assert_eq!(
            t.to_string(),
            "postgresql://me@db.example:5433,[::1],%2Frun%2Fpostgresql/my%20jobs"
        );
    }

    #[test]
    fn conninfo_gives_libpq_parameters_with_quotes_and_escapes() {
        let t = PgTarget::parse(
            r"host = /run/postgresql  dbname='my jobs' user=o\'neil password='s3cr:t@pw' port=5433",
        )
        .unwrap();
        assert_eq!(t.get("host"), Some("/run/postgresql"));
        assert_eq!(t.get("dbname"), Some("my jobs"));
        assert_eq!(t.get("user"), Some("o'neil"));
        assert_eq!(t.inline_password(), Some(SECRET));
        assert_eq!(
            t.to_string(),
            "postgresql://o%27neil@%2Frun%2Fpostgresql:5433/my%20jobs"
        );
        let quoted = PgTarget::parse(r"password='it\'s \\ here' dbname=x").unwrap();
        assert_eq!(quoted.inline_password(), Some(r"it's \ here"));
    }

    #[test]
    fn one_port_applies_to_every_host_in_display() {
        let t = PgTarget::parse("host=a,b port=6000 dbname=q").unwrap();
        assert_eq!(t.to_string(), "postgresql://a:6000,b:6000/q");
        let bare = PgTarget::parse("postgresql:///q?host=/tmp/pg&password=x").unwrap();
        assert_eq!(bare.to_string(), "postgresql://%2Ftmp%2Fpg/q");
        let addr = PgTarget::parse("hostaddr=10.0.0.5 port=5433").unwrap();
        assert_eq!(addr.to_string(), "postgresql://10.0.0.5:5433/");
    }

    #[test]
    fn display_and_debug_never_show_the_password_or_other_parameters() {
        for text in [
            format!(
                "postgresql://me:{}@h/db?application_name=zz",
                "s3cr%3At%40pw"
            ),
            format!(
                "postgresql://me@h/db?password={}&options=-c%20x%3Dy",
                "s3cr%3At%40pw"
            ),
            format!("user=me password='{SECRET}' host=h dbname=db options='-c x=y'"),
        ] {
            let t = PgTarget::parse(&text).unwrap();
            for shown in [t.to_string(), format!("{t:?}")] {
                assert!(!shown.contains("s3cr"), "{shown}");
                assert!(!shown.contains("x=y") && !shown.contains("zz"), "{shown}");
                assert!(shown.contains("postgresql://me@h/db"), "{shown}");
            }
        }
    }

    #[test]
    fn without_password_keeps_everything_else_and_parses_back() {
        let cases = [
            (
                "postgresql://me:pw%40x@h1:5433,h2/jobs?sslmode=require&password=zz&connect_timeout=4",
                "postgresql://me@h1:5433,h2/jobs?sslmode=require&connect_timeout=4",
            ),
            ("postgres://:pw@h/jobs", "postgres://h/jobs"),
            ("postgres://h/jobs?password=pw", "postgres://h/jobs"),
            ("postgres://me@h", "postgres://me@h"),
            (
                "host=/run/postgresql password='a b' dbname='my jobs' sslrootcert=/etc/ca.pem",
                "host=/run/postgresql dbname='my jobs' sslrootcert=/etc/ca.pem",
            ),
        ];
        for (text, expected) in cases {
            let t = PgTarget::parse(text).unwrap();
            let public = t.without_password();
            assert_eq!(public, expected);
            let again = PgTarget::parse(&public).unwrap();
            assert_eq!(again.inline_password(), None);
            let others = |t: &PgTarget| -> Vec<(String, String)> {
                let mut p: Vec<_> = t
                    .params
                    .iter()
                    .filter(|(k, _)| k != "password")
                    .cloned()
                    .collect();
                p.sort();
                p
            };
            assert_eq!(others(&again), others(&t), "{text}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_keyword_wins() {
        let t = PgTarget::parse("dbname=a dbname=b").unwrap();
        assert_eq!(t.get("dbname"), Some("b"));
        assert_eq!(t.without_password(), "dbname=b");
    }

    #[test]
    fn errors_never_echo_a_value() {
        let cases = [
            format!("host=h {SECRET}"),
            format!("password='{SECRET}"),
            format!("host=h port={SECRET}"),
            format!("postgresql://me:{SECRET}%zz@h/db"),
            format!("postgresql://h/db?{SECRET}"),
            format!("postgresql://h/db?password={SECRET}%"),
            format!("postgresql://h/db?{SECRET}=1"),
            format!("host=h sslmode={SECRET}"),
            format!("host=h connect_timeout={SECRET}"),
            format!("hostaddr={SECRET}"),
            format!("password={SECRET} sslcert=/x"),
            format!("postgresql://me:{SECRET}@[::1/db"),
        ];
        for text in cases {
            let err = PgTarget::parse(&text).unwrap_err().to_string();
            assert!(err.starts_with("invalid PostgreSQL address: "), "{err}");
            assert!(
                !err.contains("s3cr") && !err.contains("pw"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |text: &str| PgTarget::parse(text).unwrap_err().to_string();
        assert!(err("host=h port=x").contains("`port`"));
        assert!(err("sslmode=allow").contains("`sslmode`"));
        assert!(err("sslcert=/c").contains("`sslcert` is not supported"));
        assert!(err("dbname=q hots=x").contains("parameter 2 is not a libpq keyword"));
        assert!(err("host=a,b,c port=1,2").contains("`port`"));
        assert!(err("host=a,b hostaddr=10.0.0.1").contains("`hostaddr`"));
        assert!(err("postgresql://h/?sslmod=require").contains("URL parameter 1"));
        assert!(err("dbname").contains("`dbname` has no `=`"));
    }

    #[test]
    fn jdbc_ssl_true_means_require() {
        let t = PgTarget::parse("postgresql://h/db?ssl=true").unwrap();
        assert_eq!(t.get("sslmode"), Some("require"));
    }

    #[test]
    fn keepalives_count_reaches_tokio_postgres_under_its_name() {
        let t = PgTarget::parse("host=h keepalives_count=4 port=5 passfile=/p").unwrap();
        let passed: Vec<_> = t.passed_on().collect();
        assert_eq!(passed, [("keepalives_retries", "4")]);
    }
}
