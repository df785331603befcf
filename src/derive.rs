//! Key derivation: a build key is the lowercase hex of HMAC(master, principal).
//!
//! [`Deriver`] holds the master's precomputed HMAC state for one [`Algorithm`]; its
//! [`Deriver::derive`] (what `mint` prints) and the comparison that
//! [`crate::verifier::Verifier::verify`] (what `verify` and every other verifier call) makes
//! both compute the MAC through one private function, so they cannot drift apart.
//!
//! # Messages
//!
//! What is MACed for each kind of key, byte for byte (one private function builds them all):
//!
//! - A principal's key at generation 0 (Go's `genbuilderkey`): the principal's text.
//! - At generation n ≥ 1: the principal's text, `#`, n in decimal (`host-a#2`).
//! - Bound to a machine ([`Deriver::derive_machine`]): the byte 0x00, the byte `m`, the
//!   principal's length (2 bytes, big endian) and text, the generation (8 bytes, big
//!   endian), the machine name's length (2 bytes, big endian) and text (in lowercase), and
//!   the machine's own generation (8 bytes, big endian): 0 until the machine is rotated on
//!   its own (`rotate --machine`, the policy's `machine_generations`), so the keys minted
//!   before machines had generations keep their message.
//! - An expiring token ([`Deriver::derive_token`], [`crate::token`]): the byte 0x00, the
//!   byte `t`, the principal's length (2 bytes, big endian) and text, the generation (8
//!   bytes, big endian), the expiry (seconds since 1970-01-01 UTC, 8 bytes, big endian), the
//!   machine name's length (2 bytes, big endian; 0 for a token shared by every machine of the
//!   principal) and text (in lowercase), and the machine's own generation (8 bytes, big
//!   endian; 0 for a shared token, and for a machine never rotated on its own).
//!
//! No two keys share a message: a principal's text starts with a letter or digit and has no
//! `#`, so the first two kinds never meet (what follows `#` is a decimal without leading
//! zeros); a tagged message starts with 0x00, which no principal does; and within a tag the
//! fixed-width lengths split the message one way only. A later kind of key takes another tag
//! byte after the 0x00.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use crate::key::{Algorithm, BuildKey};
use crate::machine::Machine;
use crate::master::MasterSecret;
use crate::principal::Principal;

/// The master's keyed HMAC state for one algorithm: derives keys (and, inside
/// [`crate::verifier::Verifier`], checks them).
///
/// Build it once and reuse it: the keyed state is computed once, and every derivation or
/// verification starts from a copy of it.
///
/// ```
/// use gobuildkey::derive::Deriver;
/// use gobuildkey::key::Algorithm;
/// use gobuildkey::principal::Principal;
/// use gobuildkey::master::MasterSecret;
///
/// let master = MasterSecret::from_text(b"an example master, 32 bytes long\n")?;
/// let deriver = Deriver::new(&master, Algorithm::HmacSha256);
/// let host: Principal = "host-linux-arm-aws".parse()?;
///
/// let key = deriver.derive(&host);
/// assert_eq!(key.expose_secret().len(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Deriver {
    keyed: Keyed,
}

#[derive(Clone)]
enum Keyed {
    Sha256(Hmac<Sha256>),
    Md5(Hmac<Md5>),
}

impl Deriver {
    /// Keys the HMAC state with `master` for `alg`.
    #[must_use]
    pub fn new(master: &MasterSecret, alg: Algorithm) -> Self {
        Self::from_key_bytes(master.expose_secret(), alg)
    }

    /// HMAC accepts keys of any length, so this cannot fail.
    fn from_key_bytes(key: &[u8], alg: Algorithm) -> Self {
        let keyed = match alg {
            Algorithm::HmacSha256 => Keyed::Sha256(keyed_state(key)),
            Algorithm::HmacMd5 => Keyed::Md5(keyed_state(key)),
        };
        Self { keyed }
    }

