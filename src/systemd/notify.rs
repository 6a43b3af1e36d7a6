//! sd_notify for workers: READY, STATUS, WATCHDOG, STOPPING and
//! EXTEND_TIMEOUT_USEC. Without `$NOTIFY_SOCKET` every call is a no-op, and a
//! failed notification never fails the worker.

use sd_notify::NotifyState;
use std::fmt::Write;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// `$NOTIFY_SOCKET`, and the socket connected to it once (sd-notify's
    /// `notify` makes, connects and closes a socket for every message: three
    /// system calls more per job, as STATUS changes with every job).
    socket: Option<(PathBuf, Arc<Mutex<Option<UnixDatagram>>>)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var(name).ok();
        Notifier {
            socket: std::env::var_os("NOTIFY_SOCKET").map(|path| (path.into(), Arc::default())),
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
        let Some((path, socket)) = &self.socket else {
            return;
        };
        let mut message = String::new();
        for state in states {
            let _ = writeln!(message, "{state}");
        }
        let mut socket = socket.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = send_on(&mut socket, path, message.as_bytes()) {
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

/// Sends `message` on `socket`, connecting it to `path` first if need be. A
/// socket whose peer went away (the manager re-created its socket, as on
/// `daemon-reexec`) is connected again once.
fn send_on(socket: &mut Option<UnixDatagram>, path: &Path, message: &[u8]) -> io::Result<()> {
    let mut retried = false;
    loop {
        let connected = match socket {
            Some(connected) => connected,
            None => {
                let fresh = UnixDatagram::unbound()?;
                fresh.connect(path)?;
                socket.insert(fresh)
            }
        };
        match connected.send(message) {
            Ok(sent) if sent == message.len() => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "incomplete write")),
            Err(_) if !retried => {
                *socket = None;
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_socket_carries_every_message_and_a_new_one_follows_a_replaced_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let bind = || {
            let peer = UnixDatagram::bind(&path).unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            peer
        };
        let receive = |peer: &UnixDatagram| {
            let mut buf = [0u8; 256];
            let n = peer.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let notifier = Notifier {
            socket: Some((path.clone(), Arc::default())),
            watchdog: None,
        };
        let peer = bind();
        notifier.ready("idle");
        notifier.status("running job1");
        assert_eq!(receive(&peer), "READY=1\nSTATUS=idle\n");
        assert_eq!(receive(&peer), "STATUS=running job1\n");
        // The manager re-creates its socket: the next message still arrives.
        drop(peer);
        std::fs::remove_file(&path).unwrap();
        let peer = bind();
        notifier.status("idle");
        assert_eq!(receive(&peer), "STATUS=idle\n");
    }

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
