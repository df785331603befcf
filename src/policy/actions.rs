//! The admin action log: one JSON line per change of the policy or the master, appended
//! under the policy's lock to `gobuildkey-actions.log` beside the policy (mode 0600).
//!
//! It says who did what, when and why — the effective user, and the person behind `sudo` —
//! and it holds each changed principal's state after the change, so that a lost policy
//! can be rebuilt from it ([`replay`]). It never holds a key or a master: masters and keys
//! appear by fingerprint.
//!
//! An action is appended (and flushed to disk) *before* the policy is replaced: a crash in
//! between leaves a log that says a little more than the policy, never less — replaying it
//! can only re-apply a revocation, not lose one.
//!
//! ```
//! use gobuildkey::policy::actions::{Action, ActionLog};
//!
//! let dir = tempfile::tempdir()?;
//! let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
//! let mut action = Action::new("revoke");
//! action.principal = Some("host-linux-arm-aws".into());
//! log.append(&action)?;
//! let read = log.read()?;
//! assert_eq!(read[0].command, "revoke");
//! assert!(log.knows("host-linux-arm-aws")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Grace, Policy, PolicyError, PrincipalState};
use crate::master::MasterSource;
use crate::principal::Principal;
use crate::secret_file;

/// The log's file name, beside the policy.
pub const FILE_NAME: &str = "gobuildkey-actions.log";

/// One change, as one line of the log (docs/json.md, "The action log").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// When, in UTC (RFC 3339).
    pub time: String,
    /// The effective user's name (its uid when it has none).
    pub user: String,
    /// The effective user id.
    pub uid: u32,
    /// The person who ran it through `sudo` (`SUDO_USER`), when that is someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    /// The login uid of the session (Linux audit), when set and not the effective uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// The machine it ran on.
    pub host: String,
    /// The command: `revoke`, `rotate`, `master add` …
    pub command: String,
    /// The principal changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The principal's generation after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The algorithm of the key minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The fingerprint of the master concerned (minted under, added, retired, created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// The fingerprint of the key minted (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Why, as given with `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The principal's whole state after the change, for [`replay`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateRecord>,
    /// A previous master added to or removed from the keyring, for [`replay`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<KeyringChange>,
}

/// A principal's state as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The generation.
    pub generation: u64,
    /// `false`, `true` (until ended) or the end of the grace period (RFC 3339).
    pub keep_previous: serde_json::Value,
    /// Whether it is revoked.
    pub revoked: bool,
    /// The master its current key was minted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_under: Option<String>,
    /// The algorithms its keys may be in, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

impl StateRecord {
    /// The record of `state`.
    #[must_use]
    pub fn of(state: &PrincipalState) -> Self {
        Self {
            generation: state.generation,
            keep_previous: match state.keep_previous {
                Grace::None => serde_json::Value::Bool(false),
                Grace::Open => serde_json::Value::Bool(true),
                Grace::Until(end) => serde_json::Value::String(end.to_string()),
            },
            revoked: state.revoked,
            minted_under: state.minted_under.clone(),
            algorithms: state
                .algorithms
                .map(|set| set.iter().map(|alg| alg.name().to_owned()).collect()),
        }
    }

    /// The state recorded; `None` when the record is not one gobuildkey writes.
    #[must_use]
    pub fn state(&self) -> Option<PrincipalState> {
        let keep_previous = match &self.keep_previous {
            serde_json::Value::Bool(false) => Grace::None,
            serde_json::Value::Bool(true) => Grace::Open,
            serde_json::Value::String(end) => Grace::Until(end.parse().ok()?),
            _ => return None,
        };
        let algorithms = match &self.algorithms {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| name.parse().ok())
                    .collect::<Option<crate::key::AlgorithmSet>>()?,
            ),
        };
        Some(PrincipalState {
            generation: self.generation,
            keep_previous,
            revoked: self.revoked,
            minted_under: self.minted_under.clone(),
            algorithms,
        })
    }
}

/// A change of the keyring: the entry as the policy holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyringChange {
    /// An entry was added.
    Added(KeyringAdded),
    /// An entry was removed.
    Removed(KeyringSource),
}

