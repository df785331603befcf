//! `gobuildkey revoke`, `reinstate`, `end-grace`, `policy` and `policy init`: the policy's
//! state.

use anyhow::Result;

use gobuildkey::machine::Machine;
use gobuildkey::policy::actions::{Action, ActionLog, replay};
use gobuildkey::policy::{Grace, Policy};
use gobuildkey::principal::Principal;
use gobuildkey::secret_file::WriteError;

use crate::cli::{
    EndGraceArgs, MachineKeysOnlyArgs, PolicyArgs, PolicyCommand, PolicyInitArgs, PrincipalArgs,
    ReinstateArgs, RevokeArgs,
};
use crate::commands::json;
use crate::exit::{Exit, Refused};
use crate::output;

/// A command's result, reported once the edit is made (an edit refused late says nothing
/// of what it would have done): its name, the lines for people, its JSON object.
type Report<T> = (&'static str, String, T);

fn report<T: serde::Serialize>((command, human, fields): Report<T>) {
    output::report(command, &human, &fields);
}

/// Marks a principal revoked (`revoked = true`).
pub fn revoke(args: &RevokeArgs) -> Result<Exit> {
    let target = &args.target;
    let store = super::policy_store(&target.master, &target.edit)?;
    report(super::edit_policy(&store, &target.edit, |policy| {
        if !args.allow_unknown && policy.state_ref(&target.principal).is_none() {
            // A line the log cannot read (cut short by a crash) hides nothing it can.
            let (log, _) = ActionLog::beside(store.path()).read_skipping()?;
            if !log
                .iter()
                .any(|a| a.principal.as_deref() == Some(target.principal.as_str()))
            {
                return Err(unknown(&target.principal, policy, &log).into());
            }
        }
        set_revoked(policy, target, args.machine.as_ref(), true)
    })?);
    Ok(Exit::Ok)
}

/// Undoes `revoke`.
pub fn reinstate(args: &ReinstateArgs) -> Result<Exit> {
    let target = &args.target;
    let store = super::policy_store(&target.master, &target.edit)?;
    report(super::edit_policy(&store, &target.edit, |policy| {
        set_revoked(policy, target, args.machine.as_ref(), false)
    })?);
    Ok(Exit::Ok)
}

/// `policy machine-keys-only`: refuse, or (`--off`) accept again, a principal's shared key.
fn machine_keys_only(args: &MachineKeysOnlyArgs) -> Result<Exit> {
    let target = &args.target;
    let store = super::policy_store(&target.master, &target.edit)?;
    let only = !args.off;
    let (human, fields) = super::edit_policy(&store, &target.edit, |policy| {
        let p = &target.principal;
        let mut state = policy.state(p);
        let changed = state.machine_keys_only != only;
        let would = if target.edit.dry_run {
            "would have "
        } else {
            ""
        };
        let human = match (changed, only) {
            (false, true) => format!("{p} already accepts machine keys only"),
            (false, false) => format!("{p} already accepts its shared key"),
            (true, true) => format!(
                "{would}made {p} accept only keys bound to a machine: its shared key is refused \
                 (undo: gobuildkey policy machine-keys-only --off {p})"
            ),
            (true, false) => format!("{would}made {p} accept its shared key again"),
        };
        let mut action = None;
        if changed {
            state.machine_keys_only = only;
            policy.set_state(p, &state)?;
            action = Some(Action::new("policy machine-keys-only").on(p, &state));
        }
        Ok(super::Edited {
            value: (
                human,
                json::MachineKeysOnly {
                    principal: p.to_string(),
                    machine_keys_only: only,
                    changed,
                    dry_run: target.edit.dry_run,
                },
            ),
            action,
        })
    })?;
    output::report("policy machine-keys-only", &human, &fields);
    Ok(Exit::Ok)
}

/// `revoke`/`reinstate` of a principal or, with `machine`, of one machine of it.
fn set_revoked<'a>(
    policy: &mut Policy,
    args: &'a PrincipalArgs,
    machine: Option<&Machine>,
    revoked: bool,
) -> Result<super::Edited<Report<json::Revoke<'a>>>> {
    let p = &args.principal;
    let mut state = policy.state(p);
    let command = if revoked { "revoke" } else { "reinstate" };
    let changed = match machine {
        Some(m) if revoked => state.revoked_machines.insert(m.clone()),
        Some(m) => state.revoked_machines.remove(m),
        None => std::mem::replace(&mut state.revoked, revoked) != revoked,
    };
    let would = if args.edit.dry_run { "would have " } else { "" };
    let human = match (machine, changed, revoked) {
        (None, false, true) => format!("{p} is already revoked"),
        (None, false, false) => format!("{p} is already not revoked"),
        (None, true, true) => format!(
            "{would}revoked {p}: every key of it is refused (undo: gobuildkey reinstate {p})"
        ),
        (None, true, false) => format!(
            "{would}reinstated {p}: its generation-{} key verifies again",
            state.generation
        ),
        (Some(m), false, true) => format!("the machine {m} of {p} is already revoked"),
        (Some(m), false, false) => format!("the machine {m} of {p} is not revoked"),
        (Some(m), true, true) => format!(
            "{would}revoked the machine {m} of {p}: nothing presented from it verifies \
             (undo: gobuildkey reinstate --machine {m} {p})"
        ),
        (Some(m), true, false) => format!("{would}reinstated the machine {m} of {p}"),
    };
    let mut action = None;
    if changed {
        policy.set_state(p, &state)?;
        let mut logged = Action::new(command).on(p, &state);
        logged.machine = machine.map(|m| m.as_str().to_owned());
        action = Some(logged);
    }
    let fields = json::Revoke {
        principal: p.as_str(),
        machine: machine.map(|m| m.as_str().to_owned()),
        revoked,
        changed,
        dry_run: args.edit.dry_run,
    };
    Ok(super::Edited {
        value: (command, human, fields),
        action,
    })
}

