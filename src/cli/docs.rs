use super::args::Cli;
use clap::CommandFactory;
use queuectl::error::{Error, Result};

pub fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|e| Error::io("cannot write the man page", e))
}
