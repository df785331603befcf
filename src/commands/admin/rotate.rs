//! `gobuildkey rotate`: give a principal a new key, or (`--machine`) one machine of it.

use anyhow::Result;

use gobuildkey::derive::Deriver;
use gobuildkey::machine::Machine;
use gobuildkey::policy::{Grace, PrincipalState};

use crate::cli::RotateArgs;
use crate::exit::{Exit, Refused};
use crate::output;

/// Raises the generation, sets the grace period, saves the policy (under its lock), prints
/// the new key.
pub fn run(args: &RotateArgs) -> Result<Exit> {
    if let Some(machine) = &args.machine {
        return run_machine(args, machine);
    }
    let master = args.master.load()?;
    let store = super::policy_store(&args.master, &args.edit)?;
    let keep_previous = if args.keep_previous {
        Grace::Open
    } else if let Some(until) = args.keep_previous_until {
        Grace::Until(until)
    } else if let Some(length) = args.keep_previous_for {
        Grace::Until(super::moment_after(length, "--keep-previous-for")?)
    } else {
        Grace::None
    };
    let wrote_file = std::cell::Cell::new(false);
    let edited = super::edit_policy(&store, &args.edit, |policy| {
        let before = policy.state(&args.principal);
        let mut state = before.clone();
        if state.keep_previous.active_at(jiff::Timestamp::now()) && !args.discard_previous {
            return Err(in_grace(&args.principal, &state).into());
        }
        // Generations are written as TOML integers, which stop at i64::MAX.
        state.generation = state
            .generation
            .checked_add(1)
            .filter(|&g| i64::try_from(g).is_ok())
            .ok_or_else(|| Refused::new(Exit::DataErr, "the generation cannot go higher"))?;
        state.keep_previous = keep_previous;
        let alg = args.alg.unwrap_or(policy.default_algorithm());
        let key = Deriver::new(&master, alg).derive_generation(&args.principal, state.generation);
        let action = super::record_minted(
            policy,
            "rotate",
            &args.principal,
            state.clone(),
            &master,
            &key,
        )?;
        // `-o FILE`: the key reaches its file before the new generation is committed, so a
        // failed write leaves the old key verifying (and the new one nowhere).
        if !args.edit.dry_run {
            super::write_key_file(&key, &args.out)?;
            wrote_file.set(args.out.output.is_some());
        }
        let committed = policy.state(&args.principal);
        Ok(super::Edited {
            value: (key, state, before, committed),
            action,
        })
    });
    let (key, state, before, committed) = match edited {
        Ok(edited) => edited,
        Err(e) => {
            remove_uncommitted(wrote_file.get(), &args.out);
            return Err(e);
        }
    };
    let generation = state.generation;
    if args.edit.dry_run {
        output::note(&format!(
            "dry run: {} would move to generation {generation}; no key was printed",
            args.principal
        ));
        return Ok(Exit::Ok);
    }
    if let Err(e) = super::emit_key(
        "rotate",
        &key,
        (&args.principal, None),
        generation,
        crate::commands::json::Rotation {
            keep_previous: crate::commands::json::KeepPrevious(state.keep_previous),
            revoked: state.revoked,
        },
        &args.out,
    ) {
        // Nobody got the new key: a committed generation would cut off the machines holding
        // the old one with no key to replace it. Undone under the lock, if nobody rotated
        // the principal again meanwhile.
        let undone = roll_back(&store, args, None, &before, &committed)?;
        output::note(&format!(
            "the new key of {} could not be delivered: {}",
            args.principal,
            if undone {
                format!(
                    "the rotation was undone, generation {} is current again",
                    before.generation
                )
            } else {
                "and the principal was rotated again meanwhile, so the rotation stays".to_owned()
            }
        ));
        return Err(e);
    }
    match state.keep_previous {
        Grace::None => output::note(&format!(
            "the previous key of {} no longer verifies",
            args.principal
        )),
        grace => output::note(&format!(
            "the previous key of {} still verifies {grace}{}",
            args.principal,
            if grace == Grace::Open {
                format!(" (`gobuildkey end-grace {}`)", args.principal)
            } else {
                String::new()
            }
        )),
    }
    if state.revoked {
        output::note(&format!(
            "note: {p} is still revoked: `gobuildkey reinstate {p}` when the new key is in place",
            p = args.principal
        ));
    }
    Ok(Exit::Ok)
}

