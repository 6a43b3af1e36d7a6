//! queuectl: a background job runner with a SQLite queue and systemd-native
//! workers. See ARCHITECTURE.md for the module map.
//!
//! `unsafe` is denied here and allowed only in three rooms: `runner::spawn`
//! (starting processes: clone, exec, pre-exec hooks, pidfds), `store::wal`
//! (the WAL sync through SQLite's own file handle) and
//! `systemd::activation` (owning the sockets systemd passed). Every other system call
//! goes through `nix` (or std). Each unsafe block says why it is sound.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

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
pub mod views;
pub mod wakeup;
pub mod web;
pub mod worker;

/// This library's version, which is the queuectl binary's (the benchmark
/// reports it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