    /// The algorithm keys are derived with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self.keyed {
            Keyed::Sha256(_) => Algorithm::HmacSha256,
            Keyed::Md5(_) => Algorithm::HmacMd5,
        }
    }

    /// The generation-0 key of `principal`: lowercase hex of HMAC(master, principal),
    /// the key Go's `genbuilderkey` gives (with [`Algorithm::HmacMd5`]).
    #[must_use]
    pub fn derive(&self, principal: &Principal) -> BuildKey {
        self.derive_generation(principal, 0)
    }

    /// The key of `principal` at `generation`: generation 0 MACs the principal's text,
    /// generation n ≥ 1 MACs `PRINCIPAL#n`.
    ///
    /// ```
    /// # use gobuildkey::derive::Deriver;
    /// # use gobuildkey::key::Algorithm;
    /// # let master = gobuildkey::master::MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let deriver = Deriver::new(&master, Algorithm::HmacSha256);
    /// let host = "host-linux-arm-aws".parse()?;
    /// let (g0, g1) = (deriver.derive(&host), deriver.derive_generation(&host, 1));
    /// assert_eq!(g0.expose_secret(), deriver.derive_generation(&host, 0).expose_secret());
    /// assert_ne!(g0.expose_secret(), g1.expose_secret());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn derive_generation(&self, principal: &Principal, generation: u64) -> BuildKey {
        self.derive_for(principal, generation, Bound::Shared)
    }

    /// The key of `principal` at `generation` bound to one machine at the machine's own
    /// generation `machine_generation` (0 until `rotate --machine`): it verifies only when
    /// presented from `machine` (`mint --machine`). Its MAC input is tagged so that it
    /// equals no other key's (the module's documentation, "Messages").
    ///
    /// ```
    /// # use gobuildkey::derive::Deriver;
    /// # use gobuildkey::key::Algorithm;
    /// # let master = gobuildkey::master::MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let deriver = Deriver::new(&master, Algorithm::HmacSha256);
    /// let host = "host-linux-arm-aws".parse()?;
    /// let one = deriver.derive_machine(&host, 0, &"builder-1".parse()?, 0);
    /// let two = deriver.derive_machine(&host, 0, &"builder-2".parse()?, 0);
    /// let one_rotated = deriver.derive_machine(&host, 0, &"builder-1".parse()?, 1);
    /// assert_ne!(one.expose_secret(), two.expose_secret());
    /// assert_ne!(one.expose_secret(), one_rotated.expose_secret());
    /// assert_ne!(one.expose_secret(), deriver.derive(&host).expose_secret());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn derive_machine(
        &self,
        principal: &Principal,
        generation: u64,
        machine: &Machine,
        machine_generation: u64,
    ) -> BuildKey {
        self.derive_for(
            principal,
            generation,
            Bound::Machine(machine, machine_generation),
        )
    }

    /// The expiring token of `principal` at `generation` ([`crate::token`]): valid until
    /// `expires` (to the second) and, bound to `machine` (a machine and its own generation,
    /// 0 until `rotate --machine`), only when presented from it.
    ///
    /// ```
    /// # use gobuildkey::derive::Deriver;
    /// # use gobuildkey::key::Algorithm;
    /// # let master = gobuildkey::master::MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let deriver = Deriver::new(&master, Algorithm::HmacSha256);
    /// let expires: jiff::Timestamp = "2026-12-01T00:00:00Z".parse()?;
    /// let token = deriver.derive_token(&"host-a".parse()?, 0, None, expires);
    /// assert!(token.expose_secret().starts_with("gbk1_"));
    /// assert_eq!(token.expires(), Some(expires));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn derive_token(
        &self,
        principal: &Principal,
        generation: u64,
        machine: Option<(&Machine, u64)>,
        expires: jiff::Timestamp,
    ) -> BuildKey {
        let bound = machine.map_or(Bound::Shared, |(machine, machine_generation)| {
            Bound::Machine(machine, machine_generation)
        });
        // Whole seconds: a moment before 1970 is no expiry a token can carry.
        let seconds = expires.as_second().max(0);
        let tag = with_message(
            principal,
            generation,
            bound,
            Form::Token(seconds),
            |message| self.keyed.tag(message),
        );
        BuildKey::from_token(
            crate::token::encode(seconds, tag.as_slice()),
            self.algorithm(),
            jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        )
    }

    fn derive_for(&self, principal: &Principal, generation: u64, bound: Bound<'_>) -> BuildKey {
        BuildKey::from_mac(
            with_message(principal, generation, bound, Form::Key, |message| {
                self.keyed.tag(message)
            })
            .as_slice(),
            self.algorithm(),
        )
    }

    /// Whether `key` (a well-formed presented key) is the key of `principal` at
    /// `generation`, as a constant-time [`Choice`]: the verifier combines several without
    /// branching.
    #[cfg(test)]
    pub(crate) fn key_matches(
        &self,
        principal: &Principal,
        generation: u64,
        key: &WellFormed<'_>,
    ) -> Choice {
        self.key_matches_bound(principal, generation, Bound::Shared, Form::Key, key)
    }

    /// [`Deriver::key_matches`] for a key bound as `bound` says, of the form `form`.
    pub(crate) fn key_matches_bound(
        &self,
        principal: &Principal,
        generation: u64,
        bound: Bound<'_>,
        form: Form,
        key: &WellFormed<'_>,
    ) -> Choice {
        with_message(principal, generation, bound, form, |message| {
            self.keyed.matches(message, key)
        })
    }
}

