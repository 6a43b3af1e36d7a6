//! Every command, flag and help text of the CLI, in one place. Doc comments
//! here become `--help`, the man page and the shell completions.

use super::complete;
use clap::{Args, Parser, Subcommand, ValueEnum};
use queuectl::domain::{JobState, OnDuplicate};
use queuectl::store::BulkAction;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  queuectl add -- ./backup.sh --full
  queuectl enqueue '{\"id\":\"job1\",\"command\":\"echo hello\"}'
  queuectl wait job1
  queuectl worker start --count 3
  queuectl status
  queuectl logs job1
  queuectl dlq list
  queuectl restart job1

Exit codes:
  0  success
  1  runtime failure (database, I/O, supervisor, read-only file or filesystem,
     a queue made by a newer queuectl)
  2  invalid input or usage (bad JSON, unknown config key, bad flag, a --config
     file that does not exist)
  3  job or schedule not found, or no queue at the path (only enqueue, add,
     schedule add and workers create one)
  4  the job's state does not allow the operation; or a job's unique key is held
     by an unfinished job (on_duplicate reject, or replace while the holder runs);
     or a schedule's name is taken or its unit files are not queuectl's
  5  wait, logs -f: a job ended dead (when jobs ended both dead and cancelled, 5)
  6  wait, logs -f: a job ended cancelled (and none dead)
  7  wait --timeout: the time ran out before every job ended

cancel, restart, dlq retry and purge act on each named job they can and report
the others: then 3 if any of them was not found, else 4. restart and dlq retry
by filter (--all, --state, --older-than) report each job they leave alone
because an unfinished job holds its unique key: then 4.";

/// The heading the global flags go under in every command's help, after the
/// command's own options.
const GLOBAL: &str = "Global options";

