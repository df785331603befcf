//! `gobuildkey master rotate|add|retire`: the master keyring.

use anyhow::{Context, Result};

use gobuildkey::master::{MasterSecret, MasterSource};
use gobuildkey::secret_file::{self, Existing, WriteError};

use crate::cli::{MasterAddArgs, MasterOnlyArgs, MasterRetireArgs};
use crate::exit::{Exit, Refused};

/// Replaces the primary master, keeping the old one as a previous master.
pub fn rotate(args: &MasterOnlyArgs) -> Result<Exit> {
    let MasterSource::File(path) = args.master.source()? else {
        return Err(Refused::new(
            Exit::Config,
            "the master comes from a command: replace it in your secret manager, then \
             `gobuildkey master add --command CMD` with a command that prints the old one",
        )
        .into());
    };
    let mut policy = super::load_policy(&args.master)?;
    let old = MasterSource::File(path.clone()).load()?;
    let old_fp = old.fingerprint();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits = old_fp.as_str().trim_start_matches("SHA256:");
    let kept = path.with_file_name(format!("{name}.{digits}"));

    // 1. A copy of the old master beside it (a copy from an interrupted run is reused).
    match secret_file::write_secret_file(&kept, &old.file_contents(), Existing::Refuse) {
        Err(WriteError::Exists { .. })
            if MasterSource::File(kept.clone()).load()?.fingerprint() == old_fp => {}
        other => other?,
    }
    // 2. The copy joins the keyring, so keys minted under the old master still verify.
    let kept_source = MasterSource::File(kept.clone());
    if !policy
        .keyring()
        .iter()
        .any(|entry| entry.source == kept_source)
    {
        policy.add_previous_master(&kept_source)?;
        policy.save()?;
    }
    // 3. The new master replaces the old one, atomically.
    let new = MasterSecret::generate()?;
    secret_file::write_secret_file(&path, &new.file_contents(), Existing::Replace)
        .context("the old master is kept and accepted; no new master was written")?;

    crate::output::say(&format!(
        "new primary master {} at {}",
        new.fingerprint(),
        path.display()
    ));
    crate::output::say(&format!(
        "the previous master {old_fp} is kept at {} and still accepted",
        kept.display()
    ));
    crate::output::say(
        "next: re-mint the keys `gobuildkey policy --stale` lists and hand them out,",
    );
    crate::output::say(&format!("then: gobuildkey master retire {old_fp}"));
    Ok(Exit::Ok)
}

/// Accepts keys minted under another master.
pub fn add(args: &MasterAddArgs) -> Result<Exit> {
    let source = match (&args.file, &args.command) {
        (Some(file), _) => MasterSource::File(std::path::absolute(file)?),
        (None, Some(command)) => MasterSource::Command(command.clone()),
        (None, None) => unreachable!("clap requires --file or --command"),
    };
    let previous = source.load()?;
    let fp = previous.fingerprint();
    let primary = args.master.source()?.load()?;
    if primary.fingerprint() == fp {
        return Err(Refused::new(
            Exit::DataErr,
            format!("{source} is the primary master ({fp})"),
        )
        .into());
    }
    let mut policy = super::load_policy(&args.master)?;
    if policy
        .load_keyring()?
        .iter()
        .any(|(_, m)| m.fingerprint() == fp)
    {
        crate::output::say(&format!("keys minted under {fp} are already accepted"));
        return Ok(Exit::Ok);
    }
    policy.add_previous_master(&source)?;
    policy.save()?;
    crate::output::say(&format!(
        "keys minted under {fp} ({source}) are now accepted"
    ));
    Ok(Exit::Ok)
}

/// Stops accepting keys minted under a previous master.
pub fn retire(args: &MasterRetireArgs) -> Result<Exit> {
    let mut policy = super::load_policy(&args.master)?;
    let primary = args.master.source()?.load()?;
    if primary.fingerprint().as_str() == args.fingerprint {
        return Err(Refused::new(
            Exit::DataErr,
            format!(
                "{} is the primary master: replace it first with `gobuildkey master rotate`",
                args.fingerprint
            ),
        )
        .into());
    }
    // Each entry is loaded on its own, so an unreadable one does not block retiring another.
    let mut unreadable = Vec::new();
    let mut found = None;
    for (index, entry) in policy.keyring().iter().enumerate() {
        match entry.source.load() {
            Ok(master) if master.fingerprint().as_str() == args.fingerprint => {
                found = Some((index, entry.source.clone()));
                break;
            }
            Ok(_) => {}
            Err(_) => unreadable.push(entry.at.0),
        }
    }
    let Some((index, source)) = found else {
        let mut message = format!(
            "no previous master has the fingerprint {}: `gobuildkey policy` lists them",
            args.fingerprint
        );
        if !unreadable.is_empty() {
            message.push_str(&format!(
                "; entries that cannot be loaded (lines {unreadable:?} of the policy) can be removed by hand"
            ));
        }
        return Err(Refused::new(Exit::DataErr, message).into());
    };
    policy.remove_previous_master(index)?;
    policy.save()?;
    crate::output::say(&format!(
        "keys minted under {} are no longer accepted",
        args.fingerprint
    ));
    if let MasterSource::File(path) = &source {
        crate::output::say(&format!(
            "{} is no longer used: delete it when you are sure (shred -u)",
            path.display()
        ));
    }
    Ok(Exit::Ok)
}