/// A keyring entry added: its source, and the algorithms its keys were minted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringAdded {
    /// The entry's source.
    #[serde(flatten)]
    pub source: KeyringSource,
    /// The algorithms, when the entry names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

impl KeyringAdded {
    /// The record of an entry for `source` with `algorithms`.
    #[must_use]
    pub fn of(source: &MasterSource, algorithms: Option<crate::key::AlgorithmSet>) -> Self {
        Self {
            source: KeyringSource::of(source),
            algorithms: algorithms.map(|set| set.iter().map(|a| a.name().to_owned()).collect()),
        }
    }
}

/// A keyring entry's source, as the policy file writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyringSource {
    /// `{ file = "…" }`: absolute, or relative to the policy's folder.
    File(PathBuf),
    /// `{ command = "…" }`.
    Command(String),
}

impl KeyringSource {
    /// The record of `source`.
    #[must_use]
    pub fn of(source: &MasterSource) -> Self {
        match source {
            MasterSource::File(path) => Self::File(path.clone()),
            MasterSource::Command(command) => Self::Command(command.to_string_lossy().into()),
        }
    }

    /// The source recorded.
    #[must_use]
    pub fn source(&self) -> MasterSource {
        match self {
            Self::File(path) => MasterSource::File(path.clone()),
            Self::Command(command) => MasterSource::Command(command.into()),
        }
    }
}

impl Action {
    /// An action of `command`, now, by the user running this process, on this machine.
    #[must_use]
    pub fn new(command: &str) -> Self {
        let who = Who::current();
        Self {
            time: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string(),
            user: who.user,
            uid: who.uid,
            invoked_by: who.invoked_by,
            login_uid: who.login_uid,
            host: who.host,
            command: command.to_owned(),
            principal: None,
            generation: None,
            algorithm: None,
            master: None,
            key: None,
            reason: None,
            state: None,
            keyring: None,
        }
    }

    /// The same action about `principal`, recording its state after the change.
    #[must_use]
    pub fn on(mut self, principal: &Principal, state: &PrincipalState) -> Self {
        self.principal = Some(principal.as_str().to_owned());
        self.generation = Some(state.generation);
        self.state = Some(StateRecord::of(state));
        self
    }
}

impl Action {
    /// What undoes this action in a replay, when the change it logged never reached the
    /// policy (its write failed): the principal's state and the keyring as `before` had
    /// them.
    #[must_use]
    pub fn undo(&self, before: &Policy) -> Self {
        let mut undo = Self::new(&self.command);
        undo.reason = Some("not written: the action above did not reach the policy".into());
        if let Some(principal) = self.principal.as_ref().and_then(|p| p.parse().ok()) {
            let state = before.state(&principal);
            undo = undo.on(&principal, &state);
        }
        undo.keyring = match &self.keyring {
            Some(KeyringChange::Added(added)) => Some(KeyringChange::Removed(added.source.clone())),
            Some(KeyringChange::Removed(source)) => {
                let wanted = source.source();
                let algorithms = before
                    .keyring()
                    .iter()
                    .find(|entry| entry.source == wanted)
                    .and_then(|entry| entry.algorithms);
                Some(KeyringChange::Added(KeyringAdded::of(&wanted, algorithms)))
            }
            None => None,
        };
        undo
    }
}

/// Who runs this process.
struct Who {
    user: String,
    uid: u32,
    invoked_by: Option<String>,
    login_uid: Option<u32>,
    host: String,
}

impl Who {
    #[cfg(unix)]
    fn current() -> Self {
        let uid = rustix::process::geteuid().as_raw();
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |user| user.name);
        // sudo says who ran it; a user cannot fake it without also being able to run
        // commands as this one.
        let invoked_by = std::env::var("SUDO_USER")
            .ok()
            .filter(|name| !name.is_empty() && *name != user && name.len() <= 256);
        let login_uid = fs::read_to_string("/proc/self/loginuid")
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|&id| id != u32::MAX && id != uid);
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Self {
            user,
            uid,
            invoked_by,
            login_uid,
            host,
        }
    }

    #[cfg(not(unix))]
    fn current() -> Self {
        Self {
            user: std::env::var("USERNAME").unwrap_or_default(),
            uid: 0,
            invoked_by: None,
            login_uid: None,
            host: std::env::var("COMPUTERNAME").unwrap_or_default(),
        }
    }
}