/// The refusal to revoke a name the farm never knew, with the names it knows that are close.
fn unknown(principal: &Principal, policy: &Policy, log: &[Action]) -> Refused {
    let name = principal.as_str();
    let mut near: Vec<&str> = policy
        .principals()
        .map(|(p, _)| p.as_str())
        .chain(log.iter().filter_map(|a| a.principal.as_deref()))
        .filter(|known| {
            strsim::damerau_levenshtein(known, name) <= 3 || strsim::jaro_winkler(known, name) > 0.9
        })
        .collect();
    near.sort_unstable();
    near.dedup();
    near.truncate(5);
    let hint = match near.as_slice() {
        [] => String::new(),
        [one] => format!(" (did you mean {one}?)"),
        many => format!(" (did you mean one of {}?)", many.join(", ")),
    };
    Refused::new(
        Exit::Invalid,
        format!(
            "{name} is not in the policy, and no action in the log names it{hint}: nothing was \
             revoked. Check the name; to revoke it anyway (a principal minted before the policy \
             or the log existed), pass --allow-unknown"
        ),
    )
}

/// Ends a principal's grace period: its previous key stops verifying. With `--alg`, ends
/// instead the acceptance of one algorithm: its keys of that algorithm stop verifying.
pub fn end_grace(args: &EndGraceArgs) -> Result<Exit> {
    let target = &args.target;
    let store = super::policy_store(&target.master, &target.edit)?;
    report(super::edit_policy(&store, &target.edit, |policy| {
        let p = &target.principal;
        let mut state = policy.state(p);
        let would = if target.edit.dry_run {
            "would have "
        } else {
            ""
        };
        let (changed, human) = if let Some(alg) = args.alg {
            let mut accepted = policy.accepted_algorithms(p);
            if !accepted.contains(alg) {
                (
                    false,
                    format!("{p}'s keys are not accepted in {alg} (it accepts {accepted})"),
                )
            } else {
                accepted.remove(alg);
                if accepted.is_empty() {
                    return Err(Refused::new(
                        Exit::Invalid,
                        format!(
                            "{alg} is the only algorithm {p}'s keys are accepted in: ending it \
                             would refuse every key of {p}; mint it a key of another algorithm \
                             first (`gobuildkey mint --alg ALG {p}`), or revoke it"
                        ),
                    )
                    .into());
                }
                state.algorithms = Some(accepted);
                (
                    true,
                    format!("{would}ended {alg} for {p}: only its {accepted} keys verify"),
                )
            }
        } else if state.keep_previous != Grace::None {
            state.keep_previous = Grace::None;
            (
                true,
                format!(
                    "{would}ended the grace period of {p}: only its generation-{} key verifies",
                    state.generation
                ),
            )
        } else {
            (false, format!("{p} has no grace period"))
        };
        let mut action = None;
        if changed {
            policy.set_state(p, &state)?;
            let mut logged = Action::new("end-grace").on(p, &state);
            logged.algorithm = args.alg.map(|alg| alg.name().to_owned());
            action = Some(logged);
        }
        let fields = json::EndGrace {
            principal: p.as_str(),
            changed,
            generation: state.generation,
            dry_run: target.edit.dry_run,
        };
        Ok(super::Edited {
            value: ("end-grace", human, fields),
            action,
        })
    })?);
    Ok(Exit::Ok)
}

