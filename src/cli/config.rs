use super::Context;
use super::args::ConfigCommand;
use super::format::print_json;
use queuectl::config::{self, KEYS};
use queuectl::error::{Error, Result};
use queuectl::store::Database;

/// A key's effective value: `db_path` is the queue this command uses
/// (`--db` and `$QUEUECTL_DB` included), shown without a password.
fn effective(ctx: &Context, key: &str) -> Result<toml::Value> {
    match key {
        "db_path" => Ok(toml::Value::String(ctx.state.db.to_string())),
        _ => ctx.config.get(key).map_err(Error::Invalid),
    }
}

pub fn run(ctx: &Context, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Get { key: Some(key) } => {
            let value = effective(ctx, &key)?;
            if ctx.json {
                return print_json(&serde_json::json!({ key: value }));
            }
            match value.as_str() {
                Some(text) => println!("{text}"),
                None => println!("{value}"),
            }
            Ok(())
        }
        ConfigCommand::Get { key: None } => {
            let mut table = toml::Table::new();
            for (key, _) in KEYS {
                table.insert(key.to_owned(), effective(ctx, key)?);
            }
            if ctx.json {
                return print_json(&table);
            }
            println!("# {}", ctx.config_path.display());
            for (key, help) in KEYS {
                println!("{key} = {}  # {help}", table[key]);
            }
            Ok(())
        }
        ConfigCommand::Set { key, value } => {
            config::set_in_file(&ctx.config_path, &key, &value)?;
            // A database address may hold a password: show it without.
            let value = match key.as_str() {
                "db_path" => Database::parse(&value)?.to_string(),
                _ => value,
            };
            if ctx.json {
                return print_json(
                    &serde_json::json!({ "path": ctx.config_path, "key": key, "value": value }),
                );
            }
            println!("{key} = {value}  (in {})", ctx.config_path.display());
            Ok(())
        }
        ConfigCommand::Path => {
            if ctx.json {
                return print_json(&serde_json::json!({ "path": ctx.config_path }));
            }
            println!("{}", ctx.config_path.display());
            Ok(())
        }
    }
}
