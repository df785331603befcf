//! What a key found in a file is (`gobuildkey scan`): whose it is and whether it is live,
//! never the key. [`crate::scan`] finds the candidates; this judges them.
//!
//! **With the masters** ([`Judge`]):
//!
//! - a hex run is a plain key only if it is one of the keys the farm gives: those of every
//!   principal the policy names, at its current generation and the one before (so that a
//!   key just rotated away is recognised, and said to be dead), shared and bound to each
//!   machine the policy lists for it (or revokes) at the machine's own generation and the one
//!   before (`rotate --machine`), under every master of the keyring, in
//!   every algorithm that master's keys are accepted in. They are computed once per
//!   algorithm, the first time a run of that length is found, and kept by fingerprint only
//!   ([`Fingerprint`]: public): a run is looked up by its fingerprint, so no secret is
//!   compared with `==`, and each computed key is wiped at once ([`crate::key::BuildKey`]).
//!   A run that is no such key is not reported: no false positives. A run in uppercase is
//!   looked up as its lowercase (a key uppercased is the key leaked all the same);
//! - a token is looked up by its fingerprint in the action log, which records every token
//!   minted (with its principal, generation and machine): that is also how a token minted
//!   under a master since retired is recognised. Otherwise it is searched for as `explain`
//!   searches ([`crate::explain::whose`]: one code path).
//!
//! Whose it is known, whether it is live is what the one verify function says of it
//! ([`Verifier::verify_at`]), presented from its machine if it is bound to one; when it is
//! not, why ([`Death`]). A token of nobody the farm knows is [`Liveness::Unknown`], unless
//! its expiry (public: it is in the token) has passed.
//!
//! **Without the masters** ([`judge_without_master`]): a token is dead if it has expired,
//! else its liveness is unknown; a hex run is never reported (it cannot be told from a
//! checksum).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use zeroize::Zeroizing;

use crate::derive::Deriver;
use crate::explain::{History, Whose};
use crate::fingerprint::Fingerprint;
use crate::key::{Algorithm, Presented};
use crate::principal::Principal;
use crate::scan::Shape;
use crate::verifier::{Reason, Verdict, Verifier};

/// Whether a found key would be accepted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The one verify function accepts it now: the key is leaked and must be replaced.
    Live,
    /// It is accepted nowhere now, for this reason.
    Dead(Death),
    /// A token whose liveness cannot be told: no master, or nobody the farm knows.
    Unknown,
}

impl Liveness {
    /// `live`, `dead`, `unknown`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Dead(_) => "dead",
            Self::Unknown => "unknown",
        }
    }
}

/// Why a found key is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// A token past its expiry and the clock skew allowed.
    Expired,
    /// Its principal is revoked, or the machine it is bound to is (until reinstated).
    Revoked,
    /// Of a generation before the principal's current one, and no grace keeps it.
    Rotated,
    /// Minted under a master no longer in the keyring (the action log says so).
    RetiredMaster,
    /// Of an algorithm the policy no longer accepts for its principal.
    Algorithm,
    /// The principal's shared key, where the policy accepts only machine keys.
    SharedRefused,
    /// Refused for another reason (a token claiming a longer life than any is minted with).
    Refused,
}

impl Death {
    /// `expired`, `revoked`, `rotated`, `retired-master`, `algorithm`, `shared-refused`,
    /// `refused`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Rotated => "rotated",
            Self::RetiredMaster => "retired-master",
            Self::Algorithm => "algorithm",
            Self::SharedRefused => "shared-refused",
            Self::Refused => "refused",
        }
    }
}

/// A key found: what it is, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A token or a plain key.
    pub shape: Shape,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Its fingerprint (of its lowercase text).
    pub fingerprint: Fingerprint,
    /// Whose it is, when known.
    pub whose: Option<Whose>,
    /// When a token expires.
    pub expires: Option<Timestamp>,
    /// Whether it is accepted now.
    pub liveness: Liveness,
}