/// A background job runner: shell commands queued in SQLite, run by
/// systemd-managed workers with retries, backoff and a dead letter queue.
#[derive(Debug, Parser)]
#[command(name = "queuectl", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Config file; it must exist, except for `config set` (which creates it)
    /// and `config path` [default: $QUEUECTL_CONFIG, /etc/queuectl/config.toml as
    /// root, else $XDG_CONFIG_HOME/queuectl/config.toml; the default may be absent]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Queue: an SQLite file, or a PostgreSQL URL (postgres://user@host/db) or
    /// conninfo ("host=/run/postgresql dbname=queuectl"); overrides $QUEUECTL_DB
    /// and the config's db_path. Keep passwords in ~/.pgpass or a file named by
    /// $QUEUECTL_DB_PASSWORD_FILE, not here
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// When to colour the output
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print times in UTC instead of the local time zone ($TZ, else the
    /// system's); --json times are always UTC
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub utc: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a shell command to the queue; prints its id (`enqueue` takes JSON, for scripts)
    #[command(after_help = "\
Examples:
  queuectl add -- ./backup.sh --full
  queuectl add -- echo \"a b\"                   # runs: echo 'a b'
  queuectl add -- 'make -j4 && ./deploy'         # one word: a shell command line as it is
  queuectl add --id report --at '2026-12-01 09:00' -- make report
  queuectl add --delay 5m --retries 5 --timeout 30s -- curl -fsS https://example.com
  queuectl add --env-file /etc/queuectl/deploy.env --env STAGE=prod -- ./deploy.sh
  queuectl add --unique-key report:2026-12-01 --on-duplicate skip -- make report
  queuectl add --queue emails -- ./send-newsletter.sh
  queuectl add --id build -- make && queuectl add --after build -- ./deploy.sh

Several words after -- are shell-quoted and joined, so each stays one argument; a
single word is used as it is, as a shell command line. The job runs in the current
directory unless --cwd says otherwise. --env values are stored in the (private)
queue but never printed; --env-file keeps them out of the queue (see `enqueue --help`).")]
    Add(AddArgs),
    /// Change a waiting job (pending, or failed and waiting for its retry): by flags, or in $VISUAL/$EDITOR
    #[command(after_help = "\
Examples:
  queuectl edit job1 --priority 10
  queuectl edit job1 --delay 0s               # due now
  queuectl edit job1 --command './backup.sh --full' --retries 5
  queuectl edit job1 --queue slow
  queuectl edit job1                          # opens the job in $VISUAL or $EDITOR (TOML)

Without flags the job's editable fields open in $VISUAL (else $EDITOR, else vi) as
TOML: command, priority, run_at (RFC 3339, or use delay = \"5m\"), max_retries,
timeout_seconds, queue. Save to apply; leave it unchanged to change nothing. A job that
started meanwhile is left as it is (exit 4). With neither variable set, vi is only
started on a terminal; else edit refuses (exit 2): use the flags.")]
    Edit(EditArgs),
    /// Wait until jobs end (completed, dead or cancelled); exit 0 only if all completed
    #[command(after_help = "\
Examples:
  queuectl wait job1
  queuectl wait job1 job2 --timeout 10m
  queuectl wait --all                          # every job not finished now
  queuectl add -- make test | xargs queuectl wait

Exit codes: 0 every job completed; 5 a job ended dead (also when others were
cancelled); 6 a job ended cancelled (none dead); 7 --timeout ran out first;
3 an unknown id (before waiting). On a terminal a progress line is shown on stderr.
--json prints each job's final state; --all with every job finished says \"nothing to wait for\".")]
    Wait(WaitArgs),
    /// Add jobs to the queue
    #[command(after_help = "\
Examples:
  queuectl enqueue '{\"command\":\"./backup.sh\",\"priority\":10,\"max_retries\":5}'
  queuectl enqueue '{\"id\":\"report\",\"command\":\"make report\",\"run_at\":\"2030-01-01T09:00:00Z\"}'
  queuectl enqueue '{\"command\":\"curl -fsS https://example.com\",\"delay\":\"5m\",\"timeout_seconds\":30}'
  queuectl enqueue --file jobs.jsonl
  queuectl enqueue '[{\"id\":\"a\",\"command\":\"make\"},{\"command\":\"./test.sh\",\"after\":[\"a\"]}]'
  generate-jobs | queuectl enqueue -
  queuectl enqueue '{\"command\":\"./deploy.sh\",\"env_file\":\"/etc/queuectl/deploy.env\"}'
  queuectl enqueue '{\"command\":\"./deploy.sh\",\"env_file\":\"deploy-env\"}'   # a systemd credential
  queuectl enqueue '{\"command\":\"make report\",\"unique_key\":\"report:2026-12-01\",\"on_duplicate\":\"skip\"}'

Fields: command (required), id, priority, run_at (RFC 3339) or delay (30s, 5m, 2h, 1d),
max_retries, timeout_seconds, env (object of strings), env_file, cwd (absolute path),
queue (a name; \"default\" unless given), unique_key (1-200 characters) and
on_duplicate (reject, skip or replace), after (ids of jobs that must complete
first, up to 1000; not with unique_key).
A file or stdin holds one JSON object per line (or one JSON array), as does an array
given as JSON; all of its jobs are enqueued in one transaction, or none if any is
invalid.

Unique jobs: at most one unfinished job (pending, processing, or failed and waiting
for its retry) holds a unique_key. Enqueueing another job with that key does what
its on_duplicate says: reject (the default) refuses it, and with it the whole batch
(exit 4, naming the holder); skip enqueues nothing and prints the holder's id
(exit 0); replace gives a waiting holder the new job's settings and prints its id,
but refuses (exit 4) while the holder runs. A finished job frees its key. Each id
printed is the new job's, or the holder's (said on stderr); --json prints
{\"enqueued\": N created, \"ids\": [...], \"jobs\": [{\"id\", \"outcome\": created|existing|replaced}]}.

Dependencies: a job with \"after\" waits (list shows it blocked) until every job it
names completed. Each id must be in the queue or in the same batch (exit 2 otherwise,
or when jobs of a batch wait for each other in a cycle). When one ends dead or
cancelled, the job is cancelled too (\"dependency X is dead\"), and so are the jobs
waiting for it; restarting X (restart, dlq retry) revives them.

Secrets: env values are stored in the (private) queue but never printed or logged.
To keep them out of the queue, name an env_file: an absolute path, or the name of a
systemd credential of the worker (LoadCredential=NAME:/path in a drop-in for
queuectl-worker@.service; read from $CREDENTIALS_DIRECTORY/NAME). The worker reads
it when each attempt starts: KEY=VALUE lines, # comments; it must not be accessible
to other users (chmod 600). Its values override env. Names starting with QUEUECTL_
are reserved.")]
    Enqueue(EnqueueArgs),
    /// List jobs, newest first
    #[command(after_help = "\
Examples:
  queuectl list
  queuectl list --state pending,failed --limit 20
  queuectl list --all
  queuectl list --state dead --json
  queuectl list --queue emails --state pending
  queuectl list --blocked                      # jobs waiting for others to complete
  queuectl list --search report --limit 20     # id or command contains \"report\"
  queuectl list --search report --before 81234 # the next page (its cursor from stderr)

The newest 100 jobs unless --limit or --all; when some are not shown,
\"N more (use --limit or --all)\" goes to stderr, so stdout stays a table.
--json prints {\"jobs\": [...], \"total\": N}, total counting every job that
matches the --state filter. A pending job that waits for others reads
\"blocked (N)\", N of its dependencies not yet completed (deps_left in --json).

--search and --before page through the jobs as the dashboard does (at most
200 a page, no total): stderr ends with \"more: --before CURSOR\" while older
jobs remain, and --json prints {\"jobs\": [...], \"next\": \"CURSOR\"|null,
\"scanned_all\": BOOL}, the jobs as above (the same as the dashboard's
/api/jobs). A text matching few jobs reads at most 100,000 jobs per page;
a page that stopped there says so (\"scanned_all\": false) and its cursor
goes on from where it stopped.")]
    List(ListArgs),
    /// Show one job with its attempt history
    #[command(after_help = "Examples:\n  queuectl show job1\n  queuectl show job1 --json")]
    Show {
        /// Job id
        #[arg(add = complete::job_id())]
        id: String,
    },
    /// Print a job's output (stdout and stderr), attempt by attempt; a note on stderr says when there is none or some was lost
    #[command(after_help = "\
Examples:
  queuectl logs job1
  queuectl logs -f job1
  queuectl logs job1 --attempt 2 --lines 20
  queuectl logs --json job1

On a terminal (and with --color always) each attempt starts
with a header (attempt, worker, start, how it ended) and stderr lines are marked (in red
where colour is on); otherwise the output is exactly what the job printed. logs -f exits like `wait`: 0 completed, 5 dead, 6 cancelled.")]
    Logs(LogsArgs),
    /// Cancel jobs: a waiting job at once, a running one is stopped like a timeout; either ends cancelled
    #[command(after_help = "\
Examples:
  queuectl cancel job1
  queuectl cancel job1 job2 job3
  queuectl cancel --state pending --older-than 1h
  queuectl cancel --all                 # every waiting and running job

Applies to pending, failed (waiting for a retry) and processing jobs.
Named jobs are handled one by one: each one that can be cancelled is; each
other one is reported on stderr, and the exit code is 3 if any was not found,
else 4. A filter (--all, --state, --older-than) acts on the jobs it matches
when the command starts, in transactions of 1000 jobs.",
        mut_arg("ids", |ids| ids.add(complete::job_id_in(BulkAction::Cancel.applies_to())))
    )]
    Cancel {
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Run finished jobs again: completed, dead or cancelled jobs become pending, due now, with a fresh retry budget
    #[command(after_help = "\
Examples:
  queuectl restart job1
  queuectl restart job1 job2
  queuectl restart --state dead,cancelled --older-than 1d
  queuectl restart --all                # every finished job

A restarted job keeps its attempt history: the next run is attempt N+1 and
`show` and `logs` keep the earlier ones. A pending, failed (waiting for a
retry) or processing job is refused with exit 4 naming its state; an unknown
id exits 3. So is (exit 4) a job waiting for a dependency that is dead or
cancelled (\"dependency D is dead: restart D first\"), also when a filter
chose it; restarting D revives it. Named jobs are handled one by one (the
others are still restarted).",
        mut_arg("ids", |ids| ids.add(complete::job_id_in(BulkAction::Restart.applies_to())))
    )]
    Restart {
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Delete finished jobs (completed, dead, cancelled) with their history and logs
    #[command(after_help = "\
Examples:
  queuectl purge                        # finished longer ago than retention_seconds
  queuectl purge --older-than 7d
  queuectl purge --all                  # every finished job
  queuectl purge --state dead --older-than 1d
  queuectl purge job1 job2

Named jobs are handled one by one: a job that is not finished is reported on
stderr (exit 4), an unknown one too (exit 3); the others are deleted.",
        mut_arg("ids", |ids| ids.add(complete::job_id_in(BulkAction::Purge.applies_to())))
    )]
    Purge {
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Move a queue's jobs (with their attempt history), queue settings
    /// and schedules to another queue, between SQLite and PostgreSQL
    /// either way
    #[command(after_help = "\
Examples:
  queuectl copy --from /var/lib/queuectl/queue.db --to postgresql://queuectl@db1/queuectl
  queuectl copy --from 'host=/run/postgresql dbname=queuectl' --to ./backup.db

Copied in one transaction: every job with its attempts and dependencies, each
queue's settings (limit, paused) and every schedule as it was (its job and env,
a workers schedule's next elapse, its last job).
The target must hold no jobs, queue settings or schedules (it is created if
missing); the source is only read. Stop the source's workers first: a queue
with running jobs is refused. Worker registrations and output files stay where
they are; each attempt's output tail travels with it. A systemd schedule's
timers stay on the source's host (copy names those schedules on stderr): add
them again with `schedule add --replace` against the new queue.")]
    Copy {
        /// The queue to read: an SQLite file or a PostgreSQL address
        #[arg(long, value_name = "PATH|URL")]
        from: PathBuf,
        /// The queue to fill: an SQLite file or a PostgreSQL address
        #[arg(long, value_name = "PATH|URL")]
        to: PathBuf,
    },
    /// Job counts by state, and the workers
    #[command(after_help = "Examples:\n  queuectl status\n  queuectl status --json")]
    Status {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Throughput, success rate and durations
    #[command(after_help = "Examples:\n  queuectl metrics\n  queuectl metrics --json")]
    Metrics,
    /// The dead letter queue: jobs whose retries are spent
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl dlq list\n  queuectl dlq retry job1\n  queuectl dlq retry --all"
    )]
    Dlq(DlqCommand),
    /// Read and change settings
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl config get\n  queuectl config set max_retries 5\n  queuectl config path"
    )]
    Config(ConfigCommand),
    /// Run, start and stop workers
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl worker start --count 3\n  queuectl worker stop\n  queuectl worker run --drain"
    )]
    Worker(WorkerCommand),
    /// Named queues: list them, pause and resume them, limit how many of their jobs run at once
    #[command(subcommand, after_help = QUEUE_HELP)]
    Queue(QueueCommand),

    /// Recurring schedules: a job enqueued on a calendar, by a systemd timer or by the workers
    #[command(subcommand, after_help = SCHEDULE_HELP)]
    Schedule(ScheduleCommand),
    /// Install or print the systemd unit files
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl units print\n  queuectl units install --user"
    )]
    Units(UnitsCommand),
    /// Serve the dashboard, its JSON API and Prometheus /metrics over HTTP
    #[command(after_help = WEB_HELP)]
    Web(WebArgs),
    /// Print a shell completion script; as you type it asks queuectl for
    /// job ids (from the queue), states and config keys
    #[command(after_help = "\
