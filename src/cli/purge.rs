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
    let purged = maintenance::purge(&mut ctx.store(OpenMode::Existing)?, &ctx.state, age)?;
    if ctx.json {
        return print_json(&serde_json::json!({ "purged": purged }));
    }
    println!("purged {purged} finished job(s)");
    Ok(())
}