/// What a token says openly: its algorithm and expiry; `None` if `text` is no token.
fn token_fields(text: &[u8]) -> Option<(Algorithm, Timestamp)> {
    let fields = crate::token::parse(text).ok()?;
    Some((fields.alg, fields.expires_at()))
}

/// What a found candidate is, without the masters: a token, dead if expired (`skew`
/// allowed, as a verifier allows it), else of unknown liveness; `None` for a hex run, which
/// only the masters can tell from any other hex.
#[must_use]
pub fn judge_without_master(
    shape: Shape,
    text: &[u8],
    now: Timestamp,
    skew: Duration,
) -> Option<Finding> {
    if shape != Shape::Token {
        return None;
    }
    let (algorithm, expires) = token_fields(text)?;
    let liveness = if crate::token::has_expired(expires, now, skew) {
        Liveness::Dead(Death::Expired)
    } else {
        Liveness::Unknown
    };
    Some(Finding {
        shape,
        algorithm,
        fingerprint: Fingerprint::of(text),
        whose: None,
        expires: Some(expires),
        liveness,
    })
}

/// Judges candidates with the masters, the policy and the action log (the module's
/// documentation). Keeps what it computed between candidates.
pub struct Judge<'a> {
    verifier: &'a Verifier,
    history: &'a History,
    now: Timestamp,
    /// For each algorithm whose keys were computed: whose each key is, by fingerprint.
    keys: HashMap<Algorithm, HashMap<Fingerprint, Whose>>,
    /// Tokens already identified, by fingerprint (a token found in many files is searched
    /// for once); at most [`SEARCHES`] of them.
    tokens: HashMap<Fingerprint, (Option<Whose>, Option<Death>)>,
    /// How many tokens the log did not know were searched for, and how many were not.
    searched: usize,
    unsearched: usize,
}

/// How many distinct tokens the log does not know are searched for as `explain` searches
/// (each search computes up to thousands of keys): anyone can write a file of well-formed
/// tokens (the checksum is no secret), and a scan of a million of them must still end.
/// Those past it are of unknown liveness (unless expired): the scan fails all the same.
pub const SEARCHES: usize = 1000;

impl<'a> Judge<'a> {
    /// A judge for keys found at `now`, with the verifier's masters, policy and clock skew.
    #[must_use]
    pub fn new(verifier: &'a Verifier, history: &'a History, now: Timestamp) -> Self {
        Self {
            verifier,
            history,
            now,
            keys: HashMap::new(),
            tokens: HashMap::new(),
            searched: 0,
            unsearched: 0,
        }
    }

    /// How many tokens were not searched for, [`SEARCHES`] having been made.
    #[must_use]
    pub fn unsearched(&self) -> usize {
        self.unsearched
    }

    /// What the candidate `text` of `shape` is; `None` for a hex run that is no key of the
    /// farm (or a token that is not well formed).
    pub fn judge(&mut self, shape: Shape, text: &[u8]) -> Option<Finding> {
        match shape {
            Shape::Token => Some(self.judge_token(text)?),
            Shape::Hex => self.judge_hex(text),
        }
    }

    fn judge_token(&mut self, text: &[u8]) -> Option<Finding> {
        let (algorithm, expires) = token_fields(text)?;
        let fingerprint = Fingerprint::of(text);
        let (whose, known_dead) = if let Some(known) = self.tokens.get(&fingerprint) {
            known.clone()
        } else {
            self.identify_token(text, &fingerprint)
        };
        let liveness = match (&whose, known_dead) {
            (_, Some(death)) => Liveness::Dead(death),
            (Some(whose), None) => self.liveness(whose, algorithm, text),
            (None, None)
                if crate::token::has_expired(expires, self.now, self.verifier.clock_skew()) =>
            {
                Liveness::Dead(Death::Expired)
            }
            (None, None) => Liveness::Unknown,
        };
        Some(Finding {
            shape: Shape::Token,
            algorithm,
            fingerprint,
            whose,
            expires: Some(expires),
            liveness,
        })
    }