Examples:
  queuectl completions bash > ~/.local/share/bash-completion/completions/queuectl
  queuectl completions zsh > ~/.zfunc/_queuectl   # fpath+=(~/.zfunc) before compinit
  queuectl completions fish > ~/.config/fish/completions/queuectl.fish
  source <(queuectl completions bash)             # this shell only

The script calls this binary by its full path: write it again after moving it.
Job ids come from the queue --db or --config on the line name (else the default),
read only; a queue that is missing or unreadable offers none.")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write every page into a directory
    #[command(after_help = "\
Examples:
  queuectl man | man -l -
  queuectl man --dir /usr/local/share/man/man1   # queuectl.1, queuectl-add.1, ...")]
    Man {
        /// Write queuectl.1 and one page per subcommand (queuectl-worker-start.1, ...) here
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
    /// Measure queuectl on this machine against raw baselines (runs queuectl-bench)
    #[command(after_help = BENCH_HELP, disable_help_flag = true)]
    Bench(BenchArgs),
}

const WEB_HELP: &str = "\
Examples:
  queuectl web                                  # http://127.0.0.1:9750
  queuectl web --listen 127.0.0.1:0             # any free port; the address is printed
  queuectl web --allow-actions                  # retry, cancel, restart and purge buttons
  queuectl web --listen 0.0.0.0:9750 --auth-token-file /etc/queuectl/web-token
  curl -H \"Authorization: Bearer $(cat /etc/queuectl/web-token)\" http://host:9750/metrics

