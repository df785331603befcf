//! The cores of the fuzz targets: each takes arbitrary bytes, runs one parser or handler
//! on them, and panics if a property does not hold. `fuzz/` runs them under libFuzzer
//! (cargo-fuzz); `tests/fuzz_cores.rs` runs them under proptest in every `cargo test`, so CI
//! exercises them without a nightly toolchain. Not an API for anything else.

use std::sync::OnceLock;

use jiff::Timestamp;

use crate::derive::Deriver;
use crate::key::{Algorithm, BuildKey, Presented};
use crate::master::MasterSecret;
use crate::policy::Policy;
use crate::principal::{Kind, Principal};
use crate::text::Trim;
use crate::verifier::Verifier;

/// The master and verifier the cores verify against, and the key they must never accept
/// by accident.
struct Fixture {
    verifier: Verifier,
    key: String,
    /// An expiring token of the same principal, valid for 30 days from the fixture's making.
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let master = MasterSecret::from_text(b"a fuzzing master of 32 bytes....")
            .unwrap_or_else(|e| unreachable!("a valid master: {e}"));
        let host = Principal::new("host-a").unwrap_or_else(|e| unreachable!("{e}"));
        let deriver = Deriver::new(&master, Algorithm::HmacSha256);
        let key = deriver.derive(&host).expose_secret().to_owned();
        let expires = Timestamp::now() + jiff::SignedDuration::from_hours(30 * 24);
        let token = deriver
            .derive_token(&host, 0, None, expires)
            .expose_secret()
            .to_owned();
        Fixture {
            verifier: Verifier::new(&master, Algorithm::HmacSha256).only_kind(Kind::Host),
            key,
            token,
        }
    })
}

/// The fixture's expiring token of `host-a` (valid for 30 days from the fixture's making):
/// what `tests/fuzz_cores.rs` builds near-tokens from.
#[must_use]
pub fn fixture_token() -> String {
    fixture().token.clone()
}

