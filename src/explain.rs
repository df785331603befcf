//! What a key that does not verify is, for the admin who holds the masters (`gobuildkey
//! explain`): a typo, the key of another principal, an earlier generation, the other
//! algorithm, a key minted under a master since retired — or nothing the farm knows.
//!
//! This is an admin's tool, never an answer to whoever presented the key: `verify`, the
//! batch and `serve` say only the [`Reason`], so that nobody without the masters learns
//! from them whose key they hold. The verdict itself comes from [`Verifier::verify_at`],
//! the one verify function; what is added here is the search for what else the key is,
//! through the one derivation (each comparison in constant time, as in verification).
//!
//! The search covers every principal the policy names or the action log mentions, at each
//! of its latest 1,000 generations up to its current one, under every master of the keyring, in every
//! algorithm that master's keys are accepted in (machine keys: at each machine's latest 100
//! generations of its own, `rotate --machine`); then the fingerprints of the keys the
//! action log records as minted — which is how a key of a retired master is recognised:
//! retired masters are not kept to compute keys with.
//!
//! ```
//! use gobuildkey::derive::Deriver;
//! use gobuildkey::explain::{Explanation, History, explain};
//! use gobuildkey::key::Algorithm;
//! use gobuildkey::master::MasterSecret;
//! use gobuildkey::policy::{Policy, PrincipalState};
//! use gobuildkey::verifier::Verifier;
//!
//! let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
//! let (a, b) = ("host-a".parse()?, "host-b".parse()?);
//! let mut policy = Policy::none();
//! // host-b is in the policy, as a principal minted for is.
//! let minted = PrincipalState { minted_under: Some(master.fingerprint().to_string()), ..Default::default() };
//! policy.set_state(&b, &minted)?;
//! let verifier = Verifier::new(&master, Algorithm::HmacSha256).with_policy(policy);
//! let now = jiff::Timestamp::now();
//!
//! // host-b's key, presented as host-a's.
//! let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&b);
//! let found = explain(&verifier, &History::default(), &a, key.expose_secret().as_bytes(), now);
//! assert_eq!(found, Explanation::OtherPrincipal { principal: b, generation: 0, current: true, machine: None });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use zeroize::Zeroizing;

use crate::derive::{Bound, presented_form};
use crate::fingerprint::Fingerprint;
use crate::key::{Algorithm, AlgorithmSet, Presented};
use crate::machine::Machine;
use crate::policy::actions::Action;
use crate::principal::Principal;
use crate::text::trim_space;
use crate::verifier::{Reason, Verdict, Verifier};

/// What the action log tells about keys: the principals it mentions, when each generation
/// began, and the fingerprints of the keys it records as minted.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Each principal the log mentions, with the highest generation it records for it.
    principals: BTreeMap<Principal, u64>,
    /// Each machine the log mentions.
    machines: BTreeSet<Machine>,
    /// The highest generation of its own the log records for each machine of a principal.
    machine_generations: BTreeMap<(Principal, Machine), u64>,
    /// Each key the log records as minted, oldest first.
    minted: Vec<Minted>,
}

/// A key the action log records as minted: its fingerprint, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The principal it was minted for.
    pub principal: String,
    /// Its generation.
    pub generation: u64,
    /// The fingerprint of the master it was minted under.
    pub master: String,
    /// The key's fingerprint.
    pub key: String,
    /// When (RFC 3339).
    pub time: String,
    /// The user who minted it.
    pub user: String,
    /// The command that minted it: `mint`, `rotate` …
    pub command: String,
    /// The machine it is bound to, for a machine key (`mint --machine`, `rotate --machine`).
    pub machine: Option<String>,
    /// The machine's own generation it was minted at (0 for a shared key).
    pub machine_generation: u64,
    /// When it expires (RFC 3339), for an expiring token (`mint --expires-in`).
    pub expires: Option<String>,
}

