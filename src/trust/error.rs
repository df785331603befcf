//! Why [`check_file`](super::check_file) refused a file ([`TrustError`]), and how each refusal
//! is worded: what was found, and the command (or Kubernetes setting) that fixes it.

use std::io;
use std::path::{Path, PathBuf};

/// What a path that [`check_file`](super::check_file) refused is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// The file itself: what the path leads to once every link is followed.
    File,
    /// A folder on the way to the file.
    Folder,
    /// A symbolic link on the way to the file (or the path itself, when it is a link).
    Link,
}

/// Why [`check_file`](super::check_file) refused a file. Never carries the file's content.
///
/// Each message says what was found and the command that fixes it; with `kubernetes` set
/// (the path is in a Kubernetes volume or on a read-only filesystem) it names the
/// Kubernetes settings to change instead.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file, a folder on the way to it, or a link on the way is owned by someone other
    /// than root and the effective uid, who could change it or could have planted it.
    #[error("{}", owner_message(.path, *.kind, .what, *.uid, *.euid, *.kubernetes))]
    Owner {
        /// The file, folder or link with the wrong owner.
        path: PathBuf,
        /// Which of the three it is.
        kind: PathKind,
        /// What was being checked, e.g. "the policy".
        what: String,
        /// Its owner.
        uid: u32,
        /// The effective uid gobuildkey runs as.
        euid: u32,
        /// Whether it is in a Kubernetes volume or on a read-only filesystem.
        kubernetes: bool,
    },
    /// The file or a folder on the way to it is writable by its group or by others.
    #[error("{}", mode_message(.path, *.kind, .what, *.mode, *.kubernetes))]
    Mode {
        /// The file or folder that others can write.
        path: PathBuf,
        /// Which of the two it is ([`PathKind::File`] or [`PathKind::Folder`]).
        kind: PathKind,
        /// What was being checked, e.g. "the policy".
        what: String,
        /// Its permission bits (`0o7777` of its mode).
        mode: u32,
        /// Whether it is in a Kubernetes volume.
        kubernetes: bool,
    },
    /// A path on the way could not be looked at: it is missing, a folder cannot be
    /// searched, links go round in a loop, ...
    #[error("{}", io_message(.path, .what, .error, *.kubernetes))]
    Io {
        /// The path that could not be looked at.
        path: PathBuf,
        /// What was being checked, e.g. "the policy".
        what: String,
        /// What the system said.
        error: io::Error,
        /// Whether it is in a Kubernetes volume or on a read-only filesystem.
        kubernetes: bool,
    },
}

impl TrustError {
    /// The file, folder or link the refusal is about.
    ///
    /// ```
    /// use std::path::Path;
    /// use gobuildkey::trust::check_file;
    ///
    /// let missing = Path::new("/no/such/gobuildkey.toml");
    /// # #[cfg(unix)]
    /// assert_eq!(check_file(missing, "the policy").unwrap_err().path(), Path::new("/no"));
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Owner { path, .. } | Self::Mode { path, .. } | Self::Io { path, .. } => path,
        }
    }
}

/// How a message names what it is about: "the policy /etc/farm/gobuildkey.toml", "the
/// folder /etc/farm above the policy".
fn subject(path: &Path, kind: PathKind, what: &str) -> String {
    match kind {
        PathKind::File => format!("{what} {}", path.display()),
        PathKind::Folder => format!("the folder {} above {what}", path.display()),
        PathKind::Link => format!("the link {} on the way to {what}", path.display()),
    }
}

/// A path as a shell word, quoted when it has to be, for the commands messages suggest.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The message of [`TrustError::Owner`].
fn owner_message(
    path: &Path,
    kind: PathKind,
    what: &str,
    uid: u32,
    euid: u32,
    kubernetes: bool,
) -> String {
    let subject = subject(path, kind, what);
    let harm = match kind {
        PathKind::File => "whoever owns it can change it".to_owned(),
        PathKind::Folder => format!("whoever owns it can replace {what}"),
        PathKind::Link => "whoever owns it may have planted it".to_owned(),
    };
    let found = format!("{subject} is owned by uid {uid}, not by root or you (uid {euid}): {harm}");
    if kubernetes {
        return format!(
            "{found}: it is in a Kubernetes volume (or on another read-only filesystem), where \
             `chown` does not help: run gobuildkey as uid {uid} (`securityContext.runAsUser: \
             {uid}`), or let the kubelet make the volume's files, owned by root (the pod's \
             `securityContext.fsGroup` sets who else may read them)"
        );
    }
    let word = shell_word(path);
    let fix = match kind {
        PathKind::Link => format!("check where it leads, then run `chown -h {euid} {word}`"),
        PathKind::File | PathKind::Folder => format!("run `chown {euid} {word}`"),
    };
    format!("{found}: {fix} (or run gobuildkey as uid {uid})")
}

