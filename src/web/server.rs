//! The HTTP server: tiny_http accepts and parses; a fixed pool of threads,
//! each with its own store connection, answers. Every response gets the
//! security headers and `Server-Timing: app;dur=<ms>` (the time spent
//! answering, which the benchmark reads). SIGTERM or SIGINT stops it: the
//! threads finish the request in hand and the process exits 0.

use super::auth::Auth;
use super::csrf::Csrf;
use super::http::{MAX_BODY, Method, Reply, Request};
use super::listen::{Listeners, is_loopback};
use super::routes::{self, Connection};
use super::{App, WebOptions};
use crate::error::{Error, Result};
use crate::paths::StateDir;
use crate::systemd::notify::Notifier;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the browser may load and run: only our own assets; no inline
/// script or style, no framing, forms post only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn serve(options: WebOptions) -> Result<()> {
    let auth = Auth::load(
        options.auth_token_file.as_deref(),
        options.auth_basic_file.as_deref(),
    )?;
    let open_exposure = auth.is_none() && options.insecure_no_auth;
    // Before any thread: activation reads and clears the environment.
    let listeners = Listeners::open(options.listen, |addresses| {
        let exposed = exposed(addresses);
        if auth.is_none() && !options.insecure_no_auth && !exposed.is_empty() {
            return Err(Error::Invalid(format!(
                "refusing to serve {} without authentication: give --auth-token-file or \
                 --auth-basic-file (or --insecure-no-auth to serve it open)",
                exposed.join(", ")
            )));
        }
        Ok(())
    })?;
    let addresses = listeners.addresses();
    let exposed = exposed(&addresses);
    if open_exposure && !exposed.is_empty() {
        eprintln!(
            "queuectl: warning: serving {} without authentication: anyone who reaches it reads the queue{}",
            exposed.join(", "),
            if options.allow_actions {
                " and acts on it"
            } else {
                ""
            }
        );
    }
    let loopback_only = auth.is_none() && exposed.is_empty();
    let app = Arc::new(App {
        loopback_only,
        state: StateDir::for_db(&options.db),
        db: options.db,
        durability: options.durability,
        actions: options.allow_actions,
        auth,
        csrf: Csrf::new(),
        host: crate::worker::hostname(),
    });
    let servers: Vec<Arc<tiny_http::Server>> = listeners
        .sockets
        .into_iter()
        .map(|socket| {
            tiny_http::Server::from_listener(socket, None)
                .map(Arc::new)
                .map_err(|e| Error::io("cannot serve", std::io::Error::other(e.to_string())))
        })
        .collect::<Result<_>>()?;
    for address in &addresses {
        eprintln!("listening on http://{address}");
    }

    let stopping = Arc::new(AtomicBool::new(false));
    let threads = options.threads.max(1);
    let mut pool = Vec::new();
    for server in &servers {
        for n in 0..threads {
            let (server, app, stopping) = (server.clone(), app.clone(), stopping.clone());
            let thread = std::thread::Builder::new()
                .name(format!("web-{n}"))
                .spawn(move || answer_requests(&server, &app, &stopping))
                .map_err(|e| Error::io("cannot start a request thread", e))?;
            pool.push(thread);
        }
    }
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .map_err(|e| Error::io("cannot handle signals", e))?;
    let notifier = Notifier::from_env();
    let shown: Vec<String> = addresses.iter().map(|a| format!("http://{a}")).collect();
    notifier.ready(&format!("serving {}", shown.join(" ")));
    if let Some(signal) = signals.forever().next() {
        let name = if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        eprintln!("queuectl: stopping on {name}");
    }
    notifier.stopping("stopping");
    stopping.store(true, Ordering::SeqCst);
    for server in &servers {
        for _ in 0..threads {
            server.unblock();
        }
    }
    for thread in pool {
        let _ = thread.join();
    }
    Ok(())
}

/// The addresses of `addresses` that other hosts can reach.
fn exposed(addresses: &[std::net::SocketAddr]) -> Vec<String> {
    addresses
        .iter()
        .filter(|a| !is_loopback(a))
        .map(ToString::to_string)
        .collect()
}

/// One pool thread: answers requests until the server is unblocked.
fn answer_requests(server: &tiny_http::Server, app: &App, stopping: &AtomicBool) {
    let mut connection = Connection::default();
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot accept a connection");
                continue;
            }
        };
        answer(request, app, &mut connection);
    }
}

fn answer(mut raw: tiny_http::Request, app: &App, connection: &mut Connection) {
    let started = Instant::now();
    let method = match raw.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    };
    let headers = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_owned(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let url = raw.url().to_owned();
    let (body, refused) = match read_body(&mut raw) {
        Ok(body) => (body, None),
        Err(refused) => (vec![], Some(refused)),
    };
    let request = Request::new(method, &url, headers, body);
    let reply = if let Some(refusal) = refused {
        let (status, why) = match refusal {
            BodyRefused::TooLarge => (
                413,
                format!("the request body is larger than {MAX_BODY} bytes"),
            ),
            BodyRefused::Stalled => (408, "the request body did not arrive".to_owned()),
        };
        routes::failure(app, &request, status, &why)
    } else {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            routes::handle(app, connection, &request)
        })) {
            Ok(reply) => reply,
            Err(_) => {
                // Whatever the store was doing is suspect: start afresh.
                *connection = Connection::default();
                routes::failure(app, &request, 500, "internal error (see the server's log)")
            }
        }
    };
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(
        method = raw.method().as_str(),
        // Debug-quoted: a hostile path cannot forge log lines.
        path = ?request.path,
        status = reply.status,
        ms = format!("{millis:.1}"),
        "request"
    );
    if let Err(e) = raw.respond(response(reply, millis)) {
        tracing::debug!(error = %e, "cannot send a response");
    }
}

/// Why a request's body was not read.
#[derive(Clone, Copy, Debug)]
enum BodyRefused {
    /// Longer than [`MAX_BODY`], by its Content-Length or as sent.
    TooLarge,
    /// The client stopped sending it (the socket's read timeout).
    Stalled,
}

/// The body, up to [`MAX_BODY`]. A longer one is refused by its claimed
/// length before a byte is read; the patched tiny_http (vendor/) leaves it
/// unread and closes the connection after the reply.
fn read_body(raw: &mut tiny_http::Request) -> std::result::Result<Vec<u8>, BodyRefused> {
    if raw.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(BodyRefused::TooLarge);
    }
    let mut body = Vec::new();
    raw.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|_| BodyRefused::Stalled)?;
    if body.len() > MAX_BODY {
        return Err(BodyRefused::TooLarge);
    }
    Ok(body)
}

fn response(reply: Reply, millis: f64) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let caches = reply.headers.iter().any(|(n, _)| *n == "Cache-Control");
    let common = [
        ("Content-Type", reply.content_type.to_owned()),
        (
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY.to_owned(),
        ),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("Referrer-Policy", "no-referrer".to_owned()),
        ("Server-Timing", format!("app;dur={millis:.2}")),
    ];
    let fresh = (!caches).then(|| ("Cache-Control", "no-store".to_owned()));
    for (name, value) in common.into_iter().chain(fresh).chain(reply.headers) {
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => response.add_header(header),
            Err(()) => tracing::warn!(header = name, "a header value that cannot be sent"),
        }
    }
    response
}