/// Key parsing: never panics; what parses is 32 or 64 lowercase hex digits, or a token
/// (`gbk1_` and lowercase hex, [`crate::token`]), parses again to the same key, and is the
/// trimmed input (Go's `TrimSpace`: [`crate::text::trim_space`]). Verifying the bytes as a
/// key file's accepts exactly the key or the fixture's token trimmed by that rule, and as a
/// header's (at the epoch, when every token claims too long a life) exactly the key trimmed
/// by the header rule (spaces and tabs).
pub fn key_parsing(data: &[u8]) {
    if let Ok(key) = BuildKey::parse(data) {
        let text = key.expose_secret();
        let digits = match text.strip_prefix(crate::key::TOKEN_PREFIX) {
            Some(digits) => {
                assert!(text.len() == 61 || text.len() == 93);
                assert!(key.expires().is_some());
                digits
            }
            None => {
                assert!(text.len() == 32 || text.len() == 64);
                text
            }
        };
        assert!(
            digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(text.as_bytes(), crate::text::trim_space(data));
        let again = BuildKey::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.ct_eq(&key));
    }
    // Whatever it is, verifying it never panics and never accepts a key it is not.
    let fixture = fixture();
    let host = Principal::new("host-a").unwrap_or_else(|e| unreachable!("{e}"));
    let valid = fixture.verifier.verify(&host, data).verdict.is_valid();
    let trimmed = crate::text::trim_space(data);
    assert_eq!(
        valid,
        trimmed == fixture.key.as_bytes() || trimmed == fixture.token.as_bytes()
    );
    let now = Timestamp::UNIX_EPOCH;
    let as_header = fixture
        .verifier
        .verify_at(&host, Presented::header(data), now);
    assert_eq!(
        as_header.verdict.is_valid(),
        Trim::Header.apply(data) == fixture.key.as_bytes()
    );
    // What the header rule accepts, the key file's accepts too (it trims more).
    assert!(!as_header.verdict.is_valid() || valid);
    // Trimming is idempotent, and takes away valid UTF-8 White_Space only (as std's
    // `char::is_whitespace` has it): the trimmed text is a slice of the input whose
    // surroundings are spaces.
    assert_eq!(crate::text::trim_space(trimmed), trimmed);
    let start = (trimmed.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
    let end = start + trimmed.len();
    assert!(end <= data.len());
    for cut in [&data[..start], &data[end..]] {
        let cut = std::str::from_utf8(cut).unwrap_or_else(|e| panic!("{e}"));
        assert!(cut.chars().all(char::is_whitespace), "{cut:?}");
    }
}

/// Principal parsing: never panics; what parses follows the rule; what does not gives a
/// message without control characters.
pub fn principal_parsing(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Principal::new(&text) {
        Ok(p) => {
            let s = p.as_str();
            assert!((1..=Principal::MAX_LEN).contains(&s.len()));
            assert!(
                s.bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            );
            assert!(!s.contains(".."));
            assert!(s.as_bytes()[0].is_ascii_alphanumeric());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
    }
}

/// Policy parsing: never panics; what parses, written back out, parses to the same state.
pub fn policy_parsing(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::parse(text, None) {
        let again = Policy::parse(&policy.to_text(), None).unwrap_or_else(|e| panic!("{e}"));
        let mine: Vec<_> = policy.principals().collect();
        let theirs: Vec<_> = again.principals().collect();
        assert_eq!(mine, theirs);
        assert_eq!(policy.keyring(), again.keyring());
    }
}

/// Batch-line handling: never panics; the answer is one of the protocol's; only the one
/// right line is `ok`: `host-a`, the right key, and at most a valid machine name after it
/// (the fixture's key is the shared one, valid from any machine).
pub fn batch_line(data: &[u8]) {
    let fixture = fixture();
    let (answer, _) = crate::batch::answer_line(&fixture.verifier, data, Timestamp::UNIX_EPOCH);
    assert!(matches!(
        answer,
        "ok" | "deny invalid" | "deny malformed" | "deny revoked" | "deny kind"
    ));
    if answer == "ok" {
        let separator = |b: &u8| matches!(b, b' ' | b'\t');
        let line = data.strip_suffix(b"\r").unwrap_or(data);
        let (name, rest) = line.split_at(line.iter().position(separator).unwrap_or(0));
        assert_eq!(name, b"host-a");
        let rest = crate::text::trim_space(rest);
        let (key, machine) = rest.split_at(rest.iter().position(separator).unwrap_or(rest.len()));
        // Each field trimmed as a key file is (Go's `TrimSpace`), the key's too.
        assert_eq!(crate::text::trim_space(key), fixture.key.as_bytes());
        if !machine.is_empty() {
            let machine = std::str::from_utf8(crate::text::trim_space(machine));
            assert!(
                machine.is_ok_and(|name| crate::machine::Machine::new(name).is_ok()),
                "{machine:?}"
            );
        }
    }
}

/// The service's header handling: never panics; the status is 200, 400 or 403; the body
/// never holds the key; 200 exactly for one host type `host-a` and one right key of it,
/// each with only spaces and tabs around it (the header rule, [`Trim::Header`]). The input
/// is split into header values at NUL bytes: the first half host types, the rest keys.
pub fn service_headers(data: &[u8]) {
    let fixture = fixture();
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let (host_types, keys) = values.split_at(values.len() / 2);
    let answer = crate::service::answer(&fixture.verifier, host_types, keys, Timestamp::UNIX_EPOCH);
    assert!(
        matches!(answer.status, 200 | 400 | 403),
        "{}",
        answer.status
    );
    assert!(!answer.body.contains(&fixture.key[..8]));
    let right = matches!(
        (host_types, keys),
        ([host], [key]) if host.len() <= crate::service::MAX_HEADER_VALUE
            && key.len() <= crate::service::MAX_HEADER_VALUE
            && Trim::Header.apply(host) == b"host-a"
            && Trim::Header.apply(key) == fixture.key.as_bytes()
    );
    assert_eq!(answer.status == 200, right, "{}", answer.status);
}
