//! systemd's own verdict on a calendar expression: `systemd-analyze
//! calendar`, asked before a timer is written, so that a timer file never
//! holds an expression its manager would refuse.

use crate::domain::echo;
use crate::error::{Error, Result};
use std::process::{Command, Stdio};

/// systemd's normalized form of `expr`, or why it refuses it.
pub fn check(expr: &str) -> Result<String> {
    let out = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=1", "--", expr])
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::Supervisor(format!(
                "cannot run systemd-analyze to check the calendar ({e}); is systemd installed?"
            ))
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Invalid(format!(
            "--on-calendar: systemd refuses \"{}\": {}",
            echo::shown(expr),
            echo::shown(why.trim())
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Normalized form: "))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::Supervisor("systemd-analyze calendar printed no normalized form".into())
        })
}
