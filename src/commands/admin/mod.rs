//! The admins' commands: `init`, `mint`, `rotate`, `revoke`, `reinstate`, `end-grace`,
//! `policy`, `import`, `log`, `scan`, `master rotate|add|retire`; and what they share: the one safe
//! way to edit the policy (lock, re-read, log, replace), and printing or writing a minted key.

pub mod explain;
pub mod import;
pub mod init;
pub mod log;
pub mod master;
pub mod mint;
pub mod policy;
pub mod rotate;
pub mod scan;

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use gobuildkey::key::{Algorithm, AlgorithmSet, BuildKey};
use gobuildkey::machine::Machine;
use gobuildkey::master::MasterSecret;
use gobuildkey::policy::actions::{Action, ActionLog};
use gobuildkey::policy::store::Store;
use gobuildkey::policy::{Policy, PrincipalState};
use gobuildkey::principal::Principal;

use crate::cli::{EditArgs, KeyOutputArgs, MasterArgs};
use crate::commands::json;
use gobuildkey::secret_file;

/// The policy the options name. It must exist (fail closed).
fn load_policy(master: &MasterArgs) -> Result<Policy> {
    Ok(Policy::load(&master.policy_path()?)?)
}

/// The store of the policy the options name, waiting `edit.lock_timeout` for its lock.
fn policy_store(master: &MasterArgs, edit: &EditArgs) -> Result<Store> {
    Ok(Store::new(master.policy_path()?)
        .lock_timeout(std::time::Duration::from_secs(edit.lock_timeout)))
}

/// Says at once that another edit holds the policy's lock, and how long this one waits.
pub(crate) fn say_waiting(store: &Store, edit: &EditArgs, holder: Option<u32>) {
    let who = holder.map_or_else(String::new, |pid| format!(" held by pid {pid}"));
    crate::output::note(&format!(
        "waiting for the lock on {}{who} (up to {}s)…",
        store.path().display(),
        edit.lock_timeout
    ));
}

/// What an edit of the policy did: the command's result, and the action to log when the
/// policy changed (`None`: nothing to write).
pub(crate) struct Edited<T> {
    pub value: T,
    pub action: Option<Action>,
}

/// Changes the policy the one safe way: takes its lock (saying at once who holds it when
/// someone does), reads it again under the lock, lets `change` edit that copy, then —
/// unless `--dry-run` — appends the action to the log and replaces the policy, keeping its
/// owner and mode. Nothing is written when `change` fails or reports no action.
pub(crate) fn edit_policy<T>(
    store: &Store,
    edit: &EditArgs,
    change: impl FnOnce(&mut Policy) -> Result<Edited<T>>,
) -> Result<T> {
    edit_policy_then(store, edit, change, |_| Ok(()))
}

/// [`edit_policy`], then `then` with the result, still under the lock (and not on a dry
/// run, nor when nothing changed): for a change of the policy that must land before another
/// file changes (`master rotate` lists the old master before replacing it).
pub(crate) fn edit_policy_then<T>(
    store: &Store,
    edit: &EditArgs,
    change: impl FnOnce(&mut Policy) -> Result<Edited<T>>,
    then: impl FnOnce(&T) -> Result<()>,
) -> Result<T> {
    let lock = store.lock(|holder| say_waiting(store, edit, holder))?;
    let mut policy = lock.read()?;
    let before = policy.clone();
    let Edited { value, action } = change(&mut policy)?;
    let Some(mut action) = action else {
        return Ok(value);
    };
    if action.reason.is_none() {
        action.reason.clone_from(&edit.reason);
    }
    if edit.dry_run {
        crate::output::note(&format!(
            "dry run: nothing was changed; {} would be written, and this action logged: {}",
            store.path().display(),
            serde_json::to_string(&action).unwrap_or_default()
        ));
        return Ok(value);
    }
    // Refusals of the write (a link, another owner) come before anything is logged.
    lock.check_writable()?;
    let log = ActionLog::beside(store.path());
    log.append(&action)?;
    if let Err(e) = lock.write(&policy) {
        // The log said it happened; say it did not, so a replay leaves it out. (A crash
        // here leaves the log saying more than the policy: a revocation re-applied.)
        let _ = log.append(&action.undo(&before));
        return Err(e.into());
    }
    then(&value)?;
    Ok(value)
}

