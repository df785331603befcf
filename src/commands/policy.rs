//! `gobuildkey revoke`, `reinstate`, `end-grace` and `policy`: the policy's state.

use anyhow::Result;

use gobuildkey::keys::Algorithm;
use gobuildkey::policy::Grace;

use crate::cli::{PolicyArgs, PrincipalArgs};
use crate::exit::Exit;

/// Marks a principal revoked (`revoked = true`) or reinstates it.
pub fn revoke(args: &PrincipalArgs, revoked: bool) -> Result<Exit> {
    let mut policy = super::load_policy(&args.master)?;
    let mut state = policy.state(&args.principal);
    let p = &args.principal;
    if state.revoked == revoked {
        println!(
            "{p} is already {}",
            if revoked { "revoked" } else { "not revoked" }
        );
        return Ok(Exit::Ok);
    }
    state.revoked = revoked;
    policy.set_state(p, &state)?;
    policy.save()?;
    if revoked {
        println!("revoked {p}: every key of it is refused (undo: gobuildkey reinstate {p})");
    } else {
        println!(
            "reinstated {p}: its generation-{} key verifies again",
            state.generation
        );
    }
    Ok(Exit::Ok)
}

/// Ends a principal's grace period: its previous key stops verifying.
pub fn end_grace(args: &PrincipalArgs) -> Result<Exit> {
    let mut policy = super::load_policy(&args.master)?;
    let mut state = policy.state(&args.principal);
    let p = &args.principal;
    if state.keep_previous == Grace::None {
        println!("{p} has no grace period");
        return Ok(Exit::Ok);
    }
    state.keep_previous = Grace::None;
    policy.set_state(p, &state)?;
    policy.save()?;
    println!(
        "ended the grace period of {p}: only its generation-{} key verifies",
        state.generation
    );
    Ok(Exit::Ok)
}

/// Shows the masters and every principal the policy names; `--stale`, the ones to re-mint.
pub fn show(args: &PolicyArgs) -> Result<Exit> {
    let policy = super::load_policy(&args.master)?;
    let primary = args.master.source()?;
    let verifier =
        gobuildkey::verifier::Verifier::load(&primary, policy.clone(), Algorithm::default())?;
    let primary_fp = verifier
        .masters()
        .next()
        .map(ToString::to_string)
        .unwrap_or_default();
    let stale = |minted_under: Option<&String>| minted_under != Some(&primary_fp);

    if args.stale {
        for (p, state) in policy.principals() {
            if !state.revoked && stale(state.minted_under.as_ref()) {
                println!("{p}");
            }
        }
        return Ok(Exit::Ok);
    }

    match policy.path() {
        Some(path) if path.exists() => println!("policy: {}", path.display()),
        Some(path) => println!("policy: {} (not created yet)", path.display()),
        None => println!("policy: none"),
    }
    println!("masters:");
    println!("  primary   {primary_fp}  {primary}");
    for (entry, master) in policy.load_keyring()? {
        println!(
            "  previous  {}  {} (line {})",
            master.fingerprint(),
            entry.source,
            entry.at.0
        );
    }
    println!("principals:");
    println!(
        "  {:<32} {:>10}  {:<32} {:<8} minted under",
        "name", "generation", "grace", "revoked"
    );
    for (p, state) in policy.principals() {
        let minted = match state.minted_under.as_ref() {
            None => "-".to_owned(),
            Some(fp) if *fp == primary_fp => format!("{fp} (primary)"),
            Some(fp) => format!("{fp} (re-mint)"),
        };
        println!(
            "  {:<32} {:>10}  {:<32} {:<8} {minted}",
            p.as_str(),
            state.generation,
            state.keep_previous.to_string(),
            if state.revoked { "yes" } else { "no" },
        );
    }
    Ok(Exit::Ok)
}
