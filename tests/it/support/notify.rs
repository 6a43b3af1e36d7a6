//! A fake sd_notify socket: collects every datagram a worker sends to it
//! (READY, STATUS, WATCHDOG, ...), so tests read what systemd would see.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The messages received on a socket bound at a path (a worker's
/// `NOTIFY_SOCKET`), in arrival order.
#[derive(Clone)]
pub struct NotifyListener {
    messages: Arc<Mutex<Vec<String>>>,
}

impl NotifyListener {
    /// Binds a datagram socket at `path` and collects from it in a thread.
    pub fn bind(path: &Path) -> NotifyListener {
        let socket = UnixDatagram::bind(path).unwrap();
        let messages = Arc::new(Mutex::new(vec![]));
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        NotifyListener { messages }
    }

    /// The index of the first message containing `needle`.
    pub fn seen(&self, needle: &str) -> Option<usize> {
        self.seen_since(0, needle)
    }

    /// The index of the first message from index `from` on containing `needle`.
    pub fn seen_since(&self, from: usize, needle: &str) -> Option<usize> {
        let messages = self.messages.lock().unwrap();
        let later = messages.get(from..).unwrap_or_default();
        later
            .iter()
            .position(|m| m.contains(needle))
            .map(|i| from + i)
    }

    /// How many watchdog pings arrived.
    pub fn pings(&self) -> usize {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.trim() == "WATCHDOG=1")
            .count()
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}
