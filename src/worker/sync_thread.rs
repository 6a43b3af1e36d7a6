//! The worker's WAL sync, on a thread of its own (SQLite at durability
//! "full"): the loop commits a batch and goes on (recording exits,
//! committing the next batch, starting the jobs of an earlier one) while
//! the batch is flushed to disk. Requests coalesce: one fsync covers every
//! batch committed before it. A batch's claimed jobs start only once it is
//! reported durable, so a power loss can never undo the claim of a job
//! that ran.

use super::Event;
use super::lock;
use crate::error::{Error, Result};
use crate::store::WalSync;
use std::sync::Arc;
use std::sync::mpsc::Sender;

#[derive(Default)]
struct State {
    /// The last batch that must be made durable.
    requested: u64,
    /// The last batch known durable.
    durable: u64,
    failed: bool,
    stop: bool,
}

type Shared = super::Shared<State>;

pub struct SyncThread {
    shared: Shared,
}

impl SyncThread {
    /// Starts the thread; it reports each sync as [`Event::Synced`].
    pub fn start(mut wal: Box<dyn WalSync>, events: Sender<Event>) -> Result<SyncThread> {
        let shared: Shared = Arc::default();
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || {
                let mut state = lock(&worker);
                loop {
                    while !state.stop && state.requested == state.durable {
                        state = worker
                            .1
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                    if state.stop {
                        return;
                    }
                    let target = state.requested;
                    drop(state);
                    let result = wal.sync();
                    state = lock(&worker);
                    match result {
                        Ok(()) => state.durable = target,
                        Err(_) => state.failed = true,
                    }
                    worker.1.notify_all();
                    let reported = result.map(|()| target);
                    let failed = reported.is_err();
                    if events.send(Event::Synced(reported)).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the WAL sync thread", e))?;
        Ok(SyncThread { shared })
    }

    /// Asks for batch `batch` (and every earlier one) to be made durable.
    pub fn request(&self, batch: u64) {
        let mut state = lock(&self.shared);
        state.requested = state.requested.max(batch);
        self.shared.1.notify_all();
    }

    /// Waits until batch `batch` is durable; false when a sync failed.
    pub fn wait_durable(&self, batch: u64) -> bool {
        self.request(batch);
        let mut state = lock(&self.shared);
        while state.durable < batch && !state.failed {
            state = self
                .shared
                .1
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        !state.failed
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::store::{Database, Store};
    use std::sync::mpsc;
    use std::time::Duration;

    fn store(dir: &std::path::Path, durability: Durability) -> Store {
        Store::open(&Database::Sqlite(dir.join("queue.db")), durability).unwrap()
    }

    #[test]
    fn a_full_durability_queue_hands_its_sync_to_the_thread_which_reports_each_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(dir.path(), Durability::Full);
        let wal = store.detach_sync().unwrap().expect("a WAL to sync");
        let (tx, events) = mpsc::channel();
        let sync = SyncThread::start(wal, tx).unwrap();
        sync.request(1);
        sync.request(2);
        let mut reported = 0;
        while reported < 2 {
            match events.recv_timeout(Duration::from_secs(20)).unwrap() {
                Event::Synced(Ok(batch)) => {
                    assert!(batch > reported, "batches are reported in order");
                    reported = batch;
                }
                _ => panic!("only sync reports come from the thread"),
            }
        }
        assert!(sync.wait_durable(3), "a later batch is synced on request");
    }

    #[test]
    fn normal_durability_keeps_no_sync_to_hand_over() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            store(dir.path(), Durability::Normal)
                .detach_sync()
                .unwrap()
                .is_none()
        );
    }
}
