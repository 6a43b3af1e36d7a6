//! The PostgreSQL backend: one queue shared by workers on many hosts.

mod connect;
mod scratch;

pub use connect::{PgTarget, connect, map_error};
pub use scratch::{SCRATCH_PREFIX, ScratchDatabase, ServerSettings, server_settings};

use super::OpenMode;
use crate::error::{Error, Result};

pub struct PgStore {}

impl PgStore {
    pub fn open_as(target: &PgTarget, _mode: OpenMode) -> Result<PgStore> {
        Err(Error::Invalid(format!(
            "{target}: the PostgreSQL backend is not built yet"
        )))
    }
}

// Placeholder until the backend lands: `open_as` never succeeds, so none of
// these can be reached.
impl super::Backend for PgStore {
    fn now(&mut self) -> Result<jiff::Timestamp> {
        unreachable!()
    }
    fn enqueue(
        &mut self,
        _: &[(usize, crate::domain::NewJob)],
        _: &super::JobDefaults,
    ) -> Result<Vec<crate::domain::JobId>> {
        unreachable!()
    }
    fn claim(&mut self, _: &super::ClaimRequest, _: usize) -> Result<Vec<super::Claimed>> {
        unreachable!()
    }
    fn finish(
        &mut self,
        _: &[super::Finish],
        _: &crate::domain::RetryPolicy,
        _: Option<(&super::ClaimRequest, usize)>,
    ) -> Result<super::Finished> {
        unreachable!()
    }
    fn renew_leases(
        &mut self,
        _: &str,
        _: &[&super::Lease],
        _: std::time::Duration,
    ) -> Result<Vec<super::LeaseStatus>> {
        unreachable!()
    }
    fn held_attempts(&mut self, _: super::Holder) -> Result<Vec<super::HeldAttempt>> {
        unreachable!()
    }
    fn rescue(
        &mut self,
        _: super::Holder,
        _: &[super::HeldAttempt],
        _: &crate::domain::RetryPolicy,
    ) -> Result<Vec<String>> {
        unreachable!()
    }
    fn next_event_in(&mut self) -> Result<Option<std::time::Duration>> {
        unreachable!()
    }
    fn listen_for_work(&mut self, _: super::WakeFn) -> Result<bool> {
        unreachable!()
    }
    fn register_worker(&mut self, _: &super::WorkerInfo) -> Result<()> {
        unreachable!()
    }
    fn worker_heartbeat(&mut self, _: &str, _: &str) -> Result<()> {
        unreachable!()
    }
    fn unregister_worker(&mut self, _: &str) -> Result<()> {
        unreachable!()
    }
    fn forget_silent_workers(&mut self, _: std::time::Duration) -> Result<usize> {
        unreachable!()
    }
    fn workers(&mut self) -> Result<Vec<super::WorkerRow>> {
        unreachable!()
    }
    fn cancel(&mut self, _: &str) -> Result<super::CancelResult> {
        unreachable!()
    }
    fn retry_dead(&mut self, _: Option<&str>) -> Result<Vec<String>> {
        unreachable!()
    }
    fn purge(&mut self, _: std::time::Duration) -> Result<Vec<String>> {
        unreachable!()
    }
    fn get(&mut self, _: &str) -> Result<super::Job> {
        unreachable!()
    }
    fn attempts(&mut self, _: &str) -> Result<Vec<super::Attempt>> {
        unreachable!()
    }
    fn list(&mut self, _: Option<crate::domain::JobState>, _: u32) -> Result<Vec<super::Job>> {
        unreachable!()
    }
    fn counts(&mut self) -> Result<std::collections::BTreeMap<crate::domain::JobState, u64>> {
        unreachable!()
    }
    fn metrics(&mut self) -> Result<super::Metrics> {
        unreachable!()
    }
    fn export(&mut self) -> Result<Vec<super::JobRecord>> {
        unreachable!()
    }
    fn import(&mut self, _: &[super::JobRecord]) -> Result<()> {
        unreachable!()
    }
    fn pin_clock(&mut self, _: Option<jiff::Timestamp>) -> Result<()> {
        unreachable!()
    }
}

/// Tests only: a fresh database on the test server.
#[cfg(test)]
pub mod testing {
    use crate::store::Database;

    pub struct TestDatabase {}

    impl TestDatabase {
        /// `None` until the backend exists.
        pub fn create() -> Option<TestDatabase> {
            eprintln!("skipped: the PostgreSQL backend is not built yet");
            None
        }

        pub fn database(&self) -> Database {
            unreachable!()
        }
    }
}