/// Undoes the rotation (of the principal, or of `machine` alone) under the lock, if the
/// policy still has the generation it committed: the state before comes back whole when
/// nothing else changed since; when something did (a `revoke` in between), only the
/// generation and the grace period (or the machine's generation) go back, so that no later
/// change is lost. Logged as a `rotate` with the reason. Whether it undid anything.
fn roll_back(
    store: &gobuildkey::policy::store::Store,
    args: &RotateArgs,
    machine: Option<&Machine>,
    before: &PrincipalState,
    committed: &PrincipalState,
) -> Result<bool> {
    super::edit_policy(store, &args.edit, |policy| {
        let now = policy.state(&args.principal);
        let generation = |state: &PrincipalState| match machine {
            Some(machine) => state.machine_generation(machine),
            None => state.generation,
        };
        if generation(&now) != generation(committed) {
            return Ok(super::Edited {
                value: false,
                action: None,
            });
        }
        let back = match machine {
            _ if now == *committed => before.clone(),
            Some(machine) => {
                let mut back = now;
                back.machine_generations.remove(machine);
                back.machine_generations.extend(
                    before
                        .machine_generations
                        .get_key_value(machine)
                        .map(|(m, &g)| (m.clone(), g)),
                );
                back
            }
            None => PrincipalState {
                generation: before.generation,
                keep_previous: before.keep_previous,
                ..now
            },
        };
        let before = &back;
        policy.set_state(&args.principal, before)?;
        let mut action =
            gobuildkey::policy::actions::Action::new("rotate").on(&args.principal, before);
        action.machine = machine.map(|m| m.as_str().to_owned());
        action.reason = Some("rolled back: the new key could not be delivered".into());
        Ok(super::Edited {
            value: true,
            action: Some(action),
        })
    })
}

/// The refusal to rotate a principal whose previous key, handed out already, is still in
/// its grace period: rotating again would cut it off at once.
fn in_grace(
    principal: &gobuildkey::principal::Principal,
    state: &gobuildkey::policy::PrincipalState,
) -> Refused {
    Refused::new(
        Exit::Invalid,
        format!(
            "the previous key of {principal} (generation {}) still verifies {}: rotating again \
             now would stop it at once, on the machines that have not switched yet; rotate \
             after that, end the grace period first (`gobuildkey end-grace {principal}`), or \
             pass --discard-previous",
            state.generation.saturating_sub(1),
            state.keep_previous
        ),
    )
}

