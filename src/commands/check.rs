//! `gobuildkey check`: the builder owner's preflight.

use std::io;
use std::path::Path;

use anyhow::Result;

use gobuildkey::keys::{BuildKey, KeyFormatError, MAX_KEY_INPUT, Reason, Verdict};
use gobuildkey::paths::{self, AgentEnv, Candidates, Rule};
use gobuildkey::secret_file::{self, ReadError};

use crate::cli::CheckArgs;
use crate::exit::Exit;

/// Finds the key as the agent would, reports each problem with its fix, and on success
/// shows the path, the rule and the fingerprint.
pub fn run(args: &CheckArgs) -> Result<Exit> {
    let env = AgentEnv::from_process();
    let loc = paths::locate(&args.principal, &env);
    let principal = &args.principal;
    for note in super::agent_notes(&env) {
        eprintln!("note: {note}");
    }
    if loc.rule == Rule::Legacy {
        eprintln!(
            "warning: only older buildlets read {}; current buildlets (-reverse-type) read {}: \
             run `gobuildkey install {principal} --key-file {}`",
            loc.path.display(),
            Candidates::new(principal, &env).primary.0.display(),
            loc.path.display()
        );
    }
    let key = match inspect(&loc.path, principal) {
        Ok(key) => key,
        Err(problems) => {
            for problem in problems {
                eprintln!("problem: {problem}");
            }
            return Ok(Exit::Invalid);
        }
    };
    if args.verify {
        // Verified with the algorithm the key's length names: the check is whether this
        // key is right, whichever way the admin minted it.
        let verifier = super::load_verifier(&args.master, key.algorithm())?;
        let verdict = verifier
            .verify(principal, key.expose_secret().as_bytes())
            .verdict;
        if let Verdict::Invalid(reason) = verdict {
            let why = match reason {
                Reason::Revoked => format!("{principal} is revoked"),
                _ => format!(
                    "it is a well-formed {} key, but not a current key of {principal} under the masters \
                     (host types get renamed; keys get rotated): ask the admin for the key of {principal}",
                    key.algorithm()
                ),
            };
            eprintln!("problem: {} does not verify: {why}", loc.path.display());
            return Ok(Exit::Invalid);
        }
    }
    println!("ok: {}", loc.path.display());
    println!("rule: {}", loc.rule.describe());
    println!("algorithm: {}", key.algorithm());
    println!("fingerprint: {}", key.fingerprint());
    if args.verify {
        println!("verified: the key of {principal} under the master");
    }
    Ok(Exit::Ok)
}

/// Reads and checks the key file: every problem found, each with its fix.
fn inspect(path: &Path, principal: &gobuildkey::keys::Principal) -> Result<BuildKey, Vec<String>> {
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
        Err(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {
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
        .ok_or(KeyFormatError::TooLong)
        .and_then(|contents| BuildKey::parse(&contents));
    match parsed {
        Ok(key) if problems.is_empty() => return Ok(key),
        Ok(_) => {}
        Err(KeyFormatError::Empty) => problems.push(format!("{shown} is empty: {reinstall}")),
        Err(e) => problems.push(format!(
            "{shown} does not hold a well-formed key ({e}): {reinstall}"
        )),
    }
    Err(problems)
}
