//! `gobuildkey mint`: print a principal's key.

use anyhow::Result;

use gobuildkey::derive::Deriver;
use gobuildkey::key::BuildKey;
use gobuildkey::master::MasterSecret;
use gobuildkey::policy::Policy;

use crate::cli::MintArgs;
use crate::exit::{Exit, Refused};

/// Prints the key of the principal's current generation. The policy is written only when
/// it must record something new — a principal it does not name yet, or a key minted under
/// another master than the one recorded — and then under its lock.
pub fn run(args: &MintArgs) -> Result<Exit> {
    let master = args.master.load()?;
    let store = super::policy_store(&args.master, &args.edit)?;
    let (key, generation) = match mint(&store.read()?, args, &master)? {
        // Nothing new to record: no lock, no write.
        (key, generation, false) => (key, generation),
        // Again under the lock, from the policy as it is now (a rotation may have landed).
        (_, _, true) => super::edit_policy(&store, &args.edit, |policy| {
            let (key, generation, _) = mint(policy, args, &master)?;
            let mut state = policy.state(&args.principal);
            // A machine's own key: the policy lists the machine (`policy`, `explain`).
            state.machines.extend(args.machine.clone());
            let mut action =
                super::record_minted(policy, "mint", &args.principal, state, &master, &key)?;
            if let Some(action) = action.as_mut() {
                action.machine = args.machine.as_ref().map(|m| m.as_str().to_owned());
            }
            Ok(super::Edited {
                value: (key, generation),
                action,
            })
        })?,
    };
    if args.edit.dry_run {
        crate::output::note(&format!(
            "dry run: the key of {} was not printed",
            args.principal
        ));
        return Ok(Exit::Ok);
    }
    super::write_key_file(&key, &args.out)?;
    let whom = (&args.principal, args.machine.as_ref());
    super::emit_key("mint", &key, whom, generation, (), &args.out)?;
    Ok(Exit::Ok)
}

/// The key `policy` gives the principal, its generation, and whether the policy has yet to
/// record it.
fn mint(policy: &Policy, args: &MintArgs, master: &MasterSecret) -> Result<(BuildKey, u64, bool)> {
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
    let alg = args.alg.unwrap_or(policy.default_algorithm());
    let deriver = Deriver::new(master, alg);
    let key = match &args.machine {
        Some(machine) => deriver.derive_machine(&args.principal, state.generation, machine),
        None => deriver.derive_generation(&args.principal, state.generation),
    };
    let generation = state.generation;
    let mut wanted = super::minted_state(policy, &args.principal, state, master, alg);
    wanted.machines.extend(args.machine.clone());
    let recorded = policy.state_ref(&args.principal) == Some(&wanted);
    Ok((key, generation, !recorded))
}
