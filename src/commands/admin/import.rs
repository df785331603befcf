//! `gobuildkey import`: record principals whose keys were minted elsewhere (Go's
//! `genbuilderkey`), so that the policy accepts them, without changing any key.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use gobuildkey::key::AlgorithmSet;
use gobuildkey::policy::actions::{Action, ActionLog};
use gobuildkey::policy::{Policy, PolicyError};
use gobuildkey::principal::Principal;
use gobuildkey::secret_file::{self, WriteError};

use crate::cli::ImportArgs;
use crate::exit::{Exit, Refused};
use crate::output;

/// Records each principal under the primary master with `--alg`, creating the policy when
/// there is none, all under one lock; one action per principal changed.
pub fn run(args: &ImportArgs) -> Result<Exit> {
    let principals = principals(args)?;
    let master = args.master.load()?;
    let fingerprint = master.fingerprint().to_string();
    let store = super::policy_store(&args.master, &args.edit)?;
    let path = store.path().to_owned();
    let log = ActionLog::beside(&path);
    // A dry run creates nothing, not even the folder or the lock file; it reads unlocked.
    let lock = if args.edit.dry_run {
        None
    } else {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            secret_file::create_private_dir(dir)
                .map_err(|error| WriteError::CreateDir {
                    path: dir.to_owned(),
                    error,
                })
                .map_err(PolicyError::Write)?;
        }
        Some(store.lock(|holder| super::say_waiting(&store, &args.edit, holder))?)
    };
    let read = match &lock {
        Some(lock) => lock.read(),
        None => store.read(),
    };
    let (mut policy, exists) = match read {
        Ok(policy) => (policy, true),
        Err(PolicyError::Missing { .. }) if log.exists() => {
            return Err(Refused::new(
                Exit::CantCreate,
                format!(
                    "the policy is missing, and an action log is at {}: restore the policy from \
                     its backup (or `gobuildkey policy init --from-log`) before importing",
                    log.path().display()
                ),
            )
            .into());
        }
        Err(PolicyError::Missing { .. }) => (Policy::template(&path), false),
        Err(e) => return Err(e.into()),
    };
    let before = policy.clone();
    let mut actions = Vec::new();
    for principal in &principals {
        let mut state = policy.state(principal);
        let mut algorithms = match (state.algorithms, policy.state_ref(principal)) {
            (Some(set), _) => set,
            (None, Some(_)) => AlgorithmSet::only(policy.default_algorithm()),
            (None, None) => AlgorithmSet::default(),
        };
        algorithms.insert(args.alg);
        state.algorithms = Some(algorithms);
        if state.minted_under.is_none() {
            state.minted_under = Some(fingerprint.clone());
        }
        if policy.state_ref(principal) == Some(&state) {
            continue;
        }
        policy.set_state(principal, &state)?;
        let mut action = Action::new("import").on(principal, &state);
        action.algorithm = Some(args.alg.name().to_owned());
        action.master = Some(fingerprint.clone());
        action.reason.clone_from(&args.edit.reason);
        actions.push(action);
    }
    let changed: Vec<&str> = actions
        .iter()
        .filter_map(|a| a.principal.as_deref())
        .collect();
    if let Some(lock) = lock.filter(|_| !actions.is_empty() || !exists) {
        if exists {
            lock.check_writable()?;
        }
        for action in &actions {
            log.append(action)?;
        }
        let written = if exists {
            lock.write(&policy)
        } else {
            lock.create(&policy)
        };
        if let Err(e) = written {
            // As `edit_policy` does: the log says these never happened.
            for action in &actions {
                let _ = log.append(&action.undo(&before));
            }
            return Err(e.into());
        }
    }
    let would = if args.edit.dry_run {
        "dry run: would have "
    } else {
        ""
    };
    output::report(
        "import",
        &format!(
            "{would}recorded {} of {} principals as minted under {fingerprint} with {} keys, in {}{}",
            changed.len(),
            principals.len(),
            args.alg,
            path.display(),
            if exists { "" } else { " (a new policy)" }
        ),
        &crate::commands::json::Import {
            policy: &path,
            algorithm: args.alg.name(),
            master: &fingerprint,
            recorded: &changed,
            dry_run: args.edit.dry_run,
        },
    );
    Ok(Exit::Ok)
}

/// The principals of the command line and of `--from`, each once, in order.
fn principals(args: &ImportArgs) -> Result<Vec<Principal>> {
    let mut all = args.principals.clone();
    if let Some(file) = &args.from {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let principal = line.parse().map_err(|e| {
                Refused::new(
                    Exit::Usage,
                    format!("{}, line {}: {e}", file.display(), n + 1),
                )
            })?;
            all.push(principal);
        }
    }
    let mut seen = BTreeSet::new();
    all.retain(|p| seen.insert(p.clone()));
    Ok(all)
}
