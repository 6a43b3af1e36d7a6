use super::Context;
use super::format::print_json;
use queuectl::domain::duration::parse_duration;
use queuectl::error::{Error, Result};
use queuectl::store::OpenMode;
use queuectl::worker::maintenance;
use std::time::Duration;

pub fn run(ctx: &Context, older_than: Option<&str>) -> Result<()> {
    let age = match older_than {
        Some(text) => {
            parse_duration(text).map_err(|why| Error::Invalid(format!("--older-than: {why}")))?
        }
        None => Duration::from_secs(ctx.config.retention_seconds),
    };
    let age = jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX);
    let cutoff = jiff::Timestamp::now()
        .checked_sub(age)
        .unwrap_or(jiff::Timestamp::MIN);
    let purged = maintenance::purge(&mut ctx.store(OpenMode::Existing)?, &ctx.state, cutoff)?;
    if ctx.json {
        return print_json(&serde_json::json!({ "purged": purged }));
    }
    println!("purged {purged} finished job(s)");
    Ok(())
}
