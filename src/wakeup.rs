//! How an idle worker learns of new work within milliseconds without polling:
//! each worker binds a datagram socket in the state directory's `wake/`, and
//! whoever makes a job claimable (enqueue, dlq retry, cancel) sends one byte
//! to every socket there. A lost datagram costs only latency: workers still
//! wake for scheduled jobs and their own timers.

use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

pub struct WakeSocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl WakeSocket {
    /// Binds `dir/<name>.sock`, replacing a stale socket left by a killed worker.
    /// The socket is private (only the queue's owner, or its group in a
    /// group-shared state directory, may poke it) whatever the umask.
    pub fn bind(dir: &Path, name: &str) -> io::Result<WakeSocket> {
        let (sharing, _) = crate::files::private_dir(dir)?;
        let path = dir.join(format!("{name}.sock"));
        match crate::files::remove_nofollow(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let socket = UnixDatagram::bind(&path)?;
        std::fs::set_permissions(&path, Permissions::from_mode(sharing.file_mode()))?;
        Ok(WakeSocket { socket, path })
    }

    /// Calls `on_wake` for every datagram, from a background thread, until
    /// `on_wake` returns false.
    pub fn forward(&self, mut on_wake: impl FnMut() -> bool + Send + 'static) -> io::Result<()> {
        let socket = self.socket.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            while socket.recv(&mut buf).is_ok() {
                if !on_wake() {
                    break;
                }
            }
        });
        Ok(())
    }
}

impl Drop for WakeSocket {
    fn drop(&mut self) {
        let _ = crate::files::remove_nofollow(&self.path);
    }
}

/// Pokes every worker sharing this state directory. Best effort: errors
/// (no workers, a dead worker's socket) are ignored.
pub fn wake_workers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let Ok(sender) = UnixDatagram::unbound() else {
        return;
    };
    let _ = sender.set_nonblocking(true);
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "sock") {
            let _ = sender.send_to(b"!", &path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_poke_reaches_every_bound_worker() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let sockets: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let socket = WakeSocket::bind(dir.path(), name).unwrap();
                let tx = tx.clone();
                socket.forward(move || tx.send(name).is_ok()).unwrap();
                socket
            })
            .collect();
        wake_workers(dir.path());
        let mut woken = [
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        ];
        woken.sort();
        assert_eq!(woken, ["a", "b"]);
        drop(sockets);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "sockets are removed on drop"
        );
    }
}
