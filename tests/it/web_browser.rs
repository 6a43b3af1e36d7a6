//! The dashboard in a real browser: Debian's chromium, driven headless by
//! playwright-core (tests/browser/dashboard.mjs), loads every page of a real
//! `queuectl web --allow-actions` over a queue that real workers ran, checks
//! the DOM contract and the counts against `queuectl status --json`, watches
//! the overview update itself, clicks retry on a dead job and saves
//! screenshots. `QUEUECTL_SCREENSHOTS=docs` copies the documented ones there
//! (docs/web.md says how to regenerate them).

use crate::support::{TestEnv, skip_unless_ci};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Failed jobs wait long for their retry (backoff 1000 s): the scene holds
/// still while the browser looks at it.
const CONFIG: &str = "lease_seconds = 30\nkill_grace_seconds = 1\nbackoff_base = 1000\nbackoff_max_seconds = 3600\nsupervisor = \"process\"\n";

/// A command whose text and output are markup: every page must show it as
/// text, and no script from it may run.
const HOSTILE: &str =
    r#"printf '%s\n' '<script>alert(1)</script>' '"><img src=x onerror=alert(1)>'; exit 1"#;

/// The screenshots docs/ shows (README and docs/web.md).
const DOCUMENTED_SHOTS: [&str; 5] = [
    "overview.png",
    "jobs.png",
    "job.png",
    "overview-dark.png",
    "overview-phone.png",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium, Node.js and playwright-core (`npm ci` in tests/browser), or why not.
fn browser_tools() -> Result<PathBuf, String> {
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    if !chromium.exists() {
        return Err(format!(
            "no {} (Debian package chromium)",
            chromium.display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("no node on PATH (Node.js 20 or newer)".into()),
    }
    if !repo()
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        return Err("no tests/browser/node_modules: run `npm ci` in tests/browser".into());
    }
    Ok(chromium)
}

/// Adds job `id` to `queue` with `retries`, running the shell line `command`.
fn add(env: &TestEnv, id: &str, queue: &str, retries: u32, command: &str) {
    let retries = retries.to_string();
    env.ok(&[
        "add",
        "--id",
        id,
        "--queue",
        queue,
        "--retries",
        &retries,
        "--",
        command,
    ]);
}

/// Jobs in every state, in two queues, run by real workers: completed,
/// failed (waiting for its retry), dead (one to retry from the browser, one
/// hostile), cancelled, pending (delayed), and one processing on worker
/// `w1`, which stays busy with it so nothing else moves.
fn build_scene(env: &mut TestEnv) -> Value {
    for n in 0..4 {
        add(
            env,
            &format!("report-{n}"),
            "default",
            3,
            &format!("echo report {n}"),
        );
    }
    for n in 0..3 {
        add(env, &format!("mail-{n}"), "emails", 3, "echo sent");
    }
    add(env, "flaky", "default", 3, "echo flaky >&2; exit 3");
    add(env, "broken", "emails", 0, "echo broken >&2; exit 2");
    add(env, "hostile", "default", 0, HOSTILE);
    env.ok(&["queue", "set", "emails", "--parallel", "2"]);
    env.ok(&["worker", "run", "--drain", "--name", "drain"]);

    env.ok(&["add", "--id", "later", "--delay", "1h", "--", "echo later"]);
    env.ok(&["add", "--id", "unwanted", "--delay", "1h", "--", "echo no"]);
    env.ok(&["cancel", "unwanted"]);
    // Fixed far in the future: no elapse changes the counts mid-test.
    let calendar = ["--driver", "workers", "--on-calendar", "2099-01-01"];
    env.ok(&[
        &["schedule", "add", "nightly"],
        &calendar[..],
        &["--", "echo '<script>alert(2)</script>'"],
    ]
    .concat());
    add(env, "long", "default", 0, "sleep 600");
    env.spawn_worker("w1");
    env.wait_for_state("long", "processing", Duration::from_secs(30));

    let mut scene = snapshot(env);
    for (id, state) in [
        ("report-0", "completed"),
        ("flaky", "failed"),
        ("broken", "dead"),
        ("hostile", "dead"),
        ("unwanted", "cancelled"),
        ("later", "pending"),
        ("long", "processing"),
    ] {
        assert_eq!(scene["jobs"][id], state, "the scene's job {id}");
    }
    let w1 = env.worker_name("w1");
    let registered = &scene["status"]["workers"];
    assert!(
        registered
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == w1.as_str()),
        "{registered}"
    );
    let hostile = env.job("hostile");
    let parts = json!({
        "dead": "broken",
        "hostile": "hostile",
        "hostile_job": {
            "state": "dead",
            "command": hostile["command"],
            "attempts": 1,
            "output": "<script>alert(1)</script>",
        },
        "workers": [w1],
        "live_workers": 1,
    });
    scene
        .as_object_mut()
        .unwrap()
        .extend(parts.as_object().unwrap().clone());
    scene
}

/// What the pages must show now: `status` (`queuectl status --json`),
/// `jobs` (id -> state) and `queues` (queue -> state -> count), from the CLI.
fn snapshot(env: &TestEnv) -> Value {
    let listed = env.json(&["list", "--all"]);
    let mut jobs = BTreeMap::new();
    let mut queues: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for job in listed["jobs"].as_array().unwrap() {
        let state = job["state"].as_str().unwrap().to_owned();
        let queue = job["queue"].as_str().unwrap().to_owned();
        *queues
            .entry(queue)
            .or_default()
            .entry(state.clone())
            .or_default() += 1;
        jobs.insert(job["id"].as_str().unwrap().to_owned(), state);
    }
    json!({ "status": env.json(&["status"]), "jobs": jobs, "queues": queues })
}

#[test]
fn web_browser_every_page_in_headless_chromium() {
    let chromium = match browser_tools() {
        Ok(chromium) => chromium,
        Err(why) => return skip_unless_ci(&why),
    };
    let mut env = TestEnv::with_config(CONFIG);
    let scene = build_scene(&mut env);
    let scene_file = env.path("scene.json");
    std::fs::write(&scene_file, scene.to_string()).unwrap();
    let web = env.spawn_web(&["--allow-actions"]);
    let shots = env.path("screenshots");

    let mut node = KilledOnDrop(
        Command::new("node")
            .arg(repo().join("tests/browser/dashboard.mjs"))
            .arg(format!("http://{}", web.address))
            .arg(&scene_file)
            .arg(&shots)
            .env("CHROMIUM", &chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node"),
    );
    let mut stderr = node.0.stderr.take().unwrap();
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut answers = node.0.stdin.take().unwrap();
    for request in BufReader::new(node.0.stdout.take().unwrap()).lines() {
        let request = request.unwrap();
        assert_eq!(
            request, "enqueue-more",
            "an unknown request from dashboard.mjs"
        );
        for n in 0..3 {
            add(&env, &format!("more-{n}"), "emails", 0, "echo more");
        }
        writeln!(answers, "{}", snapshot(&env)).unwrap();
    }
    let status = node.0.wait().unwrap();
    let said = said.join().unwrap();
    assert!(
        status.success(),
        "dashboard.mjs failed ({status}):\n{said}\nqueuectl web said:\n{}",
        web.log()
    );

    // The click acted on the queue itself, as `queuectl retry` would.
    assert_eq!(env.state("broken"), "pending");
    for name in DOCUMENTED_SHOTS {
        assert!(shots.join(name).is_file(), "dashboard.mjs wrote no {name}");
    }
    if let Some(dir) = std::env::var_os("QUEUECTL_SCREENSHOTS") {
        copy_documented_shots(&shots, &repo().join(dir));
    }
}

/// Node and its chromium go when a failing test unwinds.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_documented_shots(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in DOCUMENTED_SHOTS {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    eprintln!("screenshots copied to {}", to.display());
}