Pages: / (overview), /jobs, /jobs/ID, /dlq, /workers, /queues, /schedules. JSON:
/api/status, /api/overview, /api/jobs?state=&queue=&q=&before=&limit=, /api/jobs/ID,
/api/dlq, /api/workers, /api/queues, /api/schedules (each as the matching --json;
status without this host's supervisor view, which needs systemctl: \"supervisor\" and
each \"unit_state\" are null; a systemd timer's next elapse is null too).
Prometheus: /metrics. Liveness: /healthz (200 while the server answers; it does
not read the queue). Readiness: /readyz (200 when the queue can be read, else 503
and why). With authentication on, every address needs it, these three too.

Under systemd socket activation (LISTEN_FDS) the passed TCP sockets are served and
--listen is ignored; READY=1 is sent once serving. It prints \"listening on
http://ADDR\" on stderr and serves until SIGTERM or SIGINT. The auth files hold one
line (the token, or user:password) and must be private to their owner (chmod 600),
else it refuses to start. A non-loopback address without authentication is refused
unless --insecure-no-auth; on loopback without authentication it answers only
requests addressed to localhost or a loopback IP (403 otherwise: DNS rebinding). Actions are POSTs with a CSRF token; without
--allow-actions they answer 403 and no page shows buttons.

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 cannot listen or serve; 2 bad flags, an
auth file that is missing, empty or readable by others, or an exposed address
without authentication.";

const QUEUE_HELP: &str = "\
Examples:
  queuectl queue list
  queuectl queue set emails --parallel 2      # at most 2 emails jobs run at once, on all hosts
  queuectl queue set emails --parallel none   # no limit
  queuectl queue pause reports                # start no more reports jobs
  queuectl queue resume reports
  queuectl add --queue emails -- ./send.sh
  queuectl worker run --queues emails,reports # a worker for these queues only

Every job waits in a queue (\"default\" unless it names one). A queue without
settings is unlimited and running. Limits are kept in the queue itself, so they
hold for every worker of every host; the config's [queues.NAME] tables
(parallel, paused) are written into the queue by each worker at start.";

const SCHEDULE_HELP: &str = "\
Examples:
  queuectl schedule add nightly --on-calendar 'Mon..Fri 02:00' -- ./backup.sh --full
  queuectl schedule add report --on-calendar daily --persistent --randomized-delay 10m -- make report
  queuectl schedule add tick --on-calendar '*:0/5' --overlap queue --driver workers -- ./poll.sh
  queuectl schedule list
  queuectl schedule run nightly          # enqueue its job now
  queuectl schedule remove nightly

Calendars are systemd's (man systemd.time, `systemd-analyze calendar EXPR`). Where a
systemd manager runs (--driver auto), each schedule is a timer and a service,
queuectl-schedule-NAME.{timer,service}, that enqueues the schedule's job; the job
itself stays in the queue. Elsewhere (--driver workers) the workers fire it: once
per elapse across all workers and hosts. See docs/schedules.md.";

const BENCH_HELP: &str = "\
Examples:
  queuectl bench --quick                  # small sizes, well under a minute
  queuectl bench --scenario latency --json
  queuectl bench --db postgres://bench@db1/postgres   # a PostgreSQL server instead
  queuectl bench --help                   # every option (queuectl-bench's own help)

The benchmark is its own program, queuectl-bench, installed beside queuectl; `queuectl
bench ARGS` runs `queuectl-bench --queuectl <this binary> ARGS`, so it measures this
queuectl. It never touches your queue (--config is ignored).";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// queuectl-bench's options (see `queuectl bench --help`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job as a JSON object, a JSON array of jobs (one batch), or "-" to read one job per line from stdin
    #[arg(
        value_name = "JSON",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub job: Option<String>,
    /// Read jobs from a file: one JSON object per line, or a JSON array
    #[arg(long, short, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// Job settings that `add` sets and `edit` changes.
#[derive(Debug, Default, Args)]
pub struct JobFields {
    /// Priority: higher runs first
    #[arg(long, short = 'p', value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Due after this long from now (30s, 5m, 2h, 1d)
    #[arg(long, value_name = "DURATION", conflicts_with = "at")]
    pub delay: Option<String>,
    /// Due at this time: RFC 3339 (2026-12-01T09:00:00Z) or local time ("2026-12-01 09:00"; one a daylight-saving change skips or repeats needs an offset)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Retries after failed attempts before the job is dead
    #[arg(long, value_name = "N")]
    pub retries: Option<u64>,
    /// Stop an attempt after this long (30s, 5m; 0: never)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// The queue the job waits in (letters, digits, '.', '_', '-'); see `queuectl queue`
    #[arg(long, short = 'q', value_name = "NAME", add = complete::queue_name())]
    pub queue: Option<String>,
}

/// `add`: a command and its settings as flags.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Job id (letters, digits, '.', '_', '-') [default: a new ULID]
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub job: NewJobArgs,
    /// At most one unfinished job holds this key (1-200 characters); see --on-duplicate
    #[arg(long, value_name = "KEY")]
    pub unique_key: Option<String>,
    /// When an unfinished job holds the key: reject (exit 4), skip (print the holder's id, exit 0), replace (update the holder while it waits; exit 4 while it runs) [default: reject]
    #[arg(long, value_name = "POLICY", requires = "unique_key",
        value_parser = clap::builder::PossibleValuesParser::new(OnDuplicate::NAMES))]
    pub on_duplicate: Option<String>,
    /// Run only once job ID completed (repeatable, up to 1000); if it ends dead or cancelled, this job is cancelled too
    #[arg(long, value_name = "ID", add = complete::job_id())]
    pub after: Vec<String>,
    /// The command after --: several words are quoted and joined; one word is a shell command line
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A new job's settings as flags, shared by `add` and `schedule add`
/// (mapped to the job's JSON fields by `job_fields.rs`), with their
/// defaults named: `edit` keeps the job's own value when a flag is left
/// out, so only these name a default.
#[derive(Debug, Args)]
#[command(
    mut_arg("priority", |arg| with_default(arg, "0")),
    mut_arg("retries", |arg| with_default(arg, "the config's max_retries")),
    mut_arg("timeout", |arg| with_default(arg, "the config's timeout_seconds")),
    mut_arg("queue", |arg| with_default(arg, "default"))
)]
pub struct NewJobArgs {
    #[command(flatten)]
    pub fields: JobFields,
    /// A variable for the job, NAME=VALUE (repeatable; values are never shown)
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Variables read when each attempt starts: an absolute path, or a systemd credential's name
    #[arg(long, value_name = "PATH|NAME")]
    pub env_file: Option<String>,
    /// Working directory: an existing directory of this host, stored canonical [default: the current directory]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
}