/// `rotate --machine NAME PRINCIPAL`: raises that machine's own generation (under the
/// policy's lock, logged), prints its new key; the principal's generation, its shared key and
/// every other machine's key are not touched. The machine's previous key gets no grace
/// period: the grace options are refused (exit 2) before anything is read.
fn run_machine(args: &RotateArgs, machine: &Machine) -> Result<Exit> {
    let grace = [
        (args.keep_previous, "--keep-previous"),
        (args.keep_previous_until.is_some(), "--keep-previous-until"),
        (args.keep_previous_for.is_some(), "--keep-previous-for"),
        (args.discard_previous, "--discard-previous"),
    ];
    if let Some((_, flag)) = grace.iter().find(|(given, _)| *given) {
        return Err(Refused::new(
            Exit::Usage,
            format!(
                "{flag} cannot be used with --machine: a machine's previous key has no grace \
                 period, it stops verifying at once (the principal's grace period is not \
                 touched); to keep the machine working, install its new key right away, or \
                 rotate the whole principal with a grace period instead: {}",
                format_args!(
                    "`gobuildkey rotate --keep-previous-for 7d {}`",
                    args.principal
                )
            ),
        )
        .into());
    }
    let master = args.master.load()?;
    let store = super::policy_store(&args.master, &args.edit)?;
    let wrote_file = std::cell::Cell::new(false);
    let edited = super::edit_policy(&store, &args.edit, |policy| {
        let before = policy.state(&args.principal);
        let mut state = before.clone();
        // Written as TOML integers, which stop at i64::MAX.
        let generation = state
            .machine_generation(machine)
            .checked_add(1)
            .filter(|&g| i64::try_from(g).is_ok())
            .ok_or_else(|| {
                Refused::new(Exit::DataErr, "the machine's generation cannot go higher")
            })?;
        state
            .machine_generations
            .insert(machine.clone(), generation);
        // It has a key of its own now: the policy lists it (`policy`, `explain`).
        state.machines.insert(machine.clone());
        let alg = args.alg.unwrap_or(policy.default_algorithm());
        let key = Deriver::new(&master, alg).derive_machine(
            &args.principal,
            state.generation,
            machine,
            generation,
        );
        let mut action = super::record_minted(
            policy,
            "rotate",
            &args.principal,
            state.clone(),
            &master,
            &key,
        )?;
        if let Some(action) = action.as_mut() {
            action.machine = Some(machine.as_str().to_owned());
        }
        // `-o FILE`: written before the new generation is committed, as `rotate` does.
        if !args.edit.dry_run {
            super::write_key_file(&key, &args.out)?;
            wrote_file.set(args.out.output.is_some());
        }
        let committed = policy.state(&args.principal);
        Ok(super::Edited {
            value: (key, before, committed),
            action,
        })
    });
    let (key, before, committed) = match edited {
        Ok(edited) => edited,
        Err(e) => {
            remove_uncommitted(wrote_file.get(), &args.out);
            return Err(e);
        }
    };
    let generation = committed.machine_generation(machine);
    let p = &args.principal;
    if args.edit.dry_run {
        output::note(&format!(
            "dry run: the machine {machine} of {p} would move to its own generation \
             {generation}; no key was printed"
        ));
        return Ok(Exit::Ok);
    }
    let machine_revoked = committed.revoked_machines.contains(machine);
    if let Err(e) = super::emit_key(
        "rotate",
        &key,
        (p, Some((machine, generation))),
        committed.generation,
        crate::commands::json::Rotation {
            keep_previous: crate::commands::json::KeepPrevious(Grace::None),
            revoked: committed.revoked || machine_revoked,
        },
        &args.out,
    ) {
        let undone = roll_back(&store, args, Some(machine), &before, &committed)?;
        output::note(&format!(
            "the new key of the machine {machine} of {p} could not be delivered: {}",
            if undone {
                format!(
                    "the rotation was undone, its own generation {} is current again",
                    before.machine_generation(machine)
                )
            } else {
                "and the machine was rotated again meanwhile, so the rotation stays".to_owned()
            }
        ));
        return Err(e);
    }
    output::note(&format!(
        "the previous key of {p} bound to {machine} no longer verifies; the shared key of {p} \
         and its other machines' keys are unchanged"
    ));
    if committed.revoked {
        output::note(&format!(
            "note: {p} is still revoked: `gobuildkey reinstate {p}` when the new key is in place"
        ));
    } else if machine_revoked {
        output::note(&format!(
            "note: the machine {machine} of {p} is still revoked: \
             `gobuildkey reinstate --machine {machine} {p}` when the new key is in place"
        ));
    }
    Ok(Exit::Ok)
}

/// After a rotation that did not happen: the key file written for it (`-o FILE`, `wrote`)
/// holds no key of the policy's, so it goes.
fn remove_uncommitted(wrote: bool, out: &crate::cli::KeyOutputArgs) {
    if let (true, Some(path)) = (wrote, &out.output) {
        let _ = std::fs::remove_file(path);
        output::note(&format!(
            "{} was removed: the rotation it was written for did not happen",
            path.display()
        ));
    }
}
