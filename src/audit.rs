//! The audit trail: one JSON line per verification, saying who presented what and what
//! was decided — never a key or a master, only their fingerprints.
//!
//! ```json
//! {"time":"2026-11-24T12:00:00Z","principal":"host-linux-arm-aws","result":"ok","reason":null,"master":"SHA256:9400c745792c2465","generation":0,"key":"SHA256:e4f38feebe139cad"}
//! ```
//!
//! [`AuditLog::record`] is the one audit step of `verify --audit`, `verify --batch --audit`
//! and `serve --audit`: it builds the line from the decision and its [`Context`], redacts
//! what looks like a key, writes the line in one write and flushes it.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::key::{BuildKey, redact_keys};
use crate::machine::Machine;
use crate::principal::Principal;
use crate::secret_file;
use crate::verifier::{Decision, Reason, Verdict};

/// The longest builder host name written into a line's `client`; a longer one is left out.
const MAX_HOSTNAME: usize = 255;

/// What an audit line says besides the decision: the principal the key was presented for,
/// the bytes presented, when, and who presented them (when known: `serve`'s client).
///
/// Its [`Debug`] never shows the presented bytes or the host name, nor a principal that
/// looks like a key.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    principal: &'a Principal,
    presented: &'a [u8],
    time: Timestamp,
    client: Option<(IpAddr, Option<&'a [u8]>)>,
    machine: Option<&'a Machine>,
}

impl<'a> Context<'a> {
    /// `presented` (the bytes as received, untrimmed: only the fingerprint of a well-formed
    /// key is written) for `principal`, verified at `time`.
    #[must_use]
    pub fn new(principal: &'a Principal, presented: &'a [u8], time: Timestamp) -> Self {
        Self {
            principal,
            presented,
            time,
            client: None,
            machine: None,
        }
    }

    /// Presented from `machine` (a key bound to it verifies): a valid key bound to it is
    /// recorded with the line's `machine`.
    #[must_use]
    pub fn from_machine(self, machine: Option<&'a Machine>) -> Self {
        Self { machine, ..self }
    }

    /// Presented by the client at `address`, a builder that calls itself `hostname` (the
    /// first `X-Go-Builder-Hostname` value, as received). The line's `client` is
    /// `"HOSTNAME ADDRESS"`, or `"ADDRESS"` when the host name is absent, longer than 255
    /// bytes or not printable ASCII (tabs allowed: an HTTP header's text).
    #[must_use]
    pub fn with_client(self, address: IpAddr, hostname: Option<&'a [u8]>) -> Self {
        Self {
            client: Some((address, hostname)),
            ..self
        }
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("principal", &redact_keys(self.principal.as_str()))
            .field("presented_len", &self.presented.len())
            .field("time", &self.time)
            .field("client", &self.client.map(|(address, _)| address))
            .finish_non_exhaustive()
    }
}

/// The `client` field: `"HOSTNAME ADDRESS"`, or the address alone.
fn client_field(address: IpAddr, hostname: Option<&[u8]>) -> String {
    // As an HTTP stack gives a header's value as text (hyper's `to_str`): visible ASCII
    // and tabs only.
    let hostname = hostname
        .filter(|name| {
            name.len() <= MAX_HOSTNAME
                && name
                    .iter()
                    .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
        })
        .and_then(|name| std::str::from_utf8(name).ok());
    match hostname {
        Some(name) => format!("{name} {address}"),
        None => address.to_string(),
    }
}

