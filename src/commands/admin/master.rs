//! `gobuildkey master rotate|add|retire`: the master keyring.

use anyhow::{Context, Result};

use gobuildkey::master::{MasterSecret, MasterSource};
use gobuildkey::policy::actions::{Action, KeyringAdded, KeyringChange, KeyringSource};
use gobuildkey::secret_file::{self, Existing, WriteError};

use crate::cli::{MasterAddArgs, MasterOnlyArgs, MasterRetireArgs};
use crate::exit::{Exit, Refused};

/// Replaces the primary master, keeping the old one as a previous master. The whole change
/// happens under the policy's lock, so two admins rotating at once rotate one after the
/// other: the second keeps the first's new master, never loses it.
pub fn rotate(args: &MasterOnlyArgs) -> Result<Exit> {
    let MasterSource::File(path) = args.master.source()?.absolute()? else {
        return Err(Refused::new(
            Exit::Config,
            "the master comes from a command: replace it in your secret manager, then \
             `gobuildkey master add --command CMD` with a command that prints the old one",
        )
        .into());
    };
    let store = super::policy_store(&args.master, &args.edit)?;
    let dry_run = args.edit.dry_run;
    let (old_fp, kept, new) = super::edit_policy_then(
        &store,
        &args.edit,
        |policy| {
            // Read under the lock: another rotation may just have replaced it.
            let old = MasterSource::File(path.clone()).load()?;
            let old_fp = old.fingerprint();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let digits = old_fp.as_str().trim_start_matches("SHA256:");
            let kept = path.with_file_name(format!("{name}.{digits}"));
            // 1. A copy of the old master beside it (a copy from an interrupted run is reused).
            if !dry_run {
                match secret_file::write_secret_file(&kept, &old.file_contents(), Existing::Refuse)
                {
                    Err(WriteError::Exists { .. })
                        if MasterSource::File(kept.clone()).load()?.fingerprint() == old_fp => {}
                    other => other?,
                }
            }
            // 2. The copy joins the keyring, so keys minted under the old master still verify.
            let kept_source = MasterSource::File(kept.clone());
            // Its keys are of the algorithms the policy accepts today, and no others.
            let algorithms = Some(policy.all_algorithms());
            if !policy
                .keyring()
                .iter()
                .any(|entry| entry.source == kept_source)
            {
                policy.add_previous_master(&kept_source, algorithms)?;
            }
            let new = MasterSecret::generate()?;
            let mut action = Action::new("master rotate");
            action.master = Some(new.fingerprint().to_string());
            action.keyring = Some(KeyringChange::Added(KeyringAdded::of(
                &kept_source,
                algorithms,
            )));
            Ok(super::Edited {
                value: (old_fp, kept, new),
                action: Some(action),
            })
        },
        // 3. The new master replaces the old one, atomically, once the policy accepts the old.
        |(_, _, new)| {
            secret_file::write_secret_file(&path, &new.file_contents(), Existing::Replace)
                .context("the old master is kept and accepted; no new master was written")
        },
    )?;
    let human = if dry_run {
        format!(
            "dry run: nothing was changed; the master {old_fp} at {} would be kept at {} and \
             accepted, and a new master written in its place",
            path.display(),
            kept.display()
        )
    } else {
        format!(
            "new primary master {} at {}\n\
             the previous master {old_fp} is kept at {} and still accepted\n\
             next: re-mint the keys `gobuildkey policy --stale` lists and hand them out,\n\
             then: gobuildkey master retire {old_fp}",
            new.fingerprint(),
            path.display(),
            kept.display()
        )
    };
    let new_fp = new.fingerprint();
    crate::output::report(
        "master rotate",
        &human,
        &crate::commands::json::MasterRotate {
            path: &path,
            fingerprint: (!dry_run).then(|| new_fp.as_str()),
            previous: old_fp.as_str(),
            kept: &kept,
            dry_run,
        },
    );
    Ok(Exit::Ok)
}