/// The message of [`TrustError::Mode`].
fn mode_message(path: &Path, kind: PathKind, what: &str, mode: u32, kubernetes: bool) -> String {
    let subject = subject(path, kind, what);
    let harm = match kind {
        PathKind::Folder => format!("whoever can write it can replace {what}"),
        PathKind::File | PathKind::Link => format!("whoever can write it can change {what}"),
    };
    let found = format!(
        "{subject} is writable by group or others (mode {:04o}): {harm}",
        mode & 0o7777
    );
    if !kubernetes {
        return format!("{found}: run `chmod go-w {}`", shell_word(path));
    }
    match kind {
        PathKind::Folder => format!(
            "{found}: it is in a Kubernetes volume, where `chmod` does not last: mount the \
             volume read-only (`readOnly: true` in the container's `volumeMounts`), or drop \
             `fsGroup` from the pod's `securityContext` (on a writable volume it makes the \
             folders group-writable)"
        ),
        PathKind::File | PathKind::Link => format!(
            "{found}: it is in a Kubernetes volume, where `chmod` does not last: set the \
             volume's `defaultMode` (or the item's `mode`) to 0400, or to 0440 with the pod's \
             `securityContext.fsGroup` if another user must read it, and mount the volume \
             read-only (`readOnly: true` in the container's `volumeMounts`)"
        ),
    }
}

/// The message of [`TrustError::Io`].
fn io_message(path: &Path, what: &str, error: &io::Error, kubernetes: bool) -> String {
    let found = format!(
        "cannot look at {} to check who can change {what}: {error}",
        path.display()
    );
    if kubernetes {
        format!(
            "{found}: it is in a Kubernetes volume: check the volume's `defaultMode` and the \
             pod's `securityContext.runAsUser` and `securityContext.fsGroup`"
        )
    } else {
        found
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn read_only_and_kubernetes_owner_messages_name_the_kubernetes_settings() {
        let err = TrustError::Owner {
            path: PathBuf::from("/etc/farm/..2026_11_29/master.key"),
            kind: PathKind::File,
            what: "the master".to_owned(),
            uid: 1001,
            euid: 1000,
            kubernetes: true,
        };
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the master /etc/farm/..2026_11_29/master.key is owned by uid 1001, not by \
                 root or you (uid 1000): whoever owns it can change it: "
            ),
            "{message}"
        );
        assert!(
            message.contains("`securityContext.runAsUser: 1001`"),
            "{message}"
        );
        assert!(message.contains("`securityContext.fsGroup`"), "{message}");
        assert!(!message.contains("run `chown"), "{message}");
    }

    #[test]
    fn messages_quote_paths_the_shell_would_split() {
        let err = TrustError::Mode {
            path: PathBuf::from("/srv/my farm/it's.toml"),
            kind: PathKind::File,
            what: "the policy".to_owned(),
            mode: 0o666,
            kubernetes: false,
        };
        assert!(
            err.to_string()
                .ends_with(r"run `chmod go-w '/srv/my farm/it'\''s.toml'`"),
            "{err}"
        );
    }

    #[test]
    fn io_messages_in_kubernetes_name_the_settings() {
        let err = TrustError::Io {
            path: PathBuf::from("/etc/farm/..data"),
            what: "the master".to_owned(),
            error: std::io::ErrorKind::PermissionDenied.into(),
            kubernetes: true,
        };
        let message = err.to_string();
        assert!(
            message.starts_with(
                "cannot look at /etc/farm/..data to check who can change the master: "
            ),
            "{message}"
        );
        assert!(message.contains("`defaultMode`"), "{message}");
        assert!(message.contains("`securityContext.runAsUser`"), "{message}");
    }
}