    /// Whose the token is, by the log (and dead if its master is retired), else by the
    /// search.
    fn identify_token(
        &mut self,
        text: &[u8],
        fingerprint: &Fingerprint,
    ) -> (Option<Whose>, Option<Death>) {
        if let Some(minted) = self.history.minted_as(fingerprint) {
            let principal = Principal::new(&minted.principal).ok();
            let machine = match minted.machine.as_deref() {
                Some(name) => crate::machine::Machine::new(name).ok().map(Some),
                None => Some(None),
            };
            if let (Some(principal), Some(machine)) = (principal, machine) {
                let whose = Whose {
                    principal,
                    generation: minted.generation,
                    machine,
                    machine_generation: minted.machine_generation,
                };
                let retired = self.verifier.masters().all(|m| m.as_str() != minted.master);
                return (Some(whose), retired.then_some(Death::RetiredMaster));
            }
        }
        if self.searched >= SEARCHES {
            self.unsearched += 1;
            return (None, None);
        }
        self.searched += 1;
        let whose = crate::explain::whose(self.verifier, self.history, Presented::from(text));
        self.tokens.insert(*fingerprint, (whose.clone(), None));
        (whose, None)
    }

    fn judge_hex(&mut self, text: &[u8]) -> Option<Finding> {
        let algorithm = Algorithm::ALL
            .into_iter()
            .find(|alg| alg.hex_len() == text.len())?;
        // The lowercase text, wiped on drop.
        let mut lower = Zeroizing::new([0u8; 64]);
        let lower = &mut lower[..text.len()];
        lower.copy_from_slice(text);
        lower.make_ascii_lowercase();
        let fingerprint = Fingerprint::of(lower);
        let whose = self.keys_of(algorithm).get(&fingerprint)?.clone();
        let liveness = self.liveness(&whose, algorithm, lower);
        Some(Finding {
            shape: Shape::Hex,
            algorithm,
            fingerprint,
            whose: Some(whose),
            expires: None,
            liveness,
        })
    }

    /// The farm's keys of `algorithm` by fingerprint, computed the first time.
    fn keys_of(&mut self, algorithm: Algorithm) -> &HashMap<Fingerprint, Whose> {
        let verifier = self.verifier;
        self.keys
            .entry(algorithm)
            .or_insert_with(|| farm_keys(verifier, algorithm))
    }

    /// Whether the key `text`, which is `whose`, is accepted now; if not, why.
    fn liveness(&self, whose: &Whose, algorithm: Algorithm, text: &[u8]) -> Liveness {
        let presented = Presented::from(text).from_machine(whose.machine.as_ref());
        let decision = self
            .verifier
            .verify_at(&whose.principal, presented, self.now);
        let reason = match decision.verdict {
            Verdict::Valid => return Liveness::Live,
            Verdict::Invalid(reason) => reason,
        };
        let state = self.verifier.policy().state(&whose.principal);
        Liveness::Dead(match reason {
            Reason::Expired => Death::Expired,
            Reason::Revoked => Death::Revoked,
            Reason::Malformed
                if !self
                    .verifier
                    .accepted_algorithms(&whose.principal)
                    .contains(algorithm) =>
            {
                Death::Algorithm
            }
            Reason::Mismatch
                if whose.generation != state.generation
                    || whose.machine.as_ref().is_some_and(|machine| {
                        whose.machine_generation != state.machine_generation(machine)
                    }) =>
            {
                Death::Rotated
            }
            Reason::Mismatch if whose.machine.is_none() && state.machine_keys_only => {
                Death::SharedRefused
            }
            _ => Death::Refused,
        })
    }
}