impl History {
    /// What `actions` (the action log, oldest first) tell.
    ///
    /// ```
    /// use gobuildkey::explain::History;
    ///
    /// assert!(History::from_actions(&[]).minted().is_empty());
    /// ```
    #[must_use]
    pub fn from_actions(actions: &[Action]) -> Self {
        let mut history = Self::default();
        for action in actions {
            let Some(name) = &action.principal else {
                continue;
            };
            let generation = action.generation.unwrap_or(0);
            let machine = action.machine.as_deref().and_then(|m| Machine::new(m).ok());
            if let Some(machine) = &machine {
                history.machines.insert(machine.clone());
            }
            let machine_generations = action
                .state
                .as_ref()
                .map(|state| &state.machine_generations);
            let machine_generation = machine
                .as_ref()
                .zip(machine_generations)
                .and_then(|(machine, generations)| generations.get(machine.as_str()).copied())
                .unwrap_or(0);
            if let Ok(principal) = Principal::new(name) {
                let highest = history
                    .principals
                    .entry(principal.clone())
                    .or_insert(generation);
                *highest = (*highest).max(generation);
                for (name, &generation) in machine_generations.into_iter().flatten() {
                    if let Ok(machine) = Machine::new(name) {
                        let highest = history
                            .machine_generations
                            .entry((principal.clone(), machine))
                            .or_insert(generation);
                        *highest = (*highest).max(generation);
                    }
                }
            }
            if let (Some(key), Some(master)) = (&action.key, &action.master) {
                history.minted.push(Minted {
                    principal: name.clone(),
                    generation,
                    master: master.clone(),
                    key: key.clone(),
                    time: action.time.clone(),
                    user: action.user.clone(),
                    command: action.command.clone(),
                    machine: machine.as_ref().map(|m| m.as_str().to_owned()),
                    machine_generation,
                    expires: action.expires.clone(),
                });
            }
        }
        history
    }

    /// The keys the log records as minted, oldest first.
    #[must_use]
    pub fn minted(&self) -> &[Minted] {
        &self.minted
    }

    /// The key the log records as minted with the fingerprint `key`, its latest record.
    #[must_use]
    pub fn minted_as(&self, key: &Fingerprint) -> Option<&Minted> {
        self.minted.iter().rev().find(|m| m.key == key.as_str())
    }

    /// When the log first records a key of `principal` at `generation`.
    fn began(&self, principal: &Principal, generation: u64) -> Option<String> {
        self.minted
            .iter()
            .find(|m| m.principal == principal.as_str() && m.generation == generation)
            .map(|m| m.time.clone())
    }

    /// When the log first records a key of `machine` of `principal` at the machine's own
    /// generation `generation`.
    fn machine_began(
        &self,
        principal: &Principal,
        machine: &Machine,
        generation: u64,
    ) -> Option<String> {
        self.minted
            .iter()
            .find(|m| {
                m.principal == principal.as_str()
                    && m.machine.as_deref() == Some(machine.as_str())
                    && m.machine_generation == generation
            })
            .map(|m| m.time.clone())
    }

    /// The highest generation of its own the log records for `machine` of `principal`.
    fn machine_generation(&self, principal: &Principal, machine: &Machine) -> u64 {
        self.machine_generations
            .get(&(principal.clone(), machine.clone()))
            .copied()
            .unwrap_or(0)
    }
}

/// How a presented key's text was repaired before it became a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// It had uppercase letters: keys are lowercase hex.
    Lowercased,
    /// It had whitespace inside (a key broken over lines, spaces between groups).
    Joined,
}

impl Fix {
    /// A one-word name for scripts: `lowercased`, `joined`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lowercased => "lowercased",
            Self::Joined => "joined",
        }
    }
}

