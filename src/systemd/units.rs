//! The unit files queuectl ships (`units/` in the source tree), rendered for
//! this installation and installed into a scope's unit directory.

use super::systemctl::Scope;
use crate::error::{IoContext, Result};
use crate::paths::StateDir;
use crate::store::Database;
use std::path::{Path, PathBuf};

pub const WORKER_TEMPLATE: &str = "queuectl-worker@.service";
pub const TARGET: &str = "queuectl-workers.target";
/// The dashboard: the socket systemd listens on, and the service it starts
/// on the first connection (`queuectl web`, handed the socket).
pub const WEB_SOCKET: &str = "queuectl-web.socket";
pub const WEB_SERVICE: &str = "queuectl-web.service";

const WORKER_TEMPLATE_TEXT: &str = include_str!("../../units/queuectl-worker@.service");
const TARGET_TEXT: &str = include_str!("../../units/queuectl-workers.target");
const WEB_SOCKET_TEXT: &str = include_str!("../../units/queuectl-web.socket");
const WEB_SERVICE_TEXT: &str = include_str!("../../units/queuectl-web.service");

/// The path written in the shipped files, replaced by the real binary's.
const SHIPPED_BINARY: &str = "/usr/bin/queuectl";

/// Drop-in that points installed workers at the CLI's config and database.
pub const PATHS_DROP_IN: &str = "50-queuectl-paths.conf";

pub fn worker_instance(n: u32) -> String {
    format!("queuectl-worker@{n}.service")
}

/// The instance number of a unit name like `queuectl-worker@3.service`.
pub fn instance_number(unit: &str) -> Option<u32> {
    unit.strip_prefix("queuectl-worker@")?
        .strip_suffix(".service")?
        .parse()
        .ok()
}

/// The unit files with `ExecStart` pointing at `binary`.
pub fn render(binary: &Path) -> Vec<(&'static str, String)> {
    let exe = exec_word(binary);
    vec![
        (
            WORKER_TEMPLATE,
            WORKER_TEMPLATE_TEXT.replace(SHIPPED_BINARY, &exe),
        ),
        (TARGET, TARGET_TEXT.to_owned()),
        (WEB_SOCKET, WEB_SOCKET_TEXT.to_owned()),
        (WEB_SERVICE, WEB_SERVICE_TEXT.replace(SHIPPED_BINARY, &exe)),
    ]
}

/// `binary` as the first word of an `ExecStart=` line.
pub(crate) fn exec_word(binary: &Path) -> String {
    quote_unit_word(&escape_unit_value(&binary.display().to_string()))
}

/// A command-line word for ExecStart: double-quoted (so a path with spaces
/// stays one word) with `\` and `"` escaped.
fn quote_unit_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@%:".contains(c))
    {
        return word.to_owned();
    }
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `%` starts a specifier in unit files.
pub(crate) fn escape_unit_value(text: &str) -> String {
    text.replace('%', "%%")
}

/// A drop-in setting the workers' `QUEUECTL_CONFIG` and `QUEUECTL_DB`.
pub fn paths_drop_in(config: &Path, db: &Path) -> String {
    format!(
        "# Written by `queuectl units install` / `worker start`: the service uses the\n# same config and database as the CLI that wrote this.\n[Service]\n{}",
        environment_lines(config, db)
    )
}

/// `Environment=` lines of a `[Service]` section setting `QUEUECTL_CONFIG`
/// and `QUEUECTL_DB`, so the service uses this CLI's queue.
pub(crate) fn environment_lines(config: &Path, db: &Path) -> String {
    let quoted = |name: &str, path: &Path| {
        let value = escape_unit_value(&path.to_string_lossy())
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        format!("Environment=\"{name}={value}\"\n")
    };
    format!(
        "{}{}",
        quoted("QUEUECTL_CONFIG", config),
        quoted("QUEUECTL_DB", db)
    )
}

/// The drop-in of one worker instance that restricts it to some queues.
pub const QUEUES_DROP_IN: &str = "60-queues.conf";

