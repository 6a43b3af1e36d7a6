use super::Context;
use super::args::ConfigCommand;
use super::format::print_json;
use queuectl::config::{self, KEYS};
use queuectl::error::{Error, Result};

pub fn run(ctx: &Context, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Get { key: Some(key) } => {
            let value = ctx.config.get(&key).map_err(Error::Invalid)?;
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
                table.insert(key.to_owned(), ctx.config.get(key).map_err(Error::Invalid)?);
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
            if ctx.json {
                return print_json(
                    &serde_json::json!({ "path": ctx.config_path, "key": key, "value": value }),
                );
            }
            println!("{key} = {value}  (in {})", ctx.config_path.display());
            Ok(())
        }
        ConfigCommand::Path => {
            println!("{}", ctx.config_path.display());
            Ok(())
        }
    }
}
