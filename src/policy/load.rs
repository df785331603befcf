//! Reading the policy file: required (a missing or empty file is an error), trusted (nobody
//! else could have written it), bounded, UTF-8, then parsed; any failure fails closed.

use std::path::Path;

use super::{Policy, PolicyError};
use crate::secret_file::{self, ReadError};

/// The largest policy file read: 64 MiB, over a million principals in the layout
/// gobuildkey writes (100,000 take about 10 MB). A bound all the same, so that a wrong file
/// named by mistake is refused rather than read into memory.
pub const MAX_LEN: usize = 64 << 20;

impl Policy {
    /// Loads the policy at `path`. The file must exist: a missing policy is an error, not
    /// an empty policy.
    ///
    /// ```
    /// use gobuildkey::policy::{Policy, PolicyError, PrincipalState, store::Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("gobuildkey.toml");
    /// assert!(matches!(Policy::load(&path), Err(PolicyError::Missing { .. })));
    ///
    /// Store::new(&path).create(&Policy::template(&path))?;
    /// let policy = Policy::load(&path)?;
    /// let host = "host-linux-arm-aws".parse()?;
    /// assert_eq!(policy.state(&host), PrincipalState::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`PolicyError`] when the file is missing, empty, cannot be read, may be written by
    /// others, or is not a valid policy.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let missing = || PolicyError::Missing {
            path: path.to_owned(),
        };
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            // Whoever could write the policy could reinstate a principal, or add a keyring
            // `command` for gobuildkey to run: checked before a byte of it is read.
            Ok(meta) if meta.is_file() => crate::trust::check_file(path, "the policy")
                .map_err(|e| PolicyError::Untrusted(Box::new(e)))?,
            // Not a regular file, or not to be looked at: the read below says which.
            _ => {}
        }
        let file = match secret_file::read_secret_file(path, MAX_LEN) {
            Ok(file) => file,
            Err(ReadError::Missing { .. }) => return Err(missing()),
            Err(e) => return Err(PolicyError::Read(e)),
        };
        let mut contents = file.contents.ok_or_else(|| PolicyError::Invalid {
            path: path.display().to_string(),
            at: (1, 1),
            message: format!("the file is larger than {MAX_LEN} bytes"),
        })?;
        // Taken, not copied: a fleet's policy is megabytes, and it holds no secret.
        let text = String::from_utf8(std::mem::take(&mut *contents)).map_err(|_| {
            PolicyError::Invalid {
                path: path.display().to_string(),
                at: (1, 1),
                message: "the file is not UTF-8".into(),
            }
        })?;
        if text.is_empty() {
            return Err(PolicyError::Invalid {
                path: path.display().to_string(),
                at: (1, 1),
                message: "the file is empty: a policy gobuildkey writes never is, so it was \
                          truncated; restore it from its backup"
                    .into(),
            });
        }
        Self::parse_owned(text, Some(path))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_missing_or_empty_policy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let err = Policy::load(&path).unwrap_err();
        assert!(matches!(err, PolicyError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("backup"), "{err}");
        std::fs::write(&path, "").unwrap();
        let err = Policy::load(&path).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(!Policy::template(&path).to_text().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[principals]\n").unwrap();
        for (mode, ok) in [(0o600, true), (0o644, true), (0o620, false), (0o602, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(Policy::load(&path).is_ok(), ok, "{mode:o}");
        }
    }

    #[test]
    fn a_fleets_policy_loads_and_a_larger_file_is_refused() {
        use std::fmt::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        // 60,000 principals, 5.9 MB: over the 4 MiB that once was the limit.
        let mut text = String::from("[principals]\n");
        for i in 0..60_000 {
            let _ = write!(
                text,
                "\n[principals.host-linux-amd64-m{i:06}]\ngeneration = 2\nminted_under = \"SHA256:1f0c2a9d4b7e3c55\"\n"
            );
        }
        assert!(text.len() > 4 << 20);
        std::fs::write(&path, &text).unwrap();
        let policy = Policy::load(&path).unwrap();
        assert_eq!(policy.principals().count(), 60_000);
        let host = "host-linux-amd64-m059999".parse().unwrap();
        assert_eq!(policy.state(&host).generation, 2);

        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_LEN as u64 + 1).unwrap();
        let err = Policy::load(&path).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