/// What a presented key is, as far as the farm knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    /// It verifies: the principal's key at `generation` under the master `master`.
    Valid {
        /// The master's fingerprint.
        master: Fingerprint,
        /// The generation.
        generation: u64,
    },
    /// The principal is revoked, so nothing verifies; `its_key` tells whether this was its
    /// current key.
    Revoked {
        /// Whether the key is the principal's current key.
        its_key: bool,
    },
    /// Not a key as written, but one once repaired (`fixes`, in order); `then` is what the
    /// repaired key is.
    Repaired {
        /// What was repaired.
        fixes: Vec<Fix>,
        /// What the repaired key is.
        then: Box<Explanation>,
    },
    /// The principal's current key, in an algorithm the policy does not accept for it.
    Algorithm {
        /// The key's algorithm.
        algorithm: Algorithm,
        /// What the policy accepts for the principal.
        accepted: AlgorithmSet,
    },
    /// The principal's key of another generation than those that verify.
    Generation {
        /// The key's generation.
        generation: u64,
        /// The principal's current generation.
        current: u64,
        /// When the action log first records a key of the generation after it (when this
        /// one was replaced), if it does.
        replaced: Option<String>,
    },
    /// The key of another principal.
    OtherPrincipal {
        /// Whose key it is.
        principal: Principal,
        /// Its generation.
        generation: u64,
        /// Whether that is the other principal's current generation.
        current: bool,
        /// The machine it is bound to, if it is a machine key.
        machine: Option<Machine>,
    },
    /// The principal's key bound to one of its machines, at an earlier generation of the
    /// machine's own than its current one (`rotate --machine` replaced it).
    MachineGeneration {
        /// The machine it is bound to.
        machine: Machine,
        /// The key's machine generation.
        generation: u64,
        /// The machine's current generation.
        current: u64,
        /// When the action log first records a key of the machine generation after it (when
        /// this one was replaced), if it does.
        replaced: Option<String>,
    },
    /// The principal's current key bound to another machine than it was presented from (or
    /// presented without saying from which).
    OtherMachine {
        /// The machine it is bound to.
        machine: Machine,
    },
    /// The principal's shared key, but the policy accepts only keys bound to a machine for
    /// it (`policy machine-keys-only`).
    SharedRefused,
    /// Presented from a machine of the principal that is revoked (`revoke --machine`):
    /// nothing from it verifies; `its_key` tells whether this was its key, or the shared one.
    MachineRevoked {
        /// The machine.
        machine: Machine,
        /// Whether the key is one of the principal's current keys.
        its_key: bool,
    },
    /// A key the action log records as minted, under a master no longer in the keyring.
    Retired(Minted),
    /// A key the action log records as minted under a master still in the keyring, yet no
    /// key the search finds: a key bound to a machine (`mint --machine`), which is not
    /// recognised without the machine's name.
    Logged(Minted),
    /// An expiring token of the principal ([`crate::token`]), its own current one, past
    /// its expiry and the clock skew allowed.
    Expired {
        /// When it expired.
        expires: Timestamp,
    },
    /// It starts as an expiring token does (`gbk1_`) and is not a well-formed one: a
    /// character changed or lost, found by its checksum before any MAC.
    BadToken(crate::token::TokenFormatError),
    /// Not in the form of any key, even repaired.
    Malformed {
        /// Its length in bytes, after trimming.
        length: usize,
    },
    /// A well-formed key of nothing the farm knows.
    Unknown {
        /// The algorithm its length says.
        algorithm: Algorithm,
    },
    /// Well formed and the principal's, but refused for another reason (a master whose
    /// keys are accepted only in other algorithms, say).
    Refused(Reason),
}

/// What `presented` is, when presented as the key of `principal` at `now` (and, when it
/// says so, from a machine: [`Presented::from_machine`]): see the module's documentation.
#[must_use]
pub fn explain<'a>(
    verifier: &Verifier,
    history: &History,
    principal: &Principal,
    presented: impl Into<Presented<'a>>,
    now: Timestamp,
) -> Explanation {
    let presented = presented.into();
    let decision = verifier.verify_at(principal, presented, now);
    if let (Verdict::Valid, Some(master), Some(generation)) =
        (decision.verdict, decision.master, decision.generation)
    {
        return Explanation::Valid { master, generation };
    }
    let text = presented.text();
    let Some((algorithm, found)) = identify(verifier, history, Some(principal), presented) else {
        return repair(verifier, history, principal, presented, now);
    };
    let state = verifier.policy().state(principal);
    let is_current_own = |whose: &Whose| {
        &whose.principal == principal
            && whose.generation == state.generation
            && match &whose.machine {
                None => true,
                Some(machine) => {
                    Some(machine) == presented.machine()
                        && whose.machine_generation == state.machine_generation(machine)
                }
            }
    };
    if decision.verdict == Verdict::Invalid(Reason::Revoked) {
        let its_key = found.as_ref().is_some_and(is_current_own);
        return match presented.machine() {
            Some(machine) if !state.revoked && state.revoked_machines.contains(machine) => {
                Explanation::MachineRevoked {
                    machine: machine.clone(),
                    its_key,
                }
            }
            _ => Explanation::Revoked { its_key },
        };
    }
    match found {
        Some(whose) if &whose.principal == principal => {
            let accepted = verifier.accepted_algorithms(principal);
            if !accepted.contains(algorithm) {
                Explanation::Algorithm {
                    algorithm,
                    accepted,
                }
            } else if whose.generation != state.generation {
                Explanation::Generation {
                    generation: whose.generation,
                    current: state.generation,
                    replaced: history.began(principal, whose.generation + 1),
                }
            } else if let Some(machine) = whose
                .machine
                .as_ref()
                .filter(|&machine| whose.machine_generation != state.machine_generation(machine))
            {
                Explanation::MachineGeneration {
                    machine: machine.clone(),
                    generation: whose.machine_generation,
                    current: state.machine_generation(machine),
                    replaced: history.machine_began(
                        principal,
                        machine,
                        whose.machine_generation + 1,
                    ),
                }
            } else if let Some(machine) = whose
                .machine
                .as_ref()
                .filter(|&machine| Some(machine) != presented.machine())
            {
                Explanation::OtherMachine {
                    machine: machine.clone(),
                }
            } else if whose.machine.is_none() && state.machine_keys_only {
                Explanation::SharedRefused
            } else {
                match decision.verdict {
                    Verdict::Invalid(Reason::Expired) => Explanation::Expired {
                        expires: decision.expires.unwrap_or(Timestamp::UNIX_EPOCH),
                    },
                    Verdict::Invalid(reason) => Explanation::Refused(reason),
                    Verdict::Valid => Explanation::Refused(Reason::Mismatch),
                }
            }
        }
        Some(whose) => {
            let theirs = verifier.policy().state(&whose.principal);
            let current = theirs.generation == whose.generation
                && whose.machine.as_ref().is_none_or(|machine| {
                    theirs.machine_generation(machine) == whose.machine_generation
                });
            Explanation::OtherPrincipal {
                principal: whose.principal,
                generation: whose.generation,
                current,
                machine: whose.machine,
            }
        }
        None => match history.minted_as(&Fingerprint::of(text)) {
            Some(minted) if verifier.masters().all(|m| m.as_str() != minted.master) => {
                Explanation::Retired(minted.clone())
            }
            Some(minted) => Explanation::Logged(minted.clone()),
            None => Explanation::Unknown { algorithm },
        },
    }
}

