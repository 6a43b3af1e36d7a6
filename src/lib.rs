//! queuectl: a background job runner with a SQLite queue and systemd-native
//! workers. See ARCHITECTURE.md for the module map.

pub mod bench;
pub mod config;
pub mod domain;
pub mod env_file;
pub mod error;
pub mod files;
pub mod logging;
pub mod output;
pub mod paths;
pub mod runner;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod wakeup;
pub mod worker;