/// One audit line. Field order and names are part of the interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// When, RFC 3339 in UTC.
    pub time: String,
    /// The principal the key was presented for (`[key]` if it looks like a key).
    pub principal: String,
    /// `ok` or `deny`.
    pub result: &'static str,
    /// Why it was denied: `invalid`, `malformed`, `revoked`, `kind`; `null` when ok.
    pub reason: Option<&'static str>,
    /// The fingerprint of the master the key belongs to (valid keys only).
    pub master: Option<String>,
    /// The key's generation (valid keys only).
    pub generation: Option<u64>,
    /// The fingerprint of the presented key, when it is a well-formed key.
    pub key: Option<String>,
    /// Who presented it, when known (an address, a host name); what looks like a key in it
    /// is `[key]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The machine a valid key is bound to (`mint --machine`); absent for a shared key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// When a token expires (RFC 3339): a valid token, or one refused as `expired`; absent
    /// for a plain key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl AuditRecord {
    /// The record of `decision` in `context`: the rule of every audit line of a
    /// verification, which [`AuditLog::record`] writes. Nothing that looks like a key
    /// ([`crate::key::looks_like_key`]) is kept: the presented key only as its fingerprint,
    /// a principal or a host name that looks like one as `[key]`.
    ///
    /// ```
    /// use gobuildkey::audit::{AuditRecord, Context};
    /// use gobuildkey::derive::Deriver;
    /// use gobuildkey::key::Algorithm;
    /// use gobuildkey::master::MasterSecret;
    /// use gobuildkey::verifier::Verifier;
    ///
    /// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let host = "host-linux-arm-aws".parse()?;
    /// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&host);
    /// let presented = key.expose_secret().as_bytes();
    /// let decision = Verifier::new(&master, Algorithm::HmacSha256).verify(&host, presented);
    ///
    /// let context = Context::new(&host, presented, jiff::Timestamp::UNIX_EPOCH);
    /// let line = AuditRecord::new(&decision, &context).to_line();
    /// assert!(line.starts_with(r#"{"time":"1970-01-01T00:00:00Z","principal":"host-linux-arm-aws","result":"ok""#));
    /// assert!(!line.contains(key.expose_secret()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn new(decision: &Decision, context: &Context<'_>) -> Self {
        let (result, reason) = match decision.verdict {
            Verdict::Valid => ("ok", None),
            Verdict::Invalid(reason) => ("deny", Some(reason.as_str())),
        };
        Self {
            time: context.time.to_string(),
            principal: redact_keys(context.principal.as_str()),
            result,
            reason,
            master: decision.master.as_ref().map(ToString::to_string),
            generation: decision.generation,
            // Only a key the verifier took as well formed (by its own trimming rule: a
            // header's differs from a file's) is fingerprinted.
            key: (decision.verdict != Verdict::Invalid(Reason::Malformed))
                .then(|| BuildKey::parse(context.presented).ok())
                .flatten()
                .map(|key| key.fingerprint().to_string()),
            client: context
                .client
                .map(|(address, hostname)| redact_keys(&client_field(address, hostname))),
            machine: context
                .machine
                .filter(|_| decision.machine)
                .map(|machine| redact_keys(machine.as_str())),
            expires: decision.expires.map(|t| t.to_string()),
        }
    }

    /// The record as one line of JSON and a newline.
    #[must_use]
    pub fn to_line(&self) -> String {
        json_line(self)
    }
}

