//! `queuectl web` over real HTTP: a real server process on an ephemeral
//! port, on the suite's backend, asked with a plain TcpStream client.
//! Every endpoint and status code, authentication, CSRF, the actions, and
//! hostile job data shown as text.

use crate::support::web::{HttpReply, WebServer};
use crate::support::{TestEnv, output_text, signal, wait_until};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const PAGES: [&str; 7] = [
    "/",
    "/jobs",
    "/jobs/done",
    "/dlq",
    "/workers",
    "/queues",
    "/schedules",
];
const APIS: [&str; 8] = [
    "/api/status",
    "/api/overview",
    "/api/jobs",
    "/api/jobs/done",
    "/api/dlq",
    "/api/workers",
    "/api/queues",
    "/api/schedules",
];

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

/// A queue with a completed job `done`, a dead job `dead`, a waiting job
/// `waiting`, and a schedule the workers drive.
fn scene() -> TestEnv {
    let env = TestEnv::new();
    env.ok(&["add", "--id", "done", "--", "echo", "hi"]);
    env.ok(&["add", "--id", "dead", "--retries", "0", "--", "false"]);
    env.ok(&["worker", "run", "--drain"]);
    env.ok(&["add", "--id", "waiting", "--delay", "1h", "--", "true"]);
    let schedule = "schedule add nightly --driver workers --on-calendar daily -- true";
    env.ok(&schedule.split(' ').collect::<Vec<_>>());
    env
}

fn assert_common_headers(path: &str, reply: &HttpReply) {
    let csp = reply.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'"),
        "{path}: CSP {csp:?}"
    );
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{path}"
    );
    let timing = reply.header("server-timing").unwrap_or_default();
    let ms = timing
        .strip_prefix("app;dur=")
        .and_then(|d| d.parse::<f64>().ok());
    assert!(
        ms.is_some_and(|ms| ms >= 0.0),
        "{path}: Server-Timing {timing:?}"
    );
}

