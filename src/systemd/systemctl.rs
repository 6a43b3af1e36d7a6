//! Driving systemd through `systemctl`, in the system or the user scope.

use crate::error::{Error, IoContext, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

impl Scope {
    /// System scope for root, the user's own manager otherwise.
    pub fn default_for_current_user() -> Scope {
        if crate::paths::is_root() {
            Scope::System
        } else {
            Scope::User
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::User => "user",
        }
    }

    /// Whether a systemd manager for this scope is running here.
    /// Booted with systemd is not enough: its bus must answer a connect,
    /// or `systemctl` fails after queuectl chose it ("Failed to connect to
    /// bus") with files already written.
    pub fn manager_running(self) -> bool {
        let answers = |socket: &Path| std::os::unix::net::UnixStream::connect(socket).is_ok();
        match self {
            // sd_booted() (PID 1 is systemd), and the manager's own socket
            // (root) or the system bus (others) takes a connection.
            Scope::System => {
                Path::new("/run/systemd/system").is_dir()
                    && (answers(Path::new("/run/systemd/private"))
                        || answers(Path::new("/run/dbus/system_bus_socket")))
            }
            Scope::User => std::env::var_os("XDG_RUNTIME_DIR")
                .is_some_and(|dir| answers(&Path::new(&dir).join("systemd/private"))),
        }
    }

    /// Where an administrator's (or user's) own unit files go.
    pub fn unit_dir(self) -> PathBuf {
        match self {
            Scope::System => PathBuf::from("/etc/systemd/system"),
            Scope::User => std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
                        .join(".config")
                })
                .join("systemd/user"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Systemctl {
    pub scope: Scope,
}

impl Systemctl {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("systemctl");
        if self.scope == Scope::User {
            cmd.arg("--user");
        }
        cmd.arg("--no-ask-password").stdin(Stdio::null());
        cmd
    }

    /// Runs `systemctl ARGS`, returning stdout, or an error carrying stderr.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command()
            .args(args)
            .output()
            .context(|| "cannot run systemctl".into())?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(Error::Supervisor(format!(
            "systemctl {}{} failed: {}",
            if self.scope == Scope::User {
                "--user "
            } else {
                ""
            },
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }

    /// Whether systemd knows a unit file by this name (in any unit directory).
    pub fn unit_file_exists(&self, unit: &str) -> bool {
        self.command()
            .args(["cat", unit])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `systemctl show` for the units matching `pattern` (loaded units only):
    /// one map of property to value per unit.
    pub fn show(
        &self,
        pattern: &str,
        properties: &[&str],
    ) -> Result<Vec<BTreeMap<String, String>>> {
        let props = format!("--property={}", properties.join(","));
        let text = self.run(&["show", &props, pattern])?;
        Ok(text
            .split("\n\n")
            .map(|block| {
                block
                    .lines()
                    .filter_map(|line| line.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<BTreeMap<_, _>>()
            })
            .filter(|unit| !unit.is_empty())
            .collect())
    }
}
