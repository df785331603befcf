//! `gobuildkey completions` and `gobuildkey man`: generated from the same clap definition
//! as the command line itself, so they cannot drift from it.

use std::io::{self, Write};

use anyhow::{Context, Result};

use crate::cli::{self, CompletionsArgs, ManArgs};
use crate::exit::{Exit, Refused};

/// Prints the completion script of a shell.
pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let mut command = cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "gobuildkey", &mut out);
    io::stdout()
        .lock()
        .write_all(&out)
        .context("cannot write the completion script")?;
    Ok(Exit::Ok)
}

/// Prints the man page of the tool or of one command (`man verify`, `man master rotate`).
pub fn man(args: &ManArgs) -> Result<Exit> {
    let mut command = cli::command();
    command.build();
    let mut page = command.clone();
    let mut name = String::from("gobuildkey");
    for word in &args.command {
        page = page.find_subcommand(word).cloned().ok_or_else(|| {
            Refused::new(
                Exit::Usage,
                format!("no command `{name} {word}`: `gobuildkey --help` lists them"),
            )
        })?;
        name = format!("{name}-{word}");
    }
    let page = page.name(name);
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("cannot render the man page")?;
    io::stdout()
        .lock()
        .write_all(&out)
        .context("cannot write the man page")?;
    Ok(Exit::Ok)
}
