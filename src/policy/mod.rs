//! The policy file: each principal's generation, grace period and revocation, and the
//! previous masters that verification still accepts.
//!
//! ```toml
//! [keyring]
//! # Masters accepted besides the primary; a relative path is relative to this file.
//! previous = [{ file = "gobuilder-master.2025.key" }, { command = "pass show farm/old" }]
//!
//! [principals.host-linux-arm-aws]
//! generation = 2                        # keys of generation 2 verify ...
//! keep_previous = 2026-12-01T00:00:00Z  # ... and of generation 1 until then (or `true`)
//! minted_under = "SHA256:1f0c2a9d4b7e3c55"
//!
//! [principals.host-openbsd-amd64-70]
//! revoked = true                        # no key of it verifies
//!
//! [principals.host-linux-riscv64-unmatched]
//! machines = ["builder-1", "builder-2"]     # each has a key of its own (`mint --machine`)
//! machine_generations = { builder-1 = 2 }   # builder-1's own key was replaced twice
//! ```
//!
//! A principal the file does not name is at generation 0 with nothing revoked: exactly the
//! keys of Go's `genbuilderkey`. The file itself is required: a missing or empty policy is
//! an error, never "nothing revoked" (whoever deletes it must not revive every revoked
//! key). `gobuildkey init` and `gobuildkey policy init` create it.
//!
//! The file is read by one reader, a compact tree over `toml_parser`'s events (`tree`)
//! given its meaning by one schema (`parse`), cheap enough for a fleet's policy (100,000
//! principals, docs/performance.md). The tool edits the file through `toml_edit`, so
//! comments, order and layout of hand edits survive — a principal with a
//! `[principals.NAME]` header of its own by editing that part of the text alone — and
//! re-reads the result with the same reader before it is kept. Every edit goes through
//! [`store::Store`] (a lock, a re-read under it, an atomic replace that keeps the file's
//! owner and mode), and the file is refused when others may write it (they could reinstate
//! a principal or add a master). Any error in it — syntax, an unknown field, a wrong type —
//! names the file, line and column, and no verification happens (fail closed).
//!
//! Where each part lives: the model, in this file ([`Policy`], [`PrincipalState`]); `grace`
//! ([`Grace`], and the moments a grace period ends at); `keyring` ([`KeyringEntry`], and
//! loading the previous masters); `location` (where the file is: [`named_path`],
//! [`path_beside`]); `load` (reading the file: [`Policy::load`]); `tree` (its TOML as a
//! compact tree); `parse` (the schema: the tree into the model, [`Policy::parse`]); `edit`
//! (changes that keep the layout: [`Policy::set_state`] …); `error` ([`PolicyError`]);
//! [`store`] (the one way the file changes); [`actions`] (the admin action log).

pub mod actions;
mod edit;
mod error;
mod grace;
mod keyring;
mod load;
mod location;
mod parse;
pub mod store;
mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::PolicyError;
pub use grace::{Grace, parse_moment};
pub use keyring::KeyringEntry;
pub use load::MAX_LEN;
pub use location::{DEFAULT_FILE_NAME, ENV_FILE, named_path, path_beside};

use crate::key::{Algorithm, AlgorithmSet};
use crate::machine::Machine;
use crate::principal::Principal;

const TEMPLATE: &str = "\
# gobuildkey policy: principals' generations, grace periods and revocations, and the
# previous masters that verification still accepts. gobuildkey edits it (mint, rotate,
# revoke, reinstate, end-grace, master); comments and hand edits are kept.
[principals]
";

/// What the policy says of one principal. The default is a principal it does not name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrincipalState {
    /// The current generation: its keys verify. 0 is the key of `genbuilderkey`.
    pub generation: u64,
    /// Whether the key of generation − 1 still verifies.
    pub keep_previous: Grace,
    /// Whether every key of the principal is refused.
    pub revoked: bool,
    /// The fingerprint of the master the current key was last minted under.
    pub minted_under: Option<String>,
    /// The algorithms its keys may be in; `None`: the policy's default algorithm only.
    pub algorithms: Option<AlgorithmSet>,
    /// The machines a key of their own was minted for (`mint --machine`): the farm's list of
    /// them, which `policy` shows and `explain` searches.
    pub machines: BTreeSet<Machine>,
    /// Machines from which nothing verifies, their own keys included (`revoke --machine`).
    pub revoked_machines: BTreeSet<Machine>,
    /// Whether only keys bound to a machine verify: the principal's shared key is refused.
    pub machine_keys_only: bool,
    /// Each machine's own generation (`rotate --machine`), in the message of its machine
    /// keys and machine-bound tokens; a machine not here is at 0. Never holds a 0: the
    /// reader leaves such an entry out and the editor writes none.
    pub machine_generations: BTreeMap<Machine, u64>,
}

impl PrincipalState {
    /// The state of a principal the policy does not name ([`PrincipalState::default`]), as a
    /// constant: the verifier reads it on every verification of such a principal, without
    /// building and dropping a default each time.
    ///
    /// ```
    /// use gobuildkey::policy::PrincipalState;
    ///
    /// assert_eq!(PrincipalState::UNNAMED, PrincipalState::default());
    /// ```
    pub const UNNAMED: Self = Self {
        generation: 0,
        keep_previous: Grace::None,
        revoked: false,
        minted_under: None,
        algorithms: None,
        machines: BTreeSet::new(),
        revoked_machines: BTreeSet::new(),
        machine_keys_only: false,
        machine_generations: BTreeMap::new(),
    };

