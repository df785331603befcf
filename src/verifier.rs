//! The one verification path. The CLI's `verify`, `check --verify`, and every other
//! verifier call [`Verifier::verify`]; generations, grace periods, revocation, the master
//! keyring and the kind of principal are all decided here and nowhere else.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::derive::{Bound, Deriver, Form, presented_form};
use crate::fingerprint::Fingerprint;
use crate::key::{Algorithm, AlgorithmSet, Presented};
use crate::master::{MasterSecret, MasterSource};
use crate::policy::{Grace, Policy, PolicyError, PrincipalState};
use crate::principal::{Kind, Principal};

/// The outcome of a verification.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The presented key is the principal's key.
    Valid,
    /// It is not; the reason may be shown to the presenter, it reveals nothing secret.
    Invalid(Reason),
}

impl Verdict {
    /// Whether the key was accepted.
    #[must_use]
    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }
}

/// Why a presented key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Well-formed, but not the principal's key under this master.
    Mismatch,
    /// Not a key of the expected algorithm at all: empty, wrong length or not lowercase hex.
    Malformed,
    /// The principal is revoked: no key of it verifies.
    Revoked,
    /// The principal is not of the kind this verifier accepts (a `user-` token presented
    /// as a host, say).
    WrongKind,
    /// An expiring token ([`crate::token`]) past its expiry and the clock skew allowed.
    Expired,
}

impl Reason {
    /// A one-word name for logs and protocols: `invalid`, `malformed`, `revoked`, `kind`,
    /// `expired`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mismatch => "invalid",
            Self::Malformed => "malformed",
            Self::Revoked => "revoked",
            Self::WrongKind => "kind",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a verification found: the verdict and, for a valid key, which master and which
/// generation it belongs to. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Valid, or invalid and why.
    pub verdict: Verdict,
    /// The fingerprint of the master the key was minted under (valid keys only).
    pub master: Option<Fingerprint>,
    /// The generation the key belongs to (valid keys only).
    pub generation: Option<u64>,
    /// Whether the key is bound to the machine it was presented from, rather than the
    /// principal's key shared by all its machines (valid keys only).
    pub machine: bool,
    /// When the key stops being valid, for an expiring token ([`crate::token`]); also
    /// given for a token refused as [`Reason::Expired`] (the token says it openly).
    pub expires: Option<Timestamp>,
}

impl Decision {
    fn invalid(reason: Reason) -> Self {
        Self {
            verdict: Verdict::Invalid(reason),
            master: None,
            generation: None,
            machine: false,
            expires: None,
        }
    }
}

/// The masters, the policy and the rules a coordinator verifies registrations with.
///
/// ```
/// use gobuildkey::derive::Deriver;
/// use gobuildkey::key::Algorithm;
/// use gobuildkey::master::MasterSecret;
/// use gobuildkey::policy::{Policy, PrincipalState};
/// use gobuildkey::principal::Kind;
/// use gobuildkey::verifier::{Reason, Verdict, Verifier};
///
/// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
/// let host = "host-linux-arm-aws".parse()?;
/// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&host);
///
/// let verifier = Verifier::new(&master, Algorithm::HmacSha256).only_kind(Kind::Host);
/// assert!(verifier.verify(&host, key.expose_secret().as_bytes()).verdict.is_valid());
///
/// // Revoke the principal: the same key is refused, with the reason.
/// let mut policy = Policy::none();
/// policy.set_state(&host, &PrincipalState { revoked: true, ..Default::default() })?;
/// let verifier = verifier.with_policy(policy);
/// assert_eq!(
///     verifier.verify(&host, key.expose_secret().as_bytes()).verdict,
///     Verdict::Invalid(Reason::Revoked)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    /// Keys of other algorithms are refused, whatever the policy accepts (`--alg`).
    only: Option<Algorithm>,
    /// The primary master first, then the previous ones of the keyring.
    masters: Vec<Accepted>,
    policy: Policy,
    kind: Option<Kind>,
    /// How long after its expiry a token is still accepted.
    skew: Duration,
}

/// A master and the algorithms its keys are accepted in, with a keyed state for each.
#[derive(Clone)]
struct Accepted {
    fingerprint: Fingerprint,
    algorithms: AlgorithmSet,
    derivers: Vec<(Algorithm, Deriver)>,
}

impl Accepted {
    fn new(master: &MasterSecret, algorithms: AlgorithmSet) -> Self {
        Self {
            fingerprint: master.fingerprint(),
            algorithms,
            derivers: algorithms
                .iter()
                .map(|alg| (alg, Deriver::new(master, alg)))
                .collect(),
        }
    }

    fn deriver(&self, alg: Algorithm) -> Option<&Deriver> {
        self.derivers
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, deriver)| deriver)
    }
}

impl Verifier {
    /// A verifier with one master and no policy: every principal at generation 0, keys of
    /// `alg` accepted.
    #[must_use]
    pub fn new(primary: &MasterSecret, alg: Algorithm) -> Self {
        let mut policy = Policy::none();
        // An edit of the built-in template, which always parses.
        let _ = policy.set_default_algorithm(alg);
        Self {
            only: None,
            masters: vec![Accepted::new(primary, AlgorithmSet::ALL)],
            policy,
            kind: None,
            skew: crate::token::DEFAULT_CLOCK_SKEW,
        }
    }

