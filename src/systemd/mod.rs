//! The systemd edge: readiness and watchdog notifications, the journal, and
//! driving `systemctl`. Everything here degrades to doing nothing where
//! systemd is absent; nothing here decides what a worker does.

pub mod notify;
pub mod systemctl;
pub mod units;
