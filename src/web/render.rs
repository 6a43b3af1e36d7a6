//! What each page reads from the store and which of `pages`' renderers
//! draws it. The routes decide which page; this reads and renders it.

use super::http::Request;
use super::pages::{self, Ctx, Markup};
use super::{App, api};
use crate::error::Result;
use crate::store::Store;

/// A page of the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page<'a> {
    Overview,
    Jobs,
    Job(&'a str),
    Dlq,
    Workers,
    Queues,
    Schedules,
}

impl<'a> Page<'a> {
    /// The page at a path's `segments`.
    pub fn at(segments: &[&'a str]) -> Option<Page<'a>> {
        Some(match segments {
            [""] => Page::Overview,
            ["jobs"] => Page::Jobs,
            ["jobs", id] if !id.is_empty() => Page::Job(id),
            ["dlq"] => Page::Dlq,
            ["workers"] => Page::Workers,
            ["queues"] => Page::Queues,
            ["schedules"] => Page::Schedules,
            _ => return None,
        })
    }
}

/// Reads what `page` shows and renders it; `csrf` is the token its action
/// forms carry (only when actions are on).
pub fn page(
    app: &App,
    store: &mut Store,
    request: &Request,
    page: Page,
    csrf: Option<String>,
) -> Result<Markup> {
    let ctx = Ctx {
        csrf,
        actions: app.actions,
        now: store.now()?,
        db: app.db.to_string(),
    };
    Ok(match page {
        Page::Overview => pages::overview(
            &ctx,
            &store.overview()?,
            &api::workers(store, &app.host)?,
            &store.queues()?,
        ),
        Page::Jobs => {
            let search = api::job_search(request)?;
            pages::jobs(
                &ctx,
                &search,
                &store.search_jobs(&search)?,
                &store.queues()?,
            )
        }
        Page::Job(id) => pages::job(
            &ctx,
            &store.get(id)?,
            &store.attempts(id)?,
            &store.dependencies(id)?,
        ),
        Page::Dlq => pages::dlq(&ctx, &api::dead_jobs(store)?),
        Page::Workers => pages::workers(&ctx, &api::workers(store, &app.host)?),
        Page::Queues => pages::queues(&ctx, &store.queues()?),
        Page::Schedules => pages::schedules(&ctx, &store.schedules()?),
    })
}

/// A page saying what went wrong (read without the store, which may be
/// what failed); it names the queue only to a client `admitted` (past the
/// host check and authentication).
pub fn error(app: &App, status: u16, message: &str, admitted: bool) -> Markup {
    let ctx = Ctx {
        csrf: None,
        actions: app.actions,
        now: jiff::Timestamp::now(),
        db: if admitted {
            app.db.to_string()
        } else {
            String::new()
        },
    };
    pages::error(&ctx, status, message)
}