/// Accepts keys minted under another master.
pub fn add(args: &MasterAddArgs) -> Result<Exit> {
    let source = match (&args.file, &args.command) {
        (Some(file), _) => MasterSource::File(std::path::absolute(file)?),
        (None, Some(command)) => MasterSource::Command(command.clone()),
        // clap requires one of them; a caller that builds the arguments itself is told.
        (None, None) => {
            return Err(Refused::new(Exit::Usage, "give --file FILE or --command CMD").into());
        }
    };
    let previous = source.load_within(args.master.command_timeout)?;
    let fp = previous.fingerprint();
    let primary = args.master.load()?;
    if primary.fingerprint() == fp {
        return Err(Refused::new(
            Exit::DataErr,
            format!("{source} is the primary master ({fp})"),
        )
        .into());
    }
    let store = super::policy_store(&args.master, &args.edit)?;
    // The keyring's masters are loaded before the lock: a secret manager's command may be
    // slow, and every other admin's edit would wait on it.
    let already = store
        .read()?
        .load_keyring_within(args.master.command_timeout)?
        .iter()
        .any(|(_, m)| m.fingerprint() == fp);
    let added = super::edit_policy(&store, &args.edit, |policy| {
        if already || policy.keyring().iter().any(|entry| entry.source == source) {
            return Ok(super::Edited {
                value: false,
                action: None,
            });
        }
        let algorithms = (!args.algs.is_empty()).then(|| {
            args.algs
                .iter()
                .copied()
                .collect::<gobuildkey::key::AlgorithmSet>()
        });
        policy.add_previous_master(&source, algorithms)?;
        let mut action = Action::new("master add");
        action.master = Some(fp.to_string());
        action.keyring = Some(KeyringChange::Added(KeyringAdded::of(&source, algorithms)));
        Ok(super::Edited {
            value: true,
            action: Some(action),
        })
    })?;
    let human = if !added {
        format!("keys minted under {fp} are already accepted")
    } else if args.edit.dry_run {
        format!("dry run: keys minted under {fp} ({source}) would be accepted")
    } else {
        format!("keys minted under {fp} ({source}) are now accepted")
    };
    crate::output::report(
        "master add",
        &human,
        &crate::commands::json::MasterAdd {
            fingerprint: fp.as_str(),
            source: source.to_string(),
            changed: added,
            dry_run: args.edit.dry_run,
        },
    );
    Ok(Exit::Ok)
}

/// Stops accepting keys minted under a previous master: every keyring entry that loads to
/// that master is removed.
pub fn retire(args: &MasterRetireArgs) -> Result<Exit> {
    let primary = args.master.load()?;
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
    let store = super::policy_store(&args.master, &args.edit)?;
    // Which entries lead to that master is found before the lock (loading a master may run
    // a secret manager's command); under the lock they are removed by their source. Each
    // entry is loaded on its own, so an unreadable one does not block retiring another.
    let mut unreadable = Vec::new();
    let mut retiring = Vec::new();
    for entry in store.read()?.keyring() {
        match entry.source.load_within(args.master.command_timeout) {
            Ok(master) if master.fingerprint().as_str() == args.fingerprint => {
                retiring.push(entry.source.clone());
            }
            Ok(_) => {}
            Err(_) => unreadable.push(entry.at.0),
        }
    }
    let sources = super::edit_policy(&store, &args.edit, |policy| {
        let found: Vec<(usize, MasterSource)> = policy
            .keyring()
            .iter()
            .enumerate()
            .filter(|(_, entry)| retiring.contains(&entry.source))
            .map(|(index, entry)| (index, entry.source.clone()))
            .collect();
        if found.is_empty() {
            let mut message = format!(
                "no previous master has the fingerprint {}: `gobuildkey policy` lists them",
                gobuildkey::text::escape_for_terminal(&args.fingerprint, 64)
            );
            if !unreadable.is_empty() {
                message.push_str(&format!(
                    "; entries that cannot be loaded (lines {unreadable:?} of the policy) can be removed by hand"
                ));
            }
            return Err(Refused::new(Exit::DataErr, message).into());
        }
        // From the last, so the indexes of the others stay right.
        for (index, _) in found.iter().rev() {
            policy.remove_previous_master(*index)?;
        }
        let mut action = Action::new("master retire");
        action.master = Some(args.fingerprint.clone());
        action.keyring = found
            .first()
            .map(|(_, source)| KeyringChange::Removed(KeyringSource::of(source)));
        Ok(super::Edited {
            value: found
                .into_iter()
                .map(|(_, source)| source)
                .collect::<Vec<_>>(),
            action: Some(action),
        })
    })?;
    let would = if args.edit.dry_run { "dry run: " } else { "" };
    let mut lines = vec![format!(
        "{would}keys minted under {} are no longer accepted",
        args.fingerprint
    )];
    for source in &sources {
        if let MasterSource::File(path) = source {
            lines.push(format!(
                "{} is no longer used: delete it when you are sure (shred -u)",
                path.display()
            ));
        }
    }
    crate::output::report(
        "master retire",
        &lines.join("\n"),
        &crate::commands::json::MasterRetire {
            fingerprint: &args.fingerprint,
            removed: sources.iter().map(ToString::to_string).collect(),
            dry_run: args.edit.dry_run,
        },
    );
    Ok(Exit::Ok)
}
