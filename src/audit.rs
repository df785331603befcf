//! The audit trail: one JSON line per verification, saying who presented what and what
//! was decided — never a key or a master, only their fingerprints.
//!
//! ```json
//! {"time":"2026-11-24T12:00:00Z","principal":"host-linux-arm-aws","result":"ok","reason":null,"master":"SHA256:9400c745792c2465","generation":0,"key":"SHA256:e4f38feebe139cad"}
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::key::BuildKey;
use crate::principal::Principal;
use crate::secret_file;
use crate::verifier::{Decision, Reason, Verdict};

/// One audit line. Field order and names are part of the interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// When, RFC 3339 in UTC.
    pub time: String,
    /// The principal the key was presented for.
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
    /// Who presented it, when known (an address, a host name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl AuditRecord {
    /// The record of `decision` on `presented` for `principal` at `now`.
    ///
    /// ```
    /// use gobuildkey::audit::AuditRecord;
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
    /// let line = AuditRecord::new(&host, &decision, presented, jiff::Timestamp::UNIX_EPOCH).to_line();
    /// assert!(line.starts_with(r#"{"time":"1970-01-01T00:00:00Z","principal":"host-linux-arm-aws","result":"ok""#));
    /// assert!(!line.contains(key.expose_secret()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn new(
        principal: &Principal,
        decision: &Decision,
        presented: &[u8],
        now: Timestamp,
    ) -> Self {
        let (result, reason) = match decision.verdict {
            Verdict::Valid => ("ok", None),
            Verdict::Invalid(reason) => ("deny", Some(reason.as_str())),
        };
        Self {
            time: now.to_string(),
            principal: principal.to_string(),
            result,
            reason,
            master: decision.master.as_ref().map(ToString::to_string),
            generation: decision.generation,
            // Only a key the verifier took as well formed (by its own trimming rule: a
            // header's differs from a file's) is fingerprinted.
            key: (decision.verdict != Verdict::Invalid(Reason::Malformed))
                .then(|| BuildKey::parse(presented).ok())
                .flatten()
                .map(|key| key.fingerprint().to_string()),
            client: None,
        }
    }

    /// The record as one line of JSON and a newline.
    #[must_use]
    pub fn to_line(&self) -> String {
        // Serialising plain strings, numbers and options cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// Where audit lines go: standard error, or a file they are appended to.
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

    /// Appends one record, in one write.
    ///
    /// # Errors
    /// Whatever writing fails with.
    pub fn write(&mut self, record: &AuditRecord) -> io::Result<()> {
        self.append(&record.to_line())
    }

    /// Appends one line (which ends in a newline), in one write: a record's, or another
    /// audit line such as the failure limiter's summary.
    ///
    /// # Errors
    /// Whatever writing fails with.
    pub fn append(&mut self, line: &str) -> io::Result<()> {
        match self {
            Self::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Self::File(file) => file.write_all(line.as_bytes()),
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

    fn record(result: Verdict) -> AuditRecord {
        let decision = Decision {
            verdict: result,
            master: None,
            generation: None,
        };
        AuditRecord::new(
            &"host-a".parse().unwrap(),
            &decision,
            b"nope",
            Timestamp::UNIX_EPOCH,
        )
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
        let decision = |verdict| Decision {
            verdict,
            master: None,
            generation: None,
        };
        let key = format!("{}\u{a0}", "ab".repeat(32));
        let host = "host-a".parse().unwrap();
        let malformed = AuditRecord::new(
            &host,
            &decision(Verdict::Invalid(Reason::Malformed)),
            key.as_bytes(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(malformed.key, None);
        let mismatch = AuditRecord::new(
            &host,
            &decision(Verdict::Invalid(Reason::Mismatch)),
            key.as_bytes(),
            Timestamp::UNIX_EPOCH,
        );
        assert!(mismatch.key.is_some());
    }

    #[test]
    fn file_is_created_private_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        for _ in 0..2 {
            let mut log = AuditLog::open(&path).unwrap();
            log.write(&record(Verdict::Valid)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
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
