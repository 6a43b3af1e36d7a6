//! The man pages: queuectl(1) and one page per subcommand
//! (queuectl-worker-start(1), ...), made by clap_mangen from the clap
//! definitions, plus the sections a reader looks for in a manual: JOB
//! FIELDS, CONFIG KEYS (from the config code), FILES, ENVIRONMENT and EXIT
//! STATUS (from the exit codes in `--help`). Needs no config or queue: it
//! runs inside package builds.

use super::args::Cli;
use clap::CommandFactory;
use queuectl::config::{self, Config};
use queuectl::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// `queuectl man`: the main page on stdout; `--dir DIR`: every page into
/// DIR, one file each (queuectl.1, queuectl-add.1, ...).
pub fn run(dir: Option<&Path>) -> Result<()> {
    let Some(dir) = dir else {
        let mut out = Vec::new();
        render(&root(), &[], &mut out);
        return std::io::stdout()
            .write_all(&out)
            .map_err(|e| Error::io("cannot write the man page", e));
    };
    // Like `mkdir -p`: a package build names a folder that is not there yet.
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::writing(
            dir,
            format!("cannot create the folder {}", dir.display()),
            e,
        )
    })?;
    for (path, page) in pages() {
        let file = dir.join(format!("{}.1", path.join("-")));
        std::fs::write(&file, page)
            .map_err(|e| Error::writing(&file, format!("cannot write {}", file.display()), e))?;
    }
    Ok(())
}

/// Every page: its command path (`["queuectl", "worker", "start"]`) and text.
pub fn pages() -> Vec<(Vec<String>, Vec<u8>)> {
    let mut pages = Vec::new();
    collect(&root(), &mut vec![], &mut pages);
    pages
}

fn root() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn collect(cmd: &clap::Command, path: &mut Vec<String>, pages: &mut Vec<(Vec<String>, Vec<u8>)>) {
    path.push(cmd.get_name().to_owned());
    let mut page = Vec::new();
    render(cmd, &path[1..], &mut page);
    pages.push((path.clone(), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, path, pages);
    }
    path.pop();
}

/// One page. `under` is the subcommand path below `queuectl` (empty for
/// the main page); it decides which reference sections the page carries.
fn render(cmd: &clap::Command, under: &[String], out: &mut Vec<u8>) {
    let man = clap_mangen::Man::new(cmd.clone()).manual("queuectl manual");
    // Writing into a Vec cannot fail.
    let _ = man.render_title(out);
    let _ = man.render_name_section(out);
    let _ = man.render_synopsis_section(out);
    let _ = man.render_description_section(out);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(out);
    }
    if cmd.has_subcommands() {
        let _ = man.render_subcommands_section(out);
    }
    let (examples, _) = split_after_help(cmd);
    if !examples.trim().is_empty() {
        section(out, "EXAMPLES");
        preformatted(out, examples.trim_start_matches("Examples:\n"));
    }
    let top = under.first().map(String::as_str);
    let main = top.is_none();
    if main || matches!(top, Some("enqueue" | "add" | "show" | "list" | "edit")) {
        job_fields(out);
    }
    if main || top == Some("config") {
        config_keys(out);
    }
    // Every page: where the queue and config are, what changes them, and
    // what the exit codes mean, whichever page a reader opened.
    files(out);
    environment(out);
    exit_status(out);
    see_also(out, cmd, under);
}

/// A command's `after_help`: the examples and notes, and the exit codes
/// (only the main command's has them) with the note after them.
fn split_after_help(cmd: &clap::Command) -> (String, String) {
    let text = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    match text.split_once("Exit codes:\n") {
        Some((before, codes)) => (before.to_owned(), codes.to_owned()),
        None => (text, String::new()),
    }
}

