//! `gobuildkey mint`: print a principal's key.

use anyhow::Result;

use gobuildkey::derive::Deriver;
use gobuildkey::key::BuildKey;
use gobuildkey::master::MasterSecret;
use gobuildkey::policy::Policy;
use jiff::Timestamp;

use crate::cli::MintArgs;
use crate::exit::{Exit, Refused};

/// Prints the key of the principal's current generation (bound to a machine: at the
/// machine's current generation of its own). The policy is written only when it must record
/// something new — a principal it does not name yet, a machine it does not list, or a key
/// minted under another master than the one recorded — and then under its lock. A token or
/// a machine key is logged even when the policy has nothing new to record, so that its
/// fingerprint is in the log (`explain` attributes it).
pub fn run(args: &MintArgs) -> Result<Exit> {
    // An expiry, if asked for, checked before the master is read.
    let expires = expiry(args)?;
    let master = args.master.load()?;
    let store = super::policy_store(&args.master, &args.edit)?;
    let always_logged = expires.is_some() || args.machine.is_some();
    let Minted {
        key,
        generation,
        machine_generation,
        ..
    } = match mint(&store.read()?, args, &master, expires)? {
        // Nothing new to record: no lock, no write. Tokens and machine keys are always
        // logged (below).
        minted if minted.recorded && !always_logged => minted,
        // Again under the lock, from the policy as it is now (a rotation may have landed).
        _ => super::edit_policy(&store, &args.edit, |policy| {
            let minted = mint(policy, args, &master, expires)?;
            let key = &minted.key;
            let mut state = policy.state(&args.principal);
            // A machine's own key: the policy lists the machine (`policy`, `explain`).
            state.machines.extend(args.machine.clone());
            let mut action =
                super::record_minted(policy, "mint", &args.principal, state.clone(), &master, key)?;
            if action.is_none() && always_logged {
                // The policy already says all this; the log still records the token or the
                // machine key, so that `explain` and `scan` know whose it is.
                action = Some(super::minted_action(
                    "mint",
                    &args.principal,
                    &state,
                    &master,
                    key,
                ));
            }
            if let Some(action) = action.as_mut() {
                action.machine = args.machine.as_ref().map(|m| m.as_str().to_owned());
                action.expires = key.expires().map(|t| t.to_string());
            }
            Ok(super::Edited {
                value: minted,
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
    let whom = args
        .machine
        .as_ref()
        .map(|machine| (machine, machine_generation));
    super::emit_key(
        "mint",
        &key,
        (&args.principal, whom),
        generation,
        (),
        &args.out,
    )?;
    Ok(Exit::Ok)
}

/// A key as `policy` gives it.
struct Minted {
    key: BuildKey,
    /// The principal's generation.
    generation: u64,
    /// The machine's own generation (0 without `--machine`).
    machine_generation: u64,
    /// Whether the policy records all the key needs already.
    recorded: bool,
}

/// The key `policy` gives the principal, its generations, and whether the policy has yet to
/// record it.
fn mint(
    policy: &Policy,
    args: &MintArgs,
    master: &MasterSecret,
    expires: Option<Timestamp>,
) -> Result<Minted> {
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
    // Bound to a machine: at the machine's own generation (`rotate --machine`).
    let machine_generation = args
        .machine
        .as_ref()
        .map_or(0, |machine| state.machine_generation(machine));
    let bound = args.machine.as_ref().map(|m| (m, machine_generation));
    let key = match (bound, expires) {
        (bound, Some(expires)) => {
            deriver.derive_token(&args.principal, state.generation, bound, expires)
        }
        (Some((machine, machine_generation)), None) => deriver.derive_machine(
            &args.principal,
            state.generation,
            machine,
            machine_generation,
        ),
        (None, None) => deriver.derive_generation(&args.principal, state.generation),
    };
    let generation = state.generation;
    let mut wanted = super::minted_state(policy, &args.principal, state, master, alg);
    wanted.machines.extend(args.machine.clone());
    let recorded = policy.state_ref(&args.principal) == Some(&wanted);
    Ok(Minted {
        key,
        generation,
        machine_generation,
        recorded,
    })
}

/// The expiry `--expires-in` or `--expires-at` asks for, to the second: after now, and at
/// most [`gobuildkey::token::MAX_LIFETIME`] from now (`token::lives_too_long`: a key that
/// lives longer is a plain key).
fn expiry(args: &MintArgs) -> Result<Option<Timestamp>, Refused> {
    expiry_at(args.expires_in, args.expires_at, Timestamp::now())
}

/// [`expiry`] at `now`: the clock is read once, so that the length asked and the longest
/// life are measured from the same moment (`--expires-in 366d` is the longest, not more).
fn expiry_at(
    expires_in: Option<jiff::Span>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<Option<Timestamp>, Refused> {
    // What was asked, as the messages name it: the length, or the date.
    let (expires, asked) = match (expires_in, expires_at) {
        (Some(length), _) => (
            super::moment_after_from(now, length, "--expires-in")?,
            format!("--expires-in {length:#}"),
        ),
        (None, Some(at)) => (at, format!("--expires-at {at}")),
        (None, None) => return Ok(None),
    };
    // Whole seconds, as the token carries them: rounded down, never later than asked.
    let expires = Timestamp::from_second(expires.as_second()).unwrap_or(expires);
    if expires <= now {
        return Err(Refused::new(
            Exit::Usage,
            format!(
                "{asked} is not in the future, so the token would be refused at once: give a \
                 later date, or a length (--expires-in 24h)"
            ),
        ));
    }
    if gobuildkey::token::lives_too_long(expires, now, std::time::Duration::ZERO) {
        return Err(Refused::new(
            Exit::Usage,
            format!(
                "{asked} is more than 366 days away, longer than a token may live: give a \
                 nearer expiry, or mint a plain key (no --expires-in) and rotate it"
            ),
        ));
    }
    Ok(Some(expires))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The longest life asked as a length is granted whatever the clock's fraction of a
    /// second (it was refused about half the time: the clock read twice, the end rounded
    /// up); a second more is refused; the expiry is a whole second, never later than asked.
    #[test]
    fn the_longest_life_is_granted_at_any_fraction_of_a_second() {
        let days: jiff::Span = "366d".parse().unwrap();
        let more: jiff::Span = "8784h1s".parse().unwrap();
        for fraction in [0, 1, 499_999_999, 500_000_000, 999_999_999] {
            let now = Timestamp::new(1_800_000_000, fraction).unwrap();
            let expires = expiry_at(Some(days), None, now)
                .unwrap_or_else(|e| panic!("{fraction}: {e}"))
                .unwrap();
            assert_eq!(expires.subsec_nanosecond(), 0);
            assert!(
                expires <= now + gobuildkey::token::MAX_LIFETIME,
                "{fraction}"
            );
            assert!(expiry_at(Some(more), None, now).is_err(), "{fraction}");
        }
    }
}