/// Where instance `n`'s queues drop-in goes, relative to the unit directory.
pub fn queues_drop_in_path(n: u32) -> String {
    format!("{}.d/{QUEUES_DROP_IN}", worker_instance(n))
}

/// A drop-in making one instance serve only `queues` (already checked
/// queue names, so nothing needs quoting).
pub fn queues_drop_in(queues: &[crate::domain::QueueName]) -> String {
    let names: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
    format!(
        "# Written by `queuectl worker start --queues`: this instance serves these queues only.\n[Service]\nEnvironment=QUEUECTL_QUEUES={}\n",
        names.join(",")
    )
}

/// Writes `files` (name, text) into `dir`; returns whether anything changed.
pub fn write_if_changed(dir: &Path, files: &[(String, String)]) -> Result<bool> {
    let mut changed = false;
    for (name, text) in files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .context(|| format!("cannot create {}", parent.display()))?;
        }
        crate::paths::write_atomically_readable(&path, text.as_bytes())?;
        changed = true;
    }
    Ok(changed)
}

/// The dashboard's drop-in for a user manager.
pub const USER_MANAGER_DROP_IN: &str = "40-user-manager.conf";

/// The manager units are installed for: a user manager needs the
/// dashboard's hardening loosened where it would break the service there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    System,
    /// `privileged`: the manager runs as root.
    User {
        privileged: bool,
    },
}

impl Manager {
    /// The manager of `scope`, as this process (root or not) would use it.
    pub fn of(scope: Scope) -> Manager {
        match scope {
            Scope::System => Manager::System,
            Scope::User => Manager::User {
                privileged: crate::paths::is_root(),
            },
        }
    }

    /// The dashboard's drop-in for this manager, if it needs one.
    fn web_drop_in(self) -> Option<String> {
        let Manager::User { privileged } = self else {
            return None;
        };
        // A user manager's notify socket (/run/user/UID/systemd/notify) and
        // its StateDirectory= ($XDG_CONFIG_HOME/queuectl) are in places
        // ProtectHome=yes hides: READY=1 would never arrive.
        let mut text = String::from(
            "# Written by `queuectl units install --user`: the user manager's notify socket\n\
             # (/run/user/UID) and state directory (~/.config/queuectl) must stay reachable.\n\
             [Service]\nProtectHome=read-only\n",
        );
        if !privileged {
            // systemd 252 in an unprivileged manager cannot shrink the
            // capability bounding set (the service fails with
            // 218/CAPABILITIES); these options each drop some. It holds no
            // capabilities to drop anyway and skips their mount namespace
            // part; the seccomp filters stay.
            text.push_str(
                "# An unprivileged manager cannot drop capabilities from the bounding set\n\
                 # (218/CAPABILITIES), and has none to drop.\n\
                 CapabilityBoundingSet=~\nPrivateDevices=no\nProtectKernelModules=no\n\
                 ProtectKernelLogs=no\nProtectClock=no\n",
            );
        }
        Some(text)
    }
}

/// The files `units install` writes for `manager`, as (relative path,
/// text): the units; with `paths` (config, database), a drop-in pointing
/// the workers and the dashboard at this CLI's queue; and the dashboard's
/// drop-in for a user manager ([`USER_MANAGER_DROP_IN`]).
pub fn install_set(
    binary: &Path,
    paths: Option<(&Path, &Database)>,
    manager: Manager,
) -> Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = render(binary)
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text))
        .collect();
    if let Some((config, db)) = paths {
        let drop_in = paths_drop_in(config, Path::new(&db.for_unit_file()?));
        files.push((
            format!("{WORKER_TEMPLATE}.d/{PATHS_DROP_IN}"),
            drop_in.clone(),
        ));
        files.push((
            format!("{WEB_SERVICE}.d/{PATHS_DROP_IN}"),
            drop_in + &writable_queue_dir(db) + &sandbox_openings(config, db),
        ));
    }
    if let Some(text) = manager.web_drop_in() {
        files.push((format!("{WEB_SERVICE}.d/{USER_MANAGER_DROP_IN}"), text));
    }
    Ok(files)
}

