//! Which request gets which reply: authentication first, then the path and
//! method, then the handler; errors become the status code the CLI's exit
//! code stands for (not found 404, wrong state 409, bad input 400, database
//! 503), as a page or as JSON by what the client asked for.

use super::actions::JobAction;
use super::assets;
use super::http::{Method, Reply, Request};
use super::render::{self, Page};
use super::{App, actions, api};
use crate::error::{Error, Result};
use crate::store::Store;

/// One request thread's store connection, opened on first use and again
/// after the database failed (it may be back).
#[derive(Default)]
pub struct Connection {
    store: Option<Store>,
}

impl Connection {
    /// The store, opening it if needed.
    pub fn store(&mut self, app: &App) -> Result<&mut Store> {
        if self.store.is_none() {
            self.store = Some(app.open_store()?);
        }
        Ok(self.store.as_mut().expect("just opened"))
    }

    /// Runs `read` on the store; drops the connection when the database
    /// failed, so the next request connects afresh.
    pub fn with<T>(&mut self, app: &App, read: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let result = read(self.store(app)?);
        if result.as_ref().is_err_and(|e| status_of(e) == 503) {
            self.store = None;
        }
        result
    }
}

/// The reply to `request`.
pub fn handle(app: &App, connection: &mut Connection, request: &Request) -> Reply {
    if let Some((status, why)) = refusal(app, request) {
        let reply = failure(app, request, status, why);
        return match &app.auth {
            Some(auth) if status == 401 => reply.with("WWW-Authenticate", auth.challenge()),
            _ => reply,
        };
    }
    route(app, connection, request)
        .unwrap_or_else(|e| failure(app, request, status_of(&e), &e.to_string()))
}

/// The status and reason `request` is refused with before anything of the
/// queue is read: a foreign host name on an open loopback dashboard (403),
/// missing or wrong credentials (401).
fn refusal(app: &App, request: &Request) -> Option<(u16, &'static str)> {
    if app.loopback_only && !names_loopback(request.header("host")) {
        return Some((
            403,
            "without authentication this dashboard answers only to localhost or a loopback address",
        ));
    }
    match &app.auth {
        Some(auth) if !auth.allows(request) => Some((401, "authentication required")),
        _ => None,
    }
}

fn route(app: &App, connection: &mut Connection, request: &Request) -> Result<Reply> {
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        // Liveness: the server answers; the queue is not touched (a
        // restart would not mend an unreadable queue).
        ["healthz"] => get(app, request, || Ok(Reply::text(200, "ok\n"))),
        // Readiness: the queue can be read (503 and why when not).
        ["readyz"] => get(app, request, || {
            connection.with(app, |store| store.now())?;
            Ok(Reply::text(200, "ready\n"))
        }),
        ["metrics"] => get(app, request, || {
            let text = connection.with(app, super::metrics::exposition)?;
            Ok(Reply::new(200, super::metrics::CONTENT_TYPE, text))
        }),
        ["api", endpoint @ ..] => match api_of(endpoint) {
            Some(api) => get(app, request, || read_api(app, connection, request, api)),
            None => Ok(not_found(app, request)),
        },
        ["jobs", id, word] if !id.is_empty() && JobAction::parse(word).is_some() => {
            let action = JobAction::parse(word).expect("matched");
            post(app, request, || {
                actions::on_job(app, connection, request, id, action)
            })
        }
        ["dlq", "purge"] => post(app, request, || actions::purge(app, connection, request)),
        ["assets", name] => get(app, request, || Ok(asset(app, request, name))),
        _ => match Page::at(&segments) {
            Some(page) => get(app, request, || show_page(app, connection, request, page)),
            None => Ok(not_found(app, request)),
        },
    }
}

/// A JSON endpoint.
#[derive(Clone, Copy)]
enum Api<'a> {
    Status,
    Overview,
    Jobs,
    Job(&'a str),
    Dlq,
    Workers,
    Queues,
    Schedules,
}

/// The endpoint at `/api/<endpoint>`.
fn api_of<'a>(endpoint: &[&'a str]) -> Option<Api<'a>> {
    Some(match endpoint {
        ["status"] => Api::Status,
        ["overview"] => Api::Overview,
        ["jobs"] => Api::Jobs,
        ["jobs", id] if !id.is_empty() => Api::Job(id),
        ["dlq"] => Api::Dlq,
        ["workers"] => Api::Workers,
        ["queues"] => Api::Queues,
        ["schedules"] => Api::Schedules,
        _ => return None,
    })
}

fn read_api(app: &App, connection: &mut Connection, request: &Request, api: Api) -> Result<Reply> {
    Ok(Reply::json(200, &read(app, connection, request, api)?))
}