/// An argument's help with `[default: …]` added, for a default the program
/// applies itself (the argument stays optional).
fn with_default(arg: clap::Arg, default: &str) -> clap::Arg {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help} [default: {default}]"))
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// Job id
    #[arg(add = complete::job_id_in(&JobState::EDITABLE))]
    pub id: String,
    /// A new shell command line
    #[arg(long, value_name = "COMMAND")]
    pub command: Option<String>,
    #[command(flatten)]
    pub fields: JobFields,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Job ids
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_name = "ID",
        add = complete::job_id()
    )]
    pub ids: Vec<String>,
    /// Every job that is not finished now
    #[arg(long)]
    pub all: bool,
    /// Give up after this long (30s, 5m, 2h; a bare number is seconds) (exit 7)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub timeout: Option<std::time::Duration>,
}

/// A duration flag read as job durations are (30s, 5m, 2h, 1d; bare seconds).
fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    queuectl::domain::duration::parse_duration(text)
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id
    #[arg(add = complete::job_id())]
    pub id: String,
    /// Keep printing output until the job finishes
    #[arg(short, long)]
    pub follow: bool,
    /// Only this attempt (1 is the first run)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
    /// Only the last N lines of each attempt shown
    #[arg(long, short = 'n', value_name = "N")]
    pub lines: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in these states, comma-separated (pending, processing, completed, failed, dead, cancelled)
    #[arg(long, short, value_name = "STATE,...", value_delimiter = ',', add = complete::state())]
    pub state: Vec<String>,
    /// Only jobs of this queue
    #[arg(long, short = 'q', value_name = "NAME", add = complete::queue_name())]
    pub queue: Option<String>,
    /// Only jobs waiting for others to complete (pending, shown as "blocked (N)")
    #[arg(long, conflicts_with = "state")]
    pub blocked: bool,
    /// Only jobs whose id or command contains TEXT (ASCII letters in either case; % _ \ are plain characters)
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["blocked", "all"])]
    pub search: Option<String>,
    /// Only jobs older than CURSOR: the "more: --before CURSOR" of the previous page
    #[arg(long, value_name = "CURSOR", conflicts_with_all = ["blocked", "all"])]
    pub before: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// How many of the newest jobs a list shows.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// At most this many jobs, the newest; a note on stderr says how many more there are
    #[arg(long, short = 'n', default_value_t = 100, conflicts_with = "all")]
    pub limit: u32,
    /// Every job
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// Listen on this IP:PORT or localhost:PORT when systemd passes no socket (port 0: any free port)
    /// [default: config web_listen, 127.0.0.1:9750]
    #[arg(long, value_name = "ADDR:PORT", value_parser = queuectl::web::listen::parse_address)]
    pub listen: Option<std::net::SocketAddr>,
    /// Offer retry, cancel, restart and purge (POSTs with a CSRF token) [config: web_allow_actions]
    #[arg(long)]
    pub allow_actions: bool,
    /// Require `Authorization: Bearer TOKEN`, the token being this private file's first line
    /// [config: web_auth_token_file]
    #[arg(long, value_name = "FILE", conflicts_with = "auth_basic_file", value_hint = clap::ValueHint::FilePath)]
    pub auth_token_file: Option<PathBuf>,
    /// Require basic authentication as the `user:password` on this private file's first line
    /// [config: web_auth_basic_file]
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub auth_basic_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication (a warning is printed)
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Request threads, each with its own connection to the queue
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead jobs, newest first, each with its last error
    #[command(
        after_help = "Examples:\n  queuectl dlq list\n  queuectl dlq list --all\n  queuectl dlq list --json   # {\"jobs\": [...], \"total\": N}, each last_error in full"
    )]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Move dead jobs back to pending with a fresh retry budget
    #[command(after_help = "\
