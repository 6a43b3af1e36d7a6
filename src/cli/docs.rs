use super::args::Cli;
use clap::CommandFactory;
use queuectl::error::{Error, Result};

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "queuectl",
        &mut std::io::stdout(),
    );
    Ok(())
}

pub fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|e| Error::io("cannot write the man page", e))
}