/// Whose key a key is: a principal's at a generation, shared or bound to a machine (at the
/// machine's own generation, 0 for a shared key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whose {
    /// The principal.
    pub principal: Principal,
    /// The generation.
    pub generation: u64,
    /// The machine it is bound to, for a machine key.
    pub machine: Option<Machine>,
    /// The machine's own generation (0 for a shared key).
    pub machine_generation: u64,
}

/// Whose key `presented` is, as far as the farm knows, searched as `explain` searches
/// (every principal of the policy and the log, their latest generations, every master, the
/// machines the farm knows); `None` when it is no key of them, or not well formed. For
/// `scan`, which finds a token and must learn whose it is before verifying it.
#[must_use]
pub fn whose(verifier: &Verifier, history: &History, presented: Presented<'_>) -> Option<Whose> {
    identify(verifier, history, None, presented).and_then(|(_, whose)| whose)
}

/// How many of a machine's own generations the search covers, its latest first: each is
/// searched at every generation of its principal, so fewer than those.
const MACHINE_GENERATIONS_SEARCHED: u64 = 100;

/// How many generations of each principal the search covers, its latest first: the policy
/// takes any generation up to `i64::MAX`, and the search must end.
const GENERATIONS_SEARCHED: u64 = 1000;

/// The presented key's algorithm, if it is a well-formed key, and whose key it is, if the
/// farm knows: the principal asked about (if any), then those of the policy and of the log, each at
/// its latest [`GENERATIONS_SEARCHED`] generations up to its current one (or the highest the
/// log records), newest first, under every master that computes keys of that algorithm;
/// shared keys first, then keys bound to the machines the farm knows (the one it was
/// presented from, those the policy lists or revokes, those the log names). The search stops
/// at the first match: this runs for an admin, never for the presenter, so its time tells
/// nobody anything.
fn identify(
    verifier: &Verifier,
    history: &History,
    first: Option<&Principal>,
    presented: Presented<'_>,
) -> Option<(Algorithm, Option<Whose>)> {
    let (algorithm, key, form) = presented_form(presented.text())?;
    // The principal asked about first: a key is most often its own.
    let own = first.map(|p| (p, verifier.policy().state(p).generation));
    let others = verifier
        .policy()
        .principals()
        .map(|(p, state)| (p, state.generation));
    let mut candidates: Vec<(&Principal, u64)> = Vec::new();
    let mut seen: BTreeMap<&Principal, usize> = BTreeMap::new();
    for (p, generation) in own
        .into_iter()
        .chain(others)
        .chain(history.principals.iter().map(|(p, &g)| (p, g)))
    {
        match seen.get(p) {
            Some(&at) => candidates[at].1 = candidates[at].1.max(generation),
            None => {
                seen.insert(p, candidates.len());
                candidates.push((p, generation));
            }
        }
    }
    let matches = |p: &Principal, g: u64, bound: Bound<'_>| {
        verifier
            .derivers(algorithm)
            .any(|d| d.key_matches_bound(p, g, bound, form, &key).into())
    };
    let searched =
        |highest: u64| (highest.saturating_sub(GENERATIONS_SEARCHED - 1)..=highest).rev();
    let shared = candidates.iter().find_map(|&(p, highest)| {
        searched(highest)
            .find(|&g| matches(p, g, Bound::Shared))
            .map(|generation| Whose {
                principal: p.clone(),
                generation,
                machine: None,
                machine_generation: 0,
            })
    });
    if shared.is_some() {
        return Some((algorithm, shared));
    }
    let mut machines: BTreeSet<&Machine> = presented.machine().into_iter().collect();
    machines.extend(history.machines.iter());
    machines.extend(
        verifier
            .policy()
            .principals()
            .flat_map(|(_, state)| state.machines.iter().chain(&state.revoked_machines)),
    );
    let bound = candidates.iter().find_map(|&(p, highest)| {
        let state = verifier.policy().state_ref(p);
        machines.iter().find_map(|&machine| {
            let own = state
                .map_or(0, |state| state.machine_generation(machine))
                .max(history.machine_generation(p, machine));
            (own.saturating_sub(MACHINE_GENERATIONS_SEARCHED - 1)..=own)
                .rev()
                .find_map(|machine_generation| {
                    searched(highest)
                        .find(|&g| matches(p, g, Bound::Machine(machine, machine_generation)))
                        .map(|generation| Whose {
                            principal: p.clone(),
                            generation,
                            machine: Some(machine.clone()),
                            machine_generation,
                        })
                })
        })
    });
    Some((algorithm, bound))
}

