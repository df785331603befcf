//! The `gobuildkey` command: parses the command line, runs the command, and turns the
//! outcome into an exit status. Everything else lives in the library and `commands`.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod exit;
mod output;

use std::io;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::{Cli, Command, MasterCommand};
use crate::exit::Exit;

fn main() -> ExitCode {
    let matches = cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    output::set(match (cli.json, cli.quiet) {
        (true, _) => output::Mode::Json,
        (_, true) => output::Mode::Quiet,
        _ => output::Mode::Human,
    });
    let outcome = match &cli.command {
        Command::Init(args) => commands::init::run(args),
        Command::Mint(args) => commands::mint::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Install(args) => commands::install::run(args),
        Command::Path(args) => commands::path::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Fingerprint(args) => commands::fingerprint::run(args),
        Command::Rotate(args) => commands::rotate::run(args),
        Command::EndGrace(args) => commands::policy::end_grace(args),
        Command::Revoke(args) => commands::policy::revoke(args),
        Command::Reinstate(args) => commands::policy::reinstate(args),
        Command::Policy(args) => commands::policy::show(args),
        Command::Import(args) => commands::import::run(args),
        Command::Log(args) => commands::log::run(args),
        Command::Master(MasterCommand::Rotate(args)) => commands::master::rotate(args),
        Command::Master(MasterCommand::Add(args)) => commands::master::add(args),
        Command::Master(MasterCommand::Retire(args)) => commands::master::retire(args),
        #[cfg(all(feature = "serve", unix))]
        Command::Serve(args) => commands::serve::run(args),
        Command::Completions(args) => commands::docs::completions(args),
        Command::Man(args) => commands::docs::man(args),
        #[cfg(all(feature = "probe", unix))]
        Command::Probe(args) => commands::probe::run(args),
    };
    match outcome {
        Ok(exit) => exit.into(),
        // A reader that went away (`gobuildkey mint x | head -c0`) is not an error.
        Err(err) if is_broken_pipe(&err) => Exit::Ok.into(),
        Err(err) => {
            let exit = Exit::for_error(&err);
            if output::mode() == output::Mode::Json {
                let fields =
                    serde_json::json!({ "error": format!("{err:#}"), "exit": exit.code() });
                eprintln!("{}", output::object("error", fields));
            } else {
                eprintln!("gobuildkey: error: {err:#}");
            }
            exit.into()
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
