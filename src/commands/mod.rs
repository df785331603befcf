//! One module per command; each has a `run` that returns the exit status or an error.

pub mod check;
pub mod docs;
pub mod fingerprint;
pub mod import;
pub mod init;
pub mod install;
pub mod json;
pub mod log;
pub mod master;
pub mod mint;
pub mod path;
pub mod policy;
#[cfg(all(feature = "probe", unix))]
pub mod probe;
pub mod rotate;
#[cfg(all(feature = "serve", unix))]
pub mod serve;
pub mod verify;

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use gobuildkey::secret_file::ReadError;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use gobuildkey::key::{Algorithm, AlgorithmSet, BuildKey, KeyFormatError, MAX_KEY_INPUT};
use gobuildkey::master::MasterSecret;
use gobuildkey::paths::{AgentEnv, ENV_DELETE_AFTER_READ};
use gobuildkey::policy::actions::{Action, ActionLog};
use gobuildkey::policy::store::Store;
use gobuildkey::policy::{Policy, PrincipalState};
use gobuildkey::principal::Principal;
use gobuildkey::verifier::Verifier;

use crate::cli::{EditArgs, KeyOutputArgs, MasterArgs};
use gobuildkey::secret_file;

/// Reads a key someone presents: from `key_file`, else from standard input. At most
/// [`MAX_KEY_INPUT`] bytes are read; `None` means there was more.
/// When standard input is a terminal, the key is asked for without echoing it (the prompt
/// goes to the terminal); otherwise nothing interactive happens.
fn read_key_input(key_file: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match key_file {
        Some(path) => Ok(secret_file::read_secret_file(path, MAX_KEY_INPUT)?.contents),
        None if io::stdin().is_terminal() => {
            let typed = Zeroizing::new(
                rpassword::prompt_password("build key (not shown): ")
                    .context("cannot read the key from the terminal")?,
            );
            // Over the bound is no key, as on a pipe.
            Ok((typed.len() <= MAX_KEY_INPUT).then(|| Zeroizing::new(typed.as_bytes().to_vec())))
        }
        None => Ok(secret_file::read_bounded(
            io::stdin().lock(),
            MAX_KEY_INPUT,
        )?),
    }
}

/// Reads a key to be used (installed, fingerprinted): it must be well formed.
fn read_well_formed_key(key_file: Option<&Path>) -> Result<BuildKey> {
    let input = read_key_input(key_file)?.ok_or(KeyFormatError::TooLong)?;
    Ok(BuildKey::parse(&input)?)
}

/// What a builder owner should know about the agent's environment, one line each.
fn agent_notes(env: &AgentEnv) -> Vec<String> {
    let mut notes = Vec::new();
    if env.delete_after_read {
        notes.push(format!(
            "{ENV_DELETE_AFTER_READ} is set: the agent deletes the key file after reading it, \
             so it must be installed again before each start"
        ));
    }
    if env.key_path.is_none() && env.home.is_relative() {
        notes.push(format!(
            "HOME ({}) is relative: the agent resolves it against its own working folder",
            env.home.display()
        ));
    }
    notes
}

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