/// For an SQLite queue, a `ReadWritePaths=` line for its directory, which
/// the dashboard's ProtectSystem=strict would make read-only: a reader in
/// WAL mode must be able to create the -shm and -wal files when no worker
/// has them open (see units/queuectl-web.service). `-`: a queue not created
/// yet does not stop the service from starting.
fn writable_queue_dir(db: &Database) -> String {
    match db {
        Database::Sqlite(_) => format!(
            "ReadWritePaths={}\n",
            quote_unit_word(&format!(
                "-{}",
                escape_unit_value(&StateDir::for_db(db).root().to_string_lossy())
            ))
        ),
        Database::Postgres(_) => String::new(),
    }
}

/// The dashboard's sandbox hides home directories (`ProtectHome=yes`) and
/// the host's /tmp (`PrivateTmp=yes`): where the config or an SQLite queue
/// lies in one of them, the drop-in opens just that (home read-only, with
/// the queue's directory writable through `ReadWritePaths=`; the real /tmp,
/// read-only under ProtectSystem=strict but for that directory).
fn sandbox_openings(config: &Path, db: &Database) -> String {
    let mut paths = vec![config.to_owned()];
    if let Database::Sqlite(_) = db {
        paths.push(StateDir::for_db(db).root().to_owned());
    }
    let under = |roots: &[&str]| {
        paths
            .iter()
            .any(|path| roots.iter().any(|root| path.starts_with(root)))
    };
    let mut lines = String::new();
    if under(&["/home", "/root", "/run/user"]) {
        lines.push_str("ProtectHome=read-only\n");
    }
    if under(&["/tmp", "/var/tmp"]) {
        lines.push_str("PrivateTmp=no\n");
    }
    lines
}

