//! The commands, grouped by who runs them: [`admin`], [`builder`], [`coordinator`]; each
//! command's module has a `run` (or one function per subcommand) that returns the exit
//! status or an error. Here: what several groups share (reading a key from a file or
//! standard input, loading the verifier), [`json`] (every `--json` result) and [`docs`]
//! (completions, man pages).

pub mod admin;
pub mod builder;
pub mod coordinator;
pub mod docs;
pub mod json;

use std::io::{self, IsTerminal};
use std::path::Path;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use gobuildkey::key::{Algorithm, BuildKey, KeyFormatError, MAX_KEY_INPUT};
use gobuildkey::principal::Principal;
use gobuildkey::verifier::Verifier;

use crate::cli::MasterArgs;
use gobuildkey::secret_file;

/// Reads a key someone presents: from `key_file`, else from standard input. At most
/// [`MAX_KEY_INPUT`] bytes are read; `None` means there was more.
/// When standard input is a terminal, the key is asked for without echoing it (the prompt
/// goes to the terminal); otherwise nothing interactive happens.
fn read_key_input(key_file: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match key_file {
        Some(path) => Ok(secret_file::read_secret_file(path, MAX_KEY_INPUT)?.contents),
        None if io::stdin().is_terminal() => {
            let typed = Zeroizing::new(
                rpassword::prompt_password("build key (not shown): ")
                    .context("cannot read the key from the terminal")?,
            );
            // Over the bound is no key, as on a pipe.
            Ok((typed.len() <= MAX_KEY_INPUT).then(|| Zeroizing::new(typed.as_bytes().to_vec())))
        }
        None => Ok(secret_file::read_bounded(
            io::stdin().lock(),
            MAX_KEY_INPUT,
        )?),
    }
}

/// Reads a key to be used (installed, fingerprinted): it must be well formed.
fn read_well_formed_key(key_file: Option<&Path>) -> Result<BuildKey> {
    let input = read_key_input(key_file)?.ok_or(KeyFormatError::TooLong)?;
    Ok(BuildKey::parse(&input)?)
}

/// The verifier the options name: primary master, policy, and the keyring's masters.
/// With `alg` (the command line's `--alg`), keys of other algorithms are refused; an
/// `alg` the policy does not accept — for `principal`, or for anyone when there is none —
/// contradicts its record and is a usage error.
fn load_verifier(
    master: &MasterArgs,
    alg: Option<Algorithm>,
    principal: Option<&Principal>,
) -> Result<Verifier> {
    let verifier = Verifier::open_within(
        &master.source()?,
        &master.policy_path()?,
        master.command_timeout,
    )?;
    let Some(alg) = alg else {
        return Ok(verifier);
    };
    let (accepted, whom) = match principal {
        Some(p) => (verifier.policy().accepted_algorithms(p), p.to_string()),
        None => (
            verifier.policy().all_algorithms(),
            "any principal".to_owned(),
        ),
    };
    if !accepted.contains(alg) {
        return Err(crate::exit::Refused::new(
            crate::exit::Exit::Usage,
            format!(
                "--alg {alg} contradicts the policy, which accepts {accepted} for {whom}: drop \
                 --alg (the policy decides), or record the algorithm first, as \
                 `gobuildkey import --alg {alg} PRINCIPAL` does for keys genbuilderkey minted"
            ),
        )
        .into());
    }
    Ok(verifier.only_algorithm(alg))
}

/// What the action log beside the policy tells (`explain`, `scan`): no log (a farm that
/// never had one) is no history; a line that is not an action is left out, with a warning.
fn load_history(master: &MasterArgs) -> Result<gobuildkey::explain::History> {
    let log = gobuildkey::policy::actions::ActionLog::beside(&master.policy_path()?);
    if !log.exists() {
        return Ok(gobuildkey::explain::History::default());
    }
    let (actions, unreadable) = log.read_skipping()?;
    for (line, why) in &unreadable {
        crate::output::note(&format!(
            "warning: line {line} of {} is not an action ({why}); it is left out",
            log.path().display()
        ));
    }
    Ok(gobuildkey::explain::History::from_actions(&actions))
}
