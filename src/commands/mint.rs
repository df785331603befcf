//! `gobuildkey mint`: print a principal's key.

use anyhow::Result;

use gobuildkey::keys::Deriver;

use crate::cli::MintArgs;
use crate::exit::{Exit, Refused};

/// Prints the key of the principal's current generation, and records the master it was
/// minted under in the policy.
pub fn run(args: &MintArgs) -> Result<Exit> {
    let master = args.master.source()?.load()?;
    let mut policy = super::load_policy(&args.master)?;
    let state = policy.state(&args.principal);
    if state.revoked {
        return Err(Refused::new(
            Exit::Invalid,
            format!(
                "{p} is revoked, so its keys are refused: run `gobuildkey reinstate {p}` first",
                p = args.principal
            ),
        )
        .into());
    }
    let generation = state.generation;
    let key = Deriver::new(&master, args.alg).derive_generation(&args.principal, generation);
    super::record_minted(&mut policy, &args.principal, state, &master)?;
    super::emit_key(
        "mint",
        &key,
        &args.principal,
        generation,
        serde_json::json!({}),
    )?;
    Ok(Exit::Ok)
}
