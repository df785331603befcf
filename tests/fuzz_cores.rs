//! The fuzz targets' cores (`gobuildkey::fuzzing`) under proptest, in every `cargo test`:
//! arbitrary bytes, and inputs built near the valid ones, where bugs hide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gobuildkey::fuzzing;
use proptest::prelude::*;

/// The key the fuzzing fixture accepts for `host-a` (its master is fixed).
fn fixture_key() -> String {
    let master =
        gobuildkey::master::MasterSecret::from_text(b"a fuzzing master of 32 bytes....").unwrap();
    gobuildkey::derive::Deriver::new(&master, gobuildkey::key::Algorithm::HmacSha256)
        .derive(&"host-a".parse().unwrap())
        .expose_secret()
        .to_owned()
}

/// What may pad a key: every White_Space code point (which Go's `TrimSpace` trims), code
/// points that are not (U+001C, U+200B, U+180E, U+FEFF), and invalid UTF-8 (which stops
/// the trimming).
const PADDING: [&[u8]; 33] = [
    b" ",
    b"\t",
    b"\n",
    b"\x0b",
    b"\x0c",
    b"\r",
    "\u{85}".as_bytes(),
    "\u{a0}".as_bytes(),
    "\u{1680}".as_bytes(),
    "\u{2000}".as_bytes(),
    "\u{2001}".as_bytes(),
    "\u{2002}".as_bytes(),
    "\u{2003}".as_bytes(),
    "\u{2004}".as_bytes(),
    "\u{2005}".as_bytes(),
    "\u{2006}".as_bytes(),
    "\u{2007}".as_bytes(),
    "\u{2008}".as_bytes(),
    "\u{2009}".as_bytes(),
    "\u{200a}".as_bytes(),
    "\u{2028}".as_bytes(),
    "\u{2029}".as_bytes(),
    "\u{202f}".as_bytes(),
    "\u{205f}".as_bytes(),
    "\u{3000}".as_bytes(),
    "\u{1c}".as_bytes(),
    "\u{200b}".as_bytes(),
    "\u{180e}".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff",
    b"\x80",
    b"\xe3\x80",
    b"\xc2",
];

fn padding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Mostly ASCII whitespace, as files have it.
        "[ \t\r\n\x0b\x0c]{0,3}".prop_map(String::into_bytes),
        prop::collection::vec(prop::sample::select(&PADDING[..]), 0..4)
            .prop_map(|pieces| pieces.concat()),
    ]
}

/// Text near a key: the key, cut, padded, with a digit changed, upper-cased, or noise.
fn near_key() -> impl Strategy<Value = Vec<u8>> {
    near(fixture_key())
}

/// Text near the fixture's expiring token, changed as [`near_key`] changes a key.
fn near_token() -> impl Strategy<Value = Vec<u8>> {
    near(fuzzing::fixture_token())
}

fn near(key: String) -> impl Strategy<Value = Vec<u8>> {
    (0usize..61, 0u8..=255, 0usize..6, padding(), padding()).prop_map(
        move |(at, byte, how, before, after)| {
            let mut k = key.clone().into_bytes();
            match how {
                0 => {}
                1 => k.truncate(at),
                2 => k[at] = byte,
                3 => k.make_ascii_uppercase(),
                4 => k.extend_from_slice(&k.clone()),
                _ => k.insert(at, byte),
            }
            let mut out = before;
            out.extend(k);
            out.extend(after);
            out
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn key_parsing_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::key_parsing(&data);
    }

    #[test]
    fn key_parsing_near_tokens(data in near_token()) {
        fuzzing::key_parsing(&data);
    }

    #[test]
    fn key_parsing_near_keys(data in near_key()) {
        fuzzing::key_parsing(&data);
    }

    #[test]
    fn principal_parsing_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::principal_parsing(&data);
    }

    #[test]
    fn principal_parsing_near_names(data in "[a-zA-Z0-9._/#\\- \u{1b}\u{e9}]{0,140}") {
        fuzzing::principal_parsing(data.as_bytes());
    }

    #[test]
    fn batch_lines(principal in "(host-a|host-b|user-a|HOST|[a-z.]{0,8})", sep in "[ \t]{0,2}", key in near_key(), tail in "(\r|x| y)?") {
        let mut line = principal.into_bytes();
        line.extend(sep.bytes());
        line.extend(key);
        line.extend(tail.bytes());
        fuzzing::batch_line(&line);
    }

    #[test]
    fn batch_line_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::batch_line(&data);
    }

    #[test]
    fn service_headers(host in "(host-a|host-b|user-a|[ -~]{0,10})", key in near_key(), extra in prop::collection::vec(any::<u8>(), 0..20), split in 0usize..4) {
        let mut data = host.into_bytes();
        data.push(0);
        data.extend(key);
        match split {
            0 => {}
            1 => { data.push(0); data.extend(extra); }
            2 => data.extend(extra),
            _ => { data.insert(0, 0); }
        }
        fuzzing::service_headers(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn policy_parsing_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::policy_parsing(&data);
    }

    #[test]
    fn policy_parsing_near_policies(
        name in "(host-a|Host|a\\.b|\"q\"|[a-z]{1,5})",
        field in "(generation|revoked|keep_previous|minted_under|genration)",
        value in "(0|1|-1|9223372036854775807|9223372036854775808|true|false|\"x\"|2026-12-01|2026-12-01T00:00:00Z|1.5|\\[\\])",
        keyring in "(|\\[keyring\\]\nprevious = \\[\\{ file = \"a\" \\}\\]\n|\\[\\[keyring.previous\\]\\]\ncommand = \"c\"\n)",
    ) {
        let text = format!("{keyring}[principals.{name}]\n{field} = {value}\n");
        fuzzing::policy_parsing(text.as_bytes());
    }
}