/// The exit codes as `--help` lists them: `  N  meaning` lines, a meaning
/// continued on indented lines, up to the first blank line; then the note
/// that follows them (a paragraph of its own, not part of the last code).
pub fn exit_codes() -> (Vec<(String, String)>, String) {
    let (_, text) = split_after_help(&root());
    let (list, note) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut codes: Vec<(String, String)> = Vec::new();
    for line in list.lines() {
        let trimmed = line.trim();
        let mut words = trimmed.splitn(2, char::is_whitespace);
        match (words.next(), words.next()) {
            (Some(code), Some(meaning)) if code.parse::<u8>().is_ok() => {
                codes.push((code.to_owned(), meaning.trim().to_owned()));
            }
            _ if !trimmed.is_empty() => {
                if let Some((_, meaning)) = codes.last_mut() {
                    meaning.push(' ');
                    meaning.push_str(trimmed);
                }
            }
            _ => {}
        }
    }
    (codes, note.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn exit_status(out: &mut Vec<u8>) {
    section(out, "EXIT STATUS");
    let (codes, note) = exit_codes();
    for (code, meaning) in codes {
        item(out, &code, &meaning);
    }
    if !note.is_empty() {
        paragraph(out, &note);
    }
}

/// What `show --json` prints for a job (and what `enqueue` reads).
pub const JOB_FIELDS: &[(&str, &str)] = &[
    (
        "id",
        "1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit; generated (a ULID) when not given",
    ),
    ("command", "the shell command, run with sh -c"),
    (
        "state",
        "pending, processing, completed, failed (waiting for its retry), dead (retries spent: the dead letter queue) or cancelled",
    ),
    ("priority", "higher runs first (default 0)"),
    (
        "run_at",
        "when it is due (RFC 3339); enqueue also takes delay (30s, 5m, 2h, 1d) instead",
    ),
    (
        "max_retries",
        "re-runs after a failed first attempt before the job goes to the dead letter queue",
    ),
    (
        "timeout_seconds",
        "an attempt is stopped after this long; 0: none",
    ),
    (
        "env_keys",
        "the names of the job's own environment variables (enqueue: env, an object of strings); values are never shown",
    ),
    ("env_error", "present when the stored env cannot be read"),
    (
        "env_file",
        "KEY=VALUE file read when each attempt starts: an absolute path or a systemd credential's name",
    ),
    ("cwd", "working directory (absolute)"),
    ("attempts", "runs started, ever"),
    (
        "failures",
        "failed runs counted against max_retries (dlq retry resets it)",
    ),
    ("created_at", "when it was enqueued"),
    ("updated_at", "its last change"),
    (
        "finished_at",
        "when it reached completed, dead or cancelled",
    ),
    ("worker", "the worker running it"),
    (
        "lease_expires_at",
        "when a silent worker's hold on it runs out",
    ),
    ("cancel_requested", "a user asked to cancel it while it ran"),
    ("last_error", "why its last attempt failed"),
    (
        "queue",
        "the named queue it belongs to [default: default]; see queuectl queue for limits",
    ),
    (
        "deps_left",
        "dependencies (after) not yet completed; above 0 the job is blocked",
    ),
    (
        "unique_key",
        "1-200 characters: at most one unfinished (pending, processing, failed) job holds a key; a finished job keeps it but frees it",
    ),
    (
        "on_duplicate",
        "enqueue only, with unique_key: when an unfinished job holds the key, reject (exit 4, the batch is refused), skip (prints the holder's id) or replace (updates a waiting holder; exit 4 while it runs)",
    ),
    ("schedule", "the recurring schedule that enqueued it"),
    (
        "after",
        "ids of the jobs that must complete before it runs (up to 1000, each in the queue or the same batch; not with unique_key); show: each with its state. When one ends dead or cancelled, the job is cancelled too; restarting that one revives it",
    ),
    (
        "dependents",
        "show only: the jobs waiting for it, each with its state",
    ),
    (
        "attempt_history",
        "show only: every attempt with its worker, host, start and end, outcome, exit code or signal, error and output tail",
    ),
];

fn job_fields(out: &mut Vec<u8>) {
    section(out, "JOB FIELDS");
    paragraph(
        out,
        "A job is a JSON object (enqueue reads it; show --json and list --json print it). \
         Times are RFC 3339.",
    );
    for (name, meaning) in JOB_FIELDS {
        item(out, name, meaning);
    }
}

/// Each config key's default as the config file would spell it.
pub fn config_default(key: &str) -> String {
    if key == "db_path" {
        // Resolved from the environment at run time, not a constant.
        return "queue.db in the state directory (see FILES)".into();
    }
    Config::default()
        .get(key)
        .map(|value| value.to_string())
        .unwrap_or_default()
}

fn config_keys(out: &mut Vec<u8>) {
    section(out, "CONFIG KEYS");
    paragraph(
        out,
        "The config file is TOML (see FILES); a missing file means every default. \
         queuectl config get shows the effective values, queuectl config set changes one.",
    );
    for (key, meaning) in config::KEYS {
        item(
            out,
            key,
            &format!("{meaning} [default: {}]", config_default(key)),
        );
    }
}

fn files(out: &mut Vec<u8>) {
    section(out, "FILES");
    for (name, meaning) in [
        (
            "/etc/queuectl/config.toml",
            "the config file for root (else $XDG_CONFIG_HOME/queuectl/config.toml; --config and $QUEUECTL_CONFIG override)",
        ),
        (
            "/var/lib/queuectl/queue.db",
            "the queue for root (else $XDG_STATE_HOME/queuectl/queue.db); db_path, $QUEUECTL_DB and --db override, and may name a PostgreSQL database",
        ),
        (
            "STATE/logs/",
            "job output when it does not go to the journal (STATE: the queue's directory, mode 0700)",
        ),
        ("STATE/wake/", "the sockets that wake idle workers"),
        (
            "STATE/workers/",
            "pid files and logs of workers without systemd",
        ),
        (
            "$XDG_STATE_HOME/queuectl/postgresql-ADDRESS/",
            "this host's STATE for a PostgreSQL queue (/var/lib/queuectl/... for root)",
        ),
        (
            "/etc/systemd/system/queuectl-worker@.service",
            "the worker unit installed as root, with queuectl-workers.target (a user's: ~/.config/systemd/user/)",
        ),
    ] {
        item(out, name, meaning);
    }
}

fn environment(out: &mut Vec<u8>) {
    section(out, "ENVIRONMENT");
    for (name, meaning) in ENVIRONMENT {
        item(out, name, meaning);
    }
}

/// Every variable queuectl reads or sets, with what it does.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("QUEUECTL_CONFIG", "the config file (--config overrides)"),
    (
        "QUEUECTL_DB",
        "the queue: an SQLite file or a PostgreSQL address (--db overrides; overrides db_path)",
    ),
    (
        "QUEUECTL_STATE_DIR",
        "the state directory instead of /var/lib/queuectl or $XDG_STATE_HOME/queuectl",
    ),
    (
        "QUEUECTL_DB_PASSWORD_FILE",
        "a file holding the PostgreSQL password (absolute, or a credential name in $CREDENTIALS_DIRECTORY)",
    ),
    (
        "QUEUECTL_LOG",
        "log filter, e.g. debug (default: warn for commands, info for workers)",
    ),
    (
        "QUEUECTL_QUEUES",
        "the queues a worker serves, a,b (set but empty: every queue; worker run --queues overrides; overrides worker_queues)",
    ),
    (
        "QUEUECTL_PG_POLL_ONLY",
        "1: workers poll instead of LISTEN (PostgreSQL through PgBouncer in transaction mode)",
    ),
    (
        "QUEUECTL_UNITS_MANAGED",
        "1: a package provides the unit files; worker start never writes them",
    ),
    (
        "QUEUECTL_DELEGATED_CGROUP",
        "1 (with Delegate=yes): the worker runs each attempt in a cgroup of its own",
    ),
    (
        "QUEUECTL_COMPLETE",
        "set by the completion script when it asks for candidates",
    ),
    (
        "QUEUECTL_JOB_ID, QUEUECTL_JOB_ATTEMPT, QUEUECTL_ATTEMPT_TOKEN",
        "set for each job: its id, the attempt's number, a random token marking the attempt's processes",
    ),
    ("TZ", "the time zone times are shown in"),
    ("NO_COLOR", "no colour with --color auto"),
    (
        "VISUAL, EDITOR",
        "the editor queuectl edit opens without flags (VISUAL first, else EDITOR, else vi)",
    ),
    (
        "XDG_CONFIG_HOME, XDG_STATE_HOME, HOME",
        "where a user's config, queue and unit files go",
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "systemd credentials a job's env_file may name",
    ),
    (
        "PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT, PGAPPNAME, PGOPTIONS, PGTARGETSESSIONATTRS, PGHOSTADDR",
        "what a PostgreSQL address leaves out, as libpq reads them",
    ),
];

fn see_also(out: &mut Vec<u8>, cmd: &clap::Command, under: &[String]) {
    section(out, "SEE ALSO");
    let page = |path: &[&str]| format!("\\fB{}\\fR(1)", path.join("-"));
    let mut refs: Vec<String> = Vec::new();
    if !under.is_empty() {
        refs.push(page(&["queuectl"]));
    }
    let own: Vec<&str> = std::iter::once("queuectl")
        .chain(under.iter().map(String::as_str))
        .collect();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut path = own.clone();
        path.push(sub.get_name());
        refs.push(page(&path));
    }
    refs.push("\\fBsystemd.exec\\fR(5), \\fBjournalctl\\fR(1)".into());
    let _ = writeln!(out, "{}", refs.join(", "));
}

fn section(out: &mut Vec<u8>, name: &str) {
    let _ = writeln!(out, ".SH \"{name}\"");
}

fn paragraph(out: &mut Vec<u8>, text: &str) {
    let _ = writeln!(out, ".PP\n{}", escape(text));
}

fn item(out: &mut Vec<u8>, name: &str, meaning: &str) {
    let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(name), escape(meaning));
}

fn preformatted(out: &mut Vec<u8>, text: &str) {
    let _ = writeln!(out, ".PP\n.nf");
    for line in text.trim_end().lines() {
        let _ = writeln!(out, "{}", escape(line));
    }
    let _ = writeln!(out, ".fi");
}

/// Text as roff prints it literally: backslashes doubled, and a line that
/// would start with a control character (. or ') protected.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}