/// `gobuildkey policy init`: creates the policy; with `--from-log`, rebuilt from the log.
pub fn init(args: &PolicyInitArgs) -> Result<Exit> {
    let store = super::policy_store(&args.master, &args.edit)?;
    let path = store.path().to_owned();
    let log = ActionLog::beside(&path);
    let exists = || -> Result<()> {
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Refused::new(
                Exit::CantCreate,
                format!(
                    "a policy already exists at {}: nothing was changed (`gobuildkey policy` shows it)",
                    path.display()
                ),
            )
            .into());
        }
        Ok(())
    };
    exists()?;
    let policy = if args.from_log {
        let actions = log.read()?;
        if actions.is_empty() {
            return Err(Refused::new(
                Exit::NoInput,
                format!(
                    "there is no action log at {} to rebuild the policy from: restore the policy from its backup",
                    log.path().display()
                ),
            )
            .into());
        }
        replay(&actions, &path)?
    } else {
        if log.exists() {
            return Err(Refused::new(
                Exit::CantCreate,
                format!(
                    "an action log is at {}: this farm had a policy, and a new empty one would make \
                     every key it revoked verify again. Restore the policy from its backup, or \
                     rebuild it from the log with `gobuildkey policy init --from-log`",
                    log.path().display()
                ),
            )
            .into());
        }
        let mut policy = Policy::template(&path);
        policy.set_default_algorithm(args.alg)?;
        policy
    };
    let mut action = Action::new("policy init");
    action.reason.clone_from(&args.edit.reason);
    // The farm's default algorithm, for a replay of the log to start from the same.
    action.algorithm = Some(policy.default_algorithm().name().to_owned());
    if args.from_log {
        action.reason = Some(match action.reason {
            Some(reason) => format!("rebuilt from the action log: {reason}"),
            None => "rebuilt from the action log".into(),
        });
    }
    let principals = policy.principals().count();
    if args.edit.dry_run {
        output::note(&format!(
            "dry run: nothing was written; {} would hold:\n{}",
            path.display(),
            policy.as_text()
        ));
    } else {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            gobuildkey::secret_file::create_private_dir(dir)
                .map_err(|error| WriteError::CreateDir {
                    path: dir.to_owned(),
                    error,
                })
                .map_err(gobuildkey::policy::PolicyError::Write)?;
        }
        let lock = store.lock(|holder| super::say_waiting(&store, &args.edit, holder))?;
        // Again under the lock: another `policy init` may just have made one.
        exists()?;
        log.append(&action)?;
        lock.create(&policy)?;
    }
    output::report(
        "policy init",
        &format!(
            "{} policy {}{}",
            if args.edit.dry_run {
                "would create"
            } else {
                "created"
            },
            path.display(),
            if args.from_log {
                format!(" from the action log ({principals} principals)")
            } else {
                String::new()
            }
        ),
        &json::PolicyInit {
            policy: &path,
            from_log: args.from_log,
            principals,
            dry_run: args.edit.dry_run,
        },
    );
    Ok(Exit::Ok)
}

