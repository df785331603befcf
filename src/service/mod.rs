//! What the verification service (`gobuildkey serve`) answers, without any HTTP stack: the
//! headers it reads, the status it gives, who the client is ([`client`]), and the
//! per-client limit on failed attempts ([`limiter`]).
//! The binary's HTTP server only moves bytes; every rule is here, and every verdict comes
//! from [`Verifier::verify_at`].
//!
//! Header values are trimmed as Go's `net/http` trims them before the coordinator reads
//! them (`r.Header.Get`): spaces and tabs at both ends, nothing else ([`Trim::Header`]). So
//! a key whose header value ends in U+00A0 or `\v` is malformed here, as the coordinator's
//! string comparison would refuse it, although the same key in a key file (trimmed by Go's
//! `TrimSpace`) is valid. The key goes to the verifier as [`Presented::header`], which
//! trims it by that rule and no further.

pub mod client;
pub mod limiter;

use jiff::Timestamp;

use crate::key::Presented;
use crate::machine::Machine;
use crate::principal::Principal;
use crate::text::Trim;
use crate::verifier::{Decision, Verdict, Verifier};

/// The header carrying the host type, as the builder agent sends it.
pub const HOST_TYPE_HEADER: &str = "x-go-host-type";
/// The header carrying the key, as the builder agent sends it.
pub const KEY_HEADER: &str = "x-go-builder-key";
/// The header carrying the builder's host name (required, as Go's coordinator requires it;
/// it goes into the audit line).
pub const HOSTNAME_HEADER: &str = "x-go-builder-hostname";
/// The header carrying the agent's revdial protocol version; only `2` is current.
pub const REVDIAL_HEADER: &str = "x-revdial-version";
/// The longest header value read; longer ones are malformed.
pub const MAX_HEADER_VALUE: usize = 1024;

/// An answer of `GET /verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 200 valid; 403 invalid, revoked or of another kind; 400 a header missing, repeated
    /// or malformed. (The service turns a failure into 429 when the client is over its
    /// failure budget: see [`limiter`].)
    pub status: u16,
    /// A one-line body. Never contains the key.
    pub body: &'static str,
    /// The principal and the decision, when a verification happened (for the audit).
    pub decision: Option<(Principal, Decision)>,
}

impl Answer {
    fn bad_request(body: &'static str) -> Self {
        Self {
            status: 400,
            body,
            decision: None,
        }
    }

    /// Whether this answer counts as a failed attempt for the rate limit.
    #[must_use]
    pub fn is_failure(&self) -> bool {
        matches!(self.status, 400 | 403)
    }
}

/// The headers of a registration, each with every value the request carried.
#[derive(Debug, Default, Clone, Copy)]
pub struct Registration<'a> {
    /// `X-Revdial-Version`.
    pub revdial_versions: &'a [&'a [u8]],
    /// `X-Go-Builder-Hostname`.
    pub hostnames: &'a [&'a [u8]],
    /// `X-Go-Host-Type`.
    pub host_types: &'a [&'a [u8]],
    /// `X-Go-Builder-Key`.
    pub keys: &'a [&'a [u8]],
}

/// Which of the coordinator's checks of the agent's own headers apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// All of them, in the coordinator's order (Go's `HandleReverse`): `X-Revdial-Version`
    /// present and `2`, `X-Go-Builder-Hostname` present, then the host type and the key.
    Coordinator,
    /// Only the host type and the key, for agents other than Go's buildlet (`serve
    /// --key-headers-only`).
    KeyOnly,
}

/// Answers a registration as Go's coordinator checks it (`HandleReverse`), in its order and
/// with its words, the key decided by [`answer`]: 400 `buildlet binary is too old` without
/// `X-Revdial-Version`, 400 `unknown revdial version` for any but `2`, 400 without
/// `X-Go-Builder-Hostname`, then as [`answer`]. (The coordinator's refusal of a key is 412;
/// this is 403, the status a proxy's auth subrequest passes on.)
///
/// ```
/// use gobuildkey::derive::Deriver;
/// use gobuildkey::key::Algorithm;
/// use gobuildkey::master::MasterSecret;
/// use gobuildkey::service::{Checks, Registration, answer_registration};
/// use gobuildkey::verifier::Verifier;
///
/// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
/// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&"host-a".parse()?);
/// let verifier = Verifier::new(&master, Algorithm::HmacSha256);
/// let now = jiff::Timestamp::now();
/// let mut registration = Registration {
///     revdial_versions: &[b"2"],
///     hostnames: &[b"builder-1"],
///     host_types: &[b"host-a"],
///     keys: &[key.expose_secret().as_bytes()],
/// };
/// assert_eq!(answer_registration(&verifier, &registration, Checks::Coordinator, now).status, 200);
/// registration.revdial_versions = &[];
/// let old = answer_registration(&verifier, &registration, Checks::Coordinator, now);
/// assert_eq!((old.status, old.body), (400, "buildlet binary is too old\n"));
/// assert_eq!(answer_registration(&verifier, &registration, Checks::KeyOnly, now).status, 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn answer_registration(
    verifier: &Verifier,
    registration: &Registration<'_>,
    checks: Checks,
    now: Timestamp,
) -> Answer {
    if checks == Checks::Coordinator {
        // As Go's `Header.Get`: the first value, an empty one as good as none.
        fn first<'v>(values: &[&'v [u8]]) -> Option<&'v [u8]> {
            values
                .first()
                .map(|v| Trim::Header.apply(v))
                .filter(|v| !v.is_empty())
        }
        match first(registration.revdial_versions) {
            None => return Answer::bad_request("buildlet binary is too old\n"),
            Some(b"2") => {}
            Some(_) => return Answer::bad_request("unknown revdial version\n"),
        }
        if first(registration.hostnames).is_none() {
            return Answer::bad_request("missing X-Go-Builder-Hostname header\n");
        }
    }
    let machine = machine_of(registration.hostnames);
    answer_from(
        verifier,
        registration.host_types,
        registration.keys,
        machine.as_ref(),
        now,
    )
}