/// `state` once a key of `alg` is minted for `principal` under `master`: the master is
/// recorded, and `alg` joins the algorithms the principal's keys may be in (a principal new
/// to the policy accepts `alg` alone).
fn minted_state(
    policy: &Policy,
    principal: &Principal,
    mut state: PrincipalState,
    master: &MasterSecret,
    alg: Algorithm,
) -> PrincipalState {
    state.minted_under = Some(master.fingerprint().to_string());
    let default = AlgorithmSet::only(policy.default_algorithm());
    let mut algorithms = match (state.algorithms, policy.state_ref(principal)) {
        (Some(set), _) => set,
        (None, Some(_)) => default,
        (None, None) => AlgorithmSet::default(),
    };
    algorithms.insert(alg);
    state.algorithms = (algorithms != default || state.algorithms.is_some()).then_some(algorithms);
    state
}

/// Records in `policy` that `principal`'s key at `state.generation` was minted under
/// `master` (and the key's algorithm); the action to log when that changed the policy.
fn record_minted(
    policy: &mut Policy,
    command: &str,
    principal: &Principal,
    state: PrincipalState,
    master: &MasterSecret,
    key: &BuildKey,
) -> Result<Option<Action>> {
    let state = minted_state(policy, principal, state, master, key.algorithm());
    if policy.state_ref(principal) == Some(&state) {
        return Ok(None);
    }
    policy.set_state(principal, &state)?;
    Ok(Some(minted_action(command, principal, &state, master, key)))
}

/// The action that logs `key` as minted for `principal` (in `state`) under `master`: its
/// fingerprint, never the key.
fn minted_action(
    command: &str,
    principal: &Principal,
    state: &PrincipalState,
    master: &MasterSecret,
    key: &BuildKey,
) -> Action {
    let mut action = Action::new(command).on(principal, state);
    action.algorithm = Some(key.algorithm().name().to_owned());
    action.master = Some(master.fingerprint().to_string());
    action.key = Some(key.fingerprint().to_string());
    action
}

/// The moment `length` from now, to the second (`--keep-previous-for`, `--expires-in`);
/// a usage error naming `flag` when it is past any date.
use crate::exit::{Exit, Refused};

fn moment_after(length: jiff::Span, flag: &str) -> Result<jiff::Timestamp, Refused> {
    moment_after_from(jiff::Timestamp::now(), length, flag).and_then(|end| {
        end.round(jiff::Unit::Second)
            .map_err(|_| too_far_after(length, flag))
    })
}

/// The moment `length` after `now`, exactly (not rounded); a usage error naming `flag` when
/// it is past any date.
fn moment_after_from(
    now: jiff::Timestamp,
    length: jiff::Span,
    flag: &str,
) -> Result<jiff::Timestamp, Refused> {
    now.to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(length)
        .map(|end| end.timestamp())
        .map_err(|_| too_far_after(length, flag))
}

fn too_far_after(length: jiff::Span, flag: &str) -> Refused {
    Refused::new(
        Exit::Usage,
        format!("{flag} {length:#} ends too far in the future: give a shorter length"),
    )
}

/// Room for `mint`'s or `rotate`'s JSON object: a 128-character principal, a 253-character
/// machine and every field take under 900 bytes.
const JSON_KEY_OBJECT_CAPACITY: usize = 4096;

/// Prints a minted key: on standard output the key and a newline, nothing else (with
/// `--json`, one object holding it, `rotation` after `mint`'s fields), and what it is on
/// standard error.
fn emit_key<R: serde::Serialize>(
    command: &str,
    key: &BuildKey,
    (principal_name, machine): (&Principal, Option<(&Machine, u64)>),
    generation: u64,
    rotation: R,
    out: &KeyOutputArgs,
) -> Result<()> {
    let fingerprint = key.fingerprint();
    // Whose key, in the sentences below; a token says when it expires.
    let mut principal = match machine {
        Some((machine, 0)) => format!("{principal_name} bound to the machine {machine}"),
        Some((machine, own)) => {
            format!("{principal_name} bound to the machine {machine} (its own generation {own})")
        }
        None => principal_name.to_string(),
    };
    let what = match key.expires() {
        Some(expires) => {
            principal.push_str(&format!(", expiring at {expires}"));
            "token"
        }
        None => "key",
    };
    let mut fields = json::Mint {
        principal: principal_name.as_str(),
        machine: machine.map(|(machine, _)| machine.as_str()),
        machine_generation: machine.map(|(_, generation)| generation),
        expires: key.expires().map(|t| t.to_string()),
        generation,
        algorithm: key.algorithm().name(),
        fingerprint: fingerprint.as_str(),
        key: None,
        output: out.output.as_deref(),
        rotation,
    };
    if let Some(path) = &out.output {
        // Written already (rotate writes it before committing the new generation).
        crate::output::report(
            command,
            &format!(
                "wrote the {} {what} of {principal}, generation {generation}, to {} (mode 0600; fingerprint {})",
                key.algorithm(),
                path.display(),
                key.fingerprint()
            ),
            &fields,
        );
        return Ok(());
    }
    if let Some(why) = stdout_others_can_read() {
        crate::output::note(&format!(
            "warning: the key goes to {why}: `-o FILE` writes it to a file only you can read"
        ));
    }
    let text = if crate::output::mode() == crate::output::Mode::Json {
        fields.key = Some(key.expose_secret());
        key_object(command, &fields)?
    } else {
        Zeroizing::new(key.expose_secret().as_bytes().to_vec())
    };
    let mut out = io::stdout().lock();
    out.write_all(&text)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .context("cannot write the key to standard output")?;
    crate::output::note(&format!(
        "minted the {} {what} of {principal}, generation {generation} (fingerprint {})",
        key.algorithm(),
        key.fingerprint()
    ));
    Ok(())
}

