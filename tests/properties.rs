//! Properties of derivation and verification over generated principals, masters, keys
//! and sequences of admin operations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gobuildkey::derive::Deriver;
use gobuildkey::key::Algorithm;
use gobuildkey::master::MasterSecret;
use gobuildkey::policy::{Grace, Policy};
use gobuildkey::principal::Principal;
use gobuildkey::verifier::{Reason, Verdict, Verifier};
use jiff::Timestamp;
use proptest::prelude::*;

fn principal() -> impl Strategy<Value = Principal> {
    "[a-z0-9][a-z0-9_-]{0,40}(\\.[a-z0-9_-]{1,10})?".prop_map(|s| s.parse().unwrap())
}

fn master() -> impl Strategy<Value = MasterSecret> {
    // Printable, no whitespace at the ends (it would be trimmed), 16 to 200 bytes.
    "[!-~][ -~]{14,198}[!-~]".prop_map(|s| MasterSecret::from_text(s.as_bytes()).unwrap())
}

fn alg() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::HmacSha256), Just(Algorithm::HmacMd5)]
}

fn verdict(m: &MasterSecret, a: Algorithm, p: &Principal, presented: &[u8]) -> Verdict {
    Verifier::new(m, a).verify(p, presented).verdict
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_minted_key_verifies(m in master(), p in principal(), a in alg()) {
        let key = Deriver::new(&m, a).derive(&p);
        prop_assert_eq!(key.expose_secret().len(), a.hex_len());
        prop_assert_eq!(verdict(&m, a, &p, key.expose_secret().as_bytes()), Verdict::Valid);
    }

    #[test]
    fn another_principals_key_fails(m in master(), p in principal(), q in principal(), a in alg()) {
        prop_assume!(p != q);
        let key = Deriver::new(&m, a).derive(&q);
        prop_assert_eq!(
            verdict(&m, a, &p, key.expose_secret().as_bytes()),
            Verdict::Invalid(Reason::Mismatch)
        );
    }

    #[test]
    fn another_masters_key_fails(m in master(), n in master(), p in principal(), a in alg()) {
        prop_assume!(m.expose_secret() != n.expose_secret());
        let key = Deriver::new(&n, a).derive(&p);
        prop_assert!(!verdict(&m, a, &p, key.expose_secret().as_bytes()).is_valid());
    }

    #[test]
    fn any_altered_digit_fails(
        m in master(), p in principal(), a in alg(), at in any::<prop::sample::Index>(), to in 0u8..15,
    ) {
        let mut key = Deriver::new(&m, a).derive(&p).expose_secret().as_bytes().to_vec();
        let i = at.index(key.len());
        let digits = b"0123456789abcdef";
        let old = digits.iter().position(|&c| c == key[i]).unwrap();
        // One of the 15 other hex digits.
        key[i] = digits[(old + 1 + usize::from(to)) % 16];
        prop_assert_eq!(verdict(&m, a, &p, &key), Verdict::Invalid(Reason::Mismatch));
    }

    #[test]
    fn any_other_text_fails(m in master(), p in principal(), a in alg(), text in prop::collection::vec(any::<u8>(), 0..200)) {
        let key = Deriver::new(&m, a).derive(&p);
        prop_assume!(gobuildkey::text::trim_space(&text) != key.expose_secret().as_bytes());
        prop_assert!(!verdict(&m, a, &p, &text).is_valid());
    }
}

/// The admin operations of issue 4, on three principals and a pool of four masters.
#[derive(Debug, Clone)]
enum Op {
    Rotate(usize, Grace),
    EndGrace(usize),
    Revoke(usize),
    Reinstate(usize),
    /// A new primary master (from the pool); the old primary joins the keyring.
    MasterRotate(usize),
    /// The keyring's entry (by position) is retired.
    MasterRetire(usize),
}

const NAMES: [&str; 3] = ["host-a", "host-b", "user-c"];