/// The lines of a log that are not actions: each line's number (1-based) and why.
pub type UnreadableLines = Vec<(usize, String)>;

/// The action log of one policy.
#[derive(Debug, Clone)]
pub struct ActionLog {
    path: PathBuf,
}

impl ActionLog {
    /// The log beside the policy at `policy`, named after it: `gobuildkey-actions.log` for
    /// `gobuildkey.toml` ([`FILE_NAME`]), `farm-actions.log` for `farm.toml`, so two
    /// policies in one folder never share a history.
    #[must_use]
    pub fn beside(policy: &Path) -> Self {
        let stem = policy
            .file_stem()
            .map_or_else(|| "gobuildkey".into(), |s| s.to_string_lossy().into_owned());
        Self {
            path: policy.with_file_name(format!("{stem}-actions.log")),
        }
    }

    /// The log's file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log exists (a farm with a history).
    #[must_use]
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok()
    }

    fn error(&self, error: io::Error) -> PolicyError {
        PolicyError::ActionLog {
            path: self.path.clone(),
            error,
        }
    }

    /// The log is trusted as the policy is: a log others could write could reinstate a
    /// principal or add a keyring command on a replay.
    fn check_trusted(&self) -> Result<(), PolicyError> {
        if !self.exists() {
            return Ok(());
        }
        crate::trust::check_file(&self.path, "the action log")
            .map_err(|e| PolicyError::Untrusted(Box::new(e)))
    }

    /// Appends `action` as one line and flushes it to disk. Call it under the policy's
    /// lock, before the policy is replaced. A last line cut short (a full disk, a crash) is
    /// ended first, so it cannot swallow this one.
    ///
    /// # Errors
    /// [`PolicyError::ActionLog`] when the log cannot be opened or written;
    /// [`PolicyError::Untrusted`] when others could have written it.
    pub fn append(&self, action: &Action) -> Result<(), PolicyError> {
        self.check_trusted()?;
        let mut line = vec![b'\n'];
        serde_json::to_writer(&mut line, action).map_err(|e| self.error(io::Error::other(e)))?;
        line.push(b'\n');
        let mut file = secret_file::open_private(&self.path, secret_file::Access::ReadAppend)
            .map_err(|e| self.error(e))?;
        let whole = ends_with_newline(&file).map_err(|e| self.error(e))?;
        let line = if whole { &line[1..] } else { &line[..] };
        file.write_all(line).map_err(|e| self.error(e))?;
        file.sync_all().map_err(|e| self.error(e))
    }

    /// Every action, in order. A missing log is an empty one.
    ///
    /// # Errors
    /// [`PolicyError::ActionLog`] when the log cannot be read, or a line is not an action
    /// (its number is given); [`PolicyError::Untrusted`] when others could have written it.
    pub fn read(&self) -> Result<Vec<Action>, PolicyError> {
        let (actions, bad) = self.read_skipping()?;
        match bad.first() {
            None => Ok(actions),
            Some(&(n, ref why)) => Err(self.error(io::Error::other(format!(
                "line {n} is not an action: {why}{}",
                if bad.len() > 1 {
                    format!(" (nor are {} more lines)", bad.len() - 1)
                } else {
                    String::new()
                }
            )))),
        }
    }

    /// The actions that can be read, and the lines (1-based, with why) that cannot: for
    /// showing the log, and for knowing which principals it names, despite a line cut short.
    ///
    /// # Errors
    /// As [`ActionLog::read`], but for unreadable lines.
    pub fn read_skipping(&self) -> Result<(Vec<Action>, UnreadableLines), PolicyError> {
        self.check_trusted()?;
        let text = match secret_file::read_secret_file(&self.path, MAX_LOG) {
            Ok(file) => file
                .contents
                .ok_or_else(|| self.error(io::Error::other("the log is larger than 256 MiB")))?,
            Err(secret_file::ReadError::Missing { .. }) => return Ok((Vec::new(), Vec::new())),
            Err(secret_file::ReadError::Io { error, .. }) => return Err(self.error(error)),
            Err(e) => return Err(self.error(io::Error::other(e.to_string()))),
        };
        let mut actions = Vec::new();
        let mut bad = Vec::new();
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(action) => actions.push(action),
                Err(e) => bad.push((n + 1, e.classify_words())),
            }
        }
        Ok((actions, bad))
    }

    /// Whether any action that can be read names `principal`.
    ///
    /// # Errors
    /// As [`ActionLog::read_skipping`].
    pub fn knows(&self, principal: &str) -> Result<bool, PolicyError> {
        Ok(self
            .read_skipping()?
            .0
            .iter()
            .any(|action| action.principal.as_deref() == Some(principal)))
    }
}

