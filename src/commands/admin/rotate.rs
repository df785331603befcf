//! `gobuildkey rotate`: give a principal a new key.

use anyhow::Result;

use gobuildkey::derive::Deriver;
use gobuildkey::policy::Grace;

use crate::cli::RotateArgs;
use crate::exit::{Exit, Refused};
use crate::output;

/// Raises the generation, sets the grace period, saves the policy (under its lock), prints
/// the new key.
pub fn run(args: &RotateArgs) -> Result<Exit> {
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
            // The key file was written for a generation that was not committed: no key of
            // the policy's, so it goes.
            if let (true, Some(path)) = (wrote_file.get(), &args.out.output) {
                let _ = std::fs::remove_file(path);
                output::note(&format!(
                    "{} was removed: the rotation it was written for did not happen",
                    path.display()
                ));
            }
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
        let undone = roll_back(&store, args, &before, &committed)?;
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

/// Undoes the rotation under the lock, if the policy still has the generation it committed:
/// the state before comes back whole when nothing else changed since; when something did (a
/// `revoke` in between), only the generation and the grace period go back, so that no later
/// change is lost. Logged as a `rotate` with the reason. Whether it undid anything.
fn roll_back(
    store: &gobuildkey::policy::store::Store,
    args: &RotateArgs,
    before: &gobuildkey::policy::PrincipalState,
    committed: &gobuildkey::policy::PrincipalState,
) -> Result<bool> {
    super::edit_policy(store, &args.edit, |policy| {
        let now = policy.state(&args.principal);
        if now.generation != committed.generation {
            return Ok(super::Edited {
                value: false,
                action: None,
            });
        }
        let back = if now == *committed {
            before.clone()
        } else {
            gobuildkey::policy::PrincipalState {
                generation: before.generation,
                keep_previous: before.keep_previous,
                ..now
            }
        };
        let before = &back;
        policy.set_state(&args.principal, before)?;
        let mut action =
            gobuildkey::policy::actions::Action::new("rotate").on(&args.principal, before);
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
