//! Wake-ups for idle workers: `NOTIFY queuectl_jobs` in every transaction
//! that adds work or moves it earlier (enqueue, `dlq retry`, a job back to
//! waiting after an attempt), and a listener thread on a connection of its
//! own that forwards them.
//!
//! Notifications are hints, never the only way work is found: they are lost
//! while the listener is disconnected, so after every reconnect (and every
//! failed attempt to, while the server is away) the listener wakes its
//! worker once to look for itself.

use super::{PgTarget, connect, map_error};
use crate::error::Result;
use crate::store::WakeFn;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

/// The channel every queuectl notification goes to.
pub(super) const CHANNEL: &str = "queuectl_jobs";

/// A `SELECT` that notifies [`CHANNEL`], to embed in a statement.
macro_rules! notify_work {
    () => {
        "SELECT pg_notify('queuectl_jobs', '')"
    };
}
pub(super) use notify_work;

/// How long the listener waits in silence before it checks that its
/// connection still works (a cut network shows no error by itself).
const CHECK_AFTER: Duration = Duration::from_secs(30);
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect pauses: the first, doubling up to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Connects and listens; errors (an unreachable server) are returned, then
/// a thread forwards notifications to `wake` until it returns false.
pub(super) fn listen(target: &PgTarget, wake: WakeFn) -> Result<()> {
    let client = subscribe(target)?;
    let target = target.clone();
    std::thread::Builder::new()
        .name("queuectl-listen".into())
        .spawn(move || forward(&target, client, wake))
        .map_err(|e| crate::error::Error::io("cannot start the notification listener", e))?;
    Ok(())
}

fn subscribe(target: &PgTarget) -> Result<Client> {
    let mut client = connect(target)?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|e| map_error(target, e))?;
    Ok(client)
}

fn forward(target: &PgTarget, mut client: Client, mut wake: WakeFn) {
    loop {
        if wait_for_notification(&mut client).is_ok() {
            if !wake() {
                return;
            }
            continue;
        }
        // The connection is gone: reconnect, waking the worker after each
        // try (it polls meanwhile, and notifications may have been missed).
        let mut pause = RECONNECT_FIRST;
        loop {
            std::thread::sleep(pause);
            pause = (pause * 2).min(RECONNECT_MAX);
            let subscribed = subscribe(target);
            if !wake() {
                return;
            }
            if let Ok(new) = subscribed {
                client = new;
                break;
            }
        }
    }
}

/// Returns once at least one notification arrived (all pending ones are
/// taken, so a burst wakes the worker once), or with the error that ended
/// the connection.
fn wait_for_notification(client: &mut Client) -> std::result::Result<(), postgres::Error> {
    loop {
        let mut notifications = client.notifications();
        if notifications.timeout_iter(CHECK_AFTER).next()?.is_some() {
            let mut pending = notifications.iter();
            while pending.next()?.is_some() {}
            return Ok(());
        }
        drop(notifications);
        client.is_valid(CHECK_TIMEOUT)?;
    }
}
