//! One module per command; each has a `run` that returns the exit status or an error.

pub mod check;
pub mod fingerprint;
pub mod init;
pub mod install;
pub mod mint;
pub mod path;
pub mod verify;

use std::io::{self, IsTerminal};
use std::path::Path;

use anyhow::Result;
use zeroize::Zeroizing;

use gobuildkey::keys::{BuildKey, KeyFormatError, MAX_KEY_INPUT};
use gobuildkey::paths::{AgentEnv, ENV_DELETE_AFTER_READ};
use gobuildkey::secret_file;

/// Reads a key someone presents: from `key_file`, else from standard input. At most
/// [`MAX_KEY_INPUT`] bytes are read; `None` means there was more.
fn read_key_input(key_file: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match key_file {
        Some(path) => Ok(secret_file::read_secret_file(path, MAX_KEY_INPUT)?.contents),
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                eprintln!("gobuildkey: reading the key from standard input (end with Ctrl-D)");
            }
            Ok(secret_file::read_bounded(stdin.lock(), MAX_KEY_INPUT)?)
        }
    }
}

/// Reads a key to be used (installed, fingerprinted): it must be well formed.
fn read_well_formed_key(key_file: Option<&Path>) -> Result<BuildKey> {
    let input = read_key_input(key_file)?.ok_or(KeyFormatError::TooLong)?;
    Ok(BuildKey::parse(&input)?)
}

/// What a builder owner should know about the agent's environment, one line each.
fn agent_notes(env: &AgentEnv) -> Vec<String> {
    let mut notes = Vec::new();
    if env.delete_after_read {
        notes.push(format!(
            "{ENV_DELETE_AFTER_READ} is set: the agent deletes the key file after reading it, \
             so it must be installed again before each start"
        ));
    }
    if env.key_path.is_none() && env.home.is_relative() {
        notes.push(format!(
            "HOME ({}) is relative: the agent resolves it against its own working folder",
            env.home.display()
        ));
    }
    notes
}