pub fn unit_dir(scope: Scope) -> PathBuf {
    scope.unit_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_points_exec_start_at_the_binary() {
        let files = render(Path::new("/opt/q 100%/queuectl"));
        let worker = &files[0].1;
        assert!(
            worker.contains("ExecStart=\"/opt/q 100%%/queuectl\" worker run --name %i"),
            "{worker}"
        );
        let plain = &render(Path::new("/usr/local/bin/queuectl"))[0].1;
        assert!(plain.contains("ExecStart=/usr/local/bin/queuectl worker run --name %i"));
        assert!(!worker.contains(SHIPPED_BINARY));
        assert!(worker.contains("Type=notify"));
    }

    #[test]
    fn the_dashboard_service_runs_this_binary_and_its_socket_starts_it() {
        let files = render(Path::new("/opt/q 100%/queuectl"));
        let text = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| panic!("{name} not rendered"))
        };
        let service = text(WEB_SERVICE);
        assert!(
            service.contains("\nExecStart=\"/opt/q 100%%/queuectl\" web\n"),
            "{service}"
        );
        assert!(!service.contains(SHIPPED_BINARY), "{service}");
        for line in [
            "Type=notify",
            "Requires=queuectl-web.socket",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
            "StateDirectory=queuectl",
        ] {
            assert!(service.contains(line), "{line:?} missing:\n{service}");
        }
        let socket = text(WEB_SOCKET);
        assert!(
            socket.contains("\nListenStream=127.0.0.1:9750\n"),
            "{socket}"
        );
        assert!(socket.contains("\nAccept=no\n"), "{socket}");
    }

    #[test]
    fn installing_points_workers_and_dashboard_at_the_queue() {
        let db = Database::Sqlite("/var/lib/q 1/queue.db".into());
        let paths = (Path::new("/etc/q/config.toml"), &db);
        let exe = Path::new("/usr/bin/queuectl");
        let drop_in = format!("{WEB_SERVICE}.d/{USER_MANAGER_DROP_IN}");
        let system = install_set(exe, Some(paths), Manager::System).unwrap();
        let listed: Vec<&str> = system.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "queuectl-worker@.service.d/50-queuectl-paths.conf",
            "queuectl-web.service.d/50-queuectl-paths.conf",
            WEB_SOCKET,
            WEB_SERVICE,
        ] {
            assert!(listed.contains(&name), "{name} in {listed:?}");
        }
        assert!(!listed.contains(&drop_in.as_str()), "{listed:?}");
        let web_paths = &system
            .iter()
            .find(|(n, _)| n == "queuectl-web.service.d/50-queuectl-paths.conf")
            .unwrap()
            .1;
        assert!(
            web_paths.contains("\nReadWritePaths=\"-/var/lib/q 1\"\n"),
            "{web_paths}"
        );
        let text_for = |manager| {
            install_set(exe, Some(paths), manager)
                .unwrap()
                .into_iter()
                .find(|(n, _)| *n == drop_in)
                .map(|(_, text)| text)
                .expect("the user manager's drop-in")
        };
        let root = text_for(Manager::User { privileged: true });
        assert!(
            root.contains("[Service]\nProtectHome=read-only\n"),
            "{root}"
        );
        assert!(!root.contains("CapabilityBoundingSet"), "{root}");
        let user = text_for(Manager::User { privileged: false });
        assert!(user.contains("\nCapabilityBoundingSet=~\n"), "{user}");
        assert!(user.contains("\nProtectKernelModules=no\n"), "{user}");
    }

    #[test]
    fn a_queue_in_a_home_or_tmp_opens_just_that_in_the_dashboards_sandbox() {
        let web_paths = |config: &str, db: Database| {
            install_set(
                Path::new("/usr/bin/queuectl"),
                Some((Path::new(config), &db)),
                Manager::System,
            )
            .unwrap()
            .into_iter()
            .find(|(n, _)| *n == format!("{WEB_SERVICE}.d/{PATHS_DROP_IN}"))
            .unwrap()
            .1
        };
        let sqlite = |path: &str| Database::Sqlite(path.into());
        let usual = web_paths(
            "/etc/queuectl/config.toml",
            sqlite("/var/lib/queuectl/queue.db"),
        );
        assert!(
            !usual.contains("ProtectHome") && !usual.contains("PrivateTmp"),
            "{usual}"
        );
        let home = web_paths("/etc/queuectl/config.toml", sqlite("/root/jobs/queue.db"));
        assert!(
            home.contains("\nReadWritePaths=-/root/jobs\nProtectHome=read-only\n"),
            "{home}"
        );
        assert!(!home.contains("PrivateTmp"), "{home}");
        let config_at_home = web_paths(
            "/home/ann/.config/queuectl/config.toml",
            sqlite("/srv/q.db"),
        );
        assert!(
            config_at_home.contains("ProtectHome=read-only"),
            "{config_at_home}"
        );
        let tmp = web_paths("/etc/queuectl/config.toml", sqlite("/tmp/q/queue.db"));
        assert!(tmp.contains("\nPrivateTmp=no\n"), "{tmp}");
        // "/homework" is no home directory.
        let near = web_paths("/etc/q.toml", sqlite("/homework/q.db"));
        assert!(!near.contains("ProtectHome"), "{near}");
    }

    #[test]
    fn a_queues_drop_in_sets_the_instance_environment() {
        let queues = crate::domain::queue::parse_queue_list("emails,reports").unwrap();
        let text = queues_drop_in(&queues);
        assert!(
            text.contains("[Service]\nEnvironment=QUEUECTL_QUEUES=emails,reports\n"),
            "{text}"
        );
        assert_eq!(
            queues_drop_in_path(3),
            "queuectl-worker@3.service.d/60-queues.conf"
        );
    }

    #[test]
    fn instance_names_round_trip() {
        assert_eq!(instance_number(&worker_instance(12)), Some(12));
        assert_eq!(instance_number("queuectl-worker@x.service"), None);
        assert_eq!(instance_number("other@1.service"), None);
    }

    #[test]
    fn drop_in_quotes_paths() {
        let text = paths_drop_in(
            Path::new("/etc/q \"x\".toml"),
            Path::new("/var/lib/q/queue.db"),
        );
        assert!(
            text.contains("Environment=\"QUEUECTL_CONFIG=/etc/q \\\"x\\\".toml\""),
            "{text}"
        );
        assert!(
            text.contains("Environment=\"QUEUECTL_DB=/var/lib/q/queue.db\""),
            "{text}"
        );
    }
}
