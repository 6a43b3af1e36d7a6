//! `queuectl web`: the dashboard, its JSON API and `/metrics`, served by a
//! small blocking HTTP server that reads the queue through the store.
//!
//! Who owns what while issue 13 is built: see /work/brief/plan13.md.

pub mod assets;
pub mod pages;