/// The machine a registration comes from, for keys bound to one (`mint --machine`): the
/// first `X-Go-Builder-Hostname` value (as Go's `Header.Get`), trimmed as a header is; a name
/// that breaks the machine rule ([`Machine::RULE`]) binds nothing.
#[must_use]
pub fn machine_of(hostnames: &[&[u8]]) -> Option<Machine> {
    hostnames
        .first()
        .and_then(|value| std::str::from_utf8(Trim::Header.apply(value)).ok())
        .and_then(|name| Machine::new(name).ok())
}

/// Answers a registration from the values of its host-type and key headers: each slice
/// holds every value the request carried for that header (a header sent twice is
/// malformed). A missing, malformed or wrong key is 403 `invalid build key`, whatever the
/// policy says of the host type, so the status tells nobody without a key which host types
/// are revoked. Values are
/// taken as received (at most [`MAX_HEADER_VALUE`] bytes) and trimmed by [`Trim::Header`]
/// only, whether or not the HTTP stack already did.
///
/// ```
/// use gobuildkey::derive::Deriver;
/// use gobuildkey::key::Algorithm;
/// use gobuildkey::master::MasterSecret;
/// use gobuildkey::service::answer;
/// use gobuildkey::verifier::Verifier;
///
/// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
/// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&"host-a".parse()?);
/// let verifier = Verifier::new(&master, Algorithm::HmacSha256);
/// let now = jiff::Timestamp::now();
///
/// assert_eq!(answer(&verifier, &[b"host-a"], &[key.expose_secret().as_bytes()], now).status, 200);
/// assert_eq!(answer(&verifier, &[b"host-b"], &[key.expose_secret().as_bytes()], now).status, 403);
/// assert_eq!(answer(&verifier, &[], &[key.expose_secret().as_bytes()], now).status, 400);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn answer(verifier: &Verifier, host_types: &[&[u8]], keys: &[&[u8]], now: Timestamp) -> Answer {
    answer_from(verifier, host_types, keys, None, now)
}