impl fmt::Debug for Deriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deriver")
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

fn keyed_state<M: KeyInit>(key: &[u8]) -> M {
    // `new_from_slice` fails only for MACs with a fixed key size; HMAC takes any length.
    M::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// What a key is bound to, besides its principal and generation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound<'a> {
    /// Nothing: the principal's key, shared by every machine of it (Go's scheme).
    Shared,
    /// One machine, at the machine's own generation (0 until `rotate --machine`): the key
    /// verifies only when presented from it.
    Machine(&'a Machine, u64),
}

/// What kind of key a MAC is for, besides what it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// A plain key: lowercase hex of the MAC.
    Key,
    /// An expiring token ([`crate::token`]) that expires at these seconds since the epoch.
    Token(i64),
}

/// Builds the message (the module's documentation, "Messages") of `principal`'s key at
/// `generation`, bound as `bound` says, of the form `form`. The one place messages are made.
///
/// `then` gets the message in pieces, which the MAC takes one after the other (the MAC of
/// their concatenation), so that nothing is allocated for it.
fn with_message<T>(
    principal: &Principal,
    generation: u64,
    bound: Bound<'_>,
    form: Form,
    then: impl FnOnce(&[&[u8]]) -> T,
) -> T {
    let text = principal.as_str().as_bytes();
    if let Form::Token(expires) = form {
        let (name, machine_generation) = match bound {
            Bound::Shared => (&b""[..], 0),
            Bound::Machine(machine, machine_generation) => {
                (machine.as_str().as_bytes(), machine_generation)
            }
        };
        return then(&[
            &[0x00, b't'],
            &length(text),
            text,
            &generation.to_be_bytes(),
            &expires.to_be_bytes(),
            &length(name),
            name,
            &machine_generation.to_be_bytes(),
        ]);
    }
    match (bound, generation) {
        (Bound::Shared, 0) => then(&[text]),
        (Bound::Shared, n) => then(&[text, b"#", itoa::Buffer::new().format(n).as_bytes()]),
        (Bound::Machine(machine, machine_generation), n) => {
            let name = machine.as_str().as_bytes();
            then(&[
                &[0x00, b'm'],
                &length(text),
                text,
                &n.to_be_bytes(),
                &length(name),
                name,
                &machine_generation.to_be_bytes(),
            ])
        }
    }
}

/// A principal's or machine's length as two bytes, big endian (both are at most 253).
fn length(text: &[u8]) -> [u8; 2] {
    u16::try_from(text.len()).unwrap_or(u16::MAX).to_be_bytes()
}

/// The derivation: a copy of the keyed state, fed the message's pieces. Deriving and
/// verifying both start here, and nothing else computes a MAC.
fn mac_of<M: Mac + Clone>(keyed: &M, message: &[&[u8]]) -> M {
    let mut mac = keyed.clone();
    for piece in message {
        mac.update(piece);
    }
    mac
}

impl Keyed {
    /// Whether `tag` is the MAC of `message`, compared in constant time with the MAC where
    /// it is computed (a `CtOutput`, wiped on drop): no copy of it is made.
    fn matches(&self, message: &[&[u8]], key: &WellFormed<'_>) -> Choice {
        // The MAC is written as hex (base16ct: constant time) and the texts compared, rather
        // than the presented key decoded: a third of the cost (docs/performance.md).
        let mut hex = Wiped([0u8; 2 * MAX_MAC_LEN]);
        let ours = match self {
            Self::Sha256(state) => {
                base16ct::lower::encode(mac_of(state, message).finalize().as_bytes(), &mut hex.0)
            }
            Self::Md5(state) => {
                base16ct::lower::encode(mac_of(state, message).finalize().as_bytes(), &mut hex.0)
            }
        };
        ours.map_or(Choice::from(0), |ours| ct_eq_words(ours, key.0))
    }

