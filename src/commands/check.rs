//! `gobuildkey check`: the builder owner's preflight.

use anyhow::Result;

use gobuildkey::keys::{Reason, Verdict};
use gobuildkey::paths::{self, AgentEnv, Candidates, Rule};

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
    let Some(key) = super::installed_key(&loc.path, principal) else {
        return Ok(Exit::Invalid);
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
