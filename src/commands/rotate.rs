//! `gobuildkey rotate`: give a principal a new key.

use anyhow::Result;

use gobuildkey::keys::Deriver;
use gobuildkey::policy::Grace;

use crate::cli::RotateArgs;
use crate::exit::{Exit, Refused};
use crate::output;

/// Raises the generation, sets the grace period, saves the policy, prints the new key.
pub fn run(args: &RotateArgs) -> Result<Exit> {
    let master = args.master.source()?.load()?;
    let mut policy = super::load_policy(&args.master)?;
    let mut state = policy.state(&args.principal);
    // Generations are written as TOML integers, which stop at i64::MAX.
    state.generation = state
        .generation
        .checked_add(1)
        .filter(|&g| i64::try_from(g).is_ok())
        .ok_or_else(|| Refused::new(Exit::DataErr, "the generation cannot go higher"))?;
    state.keep_previous = if args.keep_previous {
        Grace::Open
    } else if let Some(until) = args.keep_previous_until {
        Grace::Until(until)
    } else if let Some(length) = args.keep_previous_for {
        Grace::Until(end_after(length)?)
    } else {
        Grace::None
    };
    let generation = state.generation;
    let key = Deriver::new(&master, args.alg).derive_generation(&args.principal, generation);
    super::record_minted(&mut policy, &args.principal, state.clone(), &master)?;
    let keep_previous = super::policy::grace_json(state.keep_previous);
    super::emit_key(
        "rotate",
        &key,
        &args.principal,
        generation,
        serde_json::json!({ "keep_previous": keep_previous, "revoked": state.revoked }),
    )?;
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

/// The moment `length` from now. Days, weeks and months are calendar units in UTC.
fn end_after(length: jiff::Span) -> Result<jiff::Timestamp, Refused> {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(length)
        .and_then(|end| end.timestamp().round(jiff::Unit::Second))
        .map_err(|_| {
            Refused::new(
                Exit::Usage,
                format!("--keep-previous-for {length:#} ends too far in the future: give a shorter length"),
            )
        })
}