    /// The MAC of `message`, in memory wiped on drop.
    fn tag(&self, message: &[&[u8]]) -> Tag {
        // `finalize` returns a `CtOutput`, which wipes itself on drop.
        match self {
            Self::Sha256(state) => Tag::from(&mac_of(state, message).finalize().as_bytes()[..]),
            Self::Md5(state) => Tag::from(&mac_of(state, message).finalize().as_bytes()[..]),
        }
    }
}

/// A buffer on the stack, wiped on drop as one slice (`zeroize` on `[u8]`: a fill and an
/// optimisation barrier) rather than as `Zeroizing<[u8; N]>` wipes an array, a volatile
/// write a byte: on every verification that was more than a hex encoding costs.
struct Wiped<const N: usize>([u8; N]);

impl<const N: usize> Drop for Wiped<N> {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

/// The longest MAC of any [`Algorithm`], in bytes.
const MAX_MAC_LEN: usize = 32;

/// A MAC (computed, or decoded from a presented key), on the stack, wiped on drop.
pub(crate) struct Tag {
    bytes: Zeroizing<[u8; MAX_MAC_LEN]>,
    len: usize,
}

impl Tag {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl From<&[u8]> for Tag {
    fn from(mac: &[u8]) -> Self {
        let mut bytes = Zeroizing::new([0u8; MAX_MAC_LEN]);
        let len = mac.len().min(MAX_MAC_LEN);
        bytes[..len].copy_from_slice(&mac[..len]);
        Self { bytes, len }
    }
}

/// A presented key, already trimmed by its rule ([`crate::key::Presented::text`]), that is
/// well formed for its algorithm.
pub(crate) struct WellFormed<'a>(&'a [u8]);

/// `text` as a key of `alg`, if it is one in form: exactly `alg`'s number of lowercase hex
/// digits. Nothing more is trimmed here.
///
/// Every byte is looked at, with no early exit: how long this takes depends on the text's
/// length only, not on where a wrong digit is.
pub(crate) fn well_formed(text: &[u8], alg: Algorithm) -> Option<WellFormed<'_>> {
    let hex = |b: u8| b.is_ascii_digit() | (b'a'..=b'f').contains(&b);
    let ok = text.len() == alg.hex_len() && text.iter().fold(true, |ok, &b| ok & hex(b));
    ok.then_some(WellFormed(text))
}

/// `a == b` in constant time, eight bytes at a time (`subtle` on `u64`s: one optimisation
/// barrier a word instead of one a byte, a fifth of the cost for a key); texts of different
/// lengths are unequal.
/// The presented text (already trimmed) as something the verifier compares: a plain key of
/// the algorithm its length tells, or a well-formed expiring token ([`crate::token`]: its
/// checksum checked before any MAC is computed). `None` when it is neither.
pub(crate) fn presented_form(text: &[u8]) -> Option<(Algorithm, WellFormed<'_>, Form)> {
    if crate::token::is_token(text) {
        let fields = crate::token::parse(text).ok()?;
        let key = well_formed(fields.mac_hex, fields.alg)?;
        return Some((fields.alg, key, Form::Token(fields.expires)));
    }
    Algorithm::ALL
        .into_iter()
        .find_map(|alg| well_formed(text, alg).map(|key| (alg, key, Form::Key)))
}