#[test]
fn web_serves_every_page_and_endpoint_with_the_security_headers() {
    let mut env = scene();
    let web = env.spawn_web(&[]);
    let health = web.get("/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = web.get("/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    // A PostgreSQL queue is shown by its address without the password.
    let password = env.postgres_db().map(|db| {
        let url = db.url();
        url.split(':')
            .nth(2)
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .to_owned()
    });
    let no_password = |path: &str, body: &str| {
        if let Some(password) = &password {
            assert!(
                !body.contains(password.as_str()),
                "{path}: the password shows"
            );
        }
    };
    assert_common_headers("/healthz", &health);
    for path in PAGES {
        let reply = web.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(reply.body.contains("data-page="), "{path}");
        assert!(
            reply.body.contains(&env.db_shown()),
            "{path}: the queue is named"
        );
        no_password(path, &reply.body);
        assert!(reply.body.contains("data-nav=\"jobs\""), "{path}");
        assert!(
            !reply.body.contains("data-action"),
            "{path}: actions are off"
        );
        assert!(
            reply.header("set-cookie").is_none(),
            "{path}: no cookie when read-only"
        );
        assert_common_headers(path, &reply);
    }
    for path in APIS {
        let reply = web.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        no_password(path, &reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        reply.json();
        assert_common_headers(path, &reply);
    }
    let metrics = web.get("/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        metrics.header("content-type")
    );
    assert!(metrics.body.contains("queuectl_jobs{"), "{}", metrics.body);
    assert_common_headers("/metrics", &metrics);
    let overview = web.get("/api/overview").json();
    let completed: u64 = overview["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "completed")
        .map(|c| c["jobs"].as_u64().unwrap())
        .sum();
    assert_eq!(completed, env.count("completed"), "{overview}");
    // The assets a page links, cached for good under their hash.
    let page = web.get("/queues").body;
    let css = page
        .split("href=\"")
        .map(|rest| rest.split('"').next().unwrap())
        .find(|href| href.starts_with("/assets/app.css?v="))
        .unwrap_or_else(|| panic!("no style sheet link: {page}"));
    let reply = web.get(css);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        reply.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_common_headers(css, &reply);
    let stale = web.get("/assets/app.css?v=0000");
    assert_eq!(
        (stale.status, stale.header("cache-control")),
        (200, Some("no-cache"))
    );
    assert_eq!(web.get("/assets/nope.js").status, 404);
    assert_eq!(web.get("/assets/../Cargo.toml").status, 404);
    let head = web.request("HEAD", "/queues", &[], b"");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

/// Each endpoint prints exactly what the matching CLI command prints with
/// --json (status without the supervisor's view, which needs systemctl).
#[test]
fn web_api_mirrors_the_cli_json() {
    let mut env = scene();
    let web = env.spawn_web(&[]);
    for (path, args) in [
        ("/api/jobs/done", vec!["show", "done"]),
        ("/api/jobs/dead", vec!["show", "dead"]),
        ("/api/dlq", vec!["dlq", "list"]),
        ("/api/queues", vec!["queue", "list"]),
        ("/api/schedules", vec!["schedule", "list"]),
    ] {
        assert_eq!(web.get(path).json(), env.json(&args), "{path} vs {args:?}");
    }
    let api = web.get("/api/status").json();
    let cli = env.json(&["status"]);
    for key in ["db", "counts", "reachable"] {
        assert_eq!(api[key], cli[key], "status {key}");
    }
    assert_eq!(api["supervisor"], serde_json::Value::Null);
    let workers = web.get("/api/workers").json();
    assert_eq!(workers["workers"], api["workers"]);
    assert!(
        workers["workers"].as_array().unwrap().is_empty(),
        "{workers}"
    );
}

#[test]
fn web_answers_unknown_paths_wrong_methods_and_bad_input_with_their_codes() {
    let mut env = scene();
    let web = env.spawn_web(&[]);
    let page = web.get("/no/such/page");
    assert_eq!(page.status, 404);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let api = web.get("/api/nothing");
    assert_eq!(api.status, 404);
    assert!(api.json()["error"].is_string());
    for path in ["/jobs/nope", "/api/jobs/nope"] {
        let reply = web.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            reply.body.contains("job 'nope' not found"),
            "{path}: {}",
            reply.body
        );
        assert_common_headers(path, &reply);
    }
    for path in ["/", "/api/status", "/healthz"] {
        let reply = web.request("POST", path, &[], b"");
        assert_eq!(reply.status, 405, "{path}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{path}");
    }
    let reply = web.get("/jobs/done/retry");
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    for query in ["limit=0", "limit=201", "state=sleeping", "before=x"] {
        let reply = web.get(&format!("/api/jobs?{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(reply.json()["error"].is_string());
    }
    // Refused by its length, before a byte of it is read (so the test
    // sends none: unread bytes would reset the connection).
    let big = format!(
        "POST /jobs/done/retry HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 65536\r\n\r\n",
        web.address
    );
    let reply = crate::support::web::send(&web.address, big.as_bytes());
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_common_headers("413", &reply);
}

/// A Content-Length larger than memory (before authentication, on a GET and
/// on an action) gets its 413 and the connection closes without a byte of
/// the body read; the server keeps serving. (tiny_http 0.12.0 allocated the
/// claimed length when the request was dropped and aborted the process.)
#[test]
fn web_survives_a_content_length_larger_than_memory() {
    let mut env = scene();
    let token = private_file(&env, "token", "t0ken\n", 0o600);
    let web = env.spawn_web(&["--auth-token-file", &token, "--allow-actions"]);
    for (method, path) in [("GET", "/healthz"), ("POST", "/dlq/purge")] {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 99999999999999\r\n\r\n",
            web.address
        );
        // No Connection: close, and the client keeps its side open: the
        // reply ends because the server closes rather than wait for a body.
        let reply = crate::support::web::send(&web.address, head.as_bytes());
        assert_eq!(reply.status, 413, "{method} {path}: {}", reply.body);
        assert_common_headers("413", &reply);
        let right = [("Authorization", "Bearer t0ken")];
        let health = web.request("GET", "/healthz", &right, b"");
        assert_eq!(health.status, 200, "{}", web.log());
    }
    assert!(!web.log().contains("memory allocation"), "{}", web.log());
    // A length past any integer is a body too: what follows it is never
    // read as a request of its own.
    let smuggled = format!(
        "GET /healthz HTTP/1.1\r\nHost: {0}\r\nContent-Length: 99999999999999999999999\r\n\r\n\
         GET /metrics HTTP/1.1\r\nHost: {0}\r\n\r\n",
        web.address
    );
    let mut stream = std::net::TcpStream::connect(&web.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    std::io::Write::write_all(&mut stream, smuggled.as_bytes()).unwrap();
    let mut replies = String::new();
    std::io::Read::read_to_string(&mut stream, &mut replies).unwrap();
    assert_eq!(replies.matches("HTTP/1.1 ").count(), 1, "{replies}");
}

/// A client that stops sending its body gives back the request thread it
/// held: with one thread, another request is still answered, and the
/// stalled one gets 408 (the sockets' read timeout, 30 s).
#[test]
fn web_a_stalled_body_does_not_keep_the_only_thread() {
    use std::io::{Read, Write};
    let mut env = scene();
    let web = env.spawn_web(&["--threads", "1"]);
    // Over 1 KiB, so the request thread (not tiny_http's) reads the body.
    let mut stalled = std::net::TcpStream::connect(&web.address).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "POST /dlq/purge HTTP/1.1\r\nHost: {}\r\nContent-Length: 4000\r\n\r\ncsrf=",
        web.address
    );
    stalled.write_all(head.as_bytes()).unwrap();
    let health = web.get("/healthz");
    assert_eq!(health.status, 200, "{}", web.log());
    let mut reply = Vec::new();
    stalled.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
}

/// Without authentication, a loopback dashboard answers only to loopback
/// names: a foreign page that rebinds its own name to 127.0.0.1 reads nothing.
#[test]
fn web_refuses_foreign_host_names_when_open_on_loopback() {
    let mut env = scene();
    let web = env.spawn_web(&[]);
    let port = web.address.rsplit(':').next().unwrap().to_owned();
    for host in [format!("localhost:{port}"), web.address.clone()] {
        let reply = web.request("GET", "/api/queues", &[("Host", &host)], b"");
        assert_eq!(reply.status, 200, "{host}");
    }
    let reply = web.request(
        "GET",
        "/api/queues",
        &[("Host", &format!("evil.example:{port}"))],
        b"",
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(!reply.body.contains("\"queues\""), "{}", reply.body);
    // With authentication the credentials guard it, whatever the name.
    let token = private_file(&env, "token", "t0ken\n", 0o600);
    let web = env.spawn_web(&["--auth-token-file", &token]);
    let reply = web.request(
        "GET",
        "/api/queues",
        &[
            ("Host", "dashboard.example"),
            ("Authorization", "Bearer t0ken"),
        ],
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn web_says_503_when_the_queue_cannot_be_read() {
    let mut env = TestEnv::new();
    let missing = env.path("nowhere/queue.db");
    let mut cmd = env.cmd();
    cmd.arg("--db")
        .arg(&missing)
        .args(["web", "--listen", "127.0.0.1:0"]);
    let web = env.spawn_web_cmd(cmd);
    let page = web.get("/");
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("no queue at"), "{}", page.body);
    assert!(!page.body.contains("panicked"), "{}", page.body);
    let api = web.get("/api/queues");
    assert_eq!(api.status, 503);
    let metrics = web.get("/metrics");
    assert_eq!(metrics.status, 503, "{}", metrics.body);
    assert!(metrics.body.contains("no queue at"), "{}", metrics.body);
    assert!(
        api.json()["error"]
            .as_str()
            .unwrap()
            .contains("no queue at")
    );
    // Nothing was created; liveness does not need the queue, readiness does.
    assert_eq!(web.get("/healthz").status, 200);
    let ready = web.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("no queue at"), "{}", ready.body);
    assert!(!missing.exists());
    // An unreachable PostgreSQL server: refused connections, the same code.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = env.cmd();
    cmd.arg("--db")
        .arg(format!("postgres://nobody@127.0.0.1:{port}/queue"))
        .args(["web", "--listen", "127.0.0.1:0"]);
    let web = env.spawn_web_cmd(cmd);
    let reply = web.get("/api/status");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        reply.body
    );
}

fn private_file(env: &TestEnv, name: &str, text: &str, mode: u32) -> String {
    let path = env.path(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

#[test]
fn web_token_auth_guards_every_address() {
    let mut env = scene();
    let token = private_file(&env, "token", "s3cret-token\n", 0o600);
    let web = env.spawn_web(&["--auth-token-file", &token]);
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/status",
        "/assets/app.css",
    ] {
        for authorization in [None, Some("Bearer wrong"), Some("Basic czNjcmV0LXRva2Vu")] {
            let headers: Vec<(&str, &str)> = authorization
                .iter()
                .map(|a| ("Authorization", *a))
                .collect();
            let reply = web.request("GET", path, &headers, b"");
            assert_eq!(reply.status, 401, "{path} {authorization:?}");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"queuectl\"")
            );
            assert!(!reply.body.contains("s3cret"), "{path}");
        }
    }
    let right = [("Authorization", "Bearer s3cret-token")];
    assert_eq!(web.request("GET", "/healthz", &right, b"").status, 200);
    assert_eq!(web.request("GET", "/api/queues", &right, b"").status, 200);
    // The queue's name is for those let in: the header shows it to them,
    // not on the 401 page nor on a refusal before authentication (413).
    let queue = queue_shown(&web.request("GET", "/", &right, b""));
    let refused = web.get("/no/such/page");
    assert_eq!(refused.status, 401);
    let big = format!(
        "POST /dlq/purge HTTP/1.1\r\nHost: {}\r\nContent-Length: 65536\r\n\r\n",
        web.address
    );
    let too_large = crate::support::web::send(&web.address, big.as_bytes());
    assert_eq!(too_large.status, 413);
    for reply in [refused, too_large] {
        assert!(!reply.body.contains(&queue), "{queue}: {}", reply.body);
        assert!(!reply.body.contains("class=\"db\""), "{}", reply.body);
    }
    assert!(!web.log().contains("s3cret"), "{}", web.log());
}

/// The queue a page's header names.
fn queue_shown(page: &HttpReply) -> String {
    assert_eq!(page.status, 200, "{}", page.body);
    let marker = "title=\"The queue this dashboard reads\">";
    let start = page.body.find(marker).expect("the queue in the header") + marker.len();
    let name = &page.body[start..];
    name[..name.find('<').unwrap()].to_owned()
}

#[test]
fn web_basic_auth_guards_every_address() {
    let mut env = scene();
    let basic = private_file(&env, "basic", "ops:pass:word\n", 0o400);
    let web = env.spawn_web(&["--auth-basic-file", &basic]);
    let none = web.get("/api/status");
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Basic realm=\"queuectl\"")
    );
    // base64("ops:pass:word") and base64("ops:pass:worm")
    let right = [("Authorization", "Basic b3BzOnBhc3M6d29yZA==")];
    let wrong = [("Authorization", "Basic b3BzOnBhc3M6d29ybQ==")];
    assert_eq!(web.request("GET", "/api/status", &wrong, b"").status, 401);
    assert_eq!(web.request("GET", "/api/status", &right, b"").status, 200);
    assert_eq!(web.request("GET", "/queues", &right, b"").status, 200);
}

#[test]
fn web_refuses_auth_files_others_may_read_and_open_exposed_addresses() {
    let env = TestEnv::new();
    let token = private_file(&env, "token", "hunter2\n", 0o644);
    let out = env.run(&[
        "web",
        "--listen",
        "127.0.0.1:0",
        "--auth-token-file",
        &token,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&token) && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // Judged before binding: the refusal names the address as asked.
    let out = env.run(&["web", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to serve 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    // A name other than localhost is not looked up: clap's usage error says
    // what is taken.
    let out = env.run(&["web", "--listen", "dashboard.example:80"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("IP:PORT") && stderr.contains("localhost:PORT"),
        "{stderr}"
    );

    let out = env.run(&[
        "web",
        "--listen",
        "127.0.0.1:0",
        "--auth-token-file",
        &env.path("none").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn web_listens_on_localhost_by_name() {
    let mut env = TestEnv::new();
    let mut cmd = env.cmd();
    cmd.args(["web", "--listen", "localhost:0"]);
    let web = env.spawn_web_cmd(cmd);
    assert!(web.address.starts_with("127.0.0.1:"), "{}", web.address);
    assert_eq!(web.get("/healthz").status, 200);
}

#[test]
fn web_an_exposed_address_without_auth_is_served_only_when_insisted_on() {
    let mut env = TestEnv::new();
    let mut cmd = env.cmd();
    cmd.args(["web", "--listen", "0.0.0.0:0", "--insecure-no-auth"]);
    let web = env.spawn_web_cmd(cmd);
    assert!(
        web.log().contains("warning: serving 0.0.0.0:"),
        "{}",
        web.log()
    );
    let port = web.address.rsplit(':').next().unwrap();
    let reply =
        crate::support::web::request(&format!("127.0.0.1:{port}"), "GET", "/healthz", &[], b"");
    assert_eq!(reply.status, 200);
}

/// The CSRF cookie and the token of a page, as a browser would hold them.
struct Browser {
    cookie: String,
    token: String,
}

fn open_page(web: &WebServer, path: &str) -> Browser {
    let page = web.get(path);
    assert_eq!(page.status, 200, "{}", page.body);
    let set = page.header("set-cookie").expect("a CSRF cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    Browser { cookie, token }
}

fn post_form(
    web: &WebServer,
    path: &str,
    browser: &Browser,
    body: &str,
    extra: &[(&str, &str)],
) -> HttpReply {
    let mut headers = vec![
        ("Cookie", browser.cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    headers.extend_from_slice(extra);
    web.request("POST", path, &headers, body.as_bytes())
}

#[test]
fn web_csrf_refuses_missing_wrong_and_cross_site_tokens() {
    let mut env = scene();
    let web = env.spawn_web(&["--allow-actions"]);
    let browser = open_page(&web, "/jobs/dead");
    let address = format!("http://{}", web.address);
    let good = format!("csrf={}", browser.token);
    let no_cookie = Browser {
        cookie: "other=1".into(),
        token: browser.token.clone(),
    };
    let refused = [
        post_form(&web, "/jobs/dead/retry", &browser, "", &[]),
        post_form(&web, "/jobs/dead/retry", &browser, "csrf=00ff", &[]),
        post_form(
            &web,
            "/jobs/dead/retry",
            &browser,
            &format!("csrf={}", "ab".repeat(32)),
            &[],
        ),
        post_form(&web, "/jobs/dead/retry", &no_cookie, &good, &[]),
        post_form(
            &web,
            "/jobs/dead/retry",
            &browser,
            &good,
            &[("Origin", "http://evil.example")],
        ),
        post_form(
            &web,
            "/jobs/dead/retry",
            &browser,
            &good,
            &[("Sec-Fetch-Site", "cross-site")],
        ),
    ];
    for (n, reply) in refused.iter().enumerate() {
        assert_eq!(reply.status, 403, "case {n}: {}", reply.body);
        assert_eq!(env.state("dead"), "dead", "case {n}");
    }
    let reply = post_form(
        &web,
        "/jobs/dead/retry",
        &browser,
        &good,
        &[("Origin", &address), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some("/jobs/dead"));
    assert_eq!(env.state("dead"), "pending");
}

/// The dead letter page's own retry form, posted as Chromium posts it
/// under `Referrer-Policy: no-referrer` (`Origin: null`, the site in
/// `Sec-Fetch-Site`), lands back on the dead letter with the job pending.
#[test]
fn web_a_browser_posting_the_dead_letter_form_retries_the_job() {
    let mut env = scene();
    let web = env.spawn_web(&["--allow-actions"]);
    let browser = open_page(&web, "/dlq");
    let page = web.get("/dlq").body;
    let form = page
        .split("<form")
        .find(|f| f.contains("action=\"/jobs/dead/retry\""))
        .unwrap_or_else(|| panic!("no retry form for the dead job: {page}"));
    let back = form
        .split("name=\"back\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a back field");
    let body = format!("csrf={}&back={back}", browser.token);
    let chromium = |site: Option<&'static str>| {
        let mut headers = vec![("Origin", "null")];
        headers.extend(site.map(|s| ("Sec-Fetch-Site", s)));
        post_form(&web, "/jobs/dead/retry", &browser, &body, &headers)
    };
    for site in [None, Some("cross-site"), Some("same-site")] {
        let reply = chromium(site);
        assert_eq!(reply.status, 403, "{site:?}: {}", reply.body);
        assert_eq!(env.state("dead"), "dead");
    }
    let reply = chromium(Some("same-origin"));
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some("/dlq"));
    assert_eq!(env.state("dead"), "pending");
}

#[test]
fn web_actions_are_off_unless_allowed() {
    let mut env = scene();
    let web = env.spawn_web(&[]);
    for path in ["/jobs/dead", "/dlq"] {
        let page = web.get(path);
        assert!(!page.body.contains("data-action"), "{path}");
        assert!(!page.body.contains("method=\"post\""), "{path}");
    }
    for (path, body) in [
        ("/jobs/dead/retry", "csrf=x"),
        ("/jobs/waiting/cancel", "csrf=x"),
        ("/jobs/done/restart", "csrf=x"),
        ("/dlq/purge", "csrf=x&older_than=0s"),
    ] {
        let reply = web.request("POST", path, &[], body.as_bytes());
        assert_eq!(reply.status, 403, "{path}");
        assert!(
            reply.body.contains("--allow-actions"),
            "{path}: {}",
            reply.body
        );
    }
    assert_eq!(
        [env.state("dead"), env.state("waiting"), env.state("done")],
        ["dead", "pending", "completed"]
    );
}

#[test]
fn web_actions_act_through_the_store_and_map_its_errors() {
    let mut env = scene();
    let web = env.spawn_web(&["--allow-actions"]);
    let browser = open_page(&web, "/jobs/dead");
    assert!(web.get("/jobs/dead").body.contains("data-action=\"retry\""));
    let json = [("Accept", "application/json")];
    let form = format!("csrf={}", browser.token);
    let act = |path: &str, body: &str| post_form(&web, path, &browser, body, &json);

    let reply = act("/jobs/dead/retry", &form);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ok"], true);
    assert_eq!(env.state("dead"), "pending");
    assert_eq!(act("/jobs/dead/retry", &form).status, 409, "no longer dead");
    assert_eq!(act("/jobs/nope/retry", &form).status, 404);
    assert_eq!(act("/jobs/waiting/cancel", &form).status, 200);
    assert_eq!(env.state("waiting"), "cancelled");
    assert_eq!(act("/jobs/waiting/cancel", &form).status, 409);
    assert_eq!(act("/jobs/done/restart", &form).status, 200);
    assert_eq!(env.state("done"), "pending");
    assert_eq!(act("/jobs/waiting/bogus", &form).status, 404);

    for older_than in ["", "&older_than=soon"] {
        let reply = act("/dlq/purge", &format!("{form}{older_than}"));
        assert_eq!(reply.status, 400, "{older_than}: {}", reply.body);
    }
    // The form's page comes back after a purge; only a path of ours.
    let reply = post_form(
        &web,
        "/dlq/purge",
        &browser,
        &format!("{form}&older_than=0s&back=/dlq"),
        &[],
    );
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/dlq"))
    );
    assert_eq!(
        env.run(&["show", "waiting"]).status.code(),
        Some(3),
        "purged"
    );
    let reply = post_form(
        &web,
        "/dlq/purge",
        &browser,
        &format!("{form}&older_than=0s&back=//evil.example/"),
        &[],
    );
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/dlq"))
    );
}

#[test]
fn web_shows_hostile_job_data_as_text() {
    let mut env = TestEnv::new();
    for (id, text) in [("script", SCRIPT), ("img", IMG)] {
        env.ok(&[
            "add",
            "--id",
            id,
            "--retries",
            "0",
            "--",
            &format!("echo '{text}'; exit 1"),
        ]);
    }
    env.ok(&["worker", "run", "--drain"]);
    let web = env.spawn_web(&["--allow-actions"]);
    let mut paths: Vec<String> = PAGES.iter().chain(&APIS).map(|p| p.to_string()).collect();
    paths.extend(
        [
            "/jobs/script",
            "/jobs/img",
            "/api/jobs/script",
            "/api/jobs/img",
        ]
        .map(String::from),
    );
    paths.push("/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E".into());
    for text in [SCRIPT, IMG] {
        let query: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
        paths.push(format!("/jobs?q={query}"));
        paths.push(format!("/jobs?queue={query}"));
    }
    for path in &paths {
        let reply = web.get(path);
        let html = reply.header("content-type") != Some("application/json");
        if html {
            assert!(
                !reply.body.contains("<script>alert"),
                "{path}: {}",
                reply.body
            );
            assert!(!reply.body.contains("<img src=x"), "{path}: {}", reply.body);
        }
    }
    for (id, text) in [("script", SCRIPT), ("img", IMG)] {
        let page = web.get(&format!("/jobs/{id}")).body;
        // As text, or as a JSON string shown as text.
        let as_json = serde_json::to_string(text).unwrap();
        let as_json = &as_json[1..as_json.len() - 1];
        assert!(
            page.contains(&escape(text)) || page.contains(&escape(as_json)),
            "{id}: {page}"
        );
        let api = web.get(&format!("/api/jobs/{id}")).json();
        assert_eq!(
            api["command"],
            format!("echo '{text}'; exit 1"),
            "JSON keeps the text as it is"
        );
    }
    let hostile = web.get("/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(hostile.status, 404);
    assert!(hostile.body.contains("&lt;script&gt;"), "{}", hostile.body);
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[test]
fn web_stops_cleanly_on_sigterm_and_tells_systemd() {
    let mut env = TestEnv::new();
    let notify = crate::support::notify::NotifyListener::bind(&env.path("notify.sock"));
    let mut cmd = env.cmd();
    cmd.env("NOTIFY_SOCKET", env.path("notify.sock"))
        .args(["web", "--listen", "127.0.0.1:0"]);
    let web = env.spawn_web_cmd(cmd);
    wait_until("READY=1 arrives", Duration::from_secs(10), || {
        notify.seen("READY=1").is_some()
    });
    assert_eq!(web.get("/healthz").status, 200);
    signal(web.pid, Signal::SIGTERM);
    let status = env.wait_worker(web.pid, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", web.log());
    // In queuectl's own voice, like every other line it prints.
    assert!(
        web.log().lines().last() == Some("queuectl: stopping on SIGTERM"),
        "{}",
        web.log()
    );
    assert!(
        notify.seen("STOPPING=1").is_some(),
        "{:?}",
        notify.messages()
    );
}

/// Socket activation as systemd does it: the listening socket on fd 3,
/// `LISTEN_FDS=1`, `LISTEN_PID` the server's own pid; `--listen` ignored.
#[test]
fn web_serves_the_socket_systemd_passes() {
    use std::os::fd::AsRawFd;
    let mut env = TestEnv::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // Inherited across exec (std opens it close-on-exec).
    nix::fcntl::fcntl(
        &listener,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let mut cmd = env.cmd_running(std::ffi::OsStr::new("sh"));
    cmd.arg("-c")
        .arg(format!(
            "{}LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" web --listen 127.0.0.1:1",
            onto_fd_3(fd)
        ))
        .arg(crate::support::binary());
    let web = env.spawn_web_cmd(cmd);
    drop(listener);
    assert_eq!(web.address, address.to_string());
    assert_eq!(web.get("/healthz").status, 200);

    // A datagram socket is no HTTP listener: refused, named.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = udp.as_raw_fd();
    nix::fcntl::fcntl(
        &udp,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let out = env
        .cmd_running("sh".as_ref())
        .arg("-c")
        .arg(format!(
            "{}LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" web",
            onto_fd_3(fd)
        ))
        .arg(crate::support::binary())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file descriptor 3 is not a stream"),
        "{}",
        output_text(&out)
    );
}

/// Shell words moving descriptor `fd` to 3, where systemd puts the first.
fn onto_fd_3(fd: i32) -> String {
    if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd}; exec {fd}<&-; ")
    }
}

/// The table row `tr[data-worker="<name>"]` of `html`.
fn worker_row(html: &str, name: &str) -> String {
    let start = html
        .find(&format!(r#"<tr data-worker="{name}">"#))
        .unwrap_or_else(|| panic!("no row of {name} in {html}"));
    let end = start + html[start..].find("</tr>").unwrap();
    html[start..end].to_owned()
}

#[test]
fn web_marks_a_killed_worker_dead_and_the_overview_shows_only_live_ones() {
    let mut env = TestEnv::new();
    env.ok(&["add", "--id", "later", "--delay", "1h", "--", "true"]);
    env.spawn_worker("steady");
    let doomed = env.spawn_worker("doomed");
    let wait = Duration::from_secs(20);
    wait_until("both workers registered", wait, || {
        env.json(&["status"])["workers"]
            .as_array()
            .is_some_and(|w| w.len() == 2)
    });
    // Killed: it cannot unregister, so its row stays with a last heartbeat.
    signal(doomed, Signal::SIGKILL);
    env.wait_worker(doomed, wait);
    let web = env.spawn_web(&[]);

    // The API and `status --json` say the same of it (a PostgreSQL queue's
    // workers register as host/name).
    let api = web.get("/api/workers").json();
    let cli = env.json(&["status"]);
    let registered = |workers: &serde_json::Value, name: &str| {
        workers
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in {workers}"))
            .clone()
    };
    for workers in [&api["workers"], &cli["workers"]] {
        let doomed = registered(workers, "doomed");
        assert_eq!(doomed["liveness"], "dead", "{workers}");
        assert!(doomed["heartbeat_age_seconds"].is_i64(), "{workers}");
        assert_eq!(registered(workers, "steady")["liveness"], "live");
    }
    let doomed_name = registered(&api["workers"], "doomed")["name"].clone();
    let steady_name = registered(&api["workers"], "steady")["name"].clone();
    let (doomed_name, steady_name) = (doomed_name.as_str().unwrap(), steady_name.as_str().unwrap());

    let workers = web.get("/workers").body;
    let dead = worker_row(&workers, doomed_name);
    assert!(dead.contains(r#"data-liveness="dead""#), "{dead}");
    assert!(dead.contains(" ago</span>"), "{dead}");
    let live = worker_row(&workers, steady_name);
    assert!(live.contains(r#"data-liveness="live""#), "{live}");

    let overview = web.get("/").body;
    assert!(
        overview.contains(r#"data-count="workers">1</span>"#),
        "{overview}"
    );
    assert!(
        overview.contains(&format!(r#"<li data-worker="{steady_name}">"#)),
        "{overview}"
    );
    assert!(
        !overview.contains(&format!(r#"data-worker="{doomed_name}""#)),
        "{overview}"
    );
}
