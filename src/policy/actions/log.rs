//! The log file: appended one line per action (flushed, private, never through a link) and
//! read back; trusted as the policy is.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Action;
use crate::policy::PolicyError;
use crate::secret_file;

/// The log's file name, beside the policy.
pub const FILE_NAME: &str = "gobuildkey-actions.log";

/// The lines of a log that are not actions: each line's number (1-based) and why.
pub type UnreadableLines = Vec<(usize, String)>;

/// The action log of one policy.
#[derive(Debug, Clone)]
pub struct ActionLog {
    path: PathBuf,
}

impl ActionLog {
    /// The log beside the policy at `policy`, named after it: `gobuildkey-actions.log` for
    /// `gobuildkey.toml` ([`FILE_NAME`]), `farm-actions.log` for `farm.toml`, so two
    /// policies in one folder never share a history.
    #[must_use]
    pub fn beside(policy: &Path) -> Self {
        let stem = policy
            .file_stem()
            .map_or_else(|| "gobuildkey".into(), |s| s.to_string_lossy().into_owned());
        Self {
            path: policy.with_file_name(format!("{stem}-actions.log")),
        }
    }

    /// The log's file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log exists (a farm with a history).
    #[must_use]
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok()
    }

    fn error(&self, error: io::Error) -> PolicyError {
        PolicyError::ActionLog {
            path: self.path.clone(),
            error,
        }
    }

    /// The log is trusted as the policy is: a log others could write could reinstate a
    /// principal or add a keyring command on a replay.
    fn check_trusted(&self) -> Result<(), PolicyError> {
        if !self.exists() {
            return Ok(());
        }
        crate::trust::check_file(&self.path, "the action log")
            .map_err(|e| PolicyError::Untrusted(Box::new(e)))
    }

    /// Appends `action` as one line and flushes it to disk. Call it under the policy's
    /// lock, before the policy is replaced. A last line cut short (a full disk, a crash) is
    /// ended first, so it cannot swallow this one.
    ///
    /// # Errors
    /// [`PolicyError::ActionLog`] when the log cannot be opened or written;
    /// [`PolicyError::Untrusted`] when others could have written it.
    pub fn append(&self, action: &Action) -> Result<(), PolicyError> {
        self.check_trusted()?;
        let mut line = vec![b'\n'];
        serde_json::to_writer(&mut line, action).map_err(|e| self.error(io::Error::other(e)))?;
        line.push(b'\n');
        let mut file = secret_file::open_private(&self.path, secret_file::Access::ReadAppend)
            .map_err(|e| self.error(e))?;
        let whole = ends_with_newline(&file).map_err(|e| self.error(e))?;
        let line = if whole { &line[1..] } else { &line[..] };
        file.write_all(line).map_err(|e| self.error(e))?;
        file.sync_all().map_err(|e| self.error(e))
    }

    /// Every action, in order. A missing log is an empty one.
    ///
    /// # Errors
    /// [`PolicyError::ActionLog`] when the log cannot be read, or a line is not an action
    /// (its number is given); [`PolicyError::Untrusted`] when others could have written it.
    pub fn read(&self) -> Result<Vec<Action>, PolicyError> {
        let (actions, bad) = self.read_skipping()?;
        match bad.first() {
            None => Ok(actions),
            Some(&(n, ref why)) => Err(self.error(io::Error::other(format!(
                "line {n} is not an action: {why}{}",
                if bad.len() > 1 {
                    format!(" (nor are {} more lines)", bad.len() - 1)
                } else {
                    String::new()
                }
            )))),
        }
    }

    /// The actions that can be read, and the lines (1-based, with why) that cannot: for
    /// showing the log, and for knowing which principals it names, despite a line cut short.
    ///
    /// # Errors
    /// As [`ActionLog::read`], but for unreadable lines.
    pub fn read_skipping(&self) -> Result<(Vec<Action>, UnreadableLines), PolicyError> {
        self.check_trusted()?;
        let text = match secret_file::read_secret_file(&self.path, MAX_LOG) {
            Ok(file) => file
                .contents
                .ok_or_else(|| self.error(io::Error::other("the log is larger than 256 MiB")))?,
            Err(secret_file::ReadError::Missing { .. }) => return Ok((Vec::new(), Vec::new())),
            Err(secret_file::ReadError::Io { error, .. }) => return Err(self.error(error)),
            Err(e) => return Err(self.error(io::Error::other(e.to_string()))),
        };
        let mut actions = Vec::new();
        let mut bad = Vec::new();
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(action) => actions.push(action),
                Err(e) => bad.push((n + 1, e.classify_words())),
            }
        }
        Ok((actions, bad))
    }

    /// Whether any action that can be read names `principal`.
    ///
    /// # Errors
    /// As [`ActionLog::read_skipping`].
    pub fn knows(&self, principal: &str) -> Result<bool, PolicyError> {
        Ok(self
            .read_skipping()?
            .0
            .iter()
            .any(|action| action.principal.as_deref() == Some(principal)))
    }
}

/// Whether `file` is empty or ends with a newline.
#[cfg(unix)]
fn ends_with_newline(file: &std::fs::File) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

#[cfg(not(unix))]
fn ends_with_newline(_: &std::fs::File) -> io::Result<bool> {
    Ok(false)
}

/// The most bytes of log read.
const MAX_LOG: usize = 256 << 20;

/// serde_json's words for what is wrong, without the line's text (which may hold anything).
trait ClassifyWords {
    fn classify_words(&self) -> String;
}

impl ClassifyWords for serde_json::Error {
    fn classify_words(&self) -> String {
        format!("{:?} error at column {}", self.classify(), self.column())
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_log_is_private_appended_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
        assert!(log.read().unwrap().is_empty());
        assert!(!log.exists());
        let mut action = Action::new("revoke");
        action.reason = Some("stolen \"laptop\"\nsecond line".into());
        log.append(&action).unwrap();
        log.append(&Action::new("end-grace")).unwrap();
        let mode = fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "one line per action: {text}");
        assert_eq!(log.read().unwrap()[0], action);
    }

    #[test]
    fn a_bad_line_is_named_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
        log.append(&Action::new("init")).unwrap();
        let mut file = secret_file::open_private(log.path(), secret_file::Access::Append).unwrap();
        file.write_all(b"{\"secretish").unwrap();
        let err = log.read().unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("secretish"), "{err}");
        // A line cut short does not swallow the next action.
        log.append(&Action::new("revoke")).unwrap();
        let (actions, bad) = log.read_skipping().unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 2);
    }

    #[test]
    fn never_appends_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let log = ActionLog::beside(&dir.path().join("gobuildkey.toml"));
        std::os::unix::fs::symlink(dir.path().join("victim"), log.path()).unwrap();
        assert!(log.append(&Action::new("init")).is_err());
        assert!(!dir.path().join("victim").exists());
    }
}