/// The repairs that make `presented` (trimmed as a key file is) a well-formed key, in
/// order, and the repaired key (wiped on drop); `None` when it is a key already or no
/// repair makes it one. What `explain` and a builder's `check` both say of a damaged key.
///
/// ```
/// use gobuildkey::explain::{Fix, repaired};
///
/// let key = "0123456789ABCDEF0123456789abcdef";
/// let (fixes, fixed) = repaired(format!("{}\n{}", &key[..16], &key[16..]).as_bytes()).unwrap();
/// assert_eq!(fixes, [Fix::Joined, Fix::Lowercased]);
/// assert_eq!(fixed.as_str(), key.to_ascii_lowercase());
/// assert!(repaired(b"not a key at all").is_none());
/// ```
#[must_use]
pub fn repaired(presented: &[u8]) -> Option<(Vec<Fix>, Zeroizing<String>)> {
    let written = std::str::from_utf8(trim_space(presented)).ok()?;
    let mut fixes = Vec::new();
    let mut repaired = Zeroizing::new(written.to_owned());
    if repaired.chars().any(char::is_whitespace) {
        // Joined into a buffer of its final bound: a `collect` grows its string, leaving
        // copies of the key's pieces unwiped in freed memory.
        let mut joined = Zeroizing::new(String::with_capacity(repaired.len()));
        for piece in repaired.split_whitespace() {
            joined.push_str(piece);
        }
        repaired = joined;
        fixes.push(Fix::Joined);
    }
    if repaired.bytes().any(|b| b.is_ascii_uppercase()) {
        repaired = Zeroizing::new(repaired.to_ascii_lowercase());
        fixes.push(Fix::Lowercased);
    }
    let is_key = presented_form(repaired.as_bytes()).is_some();
    (!fixes.is_empty() && is_key).then_some((fixes, repaired))
}