fn now() -> Timestamp {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn op() -> impl Strategy<Value = Op> {
    let grace = prop_oneof![
        Just(Grace::None),
        Just(Grace::Open),
        Just(Grace::Until("2026-11-25T00:00:00Z".parse().unwrap())),
        Just(Grace::Until("2026-11-23T00:00:00Z".parse().unwrap())),
    ];
    prop_oneof![
        (0..3usize, grace).prop_map(|(p, g)| Op::Rotate(p, g)),
        (0..3usize).prop_map(Op::EndGrace),
        (0..3usize).prop_map(Op::Revoke),
        (0..3usize).prop_map(Op::Reinstate),
        (0..4usize).prop_map(Op::MasterRotate),
        (0..4usize).prop_map(Op::MasterRetire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// After every operation, for every principal, master of the pool and generation up to
    /// one past the current: a key verifies exactly when the principal is not revoked, its
    /// master is the primary or in the keyring, and its generation is the current one (or
    /// the previous one during a grace period). So no sequence lets a revoked, superseded
    /// or retired key in, and none locks a current key out.
    #[test]
    fn no_sequence_of_operations_breaks_the_rules(ops in prop::collection::vec(op(), 1..25)) {
        let pool: Vec<MasterSecret> = (0..4)
            .map(|i| MasterSecret::from_text(format!("master number {i} of the pool").as_bytes()).unwrap())
            .collect();
        let principals: Vec<Principal> = NAMES.iter().map(|n| n.parse().unwrap()).collect();
        let mut policy = Policy::none();
        let mut primary = 0usize;
        let mut keyring: Vec<usize> = Vec::new();

        for op in ops {
            match op {
                Op::Rotate(i, grace) => {
                    let mut s = policy.state(&principals[i]);
                    s.generation += 1;
                    s.keep_previous = grace;
                    policy.set_state(&principals[i], &s).unwrap();
                }
                Op::EndGrace(i) => {
                    let mut s = policy.state(&principals[i]);
                    s.keep_previous = Grace::None;
                    policy.set_state(&principals[i], &s).unwrap();
                }
                Op::Revoke(i) | Op::Reinstate(i) => {
                    let mut s = policy.state(&principals[i]);
                    s.revoked = matches!(op, Op::Revoke(_));
                    policy.set_state(&principals[i], &s).unwrap();
                }
                Op::MasterRotate(new) => {
                    if new != primary {
                        if !keyring.contains(&primary) {
                            keyring.push(primary);
                        }
                        keyring.retain(|&m| m != new);
                        primary = new;
                    }
                }
                Op::MasterRetire(at) => {
                    if at < keyring.len() {
                        keyring.remove(at);
                    }
                }
            }

            let mut verifier = Verifier::new(&pool[primary], Algorithm::HmacSha256);
            for &m in &keyring {
                verifier = verifier.with_previous_master(&pool[m]);
            }
            let verifier = verifier.with_policy(policy.clone());
            for p in &principals {
                let s = policy.state(p);
                for (m, master) in pool.iter().enumerate() {
                    let deriver = Deriver::new(master, Algorithm::HmacSha256);
                    for g in 0..=s.generation + 1 {
                        let key = deriver.derive_generation(p, g);
                        let accepted_generation = g == s.generation
                            || (g + 1 == s.generation && s.keep_previous.active_at(now()));
                        let expected = !s.revoked
                            && (m == primary || keyring.contains(&m))
                            && accepted_generation;
                        let got = verifier.verify_at(p, key.expose_secret().as_bytes(), now());
                        prop_assert_eq!(got.verdict.is_valid(), expected,
                            "{} master {} generation {} state {:?}", p, m, g, s);
                        if s.revoked {
                            prop_assert_eq!(got.verdict, Verdict::Invalid(Reason::Revoked));
                        }
                        if expected {
                            prop_assert_eq!(got.generation, Some(g));
                            prop_assert_eq!(got.master, Some(master.fingerprint()));
                        }
                    }
                }
            }
        }
    }
}

/// Every code point Go's `unicode.IsSpace` is true for, and nothing else.
const GO_SPACES: [char; 25] = [
    '\t', '\n', '\u{0b}', '\u{0c}', '\r', ' ', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
    '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}',
    '\u{2009}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
];

fn go_spaces() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&GO_SPACES[..]), 0..5)
        .prop_map(|spaces| spaces.into_iter().collect())
}

/// What cannot be trimmed at the edge of a text, however it is followed or preceded: a
/// character that is no space, or a byte that is never part of valid UTF-8 (0xC0, 0xC1,
/// 0xF5..0xFF), so no neighbour can make a space of it.
fn edge() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<char>()
            .prop_filter("no space", |c| !GO_SPACES.contains(c))
            .prop_map(|c| c.to_string().into_bytes()),
        prop_oneof![Just(0xc0u8), Just(0xc1), 0xf5u8..=0xff].prop_map(|b| vec![b]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// On valid UTF-8, Go's `TrimSpace` is `str::trim` (std's White_Space).
    #[test]
    fn trim_space_of_text_is_str_trim(text in "\\PC{0,20}", before in go_spaces(), after in go_spaces()) {
        let padded = format!("{before}{text}{after}");
        prop_assert_eq!(gobuildkey::text::trim_space(padded.as_bytes()), padded.trim().as_bytes());
    }

    /// Spaces around anything that starts and ends with what is no space (a character or
    /// an invalid byte) are trimmed, and only they: the inside, invalid UTF-8 and all, stays.
    #[test]
    fn spaces_go_up_to_the_first_thing_that_is_no_space(
        before in go_spaces(),
        first in edge(),
        inside in prop::collection::vec(any::<u8>(), 0..12),
        last in edge(),
        after in go_spaces(),
    ) {
        let core = [first, inside, last].concat();
        let padded = [before.as_bytes(), &core, after.as_bytes()].concat();
        prop_assert_eq!(gobuildkey::text::trim_space(&padded), &core[..]);
    }

    /// A master padded with spaces gives the keys of the master without them, whatever
    /// the spaces are.
    #[test]
    fn spaces_around_a_master_change_no_key(m in master(), p in principal(), a in alg(), before in go_spaces(), after in go_spaces()) {
        let padded = [before.as_bytes(), m.expose_secret(), after.as_bytes()].concat();
        let again = MasterSecret::from_text(&padded).unwrap();
        prop_assert_eq!(again.expose_secret(), m.expose_secret());
        let (got, want) = (Deriver::new(&again, a).derive(&p), Deriver::new(&m, a).derive(&p));
        prop_assert_eq!(got.expose_secret(), want.expose_secret());
    }
}
