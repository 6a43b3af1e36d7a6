//! A worker's slots: the jobs it runs at once, each with its own timers,
//! and the finished attempts waiting to be recorded together.

use crate::domain::AttemptOutcome;
use crate::runner::RunningJob;
use crate::store::{AttemptResult, Claimed, Lease};
use std::fmt::Write;
use std::time::Instant;

/// One running attempt.
pub struct Slot {
    pub job: Claimed,
    pub running: RunningJob,
    pub started: Instant,
    pub timeout_at: Option<Instant>,
    /// Why the worker is stopping it (timeout, cancel, second signal).
    pub ending: Option<AttemptOutcome>,
    /// When SIGKILL follows the SIGTERM already sent.
    pub kill_at: Option<Instant>,
    /// Until when the lease is surely ours (last claim or renewal + lease).
    pub lease_valid_until: Instant,
    /// The lease was lost or about to run out: the job was killed and its
    /// attempt is no longer this worker's to record.
    pub lost: bool,
}

/// A finished attempt, not yet written to the queue.
pub struct Done {
    pub job_id: String,
    pub lease: Lease,
    pub result: AttemptResult,
}

/// Up to `capacity` running jobs, each in a numbered slot.
pub struct Slots {
    slots: Vec<Option<Slot>>,
}

impl Slots {
    pub fn new(capacity: usize) -> Slots {
        Slots {
            slots: (0..capacity.max(1)).map(|_| None).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn busy(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn free(&self) -> usize {
        self.capacity() - self.busy()
    }

    /// Puts `slot` in the first free place.
    pub fn insert(&mut self, slot: Slot) {
        if let Some(place) = self.slots.iter_mut().find(|s| s.is_none()) {
            *place = Some(slot);
        }
    }

    /// Takes out the slot running the process group `pid`.
    pub fn remove(&mut self, pid: u32) -> Option<Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|s| s.running.pid() == pid))
            .and_then(Option::take)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut().flatten()
    }

    /// The STATUS text: with one slot "running ID (attempt 2/4)" or
    /// "idle"; with more, every busy slot's job and how many are busy
    /// ("running 2/4: a (attempt 1/4), b (attempt 2/4)").
    pub fn status_text(&self) -> String {
        let busy = self.busy();
        if busy == 0 {
            return "idle".to_owned();
        }
        let mut text = String::from("running ");
        if self.capacity() > 1 {
            let _ = write!(text, "{busy}/{}: ", self.capacity());
        }
        for (i, slot) in self.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            let lease = &slot.job.lease;
            let _ = write!(
                text,
                "{} (attempt {}/{})",
                slot.job.id,
                lease.failures + 1,
                lease.max_retries + 1
            );
        }
        text
    }
}
