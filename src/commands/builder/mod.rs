//! The builder owners' commands: `install`, `path`, `check`, `fingerprint`, `probe`; and
//! what they share: what to tell about the agent's environment, and reading a key file as
//! the agent would.

pub mod check;
pub mod fingerprint;
pub mod install;
pub mod path;
#[cfg(all(feature = "probe", unix))]
pub mod probe;

use std::io::{self};
use std::path::Path;

use gobuildkey::secret_file::ReadError;

use anyhow::Result;

use gobuildkey::key::{BuildKey, KeyFormatError, MAX_KEY_INPUT};
use gobuildkey::paths::{AgentEnv, ENV_DELETE_AFTER_READ};
use gobuildkey::principal::Principal;

use gobuildkey::secret_file;

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

/// Reads and checks the key file: every problem found, each with its fix.
pub(crate) fn inspect_key_file(
    path: &Path,
    principal: &Principal,
) -> Result<BuildKey, Vec<String>> {
    let shown = path.display();
    let reinstall =
        format!("install the key again with `gobuildkey install {principal} < KEYFILE`");
    let file = match secret_file::read_secret_file(path, MAX_KEY_INPUT) {
        Ok(file) => file,
        Err(ReadError::Missing { .. }) => {
            return Err(vec![format!(
                "no key file at {shown}: install the key with `gobuildkey install {principal} < KEYFILE`"
            )]);
        }
        Err(ReadError::NotAFile { .. }) => {
            return Err(vec![format!(
                "{shown} is not a regular file: remove it, then {reinstall}"
            )]);
        }
        Err(ReadError::Io { error, .. }) if error.kind() == io::ErrorKind::PermissionDenied => {
            return Err(vec![format!(
                "cannot read {shown} (permission denied): run the check as the user the agent runs as, \
                 or give the file to that user (chown)"
            )]);
        }
        Err(e) => return Err(vec![format!("{e}")]),
    };
    let mut problems = Vec::new();
    if let Some(mode) = file.mode.filter(|&m| secret_file::is_too_open(m)) {
        problems.push(format!(
            "{shown} is readable or writable by others (mode {:04o}): run `chmod 600 {shown}`",
            mode & 0o7777
        ));
    }
    let parsed = file
        .contents
        .as_deref()
        .ok_or(KeyFormatError::TooLong)
        .and_then(|contents| BuildKey::parse(contents));
    match parsed {
        Ok(key) if problems.is_empty() => return Ok(key),
        Ok(_) => {}
        Err(KeyFormatError::Empty) => problems.push(format!("{shown} is empty: {reinstall}")),
        Err(e) => {
            // Damage a copy makes (a key broken over lines, shouted): say so, since the
            // remedy is the same but the cause is found elsewhere.
            let damage = file
                .contents
                .as_deref()
                .and_then(|contents| gobuildkey::explain::repaired(contents))
                .map_or_else(String::new, |(fixes, _)| {
                    let what: Vec<&str> = fixes.iter().map(|fix| damage(*fix)).collect();
                    format!(
                        "; it has {}, without which it would be a key",
                        what.join(" and ")
                    )
                });
            problems.push(format!(
                "{shown} does not hold a well-formed key ({e}{damage}): {reinstall}"
            ));
        }
    }
    Err(problems)
}

/// A repair of [`gobuildkey::explain::repaired`] as the damage it undoes, in words.
pub(crate) fn damage(fix: gobuildkey::explain::Fix) -> &'static str {
    match fix {
        gobuildkey::explain::Fix::Joined => "whitespace inside (broken over lines when copied?)",
        gobuildkey::explain::Fix::Lowercased => "uppercase letters (keys are lowercase hex)",
    }
}