    /// Loads the primary master from `primary` and every previous master of `policy`'s
    /// keyring. Fails closed: any master that cannot be loaded is an error. Each master
    /// command has [`crate::master::DEFAULT_COMMAND_TIMEOUT`] to finish.
    ///
    /// # Errors
    /// [`LoadError::Primary`] or [`LoadError::Policy`] ([`PolicyError::Master`], with the
    /// keyring entry's line and column).
    pub fn load(primary: &MasterSource, policy: Policy) -> Result<Self, LoadError> {
        Self::load_within(primary, policy, crate::master::DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`Verifier::load`], giving each master command (the primary's, the keyring's)
    /// `timeout` to finish ([`MasterSource::load_within`]).
    ///
    /// # Errors
    /// As [`Verifier::load`].
    pub fn load_within(
        primary: &MasterSource,
        policy: Policy,
        timeout: Duration,
    ) -> Result<Self, LoadError> {
        let master = primary.load_within(timeout).map_err(LoadError::Primary)?;
        Self::with_keyring(&master, policy, timeout)
    }

    /// The verifier of `primary` and `policy`, whose keyring's masters are loaded here.
    fn with_keyring(
        primary: &MasterSecret,
        policy: Policy,
        timeout: Duration,
    ) -> Result<Self, LoadError> {
        let mut masters = vec![Accepted::new(primary, AlgorithmSet::ALL)];
        for (entry, previous) in policy
            .load_keyring_within(timeout)
            .map_err(LoadError::Policy)?
        {
            let fingerprint = previous.fingerprint();
            if masters.iter().all(|m| m.fingerprint != fingerprint) {
                masters.push(Accepted::new(
                    &previous,
                    entry.algorithms.unwrap_or(AlgorithmSet::ALL),
                ));
            }
        }
        Ok(Self {
            only: None,
            masters,
            policy,
            kind: None,
            skew: crate::token::DEFAULT_CLOCK_SKEW,
        })
    }

    /// Loads the primary master, then the policy at `policy` (which must exist), then the
    /// keyring's masters: what every verifier of the command line (verify, batch, serve)
    /// starts from. The master is read first, so a missing master is reported as such.
    ///
    /// Each master command has [`crate::master::DEFAULT_COMMAND_TIMEOUT`] to finish.
    ///
    /// # Errors
    /// [`LoadError::Primary`] or [`LoadError::Policy`]; nothing verifies without both.
    pub fn open(primary: &MasterSource, policy: &std::path::Path) -> Result<Self, LoadError> {
        Self::open_within(primary, policy, crate::master::DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`Verifier::open`], giving each master command (the primary's, the keyring's)
    /// `timeout` to finish ([`MasterSource::load_within`]): what a service reloading its
    /// masters uses, so that a secret manager that hangs cannot hang it.
    ///
    /// # Errors
    /// As [`Verifier::open`].
    pub fn open_within(
        primary: &MasterSource,
        policy: &std::path::Path,
        timeout: Duration,
    ) -> Result<Self, LoadError> {
        let master = primary.load_within(timeout).map_err(LoadError::Primary)?;
        let policy = Policy::load(policy).map_err(LoadError::Policy)?;
        Self::with_keyring(&master, policy, timeout)
    }

    /// Also accepts keys minted under `previous` (a master being replaced), of any
    /// algorithm the policy accepts.
    #[must_use]
    pub fn with_previous_master(mut self, previous: &MasterSecret) -> Self {
        let fingerprint = previous.fingerprint();
        if self.masters.iter().all(|m| m.fingerprint != fingerprint) {
            self.masters
                .push(Accepted::new(previous, AlgorithmSet::ALL));
        }
        self
    }

    /// Refuses keys of any other algorithm than `alg`, whatever the policy accepts
    /// (reason [`Reason::Malformed`]): the command line's `--alg`.
    #[must_use]
    pub fn only_algorithm(mut self, alg: Algorithm) -> Self {
        self.only = Some(alg);
        self
    }

    /// The algorithms `principal`'s keys are accepted in: the policy's record, narrowed by
    /// [`Verifier::only_algorithm`].
    #[must_use]
    pub fn accepted_algorithms(&self, principal: &Principal) -> AlgorithmSet {
        let accepted = self.policy.accepted_algorithms(principal);
        match self.only {
            Some(alg) if accepted.contains(alg) => AlgorithmSet::only(alg),
            Some(_) => AlgorithmSet::default(),
            None => accepted,
        }
    }

    /// Decides generations, grace periods and revocations by `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Accepts an expiring token up to `skew` after its expiry (a verifier's clock behind
    /// the minter's); [`crate::token::DEFAULT_CLOCK_SKEW`] unless set. At most
    /// [`crate::token::MAX_CLOCK_SKEW`] (an hour): more is taken as that, so that no skew
    /// makes tokens live for ever or lifts the bound on the life a token may claim.
    #[must_use]
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew.min(crate::token::MAX_CLOCK_SKEW);
        self
    }

    /// The clock skew allowed to expiring tokens ([`Verifier::with_clock_skew`]).
    #[must_use]
    pub fn clock_skew(&self) -> Duration {
        self.skew
    }

    /// Refuses principals of any other kind (reason [`Reason::WrongKind`]).
    #[must_use]
    pub fn only_kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The fingerprints of the masters accepted, primary first.
    pub fn masters(&self) -> impl Iterator<Item = &Fingerprint> {
        self.masters.iter().map(|m| &m.fingerprint)
    }

    /// The keyed states of every master whose keys are accepted in `alg`, primary first:
    /// for [`crate::explain`], which looks for what else a key is.
    pub(crate) fn derivers(&self, alg: Algorithm) -> impl Iterator<Item = &Deriver> {
        self.masters.iter().filter_map(move |m| m.deriver(alg))
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether `presented` is a valid key of `principal` now: [`Verifier::verify_at`] at
    /// [`Timestamp::now`].
    #[must_use]
    pub fn verify<'a>(
        &self,
        principal: &Principal,
        presented: impl Into<Presented<'a>>,
    ) -> Decision {
        self.decide(principal, presented.into(), Timestamp::now)
    }

    /// Whether `presented` is a valid key of `principal` at the moment `now` (grace periods
    /// end at a moment). The one verify function: every caller comes here.
    ///
    /// `presented` says how its bytes are trimmed ([`Presented`]): bytes as such (a key
    /// file, standard input, a batch line) by Go's `bytes.TrimSpace`
    /// ([`crate::text::trim_space`]), the way the buildlet reads its key file;
    /// [`Presented::header`] (an HTTP header's value) only of the spaces and tabs Go's
    /// `net/http` strips, so that a key the coordinator would refuse for a U+00A0 or `\v`
    /// at its end is refused here too. The bytes are trimmed once, here, by that rule, and
    /// nowhere else: the rules below are the same for both.
    ///
    /// ```
    /// use gobuildkey::derive::Deriver;
    /// use gobuildkey::key::{Algorithm, Presented};
    /// use gobuildkey::master::MasterSecret;
    /// use gobuildkey::verifier::{Reason, Verdict, Verifier};
    ///
    /// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let host = "host-a".parse()?;
    /// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&host);
    /// let verifier = Verifier::new(&master, Algorithm::HmacSha256);
    /// let now = jiff::Timestamp::now();
    ///
    /// let in_a_file = format!("{}\u{a0}\n", key.expose_secret());
    /// assert!(verifier.verify_at(&host, in_a_file.as_bytes(), now).verdict.is_valid());
    /// let in_a_header = format!(" {}\u{a0}", key.expose_secret());
    /// assert_eq!(
    ///     verifier.verify_at(&host, Presented::header(in_a_header.as_bytes()), now).verdict,
    ///     Verdict::Invalid(Reason::Malformed)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// In order: a principal of another kind than asked for is [`Reason::WrongKind`]; text
    /// that is not a well-formed key of any algorithm (after trimming) is
    /// [`Reason::Malformed`] — checked before anything the policy says, so that nothing
    /// about the policy can be learnt without a key; a key of an algorithm the principal
    /// does not accept (the length tells the algorithm) is [`Reason::Malformed`]; a revoked
    /// principal is [`Reason::Revoked`], decided only after the MACs below are computed, so
    /// that it takes as long as any other. Then the key is compared with the
    /// principal's key at its current generation (and the previous one during a grace
    /// period) under every master whose keys may be of that algorithm, all of them,
    /// combined with constant-time operations: the time taken does not depend on which one
    /// matched, or on how much of a wrong key was right.
    #[must_use]
    pub fn verify_at<'a>(
        &self,
        principal: &Principal,
        presented: impl Into<Presented<'a>>,
        now: Timestamp,
    ) -> Decision {
        self.decide(principal, presented.into(), || now)
    }