Examples:
  queuectl dlq retry job1
  queuectl dlq retry job1 job2
  queuectl dlq retry --all
  queuectl dlq retry --older-than 1h

Named jobs are handled one by one: a job that is not dead is reported on
stderr (exit 4), an unknown one too (exit 3); the others are retried.
To run completed or cancelled jobs again, use restart.",
        mut_arg("ids", |ids| ids.add(complete::job_id_in(BulkAction::RetryDead.applies_to())))
    )]
    Retry {
        #[command(flatten)]
        select: SelectArgs,
    },
}

/// Which jobs a cancel, restart, `dlq retry` or purge acts on: ids, or a
/// filter (evaluated by the database).
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Job ids; each is acted on, or reported on stderr, on its own
    #[arg(value_name = "ID", conflicts_with_all = ["all", "state", "older_than"], add = complete::job_id())]
    pub ids: Vec<String>,
    /// Every job the command applies to
    #[arg(long)]
    pub all: bool,
    /// Only jobs in these states (comma-separated), among those the command applies to
    #[arg(long, short, value_name = "STATE,...", value_delimiter = ',', add = complete::state())]
    pub state: Vec<String>,
    /// Only jobs older than AGE (30s, 5m, 2h, 7d): finished jobs by when they
    /// finished, waiting and running jobs by when they were enqueued
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, or one
    #[command(after_help = "Examples:\n  queuectl config get\n  queuectl config get max_retries")]
    Get {
        /// One key (max_retries, backoff_base, backoff_max_seconds, timeout_seconds, db_path, ...)
        #[arg(add = complete::config_key())]
        key: Option<String>,
    },
    /// Change a setting in the config file (comments are kept)
    #[command(
        after_help = "Examples:\n  queuectl config set max_retries 5\n  queuectl config set backoff_base 3\n  queuectl config set durability normal"
    )]
    Set {
        #[arg(add = complete::config_key())]
        key: String,
        #[arg(allow_hyphen_values = true, add = complete::config_value())]
        value: String,
    },
    /// Print the config file's path
    #[command(
        after_help = "Examples:\n  queuectl config path\n  $EDITOR \"$(queuectl config path)\""
    )]
    Path,
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run a worker in the foreground (what each service instance runs)
    #[command(
        after_help = "Examples:\n  queuectl worker run\n  queuectl worker run --name 1\n  queuectl worker run --concurrency 4\n  queuectl worker run --queues emails,reports\n\n\
SIGTERM or SIGINT: claim nothing more, finish the running jobs, then exit 0. A second\n\
signal kills them and returns them to the queue."
    )]
    Run {
        /// Worker name, shown in status and recorded with each attempt [default: <host>-<pid>]
        #[arg(long)]
        name: Option<String>,
        /// Exit once no job is due (for batch runs and scripts)
        #[arg(long)]
        drain: bool,
        /// Run up to K jobs at once [default: the config's `concurrency`, 1]
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=queuectl::config::MAX_CONCURRENCY as i64))]
        concurrency: Option<u32>,
        /// Only run jobs of these queues, comma-separated [default: $QUEUECTL_QUEUES (set but
        /// empty: every queue), else the config's `worker_queues`, else every queue]
        #[arg(long, value_name = "NAME,...", value_parser = queues_arg)]
        queues: Option<QueuesArg>,
    },
    /// Start N workers in the background (scale up or down)
    #[command(after_help = "Examples:
  queuectl worker start --count 3
  queuectl worker start --count 1   # scales down: 2 and 3 finish their jobs, then stop
  queuectl worker start --count 2 --user
  queuectl worker start --count 2 --queues emails

