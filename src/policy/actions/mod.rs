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
//!
//! The record of one action is here ([`Action`]); `log` holds the file ([`ActionLog`]),
//! `replay` the rebuilding of a policy from it ([`replay`]), `who` who runs this process.

mod log;
mod replay;
mod who;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use log::{ActionLog, FILE_NAME, UnreadableLines};
pub use replay::replay;
use who::Who;

use super::{Grace, Policy, PrincipalState};
use crate::machine::Machine;
use crate::master::MasterSource;
use crate::principal::Principal;

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
    /// The machine of the principal changed (`revoke --machine`, `reinstate --machine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
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
    /// When the key minted expires (RFC 3339), for an expiring token (`mint --expires-in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
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

fn names_of(machines: &std::collections::BTreeSet<Machine>) -> Vec<String> {
    machines.iter().map(|m| m.as_str().to_owned()).collect()
}

/// The machines of `names`; `None` if any breaks the rule (not a record gobuildkey writes).
fn machines_of(names: &[String]) -> Option<std::collections::BTreeSet<Machine>> {
    names.iter().map(|name| Machine::new(name).ok()).collect()
}

/// The machines' generations of `names`, those at 0 left out (as the policy's reader
/// does); `None` if a name breaks the rule or two name one machine (not a record gobuildkey
/// writes).
fn machine_generations_of(names: &BTreeMap<String, u64>) -> Option<BTreeMap<Machine, u64>> {
    let mut generations = BTreeMap::new();
    for (name, &generation) in names {
        // The policy writes generations as TOML integers, which stop at i64::MAX.
        i64::try_from(generation).ok()?;
        if generations
            .insert(Machine::new(name).ok()?, generation)
            .is_some()
        {
            return None;
        }
    }
    generations.retain(|_, generation| *generation != 0);
    Some(generations)
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
    /// The machines a key of their own was minted for, when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    /// The machines revoked, when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_machines: Vec<String>,
    /// Whether only machine keys verify, when so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub machine_keys_only: bool,
    /// Each machine's own generation (`rotate --machine`), when any is above 0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub machine_generations: BTreeMap<String, u64>,
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
            machines: names_of(&state.machines),
            revoked_machines: names_of(&state.revoked_machines),
            machine_keys_only: state.machine_keys_only,
            machine_generations: state
                .machine_generations
                .iter()
                .map(|(machine, &generation)| (machine.as_str().to_owned(), generation))
                .collect(),
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
        // Past i64::MAX no policy can hold it: not a record gobuildkey writes.
        i64::try_from(self.generation).ok()?;
        Some(PrincipalState {
            generation: self.generation,
            keep_previous,
            revoked: self.revoked,
            minted_under: self.minted_under.clone(),
            algorithms,
            machines: machines_of(&self.machines)?,
            revoked_machines: machines_of(&self.revoked_machines)?,
            machine_keys_only: self.machine_keys_only,
            machine_generations: machine_generations_of(&self.machine_generations)?,
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
            machine: None,
            generation: None,
            algorithm: None,
            master: None,
            key: None,
            expires: None,
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
