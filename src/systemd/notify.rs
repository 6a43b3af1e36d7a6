//! sd_notify for workers: READY, STATUS, WATCHDOG, STOPPING and
//! EXTEND_TIMEOUT_USEC. Without `$NOTIFY_SOCKET` every call is a no-op, and a
//! failed notification never fails the worker.

use sd_notify::NotifyState;
use std::time::Duration;

/// The watchdog timeout asked for by `WATCHDOG_USEC`, as libsystemd's
/// `sd_watchdog_enabled(3)` reads it: it applies to this process unless
/// `WATCHDOG_PID` names another one. (The sd-notify crate also refuses a
/// missing `WATCHDOG_PID`, which the process supervisor's keeper cannot set:
/// it learns its worker's pid only after the exec.) Jobs never see either
/// variable: the runner removes them.
fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.parse().ok().filter(|&usec| usec > 0)?;
    match pid {
        Some(pid) if pid.parse::<u32>().ok() != Some(own_pid) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var(name).ok();
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: watchdog_timeout(
                var("WATCHDOG_USEC").as_deref(),
                var("WATCHDOG_PID").as_deref(),
                std::process::id(),
            ),
        }
    }

    /// How often to send WATCHDOG=1: half the watchdog timeout, as systemd advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// Asks systemd for `extra` more time to finish stopping.
    pub fn extend_timeout(&self, extra: Duration) {
        let usec = u32::try_from(extra.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)]);
    }
}

#[cfg(test)]
mod tests {
    use super::watchdog_timeout;
    use std::time::Duration;

    #[test]
    fn watchdog_usec_applies_unless_watchdog_pid_names_another_process() {
        let two_seconds = Some(Duration::from_secs(2));
        for (usec, pid, expected) in [
            // The keeper sets no WATCHDOG_PID: the worker must ping all the same.
            (Some("2000000"), None, two_seconds),
            (Some("2000000"), Some("42"), two_seconds),
            (Some("2000000"), Some("43"), None),
            (Some("2000000"), Some("not a pid"), None),
            (None, Some("42"), None),
            (Some("0"), None, None),
            (Some("soon"), None, None),
        ] {
            assert_eq!(
                watchdog_timeout(usec, pid, 42),
                expected,
                "{usec:?} {pid:?}"
            );
        }
    }
}
