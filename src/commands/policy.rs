//! `gobuildkey revoke`, `reinstate`, `end-grace` and `policy`: the policy's state.

use anyhow::Result;

use gobuildkey::keys::Algorithm;
use gobuildkey::policy::Grace;

use crate::cli::{PolicyArgs, PrincipalArgs};
use crate::exit::Exit;
use crate::output;
use serde_json::json;

/// Marks a principal revoked (`revoked = true`) or reinstates it.
pub fn revoke(args: &PrincipalArgs, revoked: bool) -> Result<Exit> {
    let mut policy = super::load_policy(&args.master)?;
    let mut state = policy.state(&args.principal);
    let p = &args.principal;
    let command = if revoked { "revoke" } else { "reinstate" };
    let changed = state.revoked != revoked;
    let human = if !changed {
        format!(
            "{p} is already {}",
            if revoked { "revoked" } else { "not revoked" }
        )
    } else if revoked {
        format!("revoked {p}: every key of it is refused (undo: gobuildkey reinstate {p})")
    } else {
        format!(
            "reinstated {p}: its generation-{} key verifies again",
            state.generation
        )
    };
    if changed {
        state.revoked = revoked;
        policy.set_state(p, &state)?;
        policy.save()?;
    }
    output::report(
        command,
        &human,
        json!({ "principal": p.as_str(), "revoked": revoked, "changed": changed }),
    );
    Ok(Exit::Ok)
}

/// Ends a principal's grace period: its previous key stops verifying.
pub fn end_grace(args: &PrincipalArgs) -> Result<Exit> {
    let mut policy = super::load_policy(&args.master)?;
    let mut state = policy.state(&args.principal);
    let p = &args.principal;
    let changed = state.keep_previous != Grace::None;
    let human = if changed {
        format!(
            "ended the grace period of {p}: only its generation-{} key verifies",
            state.generation
        )
    } else {
        format!("{p} has no grace period")
    };
    if changed {
        state.keep_previous = Grace::None;
        policy.set_state(p, &state)?;
        policy.save()?;
    }
    output::report(
        "end-grace",
        &human,
        json!({ "principal": p.as_str(), "changed": changed, "generation": state.generation }),
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

    let stale_names: Vec<&str> = policy
        .principals()
        .filter(|(_, state)| !state.revoked && stale(state.minted_under.as_ref()))
        .map(|(p, _)| p.as_str())
        .collect();
    if args.stale {
        output::report(
            "policy",
            &stale_names.join("\n"),
            json!({ "stale": stale_names }),
        );
        return Ok(Exit::Ok);
    }

    let keyring = policy.load_keyring()?;
    let mut lines = vec![match policy.path() {
        Some(path) if path.exists() => format!("policy: {}", path.display()),
        Some(path) => format!("policy: {} (not created yet)", path.display()),
        None => "policy: none".to_owned(),
    }];
    lines.push("masters:".into());
    lines.push(format!("  primary   {primary_fp}  {primary}"));
    for (entry, master) in &keyring {
        lines.push(format!(
            "  previous  {}  {} (line {})",
            master.fingerprint(),
            entry.source,
            entry.at.0
        ));
    }
    lines.push("principals:".into());
    lines.push(format!(
        "  {:<32} {:>10}  {:<32} {:<8} minted under",
        "name", "generation", "grace", "revoked"
    ));
    let mut principals = Vec::new();
    for (p, state) in policy.principals() {
        let minted = match state.minted_under.as_ref() {
            None => "-".to_owned(),
            Some(fp) if *fp == primary_fp => format!("{fp} (primary)"),
            Some(fp) => format!("{fp} (re-mint)"),
        };
        lines.push(format!(
            "  {:<32} {:>10}  {:<32} {:<8} {minted}",
            p.as_str(),
            state.generation,
            state.keep_previous.to_string(),
            if state.revoked { "yes" } else { "no" },
        ));
        principals.push(json!({
            "name": p.as_str(),
            "generation": state.generation,
            "keep_previous": grace_json(state.keep_previous),
            "revoked": state.revoked,
            "minted_under": state.minted_under,
            "stale": !state.revoked && stale(state.minted_under.as_ref()),
        }));
    }
    let previous: Vec<_> = keyring
        .iter()
        .map(|(entry, master)| {
            json!({
                "fingerprint": master.fingerprint().as_str(),
                "source": entry.source.to_string(),
                "line": entry.at.0,
            })
        })
        .collect();
    output::report(
        "policy",
        &lines.join("\n"),
        json!({
            "policy": policy.path(),
            "masters": { "primary": primary_fp, "previous": previous },
            "principals": principals,
            "stale": stale_names,
        }),
    );
    Ok(Exit::Ok)
}

/// A grace period as docs/json.md has it: `false`, `true` (until ended), or its end.
pub(crate) fn grace_json(grace: Grace) -> serde_json::Value {
    match grace {
        Grace::None => json!(false),
        Grace::Open => json!(true),
        Grace::Until(end) => json!(end.to_string()),
    }
}