/// Whether `file` is empty or ends with a newline.
#[cfg(unix)]
fn ends_with_newline(file: &std::fs::File) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

#[cfg(not(unix))]
fn ends_with_newline(_: &std::fs::File) -> io::Result<bool> {
    Ok(false)
}

/// The most bytes of log read.
const MAX_LOG: usize = 256 << 20;

/// The policy the actions of a log leave behind, starting from a new one at `path`: each
/// principal's last recorded state, and the keyring's entries added and not removed since.
///
/// # Errors
/// [`PolicyError::ActionLog`] when an action's record cannot be applied (its line is
/// named); [`PolicyError::Invalid`] when the result is not a valid policy.
pub fn replay(actions: &[Action], path: &Path) -> Result<Policy, PolicyError> {
    let mut policy = Policy::template(path);
    let bad = |n: usize, what: &str| PolicyError::ActionLog {
        path: path.with_file_name(FILE_NAME),
        error: io::Error::other(format!("line {}: {what}", n + 1)),
    };
    for (n, action) in actions.iter().enumerate() {
        if let (Some(name), "policy init") = (&action.algorithm, action.command.as_str()) {
            let alg = name
                .parse()
                .map_err(|_| bad(n, "an algorithm gobuildkey does not know"))?;
            policy.set_default_algorithm(alg)?;
        }
        if let (Some(name), Some(record)) = (&action.principal, &action.state) {
            let principal: Principal = name.parse().map_err(|_| bad(n, "not a principal"))?;
            let state = record
                .state()
                .ok_or_else(|| bad(n, "a state gobuildkey does not write"))?;
            policy.set_state(&principal, &state)?;
        }
        match &action.keyring {
            Some(KeyringChange::Added(added)) => {
                let source = resolve(added.source.source(), path);
                let algorithms = match &added.algorithms {
                    None => None,
                    Some(names) => Some(
                        names
                            .iter()
                            .map(|name| name.parse().ok())
                            .collect::<Option<crate::key::AlgorithmSet>>()
                            .ok_or_else(|| bad(n, "an algorithm gobuildkey does not know"))?,
                    ),
                };
                if !policy.keyring().iter().any(|entry| entry.source == source) {
                    policy.add_previous_master(&source, algorithms)?;
                }
            }
            Some(KeyringChange::Removed(source)) => {
                let source = resolve(source.source(), path);
                while let Some(index) = policy
                    .keyring()
                    .iter()
                    .position(|entry| entry.source == source)
                {
                    policy.remove_previous_master(index)?;
                }
            }
            None => {}
        }
    }
    Ok(policy)
}

/// A recorded file, as the keyring holds it: relative to the policy's folder.
fn resolve(source: MasterSource, policy: &Path) -> MasterSource {
    match source {
        MasterSource::File(file) => MasterSource::File(
            policy
                .parent()
                .map_or_else(|| file.clone(), |dir| dir.join(&file)),
        ),
        command @ MasterSource::Command(_) => command,
    }
}