/// `value` as one line of JSON and a newline: how every audit line (a record's, the
/// failure limiter's summary) is encoded.
pub(crate) fn json_line(value: &impl serde::Serialize) -> String {
    // Audit lines hold strings, numbers and options only: serialising them cannot fail.
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// Where audit lines go: standard error, or a file they are appended to.
///
/// Shared between threads behind a `Mutex` (`serve`; `verify --batch`, which SIGHUP
/// reopens with [`reopen`]); each line is one write, so lines never interleave.
#[derive(Debug)]
pub enum AuditLog {
    /// Standard error.
    Stderr,
    /// A file opened for appending.
    File(File),
}

impl AuditLog {
    /// Opens `path` for appending (`-` means standard error). A new file is created with
    /// mode 0600; an existing one must be a regular file, not a link, that only its owner
    /// can read or write.
    ///
    /// # Errors
    /// [`AuditError`] when the file cannot be opened or is unsafe.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        if path == Path::new("-") {
            return Ok(Self::Stderr);
        }
        let err = |error| AuditError {
            path: path.to_owned(),
            error,
        };
        // Never through a link, never blocking on a FIFO, only a regular file.
        let file = secret_file::open_private(path, secret_file::Access::Append).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if secret_file::mode_of(&meta).is_some_and(secret_file::is_too_open) {
            return Err(err(io::Error::other(format!(
                "readable or writable by others: run `chmod 600 {}`",
                path.display()
            ))));
        }
        Ok(Self::File(file))
    }

    /// The audit step of a verification: builds the line of `decision` in `context`
    /// ([`AuditRecord::new`]: no key, what looks like one redacted), appends it in one
    /// write and flushes it. `verify --audit`, `verify --batch --audit` and `serve --audit`
    /// all write their lines through it; share the log between threads behind a `Mutex`.
    ///
    /// ```
    /// use gobuildkey::audit::{AuditLog, Context};
    /// use gobuildkey::derive::Deriver;
    /// use gobuildkey::key::Algorithm;
    /// use gobuildkey::master::MasterSecret;
    /// use gobuildkey::verifier::Verifier;
    ///
    /// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let host = "host-a".parse()?;
    /// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&host);
    /// let presented = key.expose_secret().as_bytes();
    /// let now = jiff::Timestamp::UNIX_EPOCH;
    /// let decision = Verifier::new(&master, Algorithm::HmacSha256).verify_at(&host, presented, now);
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("audit.log");
    /// let mut log = AuditLog::open(&path)?;
    /// // As `serve` calls it: with the client's address and the builder's host name.
    /// let context = Context::new(&host, presented, now)
    ///     .with_client("192.0.2.7".parse()?, Some(&b"builder-1"[..]));
    /// log.record(&decision, &context)?;
    ///
    /// let text = std::fs::read_to_string(&path)?;
    /// assert!(text.starts_with(r#"{"time":"1970-01-01T00:00:00Z","principal":"host-a","result":"ok","reason":null,"master":"SHA256:"#));
    /// assert!(text.ends_with(",\"client\":\"builder-1 192.0.2.7\"}\n"));
    /// assert!(!text.contains(key.expose_secret()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Whatever writing fails with.
    pub fn record(&mut self, decision: &Decision, context: &Context<'_>) -> io::Result<()> {
        self.append(&AuditRecord::new(decision, context).to_line())
    }

    /// Appends one line (which ends in a newline), in one write, and flushes it: a
    /// record's ([`AuditLog::record`]), or another audit line such as the failure
    /// limiter's summary.
    ///
    /// # Errors
    /// Whatever writing fails with.
    pub fn append(&mut self, line: &str) -> io::Result<()> {
        match self {
            Self::Stderr => {
                let mut stderr = io::stderr().lock();
                stderr.write_all(line.as_bytes())?;
                stderr.flush()
            }
            Self::File(file) => {
                file.write_all(line.as_bytes())?;
                file.flush()
            }
        }
    }
}

/// Opens `path` again in place of `log`'s file (SIGHUP: logrotate moved it), with
/// [`AuditLog::open`]'s checks; on failure `log` keeps the file it had, and the error says
/// why. What `serve` and `verify --batch` both do on SIGHUP.
///
/// # Errors
/// As [`AuditLog::open`].
pub fn reopen(log: &std::sync::Mutex<AuditLog>, path: &Path) -> Result<(), AuditError> {
    let reopened = AuditLog::open(path)?;
    *log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = reopened;
    Ok(())
}