/// The explanation of `text` repaired ([`repaired`]), or [`Explanation::Malformed`] if no
/// repair makes it a key.
fn repair(
    verifier: &Verifier,
    history: &History,
    principal: &Principal,
    presented: Presented<'_>,
    now: Timestamp,
) -> Explanation {
    let text = presented.text();
    let Some((fixes, repaired)) = repaired(text) else {
        if crate::token::is_token(text)
            && let Err(error) = crate::token::parse(text)
        {
            return Explanation::BadToken(error);
        }
        return Explanation::Malformed { length: text.len() };
    };
    let again = Presented::from(repaired.as_bytes()).from_machine(presented.machine());
    let then = explain(verifier, history, principal, again, now);
    Explanation::Repaired {
        fixes,
        then: Box::new(then),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::derive::Deriver;
    use crate::master::MasterSecret;
    use crate::policy::{Grace, Policy, PrincipalState};

    const SHA: Algorithm = Algorithm::HmacSha256;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    fn master(text: &[u8]) -> MasterSecret {
        MasterSecret::from_text(text).unwrap()
    }

    fn key(master: &MasterSecret, alg: Algorithm, name: &str, generation: u64) -> String {
        Deriver::new(master, alg)
            .derive_generation(&p(name), generation)
            .expose_secret()
            .to_owned()
    }

    /// host-a at generation 2 (no grace), host-b, host-r revoked.
    fn farm() -> (MasterSecret, Verifier) {
        let m = master(b"an example master, 32 bytes long");
        let mut policy = Policy::none();
        let state = |generation, revoked| PrincipalState {
            generation,
            keep_previous: Grace::None,
            revoked,
            ..Default::default()
        };
        policy.set_state(&p("host-a"), &state(2, false)).unwrap();
        // Named in the policy, as a principal ever minted for is.
        let minted = PrincipalState {
            minted_under: Some(m.fingerprint().as_str().to_owned()),
            ..state(0, false)
        };
        policy.set_state(&p("host-b"), &minted).unwrap();
        policy.set_state(&p("host-r"), &state(0, true)).unwrap();
        let verifier = Verifier::new(&m, SHA).with_policy(policy);
        (m, verifier)
    }

    fn run(verifier: &Verifier, history: &History, name: &str, key: &str) -> Explanation {
        explain(
            verifier,
            history,
            &p(name),
            key.as_bytes(),
            Timestamp::now(),
        )
    }

    #[test]
    fn a_valid_key_is_valid() {
        let (m, v) = farm();
        let found = run(
            &v,
            &History::default(),
            "host-a",
            &key(&m, SHA, "host-a", 2),
        );
        assert_eq!(
            found,
            Explanation::Valid {
                master: m.fingerprint(),
                generation: 2
            }
        );
    }

    #[test]
    fn an_earlier_generation_says_when_it_was_replaced() {
        let (m, v) = farm();
        let mut rotate = Action::new("rotate");
        rotate.principal = Some("host-a".into());
        rotate.generation = Some(2);
        rotate.key = Some("SHA256:0000000000000000".into());
        rotate.master = Some(m.fingerprint().as_str().to_owned());
        rotate.time = "2026-11-01T00:00:00Z".into();
        let history = History::from_actions(&[rotate]);
        let found = run(&v, &history, "host-a", &key(&m, SHA, "host-a", 1));
        assert_eq!(
            found,
            Explanation::Generation {
                generation: 1,
                current: 2,
                replaced: Some("2026-11-01T00:00:00Z".into())
            }
        );
        let found = run(
            &v,
            &History::default(),
            "host-a",
            &key(&m, SHA, "host-a", 0),
        );
        assert!(matches!(
            found,
            Explanation::Generation {
                generation: 0,
                replaced: None,
                ..
            }
        ));
    }

    #[test]
    fn another_principals_key_is_named() {
        let (m, v) = farm();
        let found = run(
            &v,
            &History::default(),
            "host-a",
            &key(&m, SHA, "host-b", 0),
        );
        assert_eq!(
            found,
            Explanation::OtherPrincipal {
                principal: p("host-b"),
                generation: 0,
                current: true,
                machine: None
            }
        );
        // An earlier generation of another principal.
        let found = run(
            &v,
            &History::default(),
            "host-b",
            &key(&m, SHA, "host-a", 1),
        );
        assert_eq!(
            found,
            Explanation::OtherPrincipal {
                principal: p("host-a"),
                generation: 1,
                current: false,
                machine: None
            }
        );
    }

    #[test]
    fn a_principal_only_the_log_knows_is_searched_too() {
        let (m, v) = farm();
        let mut mint = Action::new("mint");
        mint.principal = Some("host-gone".into());
        mint.generation = Some(1);
        let history = History::from_actions(&[mint]);
        let found = run(&v, &history, "host-a", &key(&m, SHA, "host-gone", 1));
        assert_eq!(
            found,
            Explanation::OtherPrincipal {
                principal: p("host-gone"),
                generation: 1,
                current: false,
                machine: None
            }
        );
    }

    #[test]
    fn the_other_algorithm_is_named_with_what_the_policy_accepts() {
        let (m, v) = farm();
        let md5 = key(&m, Algorithm::HmacMd5, "host-b", 0);
        let found = run(&v, &History::default(), "host-b", &md5);
        assert_eq!(
            found,
            Explanation::Algorithm {
                algorithm: Algorithm::HmacMd5,
                accepted: AlgorithmSet::only(SHA)
            }
        );
    }

    #[test]
    fn case_and_whitespace_are_repaired_and_then_explained() {
        let (m, v) = farm();
        let good = key(&m, SHA, "host-b", 0);
        let shouted = good.to_ascii_uppercase();
        let found = run(&v, &History::default(), "host-b", &shouted);
        assert_eq!(
            found,
            Explanation::Repaired {
                fixes: vec![Fix::Lowercased],
                then: Box::new(Explanation::Valid {
                    master: m.fingerprint(),
                    generation: 0
                })
            }
        );
        let broken = format!("{}\n{} {}", &shouted[..20], &good[20..40], &good[40..]);
        let found = run(&v, &History::default(), "host-a", &broken);
        assert_eq!(
            found,
            Explanation::Repaired {
                fixes: vec![Fix::Joined, Fix::Lowercased],
                then: Box::new(Explanation::OtherPrincipal {
                    principal: p("host-b"),
                    generation: 0,
                    current: true,
                    machine: None
                })
            }
        );
    }

    #[test]
    fn what_is_no_key_is_malformed() {
        let (_, v) = farm();
        for text in ["", "xyz", "0123", &"g".repeat(64), "\u{ff}"] {
            let found = run(&v, &History::default(), "host-a", text);
            assert!(matches!(found, Explanation::Malformed { .. }), "{text:?}");
        }
    }

    /// Machine keys: from the wrong machine (or none), from a revoked machine, the shared
    /// key where machine keys only are accepted, another principal's machine key.
    #[test]
    fn machine_keys_are_explained() {
        let (m, v) = farm();
        let (one, two): (Machine, Machine) = ("b-1".parse().unwrap(), "b-2".parse().unwrap());
        let d = Deriver::new(&m, SHA);
        let b1 = d.derive_machine(&p("host-b"), 0, &one, 0);
        let b1 = b1.expose_secret();
        // The log names b-1 (a revocation, since reinstated).
        let mut revoke = Action::new("revoke");
        revoke.principal = Some("host-b".into());
        revoke.machine = Some("b-1".into());
        let history = History::from_actions(&[revoke]);
        let from = |v: &Verifier, history: &History, name: &str, key: &str, machine: &Machine| {
            let presented = Presented::from(key.as_bytes()).from_machine(machine);
            explain(v, history, &p(name), presented, Timestamp::now())
        };
        assert!(matches!(
            from(&v, &history, "host-b", b1, &one),
            Explanation::Valid { .. }
        ));
        let elsewhere = Explanation::OtherMachine {
            machine: one.clone(),
        };
        assert_eq!(from(&v, &history, "host-b", b1, &two), elsewhere);
        assert_eq!(run(&v, &history, "host-b", b1), elsewhere);
        // A machine the farm knows nothing of cannot be searched for.
        assert_eq!(
            from(&v, &History::default(), "host-b", b1, &two),
            Explanation::Unknown { algorithm: SHA }
        );
        assert_eq!(
            from(&v, &History::default(), "host-a", b1, &one),
            Explanation::OtherPrincipal {
                principal: p("host-b"),
                generation: 0,
                current: true,
                machine: Some(one.clone())
            }
        );

        let mut policy = v.policy().clone();
        let mut state = policy.state(&p("host-b"));
        state.revoked_machines.insert(one.clone());
        state.machine_keys_only = true;
        policy.set_state(&p("host-b"), &state).unwrap();
        let v = v.with_policy(policy);
        let none = History::default();
        assert_eq!(
            from(&v, &none, "host-b", b1, &one),
            Explanation::MachineRevoked {
                machine: one.clone(),
                its_key: true
            }
        );
        // The policy's revoked machines are searched too.
        assert_eq!(run(&v, &none, "host-b", b1), elsewhere);
        let shared = key(&m, SHA, "host-b", 0);
        assert_eq!(
            from(&v, &none, "host-b", &shared, &two),
            Explanation::SharedRefused
        );
        assert_eq!(
            run(&v, &none, "host-b", &shared),
            Explanation::SharedRefused
        );
    }

    /// A machine rotated on its own: its earlier key is of an earlier machine generation,
    /// with when the log says it was replaced; presented from another machine, the same.
    #[test]
    fn an_earlier_machine_generation_says_when_it_was_replaced() {
        let (m, v) = farm();
        let one: Machine = "b-1".parse().unwrap();
        let d = Deriver::new(&m, SHA);
        let mut policy = v.policy().clone();
        let mut state = policy.state(&p("host-b"));
        state.machines.insert(one.clone());
        state.machine_generations.insert(one.clone(), 2);
        policy.set_state(&p("host-b"), &state).unwrap();
        let v = v.with_policy(policy);
        let mut rotate = Action::new("rotate").on(&p("host-b"), &state);
        rotate.machine = Some("b-1".into());
        rotate.key = Some("SHA256:0000000000000000".into());
        rotate.master = Some(m.fingerprint().as_str().to_owned());
        rotate.time = "2026-11-02T00:00:00Z".into();
        let mut earlier = state.clone();
        earlier.machine_generations.insert(one.clone(), 1);
        let mut first = Action::new("rotate").on(&p("host-b"), &earlier);
        first.machine = Some("b-1".into());
        first.key = Some("SHA256:1111111111111111".into());
        first.master = rotate.master.clone();
        first.time = "2026-11-01T00:00:00Z".into();
        let history = History::from_actions(&[first, rotate]);
        let from = |key: &str, machine: &str| {
            let machine: Machine = machine.parse().unwrap();
            let presented = Presented::from(key.as_bytes()).from_machine(&machine);
            explain(&v, &history, &p("host-b"), presented, Timestamp::now())
        };
        let current = d.derive_machine(&p("host-b"), 0, &one, 2);
        assert!(matches!(
            from(current.expose_secret(), "b-1"),
            Explanation::Valid { .. }
        ));
        let old = d.derive_machine(&p("host-b"), 0, &one, 1);
        let found = Explanation::MachineGeneration {
            machine: one.clone(),
            generation: 1,
            current: 2,
            replaced: Some("2026-11-02T00:00:00Z".into()),
        };
        assert_eq!(from(old.expose_secret(), "b-1"), found);
        assert_eq!(from(old.expose_secret(), "b-9"), found);
        let oldest = d.derive_machine(&p("host-b"), 0, &one, 0);
        assert!(matches!(
            from(oldest.expose_secret(), "b-1"),
            Explanation::MachineGeneration {
                generation: 0,
                current: 2,
                replaced: Some(_),
                ..
            }
        ));
        // As another principal's key: not its current one.
        let as_other = explain(
            &v,
            &history,
            &p("host-a"),
            Presented::from(old.expose_secret().as_bytes()).from_machine(&one),
            Timestamp::now(),
        );
        assert!(
            matches!(as_other, Explanation::OtherPrincipal { current: false, .. }),
            "{as_other:?}"
        );
    }

    #[test]
    fn a_revoked_principal_is_said_to_be_revoked() {
        let (m, v) = farm();
        let own = run(
            &v,
            &History::default(),
            "host-r",
            &key(&m, SHA, "host-r", 0),
        );
        assert_eq!(own, Explanation::Revoked { its_key: true });
        let other = run(
            &v,
            &History::default(),
            "host-r",
            &key(&m, SHA, "host-b", 0),
        );
        assert_eq!(other, Explanation::Revoked { its_key: false });
    }

    /// red2: a generation the policy accepts (up to i64::MAX, hand-edited) must not make
    /// the search run for ever: explain answers in bounded time.
    #[test]
    fn a_huge_generation_does_not_hang_the_search() {
        let (m, v) = farm();
        let mut policy = v.policy().clone();
        let huge = PrincipalState {
            generation: i64::MAX as u64,
            ..Default::default()
        };
        policy.set_state(&p("host-big"), &huge).unwrap();
        let v = v.with_policy(policy);
        let unknown = key(
            &master(b"a master of some other farm, 32b"),
            SHA,
            "host-a",
            0,
        );
        let own = key(&m, SHA, "host-big", i64::MAX as u64 - 1);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let found = (
                run(&v, &History::default(), "host-a", &unknown),
                run(&v, &History::default(), "host-big", &own),
            );
            let _ = done.send(found);
        });
        let found = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("explain searched generations for ever");
        assert_eq!(found.0, Explanation::Unknown { algorithm: SHA });
        assert!(
            matches!(found.1, Explanation::Generation { generation, .. } if generation == i64::MAX as u64 - 1),
            "{:?}",
            found.1
        );
    }

    #[test]
    fn a_retired_masters_key_is_found_by_its_fingerprint_in_the_log() {
        let (_, v) = farm();
        let retired = master(b"a master retired long ago, 32 by");
        let old = key(&retired, SHA, "host-a", 0);
        let mut mint = Action::new("mint");
        mint.principal = Some("host-a".into());
        mint.generation = Some(0);
        mint.master = Some(retired.fingerprint().as_str().to_owned());
        mint.key = Some(Fingerprint::of(old.as_bytes()).as_str().to_owned());
        mint.time = "2025-01-01T00:00:00Z".into();
        let history = History::from_actions(&[mint]);
        let found = run(&v, &history, "host-a", &old);
        let Explanation::Retired(minted) = found else {
            panic!("{found:?}")
        };
        assert_eq!(minted.master, retired.fingerprint().as_str());
        assert_eq!(minted.time, "2025-01-01T00:00:00Z");
        // Without the log, nothing known.
        let found = run(&v, &History::default(), "host-a", &old);
        assert_eq!(found, Explanation::Unknown { algorithm: SHA });
    }
}