fn ct_eq_words(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a_words.remainder().ct_eq(b_words.remainder());
    a_words.zip(b_words).fold(tail, |equal, (x, y)| {
        let word = |bytes: &[u8]| u64::from_ne_bytes(std::array::from_fn(|i| bytes[i]));
        equal & word(x).ct_eq(&word(y))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::key::hex_of;

    fn p(name: &str) -> Principal {
        Principal::new(name).unwrap()
    }

    #[test]
    fn debug_never_shows_secrets() {
        let d = Deriver::from_key_bytes(b"0123456789abcdef0123", Algorithm::HmacSha256);
        let key = d.derive(&p("host-x"));
        let shown = format!("{key:?} {d:?}");
        assert!(!shown.contains(&key.expose_secret()[..8]), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains(key.fingerprint().as_str()));
    }

    #[test]
    fn derive_and_match_for_each_algorithm() {
        for alg in Algorithm::ALL {
            let d = Deriver::from_key_bytes(b"a master of twenty bytes", alg);
            let key = d.derive(&p("host-x"));
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.expose_secret().len(), alg.hex_len());
            let tag = well_formed(key.expose_secret().as_bytes(), alg).unwrap();
            assert!(bool::from(d.key_matches(&p("host-x"), 0, &tag)));
            assert!(!bool::from(d.key_matches(&p("host-y"), 0, &tag)));
            assert!(!bool::from(d.key_matches(&p("host-x"), 1, &tag)));
            let g1 = d.derive_generation(&p("host-x"), 1);
            let tag1 = well_formed(g1.expose_secret().as_bytes(), alg).unwrap();
            assert!(bool::from(d.key_matches(&p("host-x"), 1, &tag1)));
        }
    }

    fn message(principal: &Principal, generation: u64, bound: Bound<'_>) -> Vec<u8> {
        message_of(principal, generation, bound, Form::Key)
    }

    fn message_of(principal: &Principal, generation: u64, bound: Bound<'_>, form: Form) -> Vec<u8> {
        with_message(
            principal,
            generation,
            bound,
            form,
            |pieces: &[&[u8]]| pieces.concat(),
        )
    }

    #[test]
    fn generations_have_distinct_messages() {
        let host = p("host-x");
        let message = |g| message(&host, g, Bound::Shared);
        assert_eq!(message(0), b"host-x");
        assert_eq!(message(1), b"host-x#1");
        assert_eq!(message(12), b"host-x#12");
        assert_eq!(message(u64::MAX), b"host-x#18446744073709551615");
    }

    /// The machine-bound message, byte for byte as the module's documentation gives it: at
    /// machine generation 0 exactly the message of the keys minted before machines had
    /// generations (so those keys stay valid), and the machine's generation in its last
    /// eight bytes once it is rotated on its own.
    #[test]
    fn a_machine_keys_message_is_as_documented() {
        let machine: Machine = "Builder-1".parse().unwrap();
        let mut expected = vec![0x00, b'm', 0, 6];
        expected.extend_from_slice(b"host-x");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
        expected.extend_from_slice(&[0, 9]);
        expected.extend_from_slice(b"builder-1");
        let mut rotated = expected.clone();
        expected.extend_from_slice(&[0; 8]);
        assert_eq!(
            message(&p("host-x"), 3, Bound::Machine(&machine, 0)),
            expected
        );
        rotated.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            message(&p("host-x"), 3, Bound::Machine(&machine, 258)),
            rotated
        );
    }

    /// A machine key minted before machines had generations (its message then ended in
    /// eight zero bytes, "reserved"): the same key at machine generation 0. The value is
    /// HMAC-SHA256 of that documented message, computed apart (Python's `hmac`).
    #[test]
    fn a_machine_key_of_generation_0_is_unchanged() {
        let d = Deriver::from_key_bytes(b"an example master, 32 bytes long", Algorithm::HmacSha256);
        let key = d.derive_machine(&p("host-a"), 0, &"builder-1".parse().unwrap(), 0);
        assert_eq!(key.expose_secret(), MACHINE_KEY_BEFORE_GENERATIONS);
    }

    /// `derive_machine(host-a, 0, builder-1)` under "an example master, 32 bytes long",
    /// HMAC-SHA256, as minted before machines had generations of their own.
    const MACHINE_KEY_BEFORE_GENERATIONS: &str =
        "5da1856691fe124f5ae611fd788fdf728baccd2b81148f5c362764290f2089ad";

    #[test]
    fn a_tokens_message_is_as_documented() {
        let machine: Machine = "Builder-1".parse().unwrap();
        let mut shared = vec![0x00, b't', 0, 6];
        shared.extend_from_slice(b"host-x");
        shared.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
        shared.extend_from_slice(&[0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00]);
        let mut bound = shared.clone();
        shared.extend_from_slice(&[0, 0]);
        shared.extend_from_slice(&[0; 8]);
        bound.extend_from_slice(&[0, 9]);
        bound.extend_from_slice(b"builder-1");
        let mut rotated = bound.clone();
        bound.extend_from_slice(&[0; 8]);
        rotated.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        let token = Form::Token(1_700_000_000);
        assert_eq!(message_of(&p("host-x"), 3, Bound::Shared, token), shared);
        assert_eq!(
            message_of(&p("host-x"), 3, Bound::Machine(&machine, 0), token),
            bound
        );
        assert_eq!(
            message_of(&p("host-x"), 3, Bound::Machine(&machine, 7), token),
            rotated
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// No two keys share a message, whatever the principals, generations, machines and
        /// machine generations (names drawn from small alphabets, numbers from small
        /// ranges, so that near misses are common).
        #[test]
        fn no_two_keys_share_a_message(
            a in ("[a-z0-9][a-z0-9#.m_t-]{0,6}", 0u64..40, proptest::option::of(("[a-z0-9][a-z0-9.m-]{0,6}", 0u64..3)), proptest::option::of(0i64..3)),
            b in ("[a-z0-9][a-z0-9#.m_t-]{0,6}", 0u64..40, proptest::option::of(("[a-z0-9][a-z0-9.m-]{0,6}", 0u64..3)), proptest::option::of(0i64..3)),
        ) {
            type Drawn = (String, u64, Option<(String, u64)>, Option<i64>);
            let key = |(name, generation, machine, expires): &Drawn| {
                let principal = Principal::new(name).ok()?;
                let machine = machine.as_ref().map(|(m, g)| (Machine::new(m).unwrap(), *g));
                let bound = machine.as_ref().map_or(Bound::Shared, |(m, g)| Bound::Machine(m, *g));
                let form = expires.map_or(Form::Key, Form::Token);
                Some((
                    message_of(&principal, *generation, bound, form),
                    (principal, *generation, machine, form),
                ))
            };
            if let (Some((ma, ka)), Some((mb, kb))) = (key(&a), key(&b)) {
                proptest::prop_assert_eq!(ma == mb, ka == kb, "{:?} {:?}", ka, kb);
            }
        }
    }

    #[test]
    fn well_formed_checks_the_algorithm_and_trims_nothing() {
        let sha = "0123456789abcdef".repeat(4);
        assert!(well_formed(sha.as_bytes(), Algorithm::HmacSha256).is_some());
        assert!(well_formed(format!(" {sha}").as_bytes(), Algorithm::HmacSha256).is_none());
        assert!(well_formed(sha.as_bytes(), Algorithm::HmacMd5).is_none());
        assert!(well_formed(sha.to_uppercase().as_bytes(), Algorithm::HmacSha256).is_none());
        assert!(well_formed(&sha.as_bytes()[1..], Algorithm::HmacSha256).is_none());
        for bad in [b'g', b'G', b'/', b':', b'`', 0, 0xff] {
            let mut text = sha.clone().into_bytes();
            text[63] = bad;
            assert!(well_formed(&text, Algorithm::HmacSha256).is_none(), "{bad}");
        }
    }

    #[test]
    fn words_compare_equal_only_when_every_byte_is() {
        let a: Vec<u8> = (0..64).collect();
        assert!(bool::from(ct_eq_words(&a, &a)));
        for i in 0..64 {
            let mut b = a.clone();
            b[i] ^= 1;
            assert!(!bool::from(ct_eq_words(&a, &b)), "{i}");
        }
        assert!(!bool::from(ct_eq_words(&a, &a[..63])));
        assert!(bool::from(ct_eq_words(&a[..13], &a[..13])));
        assert!(!bool::from(ct_eq_words(
            &a[..13],
            &[&a[..12], &[99][..]].concat()
        )));
    }

    #[derive(serde::Deserialize)]
    struct Rfc4231Case {
        case: u32,
        key: String,
        data: String,
        hmac_sha256: String,
        #[serde(default)]
        truncate_bytes: Option<usize>,
    }

    /// RFC 4231's HMAC-SHA256 test cases, through the keyed state and `tag` that
    /// `derive` uses (the data are not principals, so they go in below `with_message`).
    #[test]
    fn rfc4231_hmac_sha256() {
        let cases: Vec<Rfc4231Case> =
            serde_json::from_str(include_str!("../tests/data/rfc4231.json")).unwrap();
        assert_eq!(cases.len(), 7);
        for case in cases {
            let d =
                Deriver::from_key_bytes(&hex::decode(&case.key).unwrap(), Algorithm::HmacSha256);
            let got = hex_of(d.keyed.tag(&[&hex::decode(&case.data).unwrap()]).as_slice());
            let want = case
                .truncate_bytes
                .map_or(case.hmac_sha256.len(), |n| n * 2);
            assert_eq!(
                &got[..want],
                case.hmac_sha256,
                "RFC 4231 case {}",
                case.case
            );
        }
    }
}