Where systemd runs, the workers are instances of queuectl-worker@.service (system scope
as root, user scope otherwise); elsewhere they are supervised background processes.
The config's `supervisor` key forces one (auto, systemd, process).")]
    Start {
        #[command(flatten)]
        scope: ScopeArgs,
        /// How many workers should run
        #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        /// Seconds to wait for surplus workers to stop before killing them [default: wait]
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// Only run jobs of these queues, comma-separated (systemd: a drop-in per
        /// instance setting $QUEUECTL_QUEUES, processes: that variable; restarts
        /// instances serving others)
        /// [default: the config's `worker_queues`, every queue]
        #[arg(long, value_name = "NAME,...", value_parser = queues_arg)]
        queues: Option<QueuesArg>,
    },
    /// Stop every worker gracefully and wait for running jobs to finish
    #[command(
        after_help = "Examples:\n  queuectl worker stop\n  queuectl worker stop --timeout 60"
    )]
    Stop {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Seconds to wait before killing workers [default: wait]
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Internal: the process supervisor's keeper for one instance
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        instance: u32,
    },
}

/// Which systemd manager to use [default: system scope as root, else user;
/// supervised processes when that manager is not running]. Naming one asks
/// for systemd: it is an error when that manager is not running.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct ScopeArgs {
    /// Use the calling user's systemd manager (an error when none is reachable)
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// Use the system's systemd manager (an error when systemd is not running)
    #[arg(long)]
    pub system: bool,
}

impl ScopeArgs {
    /// Whether a systemd manager was named (`--user` or `--system`).
    pub fn explicit(&self) -> bool {
        self.user || self.system
    }

    /// The scope asked for, or the default for the current user.
    pub fn scope(&self) -> queuectl::systemd::systemctl::Scope {
        use queuectl::systemd::systemctl::Scope;
        match (self.user, self.system) {
            (true, _) => Scope::User,
            (_, true) => Scope::System,
            _ => Scope::default_for_current_user(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Every queue with settings or unfinished jobs: its limit, whether it is paused, and its waiting, running and blocked jobs
    #[command(after_help = "Examples:\n  queuectl queue list\n  queuectl queue list --json")]
    List,
    /// Start no more jobs of a queue (running ones go on)
    #[command(after_help = "Examples:\n  queuectl queue pause reports")]
    Pause {
        /// Queue name
        #[arg(value_name = "NAME", add = complete::queue_name())]
        name: String,
    },
    /// Start a paused queue's jobs again
    #[command(after_help = "Examples:\n  queuectl queue resume reports")]
    Resume {
        /// Queue name
        #[arg(value_name = "NAME", add = complete::queue_name())]
        name: String,
    },
    /// Change a queue's settings
    #[command(after_help = "\
Examples:
  queuectl queue set emails --parallel 2
  queuectl queue set emails --parallel none
  queuectl queue set reports --paused true

A new limit applies to the next claims: jobs already running go on. A claim that
started just before the change committed may still follow the old limit once.")]
    Set {
        /// Queue name
        #[arg(value_name = "NAME", add = complete::queue_name())]
        name: String,
        /// The most of its jobs running at once across all workers and hosts, or "none"
        #[arg(long, value_name = "N|none", value_parser = parallel_arg)]
        parallel: Option<ParallelArg>,
        /// Pause (true) or resume (false)
        #[arg(long, value_name = "BOOL")]
        paused: Option<bool>,
    },
}

/// `--parallel`'s value: a count, or none for no limit.
#[derive(Clone, Copy, Debug)]
pub struct ParallelArg(pub Option<u32>);

fn parallel_arg(text: &str) -> Result<ParallelArg, String> {
    queuectl::domain::queue::parse_parallel(text).map(ParallelArg)
}

/// `--queues`' value: queue names separated by commas.
fn queues_arg(text: &str) -> Result<QueuesArg, String> {
    queuectl::domain::queue::parse_queue_list(text).map(QueuesArg)
}

#[derive(Clone, Debug)]
pub struct QueuesArg(pub Vec<queuectl::domain::QueueName>);

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Add a schedule: its job is enqueued at every elapse of the calendar
    #[command(after_help = SCHEDULE_ADD_HELP)]
    Add(Box<ScheduleAddArgs>),
    /// Every schedule: its calendar, next elapse (from the systemd manager, or the queue for the workers' schedules), last job and that job's state
    #[command(
        after_help = "Examples:\n  queuectl schedule list\n  queuectl schedule list --json   # job env values are never shown: env_keys only"
    )]
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Remove a schedule: its timer and service (only those queuectl wrote) and its row; its jobs stay
    #[command(after_help = "Examples:\n  queuectl schedule remove nightly")]
    Remove {
        /// Schedule name
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Enqueue a schedule's job now, by its overlap policy; prints the job's id
    #[command(
        after_help = "Examples:\n  queuectl schedule run nightly\n  queuectl wait \"$(queuectl schedule run nightly)\""
    )]
    Run {
        /// Schedule name
        name: String,
    },
    /// Internal: what a schedule's service runs at each elapse
    #[command(hide = true)]
    Fire {
        /// Schedule name
        name: String,
        /// The schedule as JSON (NixOS): its row is written first, marked managed
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
}