/// [`answer`], for a key presented from `machine` (the agent's `X-Go-Builder-Hostname`): a
/// key bound to that machine verifies too ([`Presented::from_machine`]).
#[must_use]
pub fn answer_from(
    verifier: &Verifier,
    host_types: &[&[u8]],
    keys: &[&[u8]],
    machine: Option<&Machine>,
    now: Timestamp,
) -> Answer {
    let (host_type, key) = match (host_types, keys) {
        ([], _) => return Answer::bad_request("missing X-Go-Host-Type; old buildlet binary?\n"),
        ([_], []) => (host_types[0], &b""[..]),
        ([host_type], [key]) => (*host_type, *key),
        _ => return Answer::bad_request("repeated X-Go-Host-Type or X-Go-Builder-Key header\n"),
    };
    if Trim::Header.apply(host_type).is_empty() {
        return Answer::bad_request("missing X-Go-Host-Type; old buildlet binary?\n");
    }
    if host_type.len() > MAX_HEADER_VALUE || key.len() > MAX_HEADER_VALUE {
        return Answer::bad_request("header value too long\n");
    }
    let Some(principal) = std::str::from_utf8(Trim::Header.apply(host_type))
        .ok()
        .and_then(|text| text.parse::<Principal>().ok())
    else {
        return Answer::bad_request("malformed X-Go-Host-Type header\n");
    };
    let presented = Presented::header(key).from_machine(machine);
    let decision = verifier.verify_at(&principal, presented, now);
    let (status, body) = match decision.verdict {
        Verdict::Valid => (200, "ok\n"),
        // Missing, malformed, wrong, revoked, of another kind: one answer, as Go's
        // coordinator gives one ("invalid build key"); the audit line keeps the reason.
        Verdict::Invalid(_) => (403, "invalid build key\n"),
    };
    Answer {
        status,
        body,
        decision: Some((principal, decision)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::principal::Kind;

    fn setup() -> (Verifier, String) {
        let (verifier, key) = crate::verifier::example();
        (verifier.only_kind(Kind::Host), key)
    }

    /// A key bound to a machine is accepted from the host name it was bound to only, in
    /// either mode, whatever the case of the header; the shared key from any.
    #[test]
    fn a_machine_key_is_accepted_from_its_host_name_only() {
        let (v, shared) = setup();
        let master =
            crate::master::MasterSecret::from_text(b"an example master, 32 bytes long").unwrap();
        let bound = crate::derive::Deriver::new(&master, crate::key::Algorithm::HmacSha256)
            .derive_machine(
                &"host-a".parse().unwrap(),
                0,
                &"builder-1".parse().unwrap(),
                0,
            );
        let now = Timestamp::now();
        let ask = |hostname: &[u8], key: &str, checks| {
            let registration = Registration {
                revdial_versions: &[b"2"],
                hostnames: &[hostname],
                host_types: &[b"host-a"],
                keys: &[key.as_bytes()],
            };
            answer_registration(&v, &registration, checks, now).status
        };
        for checks in [Checks::Coordinator, Checks::KeyOnly] {
            assert_eq!(ask(b"builder-1", bound.expose_secret(), checks), 200);
            assert_eq!(ask(b" Builder-1\t", bound.expose_secret(), checks), 200);
            assert_eq!(ask(b"builder-2", bound.expose_secret(), checks), 403);
            assert_eq!(ask(b"builder-1#2", bound.expose_secret(), checks), 403);
            assert_eq!(ask(b"builder-2", &shared, checks), 200);
        }
        assert_eq!(
            answer(&v, &[b"host-a"], &[bound.expose_secret().as_bytes()], now).status,
            403
        );
    }

    #[test]
    fn statuses() {
        let (v, key) = setup();
        let now = Timestamp::now();
        let k = key.as_bytes();
        let long = vec![b'a'; MAX_HEADER_VALUE + 1];
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a [u8]], u16);
        let cases: [Case; 11] = [
            (&[b"host-a"], &[k], 200),
            (&[b"host-b"], &[k], 403),
            (&[b"user-a"], &[k], 403),
            (&[], &[k], 400),
            (&[b"host-a"], &[], 403),
            (&[b"host-a", b"host-a"], &[k], 400),
            (&[b"host-a"], &[k, k], 400),
            (&[b"Host-A"], &[k], 400),
            (&[b"host-\xff"], &[k], 400),
            (&[b"host-a"], &[b"short"], 403),
            (&[b"host-a"], &[&long], 400),
        ];
        for (host, keys, status) in cases {
            let a = answer(&v, host, keys, now);
            assert_eq!(a.status, status, "{host:?}");
            assert!(!a.body.contains(&key[..8]));
        }
    }

    /// Header values lose the spaces and tabs at their ends, as Go's `net/http` strips
    /// them, and nothing else: not the Unicode spaces, `\v` or `\r` that a key file's
    /// trimming (Go's `TrimSpace`) would remove.
    #[test]
    fn header_values_are_trimmed_of_spaces_and_tabs_only() {
        let (v, key) = setup();
        let now = Timestamp::now();
        let status =
            |host: &str, key: &str| answer(&v, &[host.as_bytes()], &[key.as_bytes()], now).status;
        for (host, pad_left, pad_right) in [
            ("host-a", " ", ""),
            ("host-a", "", "\t"),
            (" host-a\t", " \t ", "\t \t"),
            ("\thost-a ", "", ""),
        ] {
            assert_eq!(
                status(host, &format!("{pad_left}{key}{pad_right}")),
                200,
                "{host:?} {pad_left:?} {pad_right:?}"
            );
        }
        for pad in [
            "\u{a0}", "\u{85}", "\u{3000}", "\u{2028}", "\x0b", "\x0c", "\r", "\n",
        ] {
            assert_eq!(
                status("host-a", &format!("{key}{pad}")),
                403,
                "{pad:?} after"
            );
            assert_eq!(
                status("host-a", &format!("{pad}{key}")),
                403,
                "{pad:?} before"
            );
            assert_eq!(
                status(&format!("host-a{pad}"), &key),
                400,
                "{pad:?} in the host type"
            );
        }
        // The same key, as a key file would hold it, is valid: only the header rule differs.
        let in_a_file = format!("\u{3000}{key}\u{a0}\x0b\n");
        assert!(
            v.verify_at(&"host-a".parse().unwrap(), in_a_file.as_bytes(), now)
                .verdict
                .is_valid()
        );
    }
}
