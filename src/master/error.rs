//! Why no master could be had ([`MasterError`]), and the words of each refusal: what was
//! found and what fixes it (`gobuildkey init`, `chmod 600`, a Kubernetes mount's
//! `defaultMode`, `--command-timeout` …), never the secret nor the command line.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::{MAX_LEN, MIN_LEN};
use crate::secret_file::ReadError;

/// A length of time as people write it: `10s`, `500ms`, `1m 30s`.
fn show_duration(duration: Duration) -> String {
    match jiff::SignedDuration::try_from(duration) {
        Ok(duration) => format!("{duration:#}"),
        Err(_) => format!("{duration:?}"),
    }
}

fn too_open_message(path: &Path, mode: u32, mounted: bool) -> String {
    let path = path.display();
    if mounted {
        format!(
            "master key {path} is readable or writable by others (mode {mode:04o}), in a mounted \
             volume whose modes `chmod` cannot change for good: mount the Secret with \
             `defaultMode: 0400` (or 0440 with the pod's `fsGroup`, on a read-only volume)"
        )
    } else {
        format!(
            "master key {path} is readable or writable by others (mode {mode:04o}): run `chmod 600 {path}`"
        )
    }
}

/// Why no master could be had. Never carries the secret, nor the command line that
/// fetches it (it may name a secret store's token or path).
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// No file at the master's path.
    #[error(
        "no master key at {}: if this is a new farm, `gobuildkey init` creates one; on an \
         existing farm restore the master from its backup (a new master invalidates every \
         key), or point --master-key at it",
        path.display()
    )]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file can be read or written by group or others.
    #[error("{}", too_open_message(path, *mode, *mounted))]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Whether it is in a mounted volume (Kubernetes, read-only), whose modes come
        /// from the mount rather than from `chmod`.
        mounted: bool,
    },
    /// The file is not a regular file or cannot be read.
    #[error("cannot use the master key: {0}")]
    Read(ReadError),
    /// Someone but root and this user could have written or replaced the file.
    #[error("refusing to use the master: {0}")]
    Untrusted(Box<crate::trust::TrustError>),
    /// Nothing but whitespace.
    #[error("the master key is empty: create one with `gobuildkey init`")]
    Empty,
    /// Fewer than [`MIN_LEN`] bytes after trimming.
    #[error(
        "the master key is {len} bytes long; at least {MIN_LEN} are needed: create a new one with `gobuildkey init`"
    )]
    TooShort {
        /// Its length after trimming.
        len: usize,
    },
    /// More than [`MAX_LEN`] bytes.
    #[error("the master key is longer than {MAX_LEN} bytes: is this the right file?")]
    TooLong,
    /// The master key command could not be run, or its output not read.
    #[error("cannot run the master key command: {0}")]
    CommandStart(io::Error),
    /// The master key command exited with an error.
    #[error("the master key command failed ({status}); see its messages above")]
    CommandFailed {
        /// How it exited.
        status: ExitStatus,
    },
    /// The master key command did not exit, or did not close its standard output, within
    /// its time limit; it was killed.
    #[error(
        "the master key command did not finish within {}, and was stopped: check that the \
         secret manager answers (is it waiting for a password, or for the network?), or \
         allow it longer with --command-timeout",
        show_duration(*timeout)
    )]
    CommandTimedOut {
        /// The time it was given.
        timeout: Duration,
    },
    /// `HOME` is unset, empty or relative and no master was named.
    #[error(
        "no home folder to find the master key in (HOME is unset, empty or relative): \
         set HOME or pass --master-key FILE"
    )]
    NoHome,
    /// Both a master file and a master command were named in the environment.
    #[error(
        "both GOBUILDKEY_MASTER_KEY_FILE and GOBUILDKEY_MASTER_KEY_COMMAND are set: unset one, \
         or choose with --master-key or --master-key-command"
    )]
    Ambiguous,
    /// The operating system's random number generator failed.
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn durations_are_shown_as_people_write_them() {
        assert_eq!(show_duration(Duration::from_secs(10)), "10s");
        assert_eq!(show_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(show_duration(Duration::from_secs(120)), "2m");
        assert_eq!(show_duration(Duration::from_secs(90)), "1m 30s");
    }
}