    /// `machine`'s own generation: 0 until `rotate --machine` raises it.
    ///
    /// ```
    /// use gobuildkey::policy::Policy;
    ///
    /// let policy = Policy::parse(
    ///     "[principals.host-a]\nmachine_generations = { builder-1 = 2 }\n",
    ///     None,
    /// )?;
    /// let state = policy.state(&"host-a".parse()?);
    /// assert_eq!(state.machine_generation(&"Builder-1".parse()?), 2);
    /// assert_eq!(state.machine_generation(&"builder-2".parse()?), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn machine_generation(&self, machine: &Machine) -> u64 {
        self.machine_generations.get(machine).copied().unwrap_or(0)
    }
}

/// A parsed policy, and the text it came from for edits that keep its layout.
#[derive(Debug, Clone)]
pub struct Policy {
    path: Option<PathBuf>,
    // Shared, not copied, by a clone (an edit keeps the policy before it, for the action
    // log's undo): an edit replaces both whole, never changes them in place.
    text: Arc<String>,
    algorithm: Algorithm,
    principals: Arc<BTreeMap<Principal, Entry>>,
    keyring: Vec<KeyringEntry>,
}

/// A principal the policy names: its state, and the part of the text that is its own
/// (`[principals.NAME]` and its fields), when it has one.
#[derive(Debug, Clone)]
struct Entry {
    state: PrincipalState,
    section: Option<std::ops::Range<usize>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::none()
    }
}

impl Policy {
    /// No policy: every principal at generation 0, nothing revoked, no previous master.
    #[must_use]
    pub fn none() -> Self {
        Self {
            path: None,
            text: Arc::new(TEMPLATE.to_owned()),
            algorithm: Algorithm::default(),
            principals: Arc::default(),
            keyring: Vec::new(),
        }
    }

    /// A new policy for the file at `path`, naming no principal: what `gobuildkey init`
    /// and `gobuildkey policy init` write ([`store::Store::create`]). Its text is never
    /// empty, so an empty file can be told apart as a truncated one.
    #[must_use]
    pub fn template(path: &Path) -> Self {
        Self {
            path: Some(path.to_owned()),
            ..Self::none()
        }
    }

    /// Where the policy lives, if it has a file.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What the policy says of `principal` (the default when it does not name it).
    #[must_use]
    pub fn state(&self, principal: &Principal) -> PrincipalState {
        self.state_ref(principal).cloned().unwrap_or_default()
    }

    /// The farm's default algorithm: what `mint` mints, and what a principal with no
    /// recorded algorithms accepts (the `algorithm` field; HMAC-SHA256 when absent).
    #[must_use]
    pub fn default_algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The algorithms `principal`'s keys may be in: its recorded set, else the default.
    ///
    /// ```
    /// use gobuildkey::key::{Algorithm, AlgorithmSet};
    /// use gobuildkey::policy::Policy;
    ///
    /// let policy = Policy::parse(
    ///     "[principals.host-old]\nalgorithms = [\"hmac-md5\", \"hmac-sha256\"]\n",
    ///     None,
    /// )?;
    /// assert_eq!(policy.accepted_algorithms(&"host-old".parse()?), AlgorithmSet::ALL);
    /// assert_eq!(
    ///     policy.accepted_algorithms(&"host-new".parse()?),
    ///     AlgorithmSet::only(Algorithm::HmacSha256)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn accepted_algorithms(&self, principal: &Principal) -> AlgorithmSet {
        self.state_ref(principal)
            .and_then(|state| state.algorithms)
            .unwrap_or(AlgorithmSet::only(self.algorithm))
    }

    /// Every algorithm the policy accepts for some principal, the default included.
    #[must_use]
    pub fn all_algorithms(&self) -> AlgorithmSet {
        self.principals
            .values()
            .filter_map(|entry| entry.state.algorithms)
            .fold(AlgorithmSet::only(self.algorithm), AlgorithmSet::union)
    }

    /// What the policy says of `principal`, without a copy; `None` means the defaults.
    #[must_use]
    pub fn state_ref(&self, principal: &Principal) -> Option<&PrincipalState> {
        self.principals.get(principal).map(|entry| &entry.state)
    }

    /// Every principal the policy names, in order.
    pub fn principals(&self) -> impl Iterator<Item = (&Principal, &PrincipalState)> {
        self.principals.iter().map(|(p, entry)| (p, &entry.state))
    }

    /// The document as text, as [`store::Lock::write`] writes it.
    #[must_use]
    pub fn to_text(&self) -> String {
        self.text.as_ref().clone()
    }

    /// The document's text, without a copy: what was read, or what the last edit made.
    ///
    /// ```
    /// use gobuildkey::policy::{Policy, PrincipalState};
    ///
    /// let mut policy = Policy::parse("# ours\n[principals.host-a]\nrevoked = true\n", None)?;
    /// let revoked = PrincipalState { revoked: true, generation: 1, ..Default::default() };
    /// policy.set_state(&"host-a".parse()?, &revoked)?;
    /// assert_eq!(policy.as_text(), "# ours\n[principals.host-a]\nrevoked = true\ngeneration = 1\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn as_text(&self) -> &str {
        &self.text
    }

    pub(crate) fn shown_path(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "policy".to_owned(), |p| p.display().to_string())
    }
}
