//! The dashboard's actions: retry, cancel and restart a job, purge old
//! finished jobs. Only when actions are on, only as POSTs with a valid CSRF
//! token, and through the same store calls as the CLI (`dlq retry`,
//! `cancel`, `restart`, `purge`), waking idle workers as the CLI does.

use super::App;
use super::csrf;
use super::http::{Reply, Request, first};
use super::routes::{Connection, failure};
use crate::domain::duration::parse_duration;
use crate::error::{Error, Result};
use crate::store::{BulkAction, CancelResult, Selection};
use crate::wakeup::wake_workers;
use crate::worker::maintenance;
use serde_json::json;

/// An action on one job, by the last word of its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// A dead job back to pending (`dlq retry`).
    Retry,
    Cancel,
    /// A finished job back to pending (`restart`).
    Restart,
}

impl JobAction {
    pub fn parse(word: &str) -> Option<JobAction> {
        Some(match word {
            "retry" => JobAction::Retry,
            "cancel" => JobAction::Cancel,
            "restart" => JobAction::Restart,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            JobAction::Retry => "retry",
            JobAction::Cancel => "cancel",
            JobAction::Restart => "restart",
        }
    }
}

/// `POST /jobs/{id}/{retry|cancel|restart}`.
pub fn on_job(
    app: &App,
    connection: &mut Connection,
    request: &Request,
    id: &str,
    action: JobAction,
) -> Result<Reply> {
    let form = request.form();
    if let Some(refused) = refuse(app, request, &form) {
        return Ok(refused);
    }
    let result = connection.with(app, |store| match action {
        JobAction::Retry => store
            .act_on_one(BulkAction::RetryDead, id)
            .map(|_| "pending".to_owned()),
        JobAction::Restart => store
            .act_on_one(BulkAction::Restart, id)
            .map(|_| "pending".to_owned()),
        JobAction::Cancel => store.cancel(id).map(|result| match result {
            CancelResult::Cancelled => "cancelled".to_owned(),
            CancelResult::Requested { worker } => {
                format!("cancel requested: worker {worker} stops it")
            }
        }),
    })?;
    // New work for idle workers, or a running job's worker to tell.
    wake_workers(&app.state.wake());
    let reply = json!({ "ok": true, "id": id, "action": action.as_str(), "result": result });
    Ok(done(request, &form, &format!("/jobs/{id}"), &reply))
}

/// `POST /dlq/purge`: deletes finished jobs older than the form's
/// `older_than` (`7d`, `12h`), with their history and logs.
pub fn purge(app: &App, connection: &mut Connection, request: &Request) -> Result<Reply> {
    let form = request.form();
    if let Some(refused) = refuse(app, request, &form) {
        return Ok(refused);
    }
    let older_than = first(&form, "older_than")
        .ok_or_else(|| Error::Invalid("older_than: say how old, e.g. 7d".into()))?;
    let older_than =
        parse_duration(older_than).map_err(|why| Error::Invalid(format!("older_than: {why}")))?;
    let selection = Selection::filter(BulkAction::Purge, &[], Some(older_than))?;
    let outcome = connection.with(app, |store| {
        maintenance::purge(store, &app.state, &selection)
    })?;
    let reply = json!({ "ok": true, "action": "purge", "purged": outcome.done.len() });
    Ok(done(request, &form, "/dlq", &reply))
}

/// The 403 for a POST that may not act: actions off, or a failed CSRF check.
fn refuse(app: &App, request: &Request, form: &[(String, String)]) -> Option<Reply> {
    if !app.actions {
        return Some(failure(
            app,
            request,
            403,
            "actions are off: start queuectl web with --allow-actions (or web_allow_actions = true)",
        ));
    }
    let why = app.csrf.check(request, first(form, csrf::FIELD)).err()?;
    Some(failure(app, request, 403, &format!("refused: {why}")))
}

/// After an action: JSON for API clients, else back to the page (the form's
/// `back`, when it is a path of ours, or `fallback`).
fn done(
    request: &Request,
    form: &[(String, String)],
    fallback: &str,
    reply: &serde_json::Value,
) -> Reply {
    if request.wants_json() {
        return Reply::json(200, reply);
    }
    let back = first(form, "back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or(fallback);
    Reply::see_other(back)
}