    /// [`Verifier::verify_at`], reading the clock (`now`) only when a grace period's end
    /// decides the answer.
    fn decide(
        &self,
        principal: &Principal,
        presented: Presented<'_>,
        now: impl Fn() -> Timestamp,
    ) -> Decision {
        if self.kind.is_some_and(|kind| principal.kind() != kind) {
            return Decision::invalid(Reason::WrongKind);
        }
        // The length tells the algorithm: the text is a key of at most one. A token's
        // checksum is checked here, before any MAC.
        let Some((alg, key, form)) = presented_form(presented.text()) else {
            return Decision::invalid(Reason::Malformed);
        };
        if !self.accepted_algorithms(principal).contains(alg) {
            return Decision::invalid(Reason::Malformed);
        }
        // A token's expiry is public (it is in the token): one that no minted token has is
        // refused before any MAC, as a malformed one is.
        let expires = match form {
            Form::Token(expires) if crate::token::too_far(expires, now(), self.skew) => {
                return Decision::invalid(Reason::Malformed);
            }
            Form::Token(expires) => Some(expires),
            Form::Key => None,
        };
        // A static, not a default built and dropped on every verification.
        static UNNAMED: PrincipalState = PrincipalState::UNNAMED;
        let state = self.policy.state_ref(principal).unwrap_or(&UNNAMED);
        let current = state.generation;
        let previous = current
            .checked_sub(1)
            .filter(|_| match state.keep_previous {
                Grace::Until(_) => state.keep_previous.active_at(now()),
                // Open or none: the same answer at any time.
                grace => grace.active_at(Timestamp::UNIX_EPOCH),
            });

        let mut found = Choice::from(0);
        let mut master_index = 0u64;
        let mut generation = 0u64;
        let mut bound = Choice::from(0);
        let shared_accepted = Choice::from(u8::from(!state.machine_keys_only));
        // The presented machine's own generation (`rotate --machine`): a lookup of public
        // names in the policy, never of the key. Its previous generation gets no grace.
        let own_bound = presented
            .machine()
            .map(|machine| Bound::Machine(machine, state.machine_generation(machine)));
        for (index, master) in (0u64..).zip(&self.masters) {
            let Some(deriver) = master.deriver(alg) else {
                continue;
            };
            for g in std::iter::once(current).chain(previous) {
                // Computed even where the policy accepts machine keys only, so that the time
                // taken does not tell which kind of key was presented.
                let shared = deriver.key_matches_bound(principal, g, Bound::Shared, form, &key)
                    & shared_accepted;
                // From a known machine, its own key too: both computed, whichever matches.
                let own = own_bound.map_or(Choice::from(0), |bound| {
                    deriver.key_matches_bound(principal, g, bound, form, &key)
                });
                let hit = shared | own;
                found |= hit;
                bound |= own;
                master_index.conditional_assign(&index, hit);
                generation.conditional_assign(&g, hit);
            }
        }
        // Decided after the MACs are computed, so a revoked principal takes as long as any.
        // A revoked machine: nothing presented from it verifies, its own key nor the shared.
        let machine_revoked = presented
            .machine()
            .is_some_and(|machine| state.revoked_machines.contains(machine));
        if state.revoked || machine_revoked {
            return Decision::invalid(Reason::Revoked);
        }
        // Expired whether or not its MAC matched: the answer tells an outsider nothing the
        // token does not say openly.
        let expires_at = expires.and_then(|seconds| Timestamp::from_second(seconds).ok());
        if let Some(expires) = expires_at
            && crate::token::has_expired(expires, now(), self.skew)
        {
            return Decision {
                expires: expires_at,
                ..Decision::invalid(Reason::Expired)
            };
        }
        if !bool::from(found) {
            return Decision::invalid(Reason::Mismatch);
        }
        // Which master matched, picked from all of them in constant time: reading
        // `masters[master_index]` would touch memory by the answer, and measurably did
        // (docs/security.md, "Timing").
        let mut master = self.masters.first().map(|m| m.fingerprint);
        if let Some(chosen) = master.as_mut() {
            for (index, m) in (0u64..).zip(&self.masters) {
                chosen.conditional_assign(&m.fingerprint, index.ct_eq(&master_index));
            }
        }
        Decision {
            verdict: Verdict::Valid,
            master,
            generation: Some(generation),
            machine: bound.into(),
            expires: expires_at,
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("only", &self.only)
            .field(
                "masters",
                &self
                    .masters
                    .iter()
                    .map(|m| (&m.fingerprint, m.algorithms.to_string()))
                    .collect::<Vec<_>>(),
            )
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a [`Verifier`] could not be built. Nothing can be verified without it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The primary master.
    #[error(transparent)]
    Primary(crate::master::MasterError),
    /// The policy, or a previous master it names.
    #[error(transparent)]
    Policy(PolicyError),
}

/// What the unit tests of the verifier's callers (batch, service) share: a verifier with
/// one master and no policy, and the HMAC-SHA256 key of `host-a` under it.
#[cfg(test)]
pub(crate) fn example() -> (Verifier, String) {
    let master = MasterSecret::from_text(b"an example master, 32 bytes long")
        .unwrap_or_else(|e| unreachable!("{e}"));
    let host = "host-a".parse().unwrap_or_else(|e| unreachable!("{e}"));
    let key = Deriver::new(&master, Algorithm::HmacSha256)
        .derive(&host)
        .expose_secret()
        .to_owned();
    (Verifier::new(&master, Algorithm::HmacSha256), key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::machine::Machine;
    use crate::policy::{Grace, PrincipalState};

    /// A key bound to a machine verifies from that machine only, at the principal's
    /// generations, and is refused with the principal; the shared key still verifies from
    /// any machine. The decision says which it was.
    #[test]
    fn machine_keys_verify_from_their_machine_only() {
        let m = master("an example master, 32 bytes long");
        let d = Deriver::new(&m, Algorithm::HmacSha256);
        let (host, one, two): (Principal, Machine, Machine) = (
            p("host-a"),
            "builder-1".parse().unwrap(),
            "Builder-2".parse().unwrap(),
        );
        let bound = d.derive_machine(&host, 0, &one, 0);
        let bound = bound.expose_secret().as_bytes();
        let shared = d.derive(&host);
        let shared = shared.expose_secret().as_bytes();
        let v = Verifier::new(&m, Algorithm::HmacSha256);
        let from = |key: &[u8], machine: &Machine| {
            v.verify(&host, Presented::from(key).from_machine(machine))
        };

        let own = from(bound, &one);
        assert!(own.verdict.is_valid() && own.machine, "{own:?}");
        assert_eq!(
            from(bound, &two).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        assert_eq!(
            v.verify(&host, bound).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        assert_eq!(
            v.verify(&p("host-b"), Presented::from(bound).from_machine(&one))
                .verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        let any = from(shared, &two);
        assert!(any.verdict.is_valid() && !any.machine, "{any:?}");

        // Rotated: the machine key of generation 0 dies with the principal's.
        let mut policy = Policy::none();
        let rotated = PrincipalState {
            generation: 1,
            ..Default::default()
        };
        policy.set_state(&host, &rotated).unwrap();
        let v = v.with_policy(policy.clone());
        assert_eq!(
            v.verify(&host, Presented::from(bound).from_machine(&one))
                .verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        let g1 = d.derive_machine(&host, 1, &one, 0);
        let g1 = Presented::from(g1.expose_secret().as_bytes()).from_machine(&one);
        assert_eq!(v.verify(&host, g1).generation, Some(1));
        // Revoked: refused like every key of the principal.
        let revoked = PrincipalState {
            revoked: true,
            ..rotated
        };
        policy.set_state(&host, &revoked).unwrap();
        let v = v.with_policy(policy);
        assert_eq!(
            v.verify(&host, g1).verdict,
            Verdict::Invalid(Reason::Revoked)
        );
    }

    /// One machine rotated on its own (`rotate --machine`: its generation in the policy): its
    /// new key verifies from it, its previous key does not (no grace), and the principal's
    /// shared key, its generation and every other machine's key are untouched — keys and
    /// machine-bound tokens alike. The decision still gives the principal's generation.
    #[test]
    fn rotating_one_machine_touches_that_machine_only() {
        let m = master("an example master, 32 bytes long");
        let d = Deriver::new(&m, Algorithm::HmacSha256);
        let host = p("host-a");
        let (one, two): (Machine, Machine) = ("b-1".parse().unwrap(), "b-2".parse().unwrap());
        let text = |key: crate::key::BuildKey| key.expose_secret().to_owned();
        let old1 = text(d.derive_machine(&host, 1, &one, 0));
        let new1 = text(d.derive_machine(&host, 1, &one, 1));
        let own2 = text(d.derive_machine(&host, 1, &two, 0));
        let shared = text(d.derive_generation(&host, 1));
        let expires = Timestamp::from_second(1_800_000_000).unwrap();
        let old_token = text(d.derive_token(&host, 1, Some((&one, 0)), expires));
        let new_token = text(d.derive_token(&host, 1, Some((&one, 1)), expires));
        let mut state = PrincipalState {
            generation: 1,
            // The principal's grace does not extend to a machine's previous key.
            keep_previous: Grace::Open,
            ..Default::default()
        };
        state.machine_generations.insert(one.clone(), 1);
        let mut policy = Policy::none();
        policy.set_state(&host, &state).unwrap();
        let v = Verifier::new(&m, Algorithm::HmacSha256).with_policy(policy);
        let at = Timestamp::from_second(1_799_999_000).unwrap();
        let ask = |key: &str, machine: &Machine| {
            v.verify_at(
                &host,
                Presented::from(key.as_bytes()).from_machine(machine),
                at,
            )
        };
        let valid = ask(&new1, &one);
        assert!(valid.verdict.is_valid() && valid.machine, "{valid:?}");
        assert_eq!(valid.generation, Some(1));
        assert_eq!(ask(&old1, &one).verdict, Verdict::Invalid(Reason::Mismatch));
        assert!(ask(&new_token, &one).verdict.is_valid());
        assert_eq!(
            ask(&old_token, &one).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        // The new key is still b-1's alone.
        assert_eq!(ask(&new1, &two).verdict, Verdict::Invalid(Reason::Mismatch));
        assert!(ask(&own2, &two).verdict.is_valid());
        assert!(ask(&shared, &one).verdict.is_valid());
        assert!(ask(&shared, &two).verdict.is_valid());
        assert!(v.verify_at(&host, shared.as_bytes(), at).verdict.is_valid());
        // The principal's previous generation, in grace, at the machine's current one.
        let grace1 = text(d.derive_machine(&host, 0, &one, 1));
        assert_eq!(ask(&grace1, &one).generation, Some(0));
        assert_eq!(
            ask(&text(d.derive_machine(&host, 0, &one, 0)), &one).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
    }

    /// A revoked machine: nothing presented from it verifies; the others are untouched.
    /// Machine keys only: the shared key is refused from anywhere, machine keys are not.
    #[test]
    fn machine_revocation_and_machine_keys_only() {
        let m = master("an example master, 32 bytes long");
        let d = Deriver::new(&m, Algorithm::HmacSha256);
        let host = p("host-a");
        let (one, two): (Machine, Machine) = ("b-1".parse().unwrap(), "b-2".parse().unwrap());
        let text = |key: crate::key::BuildKey| key.expose_secret().to_owned();
        let own1 = text(d.derive_machine(&host, 0, &one, 0));
        let own2 = text(d.derive_machine(&host, 0, &two, 0));
        let shared = text(d.derive(&host));
        let mut policy = Policy::none();
        let mut state = PrincipalState::default();
        state.revoked_machines.insert(one.clone());
        policy.set_state(&host, &state).unwrap();
        let v = Verifier::new(&m, Algorithm::HmacSha256).with_policy(policy.clone());
        let ask = |v: &Verifier, key: &str, machine: &Machine| {
            v.verify(&host, Presented::from(key.as_bytes()).from_machine(machine))
                .verdict
        };
        assert_eq!(ask(&v, &own1, &one), Verdict::Invalid(Reason::Revoked));
        assert_eq!(ask(&v, &shared, &one), Verdict::Invalid(Reason::Revoked));
        assert_eq!(ask(&v, &own2, &two), Verdict::Valid);
        assert_eq!(ask(&v, &shared, &two), Verdict::Valid);

        state.machine_keys_only = true;
        policy.set_state(&host, &state).unwrap();
        let v = v.with_policy(policy);
        assert_eq!(ask(&v, &own2, &two), Verdict::Valid);
        assert_eq!(ask(&v, &shared, &two), Verdict::Invalid(Reason::Mismatch));
        assert_eq!(
            v.verify(&host, shared.as_bytes()).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
    }

    fn master(text: &str) -> MasterSecret {
        MasterSecret::from_text(text.as_bytes()).unwrap()
    }

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    fn key(m: &MasterSecret, name: &str, generation: u64) -> String {
        Deriver::new(m, Algorithm::HmacSha256)
            .derive_generation(&p(name), generation)
            .expose_secret()
            .to_owned()
    }

    fn with_state(v: Verifier, name: &str, state: PrincipalState) -> Verifier {
        let mut policy = v.policy().clone();
        policy.set_state(&p(name), &state).unwrap();
        v.with_policy(policy)
    }

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn verdict(v: &Verifier, name: &str, key: &str) -> Verdict {
        v.verify_at(&p(name), key.as_bytes(), now()).verdict
    }

    #[test]
    fn valid_keys_report_master_and_generation() {
        let m = master("primary master of 32 bytes.....");
        let v = with_state(
            Verifier::new(&m, Algorithm::HmacSha256),
            "host-a",
            PrincipalState {
                generation: 2,
                ..Default::default()
            },
        );
        let d = v.verify_at(&p("host-a"), key(&m, "host-a", 2).as_bytes(), now());
        assert_eq!(d.verdict, Verdict::Valid);
        assert_eq!(d.master, Some(m.fingerprint()));
        assert_eq!(d.generation, Some(2));
    }

    #[test]
    fn superseded_generations_fail_unless_in_grace() {
        let m = master("primary master of 32 bytes.....");
        let base = Verifier::new(&m, Algorithm::HmacSha256);
        let g0 = key(&m, "host-a", 0);
        let g1 = key(&m, "host-a", 1);
        let rotated = with_state(
            base.clone(),
            "host-a",
            PrincipalState {
                generation: 1,
                ..Default::default()
            },
        );
        assert_eq!(verdict(&rotated, "host-a", &g1), Verdict::Valid);
        assert_eq!(
            verdict(&rotated, "host-a", &g0),
            Verdict::Invalid(Reason::Mismatch)
        );

        for (grace, accepted) in [
            (Grace::Open, true),
            (Grace::Until("2026-11-25T00:00:00Z".parse().unwrap()), true),
            (Grace::Until("2026-11-24T11:59:59Z".parse().unwrap()), false),
            (Grace::None, false),
        ] {
            let v = with_state(
                base.clone(),
                "host-a",
                PrincipalState {
                    generation: 1,
                    keep_previous: grace,
                    ..Default::default()
                },
            );
            assert_eq!(verdict(&v, "host-a", &g1), Verdict::Valid, "{grace}");
            assert_eq!(verdict(&v, "host-a", &g0).is_valid(), accepted, "{grace}");
            // Only the one previous generation.
            let v2 = with_state(
                base.clone(),
                "host-a",
                PrincipalState {
                    generation: 2,
                    keep_previous: grace,
                    ..Default::default()
                },
            );
            assert!(!verdict(&v2, "host-a", &g0).is_valid());
            assert_eq!(verdict(&v2, "host-a", &g1).is_valid(), accepted);
        }
    }

    #[test]
    fn revoked_refuses_every_key_of_every_generation_and_master() {
        let m = master("primary master of 32 bytes.....");
        let old = master("the previous master, 32 bytes..");
        let v = with_state(
            Verifier::new(&m, Algorithm::HmacSha256).with_previous_master(&old),
            "host-a",
            PrincipalState {
                generation: 1,
                keep_previous: Grace::Open,
                revoked: true,
                ..Default::default()
            },
        );
        for k in [
            key(&m, "host-a", 1),
            key(&m, "host-a", 0),
            key(&old, "host-a", 1),
        ] {
            assert_eq!(verdict(&v, "host-a", &k), Verdict::Invalid(Reason::Revoked));
        }
        // What is no key at all says nothing of the policy: malformed, revoked or not.
        assert_eq!(
            verdict(&v, "host-a", "junk"),
            Verdict::Invalid(Reason::Malformed)
        );
        // Other principals are untouched.
        assert_eq!(verdict(&v, "host-b", &key(&m, "host-b", 0)), Verdict::Valid);
    }

    #[test]
    fn keyring_accepts_previous_masters_and_says_which() {
        let m = master("primary master of 32 bytes.....");
        let old = master("the previous master, 32 bytes..");
        let v = Verifier::new(&m, Algorithm::HmacSha256).with_previous_master(&old);
        let d = v.verify_at(&p("host-a"), key(&old, "host-a", 0).as_bytes(), now());
        assert_eq!(d.verdict, Verdict::Valid);
        assert_eq!(d.master, Some(old.fingerprint()));
        let d = v.verify_at(&p("host-a"), key(&m, "host-a", 0).as_bytes(), now());
        assert_eq!(d.master, Some(m.fingerprint()));
        // Retired: a verifier without it refuses its keys.
        let retired = Verifier::new(&m, Algorithm::HmacSha256);
        assert_eq!(
            verdict(&retired, "host-a", &key(&old, "host-a", 0)),
            Verdict::Invalid(Reason::Mismatch)
        );
        assert_eq!(v.masters().count(), 2);
        // Adding the same master twice does not duplicate it.
        assert_eq!(v.with_previous_master(&m).masters().count(), 2);
    }

    #[test]
    fn kind_filter() {
        let m = master("primary master of 32 bytes.....");
        let v = Verifier::new(&m, Algorithm::HmacSha256).only_kind(Kind::Host);
        assert_eq!(verdict(&v, "host-a", &key(&m, "host-a", 0)), Verdict::Valid);
        // In Go's farm a user token also passed as a host type: not here.
        assert_eq!(
            verdict(&v, "user-x", &key(&m, "user-x", 0)),
            Verdict::Invalid(Reason::WrongKind)
        );
        assert_eq!(
            verdict(&v, "linux-amd64", &key(&m, "linux-amd64", 0)),
            Verdict::Invalid(Reason::WrongKind)
        );
        let any = Verifier::new(&m, Algorithm::HmacSha256);
        assert_eq!(
            verdict(&any, "user-x", &key(&m, "user-x", 0)),
            Verdict::Valid
        );
    }

    #[test]
    fn malformed_and_wrong_keys() {
        let m = master("primary master of 32 bytes.....");
        let v = Verifier::new(&m, Algorithm::HmacSha256);
        let good = key(&m, "host-a", 0);
        assert_eq!(
            verdict(&v, "host-a", &format!("\r\n {good} \n")),
            Verdict::Valid
        );
        for bad in [
            String::new(),
            good[1..].to_owned(),
            good.to_uppercase(),
            "z".repeat(64),
        ] {
            assert_eq!(
                verdict(&v, "host-a", &bad),
                Verdict::Invalid(Reason::Malformed)
            );
        }
        assert_eq!(
            verdict(&v, "host-b", &good),
            Verdict::Invalid(Reason::Mismatch)
        );
        let md5 = Deriver::new(&m, Algorithm::HmacMd5).derive(&p("host-a"));
        assert_eq!(
            verdict(&v, "host-a", md5.expose_secret()),
            Verdict::Invalid(Reason::Malformed)
        );
        let v5 = Verifier::new(&m, Algorithm::HmacMd5);
        assert_eq!(verdict(&v5, "host-a", md5.expose_secret()), Verdict::Valid);
    }

    #[test]
    fn debug_shows_no_secret() {
        let m = master("primary master of 32 bytes.....");
        let shown = format!("{:?}", Verifier::new(&m, Algorithm::HmacSha256));
        assert!(!shown.contains("primary master"), "{shown}");
        assert!(shown.contains(m.fingerprint().as_str()), "{shown}");
    }

    /// Expiring tokens: valid through their expiry and the skew, then `expired` whether or
    /// not their MAC matches (the answer tells nothing the token does not say); refused with
    /// their principal, at a generation rotated past, from another machine, or as another
    /// principal's; a changed character is malformed before any MAC; a claimed lifetime no
    /// token has is malformed.
    #[test]
    fn tokens_expire_and_obey_every_rule_keys_obey() {
        let m = master("an example master, 32 bytes long");
        let d = Deriver::new(&m, Algorithm::HmacSha256);
        let host = p("host-a");
        let expires = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let token = d.derive_token(&host, 0, None, expires);
        let token = token.expose_secret().as_bytes();
        let v = Verifier::new(&m, Algorithm::HmacSha256);
        let strict = v.clone().with_clock_skew(Duration::ZERO);

        let valid = v.verify_at(&host, token, at(-3600));
        assert!(valid.verdict.is_valid(), "{valid:?}");
        assert_eq!(valid.expires, Some(expires));
        assert_eq!(valid.generation, Some(0));
        assert!(strict.verify_at(&host, token, at(0)).verdict.is_valid());
        let late = strict.verify_at(&host, token, at(1));
        assert_eq!(late.verdict, Verdict::Invalid(Reason::Expired));
        assert_eq!(late.expires, Some(expires));
        assert!(v.verify_at(&host, token, at(60)).verdict.is_valid());
        assert_eq!(
            v.verify_at(&host, token, at(61)).verdict,
            Verdict::Invalid(Reason::Expired)
        );
        // Another principal's token: invalid while unexpired, expired after, as its own.
        assert_eq!(
            v.verify_at(&p("host-b"), token, at(0)).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        assert_eq!(
            v.verify_at(&p("host-b"), token, at(61)).verdict,
            Verdict::Invalid(Reason::Expired)
        );
        // A forged token (right checksum, wrong MAC) past its expiry: the same answer.
        let forged = crate::token::encode(expires.as_second(), &[7; 32]);
        assert_eq!(
            v.verify_at(&host, forged.as_bytes(), at(61)).verdict,
            Verdict::Invalid(Reason::Expired)
        );
        assert_eq!(
            v.verify_at(&host, forged.as_bytes(), at(0)).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        // A changed character, a plain key's rule for what is not a token.
        let mut typo = token.to_vec();
        typo[20] = if typo[20] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            v.verify_at(&host, &typo[..], at(0)).verdict,
            Verdict::Invalid(Reason::Malformed)
        );
        // Revoked, rotated, machine-bound, machine keys only: `v` with host-a in `state`.
        let with_state = |state: PrincipalState| {
            let mut policy = Policy::none();
            policy.set_state(&host, &state).unwrap();
            v.clone().with_policy(policy)
        };
        let revoked = with_state(PrincipalState {
            revoked: true,
            ..Default::default()
        });
        assert_eq!(
            revoked.verify_at(&host, token, at(0)).verdict,
            Verdict::Invalid(Reason::Revoked)
        );
        let rotated = with_state(PrincipalState {
            generation: 1,
            ..Default::default()
        });
        assert_eq!(
            rotated.verify_at(&host, token, at(0)).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        let g1 = d.derive_token(&host, 1, None, expires);
        assert!(
            rotated
                .verify_at(&host, g1.expose_secret(), at(0))
                .verdict
                .is_valid()
        );
        let one: Machine = "builder-1".parse().unwrap();
        let bound = d.derive_token(&host, 0, Some((&one, 0)), expires);
        let bound = bound.expose_secret().as_bytes();
        let from = Presented::from(bound).from_machine(&one);
        let decision = v.verify_at(&host, from, at(0));
        assert!(
            decision.verdict.is_valid() && decision.machine,
            "{decision:?}"
        );
        assert_eq!(
            v.verify_at(&host, bound, at(0)).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        let only = with_state(PrincipalState {
            machine_keys_only: true,
            ..Default::default()
        });
        assert_eq!(
            only.verify_at(&host, token, at(0)).verdict,
            Verdict::Invalid(Reason::Mismatch)
        );
        assert!(only.verify_at(&host, from, at(0)).verdict.is_valid());
        // A plain key of the same principal is not its token, nor the reverse.
        let key = d.derive(&host);
        assert!(
            v.verify_at(&host, key.expose_secret(), at(0))
                .verdict
                .is_valid()
        );
        assert_eq!(v.verify_at(&host, key.expose_secret(), at(0)).expires, None);
    }

    /// A skew past the most allowed is taken as the most: a token expired long ago is
    /// still `expired`, one claiming a life of centuries still malformed (the skew was
    /// added unbounded, so `Duration::MAX` accepted both).
    #[test]
    fn no_skew_makes_a_token_live_for_ever() {
        let m = master("an example master, 32 bytes long");
        let d = Deriver::new(&m, Algorithm::HmacSha256);
        let host = p("host-a");
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let v = Verifier::new(&m, Algorithm::HmacSha256).with_clock_skew(Duration::MAX);
        assert_eq!(v.clock_skew(), crate::token::MAX_CLOCK_SKEW);
        let old = d.derive_token(
            &host,
            0,
            None,
            Timestamp::from_second(1_700_000_000).unwrap(),
        );
        assert_eq!(
            v.verify_at(&host, old.expose_secret(), now).verdict,
            Verdict::Invalid(Reason::Expired)
        );
        let far = d.derive_token(
            &host,
            0,
            None,
            Timestamp::from_second(9_000_000_000).unwrap(),
        );
        assert_eq!(
            v.verify_at(&host, far.expose_secret(), now).verdict,
            Verdict::Invalid(Reason::Malformed)
        );
        // An hour is allowed, and not a second more.
        let hour = i64::try_from(crate::token::MAX_CLOCK_SKEW.as_secs()).unwrap();
        let just = d.derive_token(
            &host,
            0,
            None,
            Timestamp::from_second(1_800_000_000 - hour).unwrap(),
        );
        assert!(
            v.verify_at(&host, just.expose_secret(), now)
                .verdict
                .is_valid()
        );
        let past = d.derive_token(
            &host,
            0,
            None,
            Timestamp::from_second(1_800_000_000 - hour - 1).unwrap(),
        );
        assert_eq!(
            v.verify_at(&host, past.expose_secret(), now).verdict,
            Verdict::Invalid(Reason::Expired)
        );
    }

    /// A token that claims a lifetime no minted token has (more than 366 days and the
    /// skew) is refused as malformed; an HMAC-MD5 token is refused where HMAC-SHA256 only
    /// is accepted.
    #[test]
    fn a_far_future_token_and_a_token_of_another_algorithm_are_malformed() {
        let m = master("an example master, 32 bytes long");
        let host = p("host-a");
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let lifetime = i64::try_from(crate::token::MAX_LIFETIME.as_secs()).unwrap();
        let in_ = |s: i64| Timestamp::from_second(now.as_second() + s).unwrap();
        let d = Deriver::new(&m, Algorithm::HmacSha256);
        let v = Verifier::new(&m, Algorithm::HmacSha256);
        let longest = d.derive_token(&host, 0, None, in_(lifetime + 60));
        assert!(
            v.verify_at(&host, longest.expose_secret(), now)
                .verdict
                .is_valid()
        );
        let far = d.derive_token(&host, 0, None, in_(lifetime + 61));
        assert_eq!(
            v.verify_at(&host, far.expose_secret(), now).verdict,
            Verdict::Invalid(Reason::Malformed)
        );
        let md5 = Deriver::new(&m, Algorithm::HmacMd5).derive_token(&host, 0, None, in_(60));
        assert_eq!(md5.expose_secret().len(), 61);
        let sha_only = v.clone().only_algorithm(Algorithm::HmacSha256);
        assert_eq!(
            sha_only.verify_at(&host, md5.expose_secret(), now).verdict,
            Verdict::Invalid(Reason::Malformed)
        );
        let md5_farm = Verifier::new(&m, Algorithm::HmacMd5);
        assert!(
            md5_farm
                .verify_at(&host, md5.expose_secret(), now)
                .verdict
                .is_valid()
        );
    }
}