/// What endpoint `api` returns.
fn read(
    app: &App,
    connection: &mut Connection,
    request: &Request,
    api: Api,
) -> Result<serde_json::Value> {
    let host = app.host.as_str();
    let value = match api {
        Api::Status => connection.with(app, |s| api::status(s, host))?,
        Api::Overview => connection.with(app, api::overview)?,
        Api::Jobs => {
            let search = api::job_search(request)?;
            connection.with(app, |s| api::jobs(s, &search))?
        }
        Api::Job(id) => connection.with(app, |s| api::job(s, id))?,
        Api::Dlq => connection.with(app, api::dlq)?,
        Api::Workers => connection.with(app, |s| api::workers_json(s, host))?,
        Api::Queues => connection.with(app, api::queues)?,
        Api::Schedules => connection.with(app, |s| api::schedules(s, host))?,
    };
    Ok(value)
}

/// A page, read and rendered, with the CSRF cookie when actions are on
/// and the browser has none yet (a read-only dashboard sets no cookie).
fn show_page(
    app: &App,
    connection: &mut Connection,
    request: &Request,
    page: Page,
) -> Result<Reply> {
    let issued = app.actions.then(|| app.csrf.issue(request));
    let csrf = issued.as_ref().map(|i| i.token.clone());
    let markup = connection.with(app, |store| render::page(app, store, request, page, csrf))?;
    let reply = Reply::html(200, markup);
    Ok(match issued.and_then(|i| i.set_cookie) {
        Some(cookie) => reply.with("Set-Cookie", cookie),
        None => reply,
    })
}

/// An embedded file; cached for good when asked for by its content's
/// hash (the URL pages use), else revalidated.
fn asset(app: &App, request: &Request, name: &str) -> Reply {
    let Some(asset) = assets::asset(name) else {
        return not_found(app, request);
    };
    let cache = if request.param("v") == Some(asset.hash) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Reply::new(200, asset.content_type, asset.bytes).with("Cache-Control", cache)
}

/// `handler`'s reply for GET (and HEAD); 405 for other methods.
fn get(app: &App, request: &Request, handler: impl FnOnce() -> Result<Reply>) -> Result<Reply> {
    match request.method {
        Method::Get | Method::Head => handler(),
        _ => {
            Ok(failure(app, request, 405, "this address only answers GET")
                .with("Allow", "GET, HEAD"))
        }
    }
}

/// `handler`'s reply for POST; 405 for other methods.
fn post(app: &App, request: &Request, handler: impl FnOnce() -> Result<Reply>) -> Result<Reply> {
    match request.method {
        Method::Post => handler(),
        _ => Ok(failure(app, request, 405, "this address only answers POST").with("Allow", "POST")),
    }
}

pub fn not_found(app: &App, request: &Request) -> Reply {
    failure(app, request, 404, "no such page")
}

/// An error reply: `{"error": message}` to API clients, else a page.
pub fn failure(app: &App, request: &Request, status: u16, message: &str) -> Reply {
    if request.wants_json() {
        return Reply::json(status, &serde_json::json!({ "error": message }));
    }
    if matches!(request.path.as_str(), "/healthz" | "/readyz" | "/metrics") {
        return Reply::text(status, format!("{message}\n"));
    }
    // A client not let in learns nothing of the queue, not even its name.
    let admitted = refusal(app, request).is_none();
    Reply::html(status, render::error(app, status, message, admitted))
}

/// Whether a `Host` header names this machine's loopback: `localhost`,
/// `127.0.0.1`, `[::1]` (any port). Browsers send the name in the address
/// bar, so a rebound foreign name fails here.
fn names_loopback(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP status an error stands for, as its exit code does for the CLI.
pub fn status_of(error: &Error) -> u16 {
    match error {
        Error::Input(_) | Error::Invalid(_) => 400,
        Error::NotFound(_) | Error::ScheduleNotFound(_) | Error::NoAttempt { .. } => 404,
        Error::Conflict(_) => 409,
        Error::NotAllActed { missing: true, .. } => 404,
        Error::NotAllActed { missing: false, .. } => 409,
        Error::NoQueue(_)
        | Error::Database { .. }
        | Error::Postgres { .. }
        | Error::Unreachable { .. }
        | Error::ReadOnly(_)
        | Error::SchemaUpgradeReadOnly { .. }
        | Error::SchemaTooNew { .. } => 503,
        Error::NotCompleted { .. }
        | Error::WaitTimedOut(_)
        | Error::Io { .. }
        | Error::Supervisor(_) => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::names_loopback;

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for host in [
            "localhost:9750",
            "LOCALHOST",
            "127.0.0.1:80",
            "127.1.2.3",
            "[::1]:9750",
        ] {
            assert!(names_loopback(Some(host)), "{host}");
        }
        for host in [
            "evil.example:9750",
            "localhost.evil.example",
            "10.0.0.1:9750",
            "[::2]:1",
            "",
        ] {
            assert!(!names_loopback(Some(host)), "{host}");
        }
        assert!(!names_loopback(None));
    }
}
