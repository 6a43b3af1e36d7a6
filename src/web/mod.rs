//! `queuectl web`: the dashboard, its JSON API and `/metrics`, served by a
//! small blocking HTTP server that reads the queue through the store and
//! acts (when allowed) through the same store calls as the CLI.
//!
//! `listen` finds the sockets (systemd's or bound), `server` runs a fixed
//! pool of threads each with its own store connection, `routes` maps a
//! request to a reply (`api` for JSON, `render` for pages, `actions` for
//! POSTs), `auth` and `csrf` guard them, `http` holds the request and
//! reply types.

pub mod actions;
pub mod api;
pub mod assets;
pub mod auth;
pub mod csrf;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod pages;
mod render;
pub mod routes;
pub mod server;

use crate::config::Durability;
use crate::error::Result;
use crate::paths::StateDir;
use crate::store::{Database, OpenMode, Store};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What `queuectl web` was asked to do.
#[derive(Debug)]
pub struct WebOptions {
    pub db: Database,
    pub durability: Durability,
    /// Bound when systemd passed no socket.
    pub listen: SocketAddr,
    pub allow_actions: bool,
    pub auth_token_file: Option<PathBuf>,
    pub auth_basic_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication.
    pub insecure_no_auth: bool,
    /// Request threads, each with its own store connection.
    pub threads: usize,
}

/// What every request thread shares.
pub struct App {
    pub db: Database,
    pub durability: Durability,
    pub actions: bool,
    pub auth: Option<auth::Auth>,
    pub csrf: csrf::Csrf,
    /// This host's name (a worker here is checked for life).
    pub host: String,
    /// The queue's local files (wake sockets, job logs).
    pub state: StateDir,
    /// Answer only requests naming this host by a loopback name or address
    /// (no authentication and only loopback sockets: a page elsewhere must
    /// not reach the dashboard by rebinding its own name to 127.0.0.1).
    pub loopback_only: bool,
}

impl App {
    /// A connection for one request thread: read-only unless actions are on.
    pub fn open_store(&self) -> Result<Store> {
        let mode = if self.actions {
            OpenMode::Existing
        } else {
            OpenMode::ReadOnly
        };
        Store::open_as(&self.db, self.durability, mode)
    }
}

/// Serves until SIGTERM or SIGINT.
pub fn serve(options: WebOptions) -> Result<()> {
    server::serve(options)
}