/// Shows the masters and every principal the policy names; `--stale`, the ones to re-mint.
pub fn show(args: &PolicyArgs) -> Result<Exit> {
    match &args.action {
        Some(PolicyCommand::Init(init_args)) => return init(init_args),
        Some(PolicyCommand::MachineKeysOnly(only)) => return machine_keys_only(only),
        None => {}
    }
    let policy = super::load_policy(&args.master)?;
    let primary = args.master.source()?;
    // Each master command runs once: the primary's, then the keyring's.
    let primary_fp = primary
        .load_within(args.master.command_timeout)?
        .fingerprint()
        .to_string();
    let keyring = policy.load_keyring_within(args.master.command_timeout)?;
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
            &json::Stale {
                stale: &stale_names,
            },
        );
        return Ok(Exit::Ok);
    }

    // A fleet's policy lists 100,000 principals: only what the output needs is built, the
    // listing as one string (docs/performance.md, "A policy of 100,000 principals").
    let json = output::mode() == output::Mode::Json;
    let mut human = String::new();
    let mut line = |text: std::fmt::Arguments<'_>| {
        if !json {
            use std::fmt::Write as _;
            let _ = writeln!(human, "{text}");
        }
    };
    match policy.path() {
        Some(path) => line(format_args!("policy: {}", path.display())),
        None => line(format_args!("policy: none")),
    }
    line(format_args!(
        "default algorithm: {}",
        policy.default_algorithm()
    ));
    line(format_args!("masters:"));
    line(format_args!("  primary   {primary_fp}  {primary}"));
    for (entry, master) in &keyring {
        line(format_args!(
            "  previous  {}  {} (line {}){}",
            master.fingerprint(),
            entry.source,
            entry.at.0,
            entry
                .algorithms
                .map_or_else(String::new, |set| format!(", {set} keys only"))
        ));
    }
    line(format_args!("principals:"));
    line(format_args!(
        "  {:<32} {:>10}  {:<32} {:<8} {:<24} minted under",
        "name", "generation", "grace", "revoked", "algorithms"
    ));
    let mut principals = Vec::new();
    for (p, state) in policy.principals() {
        let algorithms = policy.accepted_algorithms(p);
        if json {
            principals.push(json::PolicyPrincipal {
                name: p.as_str(),
                generation: state.generation,
                keep_previous: json::KeepPrevious(state.keep_previous),
                revoked: state.revoked,
                minted_under: state.minted_under.as_deref(),
                algorithms: names(algorithms),
                machines: state.machines.iter().map(Machine::as_str).collect(),
                revoked_machines: state.revoked_machines.iter().map(Machine::as_str).collect(),
                machine_generations: state
                    .machine_generations
                    .iter()
                    .map(|(machine, &generation)| json::MachineGeneration {
                        machine: machine.as_str(),
                        generation,
                    })
                    .collect(),
                machine_keys_only: state.machine_keys_only,
                stale: !state.revoked && stale(state.minted_under.as_ref()),
            });
            continue;
        }
        let (minted, whose) = match state.minted_under.as_deref() {
            None => ("-", ""),
            Some(fp) if *fp == primary_fp => (fp, " (primary)"),
            Some(fp) => (fp, " (re-mint)"),
        };
        line(format_args!(
            "  {:<32} {:>10}  {:<32} {:<8} {:<24} {minted}{whose}",
            p.as_str(),
            state.generation,
            state.keep_previous.to_string(),
            if state.revoked { "yes" } else { "no" },
            algorithms.to_string(),
        ));
        // Machines, on lines of their own under the principal (most principals have none).
        if !state.machines.is_empty() {
            let names: Vec<&str> = state.machines.iter().map(Machine::as_str).collect();
            line(format_args!("    machines: {}", names.join(", ")));
        }
        if state.machine_keys_only {
            line(format_args!(
                "    machine keys only: its shared key is refused"
            ));
        }
        if !state.revoked_machines.is_empty() {
            let names: Vec<&str> = state.revoked_machines.iter().map(Machine::as_str).collect();
            line(format_args!("    machines revoked: {}", names.join(", ")));
        }
        if !state.machine_generations.is_empty() {
            let rotated: Vec<String> = state
                .machine_generations
                .iter()
                .map(|(machine, generation)| format!("{machine} {generation}"))
                .collect();
            line(format_args!(
                "    machine generations (rotate --machine): {}",
                rotated.join(", ")
            ));
        }
    }
    let previous = keyring
        .iter()
        .map(|(entry, master)| json::PreviousMaster {
            fingerprint: master.fingerprint().to_string(),
            source: entry.source.to_string(),
            line: entry.at.0,
            algorithms: entry.algorithms.map(names),
        })
        .collect();
    output::report(
        "policy",
        &human,
        &json::Policy {
            policy: policy.path(),
            algorithm: policy.default_algorithm().name(),
            masters: json::Masters {
                primary: &primary_fp,
                previous,
            },
            principals,
            stale: &stale_names,
        },
    );
    Ok(Exit::Ok)
}

/// A set of algorithms as docs/json.md has it: an array of names.
fn names(set: gobuildkey::key::AlgorithmSet) -> Vec<&'static str> {
    set.iter().map(gobuildkey::key::Algorithm::name).collect()
}
