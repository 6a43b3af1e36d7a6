//! The dashboard's HTML: one pure renderer per page, from the store's own
//! types to [`Markup`]. No I/O, no clock (the time comes in [`Ctx`]), no
//! HTTP: the routes read the store and hand the values here.
//!
//! Every value from the queue is text: maud escapes it, nothing here builds
//! HTML by concatenation, and a job's env values never reach a page (names
//! only). The pages carry the DOM hooks `app.js` and the browser tests rely
//! on (`data-page`, `data-table`, `data-job`, `data-count`, ...; see
//! docs/web.md) and no inline script or style, which the Content Security
//! Policy forbids.

mod chart;
mod dlq;
mod job;
mod jobs;
mod layout;
mod overview;
mod parts;
mod queues;
mod schedules;
mod workers;

#[cfg(test)]
mod tests;

pub use dlq::dlq;
pub use job::job;
pub use jobs::jobs;
pub use layout::error;
pub use overview::overview;
pub use queues::queues;
pub use schedules::schedules;
pub use workers::workers;

use jiff::Timestamp;
pub use maud::Markup;

/// What every page needs besides its data.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The CSRF token the action forms carry (`None`: no forms).
    pub csrf: Option<String>,
    /// Whether actions (retry, cancel, restart, purge) are allowed: without
    /// them no button is shown.
    pub actions: bool,
    /// The database's clock when the page was read.
    pub now: Timestamp,
    /// The queue as people know it (a path, or a PostgreSQL address without
    /// its password), shown in the header; empty on a page for a client not
    /// let in.
    pub db: String,
}

impl Ctx {
    /// The token when action forms may be shown: actions on and a token.
    fn form_token(&self) -> Option<&str> {
        self.csrf.as_deref().filter(|_| self.actions)
    }
}