/// serde_json's words for what is wrong, without the line's text (which may hold anything).
trait ClassifyWords {
    fn classify_words(&self) -> String;
}

impl ClassifyWords for serde_json::Error {
    fn classify_words(&self) -> String {
        format!("{:?} error at column {}", self.classify(), self.column())
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    #[test]
    fn replay_rebuilds_the_last_state_and_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gobuildkey.toml");
        let revoked = PrincipalState {
            revoked: true,
            ..Default::default()
        };
        let rotated = PrincipalState {
            generation: 2,
            keep_previous: Grace::Until("2026-12-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        let mut add = Action::new("master add");
        add.keyring = Some(KeyringChange::Added(KeyringAdded::of(
            &MasterSource::File("old.key".into()),
            None,
        )));
        let mut add2 = Action::new("master add");
        add2.keyring = Some(KeyringChange::Added(KeyringAdded::of(
            &MasterSource::Command("pass x".into()),
            Some(crate::key::AlgorithmSet::only(
                crate::key::Algorithm::HmacMd5,
            )),
        )));
        let mut retire = Action::new("master retire");
        retire.keyring = Some(KeyringChange::Removed(KeyringSource::File(
            "old.key".into(),
        )));
        let actions = [
            Action::new("init"),
            Action::new("rotate").on(&p("host-a"), &PrincipalState::default()),
            Action::new("revoke").on(&p("host-b"), &revoked),
            Action::new("rotate").on(&p("host-a"), &rotated),
            add,
            add2,
            retire,
        ];
        let policy = replay(&actions, &path).unwrap();
        assert_eq!(policy.state(&p("host-a")), rotated);
        assert!(policy.state(&p("host-b")).revoked);
        assert_eq!(policy.keyring().len(), 1);
        assert_eq!(
            policy.keyring()[0].source,
            MasterSource::Command("pass x".into())
        );
        assert_eq!(
            policy.keyring()[0].algorithms,
            Some(crate::key::AlgorithmSet::only(
                crate::key::Algorithm::HmacMd5
            ))
        );
    }

    #[test]
    fn replay_keeps_the_default_algorithm_and_each_principals_set() {
        use crate::key::{Algorithm, AlgorithmSet};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gobuildkey.toml");
        let mut init = Action::new("policy init");
        init.algorithm = Some("hmac-md5".into());
        let both = PrincipalState {
            algorithms: Some(AlgorithmSet::ALL),
            ..Default::default()
        };
        let actions = [init, Action::new("import").on(&p("host-a"), &both)];
        let policy = replay(&actions, &path).unwrap();
        assert_eq!(policy.default_algorithm(), Algorithm::HmacMd5);
        assert_eq!(policy.accepted_algorithms(&p("host-a")), AlgorithmSet::ALL);
        assert_eq!(
            policy.accepted_algorithms(&p("host-z")),
            AlgorithmSet::only(Algorithm::HmacMd5)
        );
    }

    #[test]
    fn the_log_is_private_appended_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
        assert!(log.read().unwrap().is_empty());
        assert!(!log.exists());
        let mut action = Action::new("revoke");
        action.reason = Some("stolen \"laptop\"\nsecond line".into());
        log.append(&action).unwrap();
        log.append(&Action::new("end-grace")).unwrap();
        let mode = fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "one line per action: {text}");
        assert_eq!(log.read().unwrap()[0], action);
    }

    #[test]
    fn a_bad_line_is_named_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
        log.append(&Action::new("init")).unwrap();
        let mut file = secret_file::open_private(log.path(), secret_file::Access::Append).unwrap();
        file.write_all(b"{\"secretish").unwrap();
        let err = log.read().unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("secretish"), "{err}");
        // A line cut short does not swallow the next action.
        log.append(&Action::new("revoke")).unwrap();
        let (actions, bad) = log.read_skipping().unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 2);
    }

    #[test]
    fn never_appends_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
        std::os::unix::fs::symlink(dir.path().join("victim"), log.path()).unwrap();
        assert!(log.append(&Action::new("init")).is_err());
        assert!(!dir.path().join("victim").exists());
    }
}
