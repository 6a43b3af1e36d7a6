//! The unit files queuectl ships (`units/` in the source tree), rendered for
//! this installation and installed into a scope's unit directory.

use super::systemctl::Scope;
use crate::error::{IoContext, Result};
use std::path::{Path, PathBuf};

pub const WORKER_TEMPLATE: &str = "queuectl-worker@.service";
pub const TARGET: &str = "queuectl-workers.target";

const WORKER_TEMPLATE_TEXT: &str = include_str!("../../units/queuectl-worker@.service");
const TARGET_TEXT: &str = include_str!("../../units/queuectl-workers.target");

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
        "# Written by `queuectl worker start`: the workers use the same config and\n# database as the CLI that started them.\n[Service]\n{}",
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

/// The files `units install` writes for `scope`, as (relative path, text).
pub fn install_set(binary: &Path, paths: Option<(&Path, &Path)>) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = render(binary)
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text))
        .collect();
    if let Some((config, db)) = paths {
        files.push((
            format!("{WORKER_TEMPLATE}.d/{PATHS_DROP_IN}"),
            paths_drop_in(config, db),
        ));
    }
    files
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