const SCHEDULE_ADD_HELP: &str = "\
Examples:
  queuectl schedule add nightly --on-calendar 'Mon..Fri 02:00' -- ./backup.sh --full
  queuectl schedule add sync --on-calendar hourly --overlap replace --env-file /etc/sync.env -- ./sync.sh
  queuectl schedule add twice --on-calendar '*-*-* 06:00' --on-calendar '*-*-* 18:00' -- ./report.sh
  queuectl schedule add tz --on-calendar '09:00 Europe/Berlin' --job '{\"command\":\"./hello.sh\",\"priority\":5}'

--overlap: skip (default) enqueues nothing while the job of an earlier elapse is
unfinished; replace updates that job while it waits (and skips while it runs); queue
enqueues anyway (give its queue parallel = 1 to run them one at a time).
--driver auto uses systemd timers where a systemd manager runs (system scope as root,
user scope otherwise; user timers need `loginctl enable-linger` to run while logged
out), else the workers. systemd checks the calendar (systemd-analyze) before anything
is written. The workers run the documented subset of systemd's calendar: see
docs/schedules.md. Exit 4: the name exists (use --replace) or its unit files are not
queuectl's.";

/// `schedule add`'s options. A schedule's job runs at each elapse: the
/// shared --delay and --at are hidden here (and refused).
#[derive(Debug, Args)]
#[command(mut_arg("delay", |arg| arg.hide(true)), mut_arg("at", |arg| arg.hide(true)))]
pub struct ScheduleAddArgs {
    /// Schedule name: letters, digits, '_' and '-' (it names the unit files)
    pub name: String,
    /// When, as a systemd calendar event ('Mon..Fri 02:00', daily, '*:0/15'); repeatable
    #[arg(long, required = true, value_name = "EXPR")]
    pub on_calendar: Vec<String>,
    /// What an elapse does while the job of an earlier one is unfinished
    #[arg(long, value_enum, default_value_t = OverlapArg::Skip)]
    pub overlap: OverlapArg,
    /// Fire once after downtime for an elapse that was missed
    #[arg(long)]
    pub persistent: bool,
    /// Delay each elapse by a random time up to this (30s, 5m, 1h)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub randomized_delay: Option<std::time::Duration>,
    /// Who fires it: systemd timers, the workers, or auto (systemd where a manager runs)
    #[arg(long, value_enum, default_value_t = DriverArg::Auto)]
    pub driver: DriverArg,
    /// Replace a schedule of the same name
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub job: NewJobArgs,
    /// The job as JSON (the fields of `enqueue`, without id, run_at and delay) instead of flags and COMMAND
    #[arg(long = "job", value_name = "JSON", conflicts_with_all = ["command", "priority", "retries", "timeout", "env", "env_file", "cwd"])]
    pub job_json: Option<String>,
    /// The command after --: several words are quoted and joined; one word is a shell command line
    #[arg(
        last = true,
        required_unless_present = "job_json",
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OverlapArg {
    Skip,
    Queue,
    Replace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    Auto,
    Systemd,
    Workers,
}

#[derive(Debug, Subcommand)]
pub enum UnitsCommand {
    /// Write the unit files into the scope's unit directory and reload systemd
    #[command(
        after_help = "Examples:\n  sudo queuectl units install --system\n  queuectl units install --user\n  systemctl --user start queuectl-worker@1\n  systemctl --user enable --now queuectl-web.socket   # the dashboard, started on the first request"
    )]
    Install {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Print the unit files, with ExecStart pointing at this binary
    #[command(after_help = "Examples:\n  queuectl units print")]
    Print,
}
