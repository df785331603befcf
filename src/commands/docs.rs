//! `gobuildkey completions` and `gobuildkey man`: generated from the same clap definition
//! as the command line itself, so they cannot drift from it.

use std::io::{self, Write};

use anyhow::{Context, Result};

use crate::cli::{self, CompletionsArgs, ManArgs};
use crate::exit::{Exit, Refused};

/// Prints the completion script of a shell.
pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let mut command = cli::built_command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "gobuildkey", &mut out);
    io::stdout()
        .lock()
        .write_all(&out)
        .context("cannot write the completion script")?;
    Ok(Exit::Ok)
}

/// A man page: clap_mangen's sections, then ENVIRONMENT, FILES and EXIT STATUS from the
/// same tables `--help` shows ([`cli::ENVIRONMENT`], [`cli::files`], [`Exit::ALL`]).
fn render_page(page: clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    use clap_mangen::roff::{Roff, bold, roman};
    let has_args = page.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = page.has_subcommands();
    let has_extra = page.get_after_help().is_some() || page.get_after_long_help().is_some();
    let man = clap_mangen::Man::new(page);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if has_args {
        man.render_options_section(out)?;
    }
    if has_subcommands {
        man.render_subcommands_section(out)?;
    }
    if has_extra {
        man.render_extra_section(out)?;
    }
    let mut roff = Roff::default();
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in cli::ENVIRONMENT {
        roff.control("TP", [])
            .text([bold(name)])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["FILES"]);
    for (path, meaning) in cli::files() {
        roff.control("TP", [])
            .text([bold(path)])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for exit in Exit::ALL {
        roff.control("TP", [])
            .text([bold(exit.code().to_string())])
            .text([roman(exit.meaning())]);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)
}

/// Prints the man page of the tool or of one command (`man verify`, `man master rotate`).
pub fn man(args: &ManArgs) -> Result<Exit> {
    let mut page = cli::built_command();
    let mut name = String::from("gobuildkey");
    for word in &args.command {
        if word == "help" {
            // clap's own `help` command has no page (clap_mangen panicked on it).
            return Err(Refused::new(
                Exit::Usage,
                format!("`{name} help` has no man page: `gobuildkey man` is gobuildkey's own"),
            )
            .into());
        }
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
    render_page(page, &mut out).context("cannot render the man page")?;
    io::stdout()
        .lock()
        .write_all(&out)
        .context("cannot write the man page")?;
    Ok(Exit::Ok)
}
