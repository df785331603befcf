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
    // Before any secret is read: a crash must not write one to a core file.
    if let Err(e) = gobuildkey::process::forbid_core_dumps() {
        output::err_line(&format!(
            "gobuildkey: error: cannot turn core dumps off: {e}"
        ));
        return Exit::Software.into();
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A key pasted on the command line is refused before clap could echo it in an error.
    if let Err(e) = cli::refuse_keys(&args) {
        e.exit();
    }
    let mut definition = cli::command();
    let mut matches = definition
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    // The definition is not needed after parsing, and freeing its tree would cost about 5 %
    // of a short command's instructions (docs/performance.md, "Start-up"): the system takes
    // the memory back at exit. It holds no secret (a key is refused before parsing).
    std::mem::forget(definition);
    // `_mut`: takes the values out, where `from_arg_matches` would copy all the matches first.
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit());
    output::set(match (cli.json, cli.quiet) {
        (true, _) => output::Mode::Json,
        (_, true) => output::Mode::Quiet,
        _ => output::Mode::Human,
    });
    let outcome = match &cli.command {
        Command::Init(args) => commands::admin::init::run(args),
        Command::Mint(args) => commands::admin::mint::run(args),
        Command::Verify(args) => commands::coordinator::verify::run(args),
        Command::Install(args) => commands::builder::install::run(args),
        Command::Path(args) => commands::builder::path::run(args),
        Command::Check(args) => commands::builder::check::run(args),
        Command::Fingerprint(args) => commands::builder::fingerprint::run(args),
        Command::Rotate(args) => commands::admin::rotate::run(args),
        Command::EndGrace(args) => commands::admin::policy::end_grace(args),
        Command::Revoke(args) => commands::admin::policy::revoke(args),
        Command::Reinstate(args) => commands::admin::policy::reinstate(args),
        Command::Policy(args) => commands::admin::policy::show(args),
        Command::Import(args) => commands::admin::import::run(args),
        Command::Explain(args) => commands::admin::explain::run(args),
        Command::Log(args) => commands::admin::log::run(args),
        Command::Scan(args) => commands::admin::scan::run(args),
        Command::Master(MasterCommand::Rotate(args)) => commands::admin::master::rotate(args),
        Command::Master(MasterCommand::Add(args)) => commands::admin::master::add(args),
        Command::Master(MasterCommand::Retire(args)) => commands::admin::master::retire(args),
        #[cfg(all(feature = "serve", unix))]
        Command::Serve(args) => commands::coordinator::serve::run(args),
        Command::Completions(args) => commands::docs::completions(args),
        Command::Man(args) => commands::docs::man(args),
        #[cfg(all(feature = "probe", unix))]
        Command::Probe(args) => commands::builder::probe::run(args),
    };
    // `verify`'s exit status is its verdict; every other command's output is its product,
    // and a reader that went away (`| head -c0`) makes it exit 141, as SIGPIPE would.
    let verdict = matches!(&cli.command, Command::Verify(args) if !args.batch);
    // A result that could not be printed is the command's error (what it did stands).
    let outcome = outcome.and_then(|exit| match output::unprinted() {
        Some(why) => Err(anyhow::anyhow!("{why}")),
        None => Ok(exit),
    });
    match outcome {
        Ok(_) if output::stdout_closed() && !verdict => Exit::ReaderGone.into(),
        Ok(exit) => exit.into(),
        Err(err) if is_broken_pipe(&err) && !verdict => Exit::ReaderGone.into(),
        Err(err) => {
            let exit = Exit::for_error(&err);
            if output::mode() == output::Mode::Json {
                let error = commands::json::Error {
                    error: format!("{err:#}"),
                    exit: exit.code(),
                };
                // A string and a number: encoding cannot fail.
                output::err_line(&output::encode("error", &error).unwrap_or_default());
            } else {
                output::err_line(&format!("gobuildkey: error: {err:#}"));
            }
            exit.into()
        }
    }
}

/// Whether the error, or any cause of it, is a write to a reader that went away.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
