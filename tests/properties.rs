//! Properties of derivation and verification over generated principals, masters and keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gobuildkey::keys::{Algorithm, Deriver, Principal, Reason, Verdict};
use gobuildkey::master::MasterSecret;
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_minted_key_verifies(m in master(), p in principal(), a in alg()) {
        let d = Deriver::new(&m, a);
        let key = d.derive(&p);
        prop_assert_eq!(key.expose_secret().len(), a.hex_len());
        prop_assert_eq!(d.verify(&p, key.expose_secret().as_bytes()), Verdict::Valid);
    }

    #[test]
    fn another_principals_key_fails(m in master(), p in principal(), q in principal(), a in alg()) {
        prop_assume!(p != q);
        let d = Deriver::new(&m, a);
        let key = d.derive(&q);
        prop_assert_eq!(
            d.verify(&p, key.expose_secret().as_bytes()),
            Verdict::Invalid(Reason::Mismatch)
        );
    }

    #[test]
    fn another_masters_key_fails(m in master(), n in master(), p in principal(), a in alg()) {
        prop_assume!(m.expose_secret() != n.expose_secret());
        let key = Deriver::new(&n, a).derive(&p);
        prop_assert!(!Deriver::new(&m, a).verify(&p, key.expose_secret().as_bytes()).is_valid());
    }

    #[test]
    fn any_altered_digit_fails(
        m in master(), p in principal(), a in alg(), at in any::<prop::sample::Index>(), to in 0u8..15,
    ) {
        let d = Deriver::new(&m, a);
        let mut key = d.derive(&p).expose_secret().as_bytes().to_vec();
        let i = at.index(key.len());
        let digits = b"0123456789abcdef";
        let old = digits.iter().position(|&c| c == key[i]).unwrap();
        // One of the 15 other hex digits.
        key[i] = digits[(old + 1 + usize::from(to)) % 16];
        prop_assert_eq!(d.verify(&p, &key), Verdict::Invalid(Reason::Mismatch));
    }

    #[test]
    fn any_other_text_fails(m in master(), p in principal(), a in alg(), text in prop::collection::vec(any::<u8>(), 0..200)) {
        let d = Deriver::new(&m, a);
        let key = d.derive(&p);
        prop_assume!(gobuildkey::keys::trim_space(&text) != key.expose_secret().as_bytes());
        prop_assert!(!d.verify(&p, &text).is_valid());
    }
}