/// Every key of `algorithm` the farm gives (the module's documentation), by fingerprint.
fn farm_keys(verifier: &Verifier, algorithm: Algorithm) -> HashMap<Fingerprint, Whose> {
    let derivers: Vec<&Deriver> = verifier.derivers(algorithm).collect();
    let mut keys = HashMap::new();
    for (principal, state) in verifier.policy().principals() {
        let generations = [Some(state.generation), state.generation.checked_sub(1)];
        let machines = std::iter::once(None)
            .chain(state.machines.iter().map(Some))
            .chain(state.revoked_machines.iter().map(Some));
        for machine in machines {
            // A machine key at the machine's own generation and the one before
            // (`rotate --machine`); a shared key at 0.
            let own = machine.map_or(0, |machine| state.machine_generation(machine));
            for machine_generation in [Some(own), own.checked_sub(1)].into_iter().flatten() {
                for generation in generations.into_iter().flatten() {
                    for deriver in &derivers {
                        let key = match machine {
                            None => deriver.derive_generation(principal, generation),
                            Some(machine) => deriver.derive_machine(
                                principal,
                                generation,
                                machine,
                                machine_generation,
                            ),
                        };
                        keys.entry(key.fingerprint()).or_insert_with(|| Whose {
                            principal: principal.clone(),
                            generation,
                            machine: machine.cloned(),
                            machine_generation,
                        });
                    }
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::machine::Machine;
    use crate::master::MasterSecret;
    use crate::policy::actions::Action;
    use crate::policy::{Grace, Policy, PrincipalState};

    const SHA: Algorithm = Algorithm::HmacSha256;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    fn master() -> MasterSecret {
        MasterSecret::from_text(b"an example master, 32 bytes long").unwrap()
    }

    /// host-a at generation 2 (no grace), with machine b-1; host-r revoked.
    fn farm() -> Verifier {
        let m = master();
        let mut policy = Policy::none();
        let a = PrincipalState {
            generation: 2,
            keep_previous: Grace::None,
            machines: [Machine::new("b-1").unwrap()].into(),
            ..Default::default()
        };
        policy.set_state(&p("host-a"), &a).unwrap();
        let r = PrincipalState {
            revoked: true,
            ..Default::default()
        };
        policy.set_state(&p("host-r"), &r).unwrap();
        Verifier::new(&m, SHA).with_policy(policy)
    }

    fn judge(verifier: &Verifier, history: &History, shape: Shape, text: &str) -> Option<Finding> {
        Judge::new(verifier, history, Timestamp::now()).judge(shape, text.as_bytes())
    }

    fn key(name: &str, generation: u64) -> String {
        Deriver::new(&master(), SHA)
            .derive_generation(&p(name), generation)
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn plain_keys_of_the_policy_are_found_live_or_dead() {
        let v = farm();
        let none = History::default();
        let live = judge(&v, &none, Shape::Hex, &key("host-a", 2)).unwrap();
        assert_eq!(live.liveness, Liveness::Live);
        assert_eq!(live.whose.unwrap().generation, 2);
        // Uppercased: the same key.
        let upper = key("host-a", 2).to_ascii_uppercase();
        assert_eq!(
            judge(&v, &none, Shape::Hex, &upper).unwrap().liveness,
            Liveness::Live
        );
        let rotated = judge(&v, &none, Shape::Hex, &key("host-a", 1)).unwrap();
        assert_eq!(rotated.liveness, Liveness::Dead(Death::Rotated));
        let revoked = judge(&v, &none, Shape::Hex, &key("host-r", 0)).unwrap();
        assert_eq!(revoked.liveness, Liveness::Dead(Death::Revoked));
        let machine = Deriver::new(&master(), SHA).derive_machine(
            &p("host-a"),
            2,
            &Machine::new("b-1").unwrap(),
            0,
        );
        let bound = judge(&v, &none, Shape::Hex, machine.expose_secret()).unwrap();
        assert_eq!(bound.liveness, Liveness::Live);
        assert_eq!(bound.whose.unwrap().machine.unwrap().as_str(), "b-1");
        // Older generations, other principals, other hex: nothing.
        for other in [key("host-a", 0), key("host-z", 0), "ab".repeat(32)] {
            assert_eq!(judge(&v, &none, Shape::Hex, &other), None, "{other}");
        }
        // The other algorithm's keys are computed too: the policy does not accept them.
        let md5 = Deriver::new(&master(), Algorithm::HmacMd5).derive_generation(&p("host-a"), 2);
        let found = judge(&v, &none, Shape::Hex, md5.expose_secret()).unwrap();
        assert_eq!(found.liveness, Liveness::Dead(Death::Algorithm));
    }

    #[test]
    fn tokens_are_identified_by_the_log_or_the_search() {
        let v = farm();
        let d = Deriver::new(&master(), SHA);
        let soon = Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let token = d.derive_token(&p("host-a"), 2, None, soon);
        let text = token.expose_secret();
        let found = judge(&v, &History::default(), Shape::Token, text).unwrap();
        assert_eq!(found.liveness, Liveness::Live);
        assert_eq!(found.whose.unwrap().principal, p("host-a"));
        let past = Timestamp::now() - jiff::SignedDuration::from_hours(1);
        let old = d.derive_token(&p("host-a"), 2, None, past);
        let found = judge(&v, &History::default(), Shape::Token, old.expose_secret()).unwrap();
        assert_eq!(found.liveness, Liveness::Dead(Death::Expired));
        // A retired master's token, known by the log.
        let retired = MasterSecret::from_text(b"a master retired long ago, 32 by").unwrap();
        let gone = Deriver::new(&retired, SHA).derive_token(&p("host-a"), 2, None, soon);
        let mut mint = Action::new("mint");
        mint.principal = Some("host-a".into());
        mint.generation = Some(2);
        mint.master = Some(retired.fingerprint().as_str().to_owned());
        mint.key = Some(gone.fingerprint().as_str().to_owned());
        let history = History::from_actions(&[mint]);
        let found = judge(&v, &history, Shape::Token, gone.expose_secret()).unwrap();
        assert_eq!(found.liveness, Liveness::Dead(Death::RetiredMaster));
        // Without the log: nobody's, and not expired.
        let found = judge(&v, &History::default(), Shape::Token, gone.expose_secret()).unwrap();
        assert_eq!(found.liveness, Liveness::Unknown);
        assert_eq!(found.whose, None);
    }

    /// Well-formed tokens are anyone's to forge: past [`SEARCHES`] of them nobody's is
    /// searched for (each search computes keys), so that a file of a million ends.
    #[test]
    fn searches_for_unknown_tokens_are_bounded() {
        let v = farm();
        let none = History::default();
        let mut judge = Judge::new(&v, &none, Timestamp::now());
        let soon = Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let other = Deriver::new(
            &MasterSecret::from_text(b"another farm's master, 32 bytes.").unwrap(),
            SHA,
        );
        for i in 0..SEARCHES + 5 {
            let forged = other.derive_token(&p(&format!("host-{i}")), 0, None, soon);
            let found = judge.judge(Shape::Token, forged.expose_secret().as_bytes());
            assert_eq!(found.unwrap().liveness, Liveness::Unknown);
        }
        assert_eq!(judge.unsearched(), 5);
        assert!(judge.tokens.len() <= SEARCHES);
        // Past the bound a live token is of unknown liveness: the scan still fails.
        let live = Deriver::new(&master(), SHA).derive_token(&p("host-a"), 2, None, soon);
        let found = judge.judge(Shape::Token, live.expose_secret().as_bytes());
        assert_eq!(found.unwrap().liveness, Liveness::Unknown);
        assert_eq!(judge.unsearched(), 6);
    }

    #[test]
    fn without_the_master_only_expiry_is_known() {
        let d = Deriver::new(&master(), SHA);
        let now = Timestamp::now();
        let hour = jiff::SignedDuration::from_hours(1);
        let skew = Duration::from_secs(60);
        let soon = d.derive_token(&p("host-a"), 0, None, now + hour);
        let past = d.derive_token(&p("host-a"), 0, None, now - hour);
        let judged = |text: &str| {
            judge_without_master(Shape::Token, text.as_bytes(), now, skew).map(|f| f.liveness)
        };
        assert_eq!(judged(soon.expose_secret()), Some(Liveness::Unknown));
        assert_eq!(
            judged(past.expose_secret()),
            Some(Liveness::Dead(Death::Expired))
        );
        let key = key("host-a", 0);
        assert_eq!(
            judge_without_master(Shape::Hex, key.as_bytes(), now, skew),
            None
        );
    }
}