/// Writes a minted key to `-o FILE`: mode 0600, atomically, an existing file replaced only
/// with `--force`.
fn write_key_file(key: &BuildKey, out: &KeyOutputArgs) -> Result<()> {
    let Some(path) = &out.output else {
        return Ok(());
    };
    let existing = if out.force {
        secret_file::Existing::Replace
    } else {
        secret_file::Existing::Refuse
    };
    secret_file::write_secret_file(
        path,
        &secret_file::secret_line(key.expose_secret().as_bytes()),
        existing,
    )?;
    Ok(())
}

/// Where a key printed on standard output would be readable by others: a regular file
/// (`mint HOST > FILE` under the usual umask) or a terminal whose device others may read.
#[cfg(unix)]
fn stdout_others_can_read() -> Option<String> {
    let stat = rustix::fs::fstat(io::stdout()).ok()?;
    let mode = stat.st_mode;
    let kind = rustix::fs::FileType::from_raw_mode(mode);
    match kind {
        rustix::fs::FileType::RegularFile if mode & 0o077 != 0 => Some(format!(
            "a file others can read (mode {:04o})",
            mode & 0o7777
        )),
        rustix::fs::FileType::CharacterDevice
            if io::stdout().is_terminal() && mode & 0o044 != 0 =>
        {
            Some(format!(
                "a terminal others can read (mode {:04o}), and its scrollback",
                mode & 0o7777
            ))
        }
        _ => None,
    }
}

#[cfg(not(unix))]
fn stdout_others_can_read() -> Option<String> {
    None
}

/// The JSON object of `mint` or `rotate`, encoded. The object borrows the key; its one
/// copy is the text, written as it is encoded into a buffer large enough never to be moved
/// (a move would leave a copy behind in freed memory), and wiped when dropped.
fn key_object<R: serde::Serialize>(
    command: &str,
    fields: &json::Mint<'_, R>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(Vec::with_capacity(JSON_KEY_OBJECT_CAPACITY));
    crate::output::encode_into(&mut *text, command, fields)
        .context("cannot encode the key as JSON")?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use gobuildkey::derive::Deriver;
    use gobuildkey::key::Algorithm;
    use gobuildkey::master::MasterSecret;
    use gobuildkey::principal::Principal;

    use super::json::{KeepPrevious, Mint, Rotation};
    use super::{JSON_KEY_OBJECT_CAPACITY, key_object};

    #[test]
    fn the_largest_key_object_fits_its_buffer() {
        let master = MasterSecret::generate().unwrap();
        let principal: Principal = "a".repeat(128).parse().unwrap();
        let key = Deriver::new(&master, Algorithm::HmacSha256)
            .derive_generation(&principal, u64::MAX / 2);
        let fingerprint = key.fingerprint();
        let end = "2026-12-01T12:00:00Z".parse().unwrap();
        let machine = "m".repeat(253);
        let fields = Mint {
            principal: principal.as_str(),
            machine: Some(&machine),
            machine_generation: Some(u64::MAX / 2),
            expires: Some("2026-12-01T12:00:00Z".to_owned()),
            generation: u64::MAX / 2,
            algorithm: key.algorithm().name(),
            fingerprint: fingerprint.as_str(),
            key: Some(key.expose_secret()),
            output: None,
            rotation: Rotation {
                keep_previous: KeepPrevious(gobuildkey::policy::Grace::Until(end)),
                revoked: true,
            },
        };
        let text = key_object("rotate", &fields).unwrap();
        // Never grown: the only copy of the key text is the one that is wiped.
        assert_eq!(text.capacity(), JSON_KEY_OBJECT_CAPACITY);
        assert!(text.len() < JSON_KEY_OBJECT_CAPACITY / 4, "{}", text.len());
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value["key"], key.expose_secret());
        assert_eq!(value["keep_previous"], "2026-12-01T12:00:00Z");
    }
}