/// The audit file cannot be used; nothing is verified without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot append to the audit file {}: {error}", path.display())]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: io::Error,
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn decision(verdict: Verdict) -> Decision {
        Decision {
            verdict,
            master: None,
            generation: None,
            machine: false,
            expires: None,
        }
    }

    fn record(result: Verdict) -> AuditRecord {
        let host = "host-a".parse().unwrap();
        let context = Context::new(&host, b"nope", Timestamp::UNIX_EPOCH);
        AuditRecord::new(&decision(result), &context)
    }

    /// A valid key bound to the machine it came from is recorded with the machine; a shared
    /// key from the same machine, or a refused key, without.
    #[test]
    fn a_machine_key_is_recorded_with_its_machine() {
        let master =
            crate::master::MasterSecret::from_text(b"an example master, 32 bytes long").unwrap();
        let deriver = crate::derive::Deriver::new(&master, crate::key::Algorithm::HmacSha256);
        let verifier = crate::verifier::Verifier::new(&master, crate::key::Algorithm::HmacSha256);
        let host = "host-a".parse().unwrap();
        let machine: Machine = "builder-1".parse().unwrap();
        let line = |key: &str| {
            let presented = crate::key::Presented::from(key.as_bytes()).from_machine(&machine);
            let decision = verifier.verify(&host, presented);
            let context = Context::new(&host, key.as_bytes(), Timestamp::UNIX_EPOCH)
                .from_machine(Some(&machine));
            AuditRecord::new(&decision, &context).to_line()
        };
        let bound = deriver.derive_machine(&host, 0, &machine, 0);
        assert!(line(bound.expose_secret()).contains(r#","machine":"builder-1"}"#));
        let shared = deriver.derive(&host);
        assert!(!line(shared.expose_secret()).contains("machine"));
        assert!(!line(&"0".repeat(64)).contains("machine"));
    }

    #[test]
    fn denials_say_why() {
        let line = record(Verdict::Invalid(Reason::Revoked)).to_line();
        assert_eq!(
            line,
            "{\"time\":\"1970-01-01T00:00:00Z\",\"principal\":\"host-a\",\"result\":\"deny\",\
             \"reason\":\"revoked\",\"master\":null,\"generation\":null,\"key\":null}\n"
        );
    }

    /// A key the verifier found malformed (a header's `KEY\u{a0}`, which a file's trimming
    /// would have cleaned) gets no fingerprint: the line says what the verifier saw.
    #[test]
    fn malformed_keys_get_no_fingerprint() {
        let key = format!("{}\u{a0}", "ab".repeat(32));
        let host = "host-a".parse().unwrap();
        let context = Context::new(&host, key.as_bytes(), Timestamp::UNIX_EPOCH);
        let malformed = AuditRecord::new(&decision(Verdict::Invalid(Reason::Malformed)), &context);
        assert_eq!(malformed.key, None);
        let mismatch = AuditRecord::new(&decision(Verdict::Invalid(Reason::Mismatch)), &context);
        assert!(mismatch.key.is_some());
    }

    /// The presented key is written as its fingerprint only, whatever the verdict; a
    /// principal or a builder host name that looks like a key (a key pasted into the wrong
    /// column or header) is `[key]`.
    #[test]
    fn a_key_never_appears_in_the_line() {
        let (verifier, key) = crate::verifier::example();
        let host: Principal = "host-a".parse().unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let valid = verifier.verify_at(&host, key.as_bytes(), now);
        assert!(valid.verdict.is_valid());
        let padded = format!(" {key}\n");
        let as_principal: Principal = key.parse().unwrap();
        let token: Principal = "gbk1_abc-9".parse().unwrap();
        let hostname = format!("builder {key}");
        let lines = [
            AuditRecord::new(&valid, &Context::new(&host, key.as_bytes(), now)),
            AuditRecord::new(&valid, &Context::new(&host, padded.as_bytes(), now)),
            AuditRecord::new(
                &decision(Verdict::Invalid(Reason::Malformed)),
                &Context::new(&as_principal, b"host-a", now),
            ),
            AuditRecord::new(
                &decision(Verdict::Invalid(Reason::Mismatch)),
                &Context::new(&token, key.as_bytes(), now),
            ),
            AuditRecord::new(
                &decision(Verdict::Invalid(Reason::Mismatch)),
                &Context::new(&host, key.as_bytes(), now)
                    .with_client([192, 0, 2, 7].into(), Some(hostname.as_bytes())),
            ),
        ]
        .map(|record| record.to_line());
        let fingerprint = BuildKey::parse(key.as_bytes())
            .unwrap()
            .fingerprint()
            .to_string();
        for line in &lines {
            for piece in key.as_bytes().windows(8) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!line.contains(piece), "{piece} in {line}");
            }
        }
        assert!(lines[0].contains(&format!("\"key\":\"{fingerprint}\"")));
        assert!(lines[1].contains(&format!("\"key\":\"{fingerprint}\"")));
        assert!(lines[2].contains("\"principal\":\"[key]\""), "{}", lines[2]);
        assert!(lines[3].contains("\"principal\":\"[key]\""), "{}", lines[3]);
        assert!(
            lines[4].ends_with("\"client\":\"builder [key] 192.0.2.7\"}\n"),
            "{}",
            lines[4]
        );
    }

    /// `serve`'s `client`: the builder's host name and the address, or the address alone
    /// when the name is missing, too long or not a header's text.
    #[test]
    fn the_client_is_the_host_name_and_the_address() {
        let host: Principal = "host-a".parse().unwrap();
        let client = |address: IpAddr, hostname: Option<&[u8]>| {
            let context =
                Context::new(&host, b"", Timestamp::UNIX_EPOCH).with_client(address, hostname);
            AuditRecord::new(&decision(Verdict::Invalid(Reason::Malformed)), &context).client
        };
        let v4: IpAddr = [203, 0, 113, 5].into();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let long = vec![b'x'; MAX_HOSTNAME];
        let longer = vec![b'x'; MAX_HOSTNAME + 1];
        let cases: [(IpAddr, Option<&[u8]>, String); 7] = [
            (v4, Some(b"builder-7"), "builder-7 203.0.113.5".into()),
            (v6, Some(b"builder-7"), "builder-7 2001:db8::1".into()),
            (v4, None, "203.0.113.5".into()),
            (v4, Some(b"a\tb c"), "a\tb c 203.0.113.5".into()),
            (
                v4,
                Some(&long),
                format!("{} 203.0.113.5", "x".repeat(MAX_HOSTNAME)),
            ),
            (v4, Some(&longer), "203.0.113.5".into()),
            (v4, Some("bü".as_bytes()), "203.0.113.5".into()),
        ];
        for (address, hostname, expected) in cases {
            assert_eq!(client(address, hostname), Some(expected), "{hostname:?}");
        }
        for control in [b"a\nb", b"a\rb", b"a\x7fb"] {
            assert_eq!(client(v4, Some(control)), Some("203.0.113.5".into()));
        }
        // No client given (verify, verify --batch): no field at all.
        assert!(!record(Verdict::Valid).to_line().contains("client"));
        let line = AuditRecord::new(
            &decision(Verdict::Valid),
            &Context::new(&host, b"", Timestamp::UNIX_EPOCH).with_client(v4, Some(b"b")),
        )
        .to_line();
        assert!(
            line.ends_with(",\"key\":null,\"client\":\"b 203.0.113.5\"}\n"),
            "{line}"
        );
    }

    #[test]
    fn debug_of_a_context_never_shows_the_presented_bytes() {
        let host: Principal = "host-a".parse().unwrap();
        let key = "ab".repeat(32);
        let context = Context::new(&host, key.as_bytes(), Timestamp::UNIX_EPOCH)
            .with_client([192, 0, 2, 7].into(), Some(key.as_bytes()));
        let debug = format!("{context:?}");
        assert!(!debug.contains("abab"), "{debug}");
        assert!(debug.contains("presented_len: 64"), "{debug}");
        let as_principal: Principal = key.parse().unwrap();
        let debug = format!(
            "{:?}",
            Context::new(&as_principal, b"", Timestamp::UNIX_EPOCH)
        );
        assert!(debug.contains("principal: \"[key]\""), "{debug}");
    }

    #[test]
    fn file_is_created_private_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let host = "host-a".parse().unwrap();
        let context = Context::new(&host, b"nope", Timestamp::UNIX_EPOCH);
        for _ in 0..2 {
            let mut log = AuditLog::open(&path).unwrap();
            log.record(&decision(Verdict::Valid), &context).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, record(Verdict::Valid).to_line().repeat(2));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn links_and_open_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, "").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(AuditLog::open(&link).is_err());
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AuditLog::open(&target).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
