//! queuectl: a background job runner with a SQLite queue and systemd-native
//! workers. See ARCHITECTURE.md for the module map.

pub mod domain;
pub mod config;
pub mod error;
pub mod paths;
pub mod store;
pub mod output;
pub mod runner;
pub mod systemd;
pub mod wakeup;
pub mod worker;
pub mod supervisor;
pub mod logging;