/// Starts the reloads of `live` by `load` (see `gobuildkey::reload`), watching the master
/// file (when the master is a file) and the policy unless `watch` is false, for `serve`
/// and `verify --batch`.
#[cfg(unix)]
fn reloader<T: Send + Sync + 'static>(
    master: &MasterArgs,
    watch: bool,
    live: std::sync::Arc<gobuildkey::reload::Live<T>>,
    load: impl FnMut() -> std::result::Result<T, String> + Send + 'static,
    events: impl FnMut(gobuildkey::reload::Event) + Send + 'static,
) -> Result<gobuildkey::reload::Reloader> {
    let mut reloader = gobuildkey::reload::Reloader::spawn(live, load, events)
        .context("cannot start the reloading thread")?;
    if !watch {
        return Ok(reloader);
    }
    let mut files = vec![master.policy_path()?];
    if let gobuildkey::master::MasterSource::File(path) = master.source()? {
        files.push(path);
    }
    if let Err(e) = reloader.watch(&files) {
        // Still looked at every second: slower, not blind.
        crate::output::note(&format!(
            "gobuildkey: warning: cannot watch {} with inotify ({e}): changes are noticed \
             by looking at the files every second instead; raise \
             fs.inotify.max_user_instances and fs.inotify.max_user_watches",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    Ok(reloader)
}

/// The verifier of a long-lived command (`serve`, `verify --batch`): the masters and the
/// policy, narrowed to `alg` and `kind`. At start (`at_start`) an `alg` the policy accepts
/// for nobody is a usage error ([`load_verifier`]); a reload only narrows: it must never
/// fail for that (after `end-grace --alg`), and so freeze a state that lacks every
/// revocation made since.
#[cfg(unix)]
fn load_narrowed(
    master: &MasterArgs,
    alg: Option<Algorithm>,
    kind: Option<gobuildkey::principal::Kind>,
    at_start: bool,
) -> Result<Verifier> {
    let verifier = match alg {
        Some(alg) if at_start => load_verifier(master, Some(alg), None)?,
        Some(alg) => load_verifier(master, None, None)?.only_algorithm(alg),
        None => load_verifier(master, None, None)?,
    };
    Ok(match kind {
        Some(kind) => verifier.only_kind(kind),
        None => verifier,
    })
}

/// A reload's error on one line (`{:#}` of anyhow, the lines of a parser's message
/// joined), for logs and health answers that others read: anything in it that looks like a
/// key (one pasted into the policy by mistake, quoted back as a field name) is redacted.
#[cfg(unix)]
fn one_line(error: &impl std::fmt::Display) -> String {
    let line = format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    gobuildkey::key::redact_keys(&line)
}

/// The verifier the options name: primary master, policy, and the keyring's masters.
/// With `alg` (the command line's `--alg`), keys of other algorithms are refused; an
/// `alg` the policy does not accept — for `principal`, or for anyone when there is none —
/// contradicts its record and is a usage error.
fn load_verifier(
    master: &MasterArgs,
    alg: Option<Algorithm>,
    principal: Option<&Principal>,
) -> Result<Verifier> {
    let verifier = Verifier::open_within(
        &master.source()?,
        &master.policy_path()?,
        master.command_timeout,
    )?;
    let Some(alg) = alg else {
        return Ok(verifier);
    };
    let (accepted, whom) = match principal {
        Some(p) => (verifier.policy().accepted_algorithms(p), p.to_string()),
        None => (
            verifier.policy().all_algorithms(),
            "any principal".to_owned(),
        ),
    };
    if !accepted.contains(alg) {
        return Err(crate::exit::Refused::new(
            crate::exit::Exit::Usage,
            format!(
                "--alg {alg} contradicts the policy, which accepts {accepted} for {whom}: drop \
                 --alg (the policy decides), or record the algorithm first, as \
                 `gobuildkey import --alg {alg} PRINCIPAL` does for keys genbuilderkey minted"
            ),
        )
        .into());
    }
    Ok(verifier.only_algorithm(alg))
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
    let fingerprint = master.fingerprint().to_string();
    if policy.state_ref(principal) == Some(&state) {
        return Ok(None);
    }
    policy.set_state(principal, &state)?;
    let mut action = Action::new(command).on(principal, &state);
    action.algorithm = Some(key.algorithm().name().to_owned());
    action.master = Some(fingerprint);
    action.key = Some(key.fingerprint().to_string());
    Ok(Some(action))
}

/// Room for `mint`'s or `rotate`'s JSON object: a 128-character principal and every field
/// take under 600 bytes.
const JSON_KEY_OBJECT_CAPACITY: usize = 4096;

/// Prints a minted key: on standard output the key and a newline, nothing else (with
/// `--json`, one object holding it, `rotation` after `mint`'s fields), and what it is on
/// standard error.
fn emit_key<R: serde::Serialize>(
    command: &str,
    key: &BuildKey,
    principal: &Principal,
    generation: u64,
    rotation: R,
    out: &KeyOutputArgs,
) -> Result<()> {
    let fingerprint = key.fingerprint();
    let mut fields = json::Mint {
        principal: principal.as_str(),
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
                "wrote the {} key of {principal}, generation {generation}, to {} (mode 0600; fingerprint {})",
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
        "minted the {} key of {principal}, generation {generation} (fingerprint {})",
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

/// Reads and checks the key file: every problem found, each with its fix.
pub(crate) fn inspect_key_file(
    path: &Path,
    principal: &Principal,
) -> Result<BuildKey, Vec<String>> {
    let shown = path.display();
    let reinstall =
        format!("install the key again with `gobuildkey install {principal} < KEYFILE`");
    let file = match secret_file::read_secret_file(path, MAX_KEY_INPUT) {
        Ok(file) => file,
        Err(ReadError::Missing { .. }) => {
            return Err(vec![format!(
                "no key file at {shown}: install the key with `gobuildkey install {principal} < KEYFILE`"
            )]);
        }
        Err(ReadError::NotAFile { .. }) => {
            return Err(vec![format!(
                "{shown} is not a regular file: remove it, then {reinstall}"
            )]);
        }
        Err(ReadError::Io { error, .. }) if error.kind() == io::ErrorKind::PermissionDenied => {
            return Err(vec![format!(
                "cannot read {shown} (permission denied): run the check as the user the agent runs as, \
                 or give the file to that user (chown)"
            )]);
        }
        Err(e) => return Err(vec![format!("{e}")]),
    };
    let mut problems = Vec::new();
    if let Some(mode) = file.mode.filter(|&m| secret_file::is_too_open(m)) {
        problems.push(format!(
            "{shown} is readable or writable by others (mode {:04o}): run `chmod 600 {shown}`",
            mode & 0o7777
        ));
    }
    let parsed = file
        .contents
        .ok_or(KeyFormatError::TooLong)
        .and_then(|contents| BuildKey::parse(&contents));
    match parsed {
        Ok(key) if problems.is_empty() => return Ok(key),
        Ok(_) => {}
        Err(KeyFormatError::Empty) => problems.push(format!("{shown} is empty: {reinstall}")),
        Err(e) => problems.push(format!(
            "{shown} does not hold a well-formed key ({e}): {reinstall}"
        )),
    }
    Err(problems)
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
        let fields = Mint {
            principal: principal.as_str(),
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
